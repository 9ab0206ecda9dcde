"""The receiver's hardware and world, simulated, so the real agent code runs in tests, demos and benchmarks.

- `hardware.SimHardware`: volume, amplifier relay, temperature, signal strength.
- `netproxy.LinkProxy`: a TCP proxy between an agent and the broker or the media server that breaks the
  link on demand: silently (no FIN, no RST: what a dropped 4G link looks like to the broker), abruptly,
  slowly (a rate limit), and, for the next connection, by flipping bytes or dropping a download mid-way.
- `disk.LimitedDisk`: a size-limited tmpfs for a receiver's state dir, to fill up (disk full) and to keep
  what was written across an agent killed hard and started again.
- `clock.OffsetClock`: a receiver clock that is wrong by a settable offset (`Agent(..., clock=...)`).
- `fleet`: runs N real agents in one process from a fleet file written by `truyenthanh provision`.
"""
