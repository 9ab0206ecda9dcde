"""The receiver's hardware and world, simulated, so the real agent code runs in tests, demos and benchmarks.

- `hardware.SimHardware`: volume, amplifier relay, temperature, signal strength.
- `netproxy.LinkProxy`: a TCP proxy between an agent and the broker that can cut the link silently
  (no FIN, no RST: what a dropped 4G link looks like to the broker).
- `fleet`: runs N real agents in one process from a fleet file written by `truyenthanh provision`.
"""
