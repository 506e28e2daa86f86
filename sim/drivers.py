"""cocotb 2.x stimulus helpers shared by plait's testbenches.

Signal-level conventions of plait's RTL (see ``rtl/sv/README.md``): one clock
``clk``, synchronous active-low reset ``rst_n`` (``rst`` active-high is also
accepted by :func:`reset`), valid/ready streams with AXI-Stream rules (a word
moves when ``valid && ready`` at a rising edge; valid never waits for ready).

Timing discipline used by every helper here: values are *driven* right after a
rising edge and *sampled* in the ``ReadOnly`` phase of the same time step (the
settled state of the cycle, which is what the next rising edge will capture).
That avoids the "did I read the value before or after the edge" ambiguity.

* :func:`start_clock` -- start a clock (``cocotb.clock.Clock``), returns it.
* :func:`reset` -- hold reset for ``cycles`` rising edges, then release.
* :class:`StreamDriver` -- sends a sequence of ``{field: int}`` dicts on a
  valid/ready stream, with optional random idle gaps (``gap_prob``).
* :class:`StreamMonitor` -- records every transfer of a stream as a dict (and
  the cycle it happened in).
* :class:`BackpressureDriver` -- toggles a ``ready`` input at random (or from a
  fixed pattern) to exercise stalls.
* :func:`pack_signed` / :func:`unpack_signed` -- packed-bus helpers: lane ``i``
  occupies bits ``[i*width +: width]`` (lane 0 in the LSBs), two's complement.
* :func:`to_int` / :func:`to_signed` -- read a handle's value as an integer;
  raise ``ValueError`` on X/Z bits (an X on an output is a bug, not a zero).
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Sequence

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["start_clock", "reset", "StreamDriver", "StreamMonitor", "BackpressureDriver",
           "pack_signed", "unpack_signed", "pack_unsigned", "unpack_unsigned",
           "to_int", "to_signed", "CycleCounter"]


# ------------------------------------------------------------------ packing
def pack_signed(values: Iterable[int], width: int) -> int:
    """Pack signed integers into one unsigned bus value (lane 0 = LSBs).

    Raises ``ValueError`` if a value does not fit ``width`` bits signed."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    out = 0
    for i, v in enumerate(values):
        v = int(v)
        if not lo <= v <= hi:
            raise ValueError(f"pack_signed: lane {i} value {v} does not fit {width} bits signed")
        out |= (v & ((1 << width) - 1)) << (i * width)
    return out


def pack_unsigned(values: Iterable[int], width: int) -> int:
    out = 0
    for i, v in enumerate(values):
        v = int(v)
        if not 0 <= v < (1 << width):
            raise ValueError(f"pack_unsigned: lane {i} value {v} does not fit {width} bits")
        out |= v << (i * width)
    return out


def _bus_int(value: Any) -> int:
    if isinstance(value, int):
        return value
    return to_int(value)


def unpack_signed(value: Any, width: int, count: int) -> list[int]:
    """Split a packed bus value (int or cocotb value) into ``count`` signed lanes."""
    v = _bus_int(value)
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    out = []
    for i in range(count):
        x = (v >> (i * width)) & mask
        out.append(x - (1 << width) if x & sign else x)
    return out


def unpack_unsigned(value: Any, width: int, count: int) -> list[int]:
    v = _bus_int(value)
    mask = (1 << width) - 1
    return [(v >> (i * width)) & mask for i in range(count)]


def to_int(value: Any) -> int:
    """Unsigned integer of a handle or a cocotb value; ``ValueError`` on X/Z."""
    if hasattr(value, "value") and not isinstance(value, int):
        value = value.value
    if isinstance(value, int):
        return value
    if hasattr(value, "to_unsigned"):
        # fast path: a plain 0/1 string converts in C (is_resolvable builds one Logic
        # object per bit -- about 1 ms for a 2048-bit bus)
        s = str(value)
        if s and not s.strip("01"):
            return int(s, 2)
    if hasattr(value, "is_resolvable") and not value.is_resolvable:
        raise ValueError(f"signal value {value} has X/Z bits")
    if hasattr(value, "to_unsigned"):
        return value.to_unsigned()
    return int(value)


def to_signed(value: Any, width: int | None = None) -> int:
    """Signed (two's complement) integer of a handle or value; ``ValueError`` on X/Z."""
    if width is None and not isinstance(value, int) and hasattr(value, "__len__"):
        width = len(value)              # a handle or a LogicArray knows its width
    u = to_int(value)
    if width is None:
        raise ValueError("to_signed: width required for a plain int")
    return u - (1 << width) if u >> (width - 1) & 1 else u


# ------------------------------------------------------------ clock / reset
def start_clock(clk, period_ns: float = 10.0) -> Clock:
    """Start a free-running clock on ``clk`` (period in ns); returns the Clock."""
    c = Clock(clk, period_ns, unit="ns")
    c.start()
    return c


def _find(dut, *names):
    for n in names:
        try:
            return getattr(dut, n), n
        except AttributeError:
            continue
    return None, None


async def reset(dut, cycles: int = 5, *, clk=None, rst=None, active_low: bool | None = None,
                idle: dict | None = None) -> None:
    """Assert reset for ``cycles`` rising edges, then deassert it.

    Uses ``dut.rst_n`` (active low) or ``dut.rst`` (active high) unless ``rst`` is
    given.  ``idle`` is a ``{handle: value}`` dict of inputs to drive while in reset
    (e.g. valids to 0).  Returns right after the rising edge that follows release.
    """
    if clk is None:
        clk, _ = _find(dut, "clk", "clock", "aclk")
        if clk is None:
            raise AttributeError("reset(): dut has no clk/clock/aclk; pass clk=")
    if rst is None:
        rst, name = _find(dut, "rst_n", "aresetn", "rst", "reset")
        if rst is None:
            raise AttributeError("reset(): dut has no rst_n/aresetn/rst/reset; pass rst=")
        if active_low is None:
            active_low = name in ("rst_n", "aresetn")
    elif active_low is None:
        active_low = True
    for h, v in (idle or {}).items():
        h.value = v
    rst.value = 0 if active_low else 1
    for _ in range(cycles):
        await RisingEdge(clk)
    rst.value = 1 if active_low else 0
    await RisingEdge(clk)


class CycleCounter:
    """Counts rising edges from :meth:`start` on (for cycles/tile measurements)."""

    def __init__(self, clk):
        self.clk = clk
        self.cycles = 0
        self._task = None

    def start(self) -> "CycleCounter":
        async def run():
            while True:
                await RisingEdge(self.clk)
                self.cycles += 1
        self._task = cocotb.start_soon(run())
        return self

    def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return self.cycles


# ------------------------------------------------------------------ streams
class StreamDriver:
    """Drive a valid/ready stream.

    ``data_signals`` maps transaction keys to handles, e.g.
    ``{"data": dut.s_data}``; :meth:`send` takes an iterable of dicts with those
    keys (missing keys keep their previous value).  ``ready`` may be ``None`` for
    valid-only streams (every valid cycle transfers).  ``gap_prob`` inserts random
    idle cycles (valid low) before transactions, driven by ``rng`` (seeded).
    While idle, data signals keep their last value unless ``idle_value`` is given.

    ``wait_ready_edge=True``: while a word waits (``valid`` high, ``ready`` sampled
    low), sleep until ``ready`` rises instead of resuming at every clock edge -- the
    same transfers, far fewer Python resumes for a stream that is stalled most of the
    time (e.g. a parameter stream consumed once per quantization group).

    ``on_transfer(txn, waited)`` is called in the ``ReadOnly`` phase of the cycle whose
    coming rising edge transfers ``txn`` (so the caller can note that edge, e.g. to
    measure a latency); ``waited`` says whether ``ready`` held it back at least once.
    """

    def __init__(self, clk, valid, ready, data_signals: dict[str, Any], *,
                 gap_prob: float = 0.0, rng: random.Random | None = None,
                 idle_value: int | None = None, wait_ready_edge: bool = False,
                 on_transfer: Callable[[dict, bool], None] | None = None):
        if not 0.0 <= gap_prob < 1.0:
            raise ValueError(f"StreamDriver: gap_prob must be in [0, 1), got {gap_prob}")
        if wait_ready_edge and ready is None:
            raise ValueError("StreamDriver: wait_ready_edge needs a ready signal")
        self.clk, self.valid, self.ready = clk, valid, ready
        self.data = dict(data_signals)
        self.wait_ready_edge = wait_ready_edge
        self.gap_prob = gap_prob
        self.rng = rng or random.Random(0)
        self.idle_value = idle_value
        self.on_transfer = on_transfer
        self.sent = 0
        self.valid.value = 0

    def _drive(self, txn: dict[str, int]) -> None:
        for k, v in txn.items():
            try:
                h = self.data[k]
            except KeyError:
                raise KeyError(f"StreamDriver: transaction key {k!r} is not one of "
                               f"{sorted(self.data)}") from None
            h.value = int(v)

    async def send(self, txns: Iterable[dict[str, int]]) -> int:
        """Send all transactions; returns after the last one was accepted (right
        after that rising edge, with valid driven low).  Must be called right after
        a rising edge (e.g. after :func:`reset`)."""
        n = 0
        for txn in txns:
            while self.gap_prob and self.rng.random() < self.gap_prob:
                self.valid.value = 0
                if self.idle_value is not None:
                    for h in self.data.values():
                        h.value = self.idle_value
                await RisingEdge(self.clk)
            self._drive(txn)
            self.valid.value = 1
            waited = False
            while True:
                await ReadOnly()
                if self.ready is None or int(self.ready.value) == 1:
                    if self.on_transfer is not None:
                        self.on_transfer(txn, waited)
                    await RisingEdge(self.clk)
                    break
                # ready low: no transfer at the coming edge
                waited = True
                await (RisingEdge(self.ready) if self.wait_ready_edge else RisingEdge(self.clk))
            n += 1
            self.sent += 1
        self.valid.value = 0
        return n


class StreamMonitor:
    """Record transfers (``valid && ready`` at a rising edge) of a stream.

    ``transactions`` holds ``{key: int}`` dicts (unsigned values; use
    :func:`unpack_signed` for packed signed lanes); ``cycles`` the cycle index (rising
    edges since :meth:`start`) of each transfer.  Start it right after a rising edge
    (not in a ReadOnly phase); the current cycle is the first one sampled.  ``callback(txn)`` is called per transfer.
    Reading an X/Z on a data signal during a transfer raises ``ValueError``.

    ``period_ns`` (the clock period) switches to *sleeping* sampling: while ``valid``
    (or ``ready``) is low the monitor waits for its rising edge instead of resuming at
    every clock edge, and ``cycles`` are computed from simulation time (``floor((t -
    t_start) / period_ns)``, the same indices).  Same transfers; far fewer Python
    resumes for a sparse stream (one output word per tile or group).
    """

    def __init__(self, clk, valid, ready, data_signals: dict[str, Any], *,
                 callback: Callable[[dict], None] | None = None,
                 period_ns: float | None = None):
        if period_ns is not None and not period_ns > 0:
            raise ValueError(f"StreamMonitor: period_ns must be > 0, got {period_ns}")
        self.clk, self.valid, self.ready = clk, valid, ready
        self.data = dict(data_signals)
        self.callback = callback
        self.period_ns = period_ns
        self.transactions: list[dict[str, int]] = []
        self.cycles: list[int] = []
        self._cycle = 0
        self._t0 = 0.0
        self._task = None

    def start(self) -> "StreamMonitor":
        if self.period_ns is None:
            self._task = cocotb.start_soon(self._run())
        else:
            self._t0 = get_sim_time("ns")
            self._task = cocotb.start_soon(self._run_sleeping())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        # sample the cycle we are in first (the monitor may be started right after an
        # edge, in the same cycle in which the first transfer is presented)
        while True:
            await ReadOnly()
            if int(self.valid.value) == 1 and (self.ready is None
                                                or int(self.ready.value) == 1):
                self._record(self._cycle)
            await RisingEdge(self.clk)
            self._cycle += 1

    def _record(self, cycle: int) -> None:
        txn = {k: to_int(h) for k, h in self.data.items()}
        self.transactions.append(txn)
        self.cycles.append(cycle)
        if self.callback is not None:
            self.callback(txn)

    async def _run_sleeping(self) -> None:
        period, t0 = self.period_ns, self._t0
        while True:
            await ReadOnly()
            if int(self.valid.value) != 1:
                await RisingEdge(self.valid)
            elif self.ready is not None and int(self.ready.value) != 1:
                await RisingEdge(self.ready)
            else:
                self._record(int((get_sim_time("ns") - t0) / period + 1e-6))
                await RisingEdge(self.clk)

    async def wait_for(self, n: int, timeout_cycles: int = 100000) -> None:
        """Wait until ``n`` transfers were seen; ``TimeoutError`` after the limit."""
        for _ in range(timeout_cycles):
            if len(self.transactions) >= n:
                return
            await RisingEdge(self.clk)
        raise TimeoutError(f"StreamMonitor: saw {len(self.transactions)} of {n} "
                           f"transfers after {timeout_cycles} cycles")


class BackpressureDriver:
    """Drive a ``ready`` input: random with probability ``prob`` of being high
    (seeded ``rng``), or cycling through a fixed 0/1 ``pattern``."""

    def __init__(self, clk, ready, *, prob: float = 0.5, pattern: Sequence[int] | None = None,
                 rng: random.Random | None = None):
        if pattern is None and not 0.0 < prob <= 1.0:
            raise ValueError(f"BackpressureDriver: prob must be in (0, 1], got {prob}")
        self.clk, self.ready = clk, ready
        self.prob, self.pattern = prob, list(pattern) if pattern is not None else None
        self.rng = rng or random.Random(1)
        self._task = None

    def start(self) -> "BackpressureDriver":
        self._task = cocotb.start_soon(self._run())
        return self

    def stop(self, final: int = 1) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.ready.value = final

    async def _run(self) -> None:
        i = 0
        while True:
            if self.pattern is not None:
                v = self.pattern[i % len(self.pattern)]
            else:
                v = 1 if self.rng.random() < self.prob else 0
            self.ready.value = v
            i += 1
            await RisingEdge(self.clk)
