"""The development rig: what a developer runs on one machine to see and test the whole system. It is
neither the controller nor the receiver, and it is the only package that may import both sides.

- `demo.run_demo`: `truyenthanh-dev demo` (what `make demo` runs): database, broker, controller and a
  simulated fleet on this machine.
- `testbed.make_testbed`: a real broker with provisioned accounts, a seeded database, keys and a fleet file,
  for the end-to-end tests and the benchmarks.
- `cli`: the `truyenthanh-dev` command: `demo`, `fleet` (N simulated receivers in one process) and
  `sim-agent` (one agent on simulated hardware, in its own process as on a Pi).
- `ports`: free local ports and waiting for a listener.

Nothing in `controller/`, `receivers/` or `firmware_sim/` imports this package (tests/test_boundaries.py).
"""
