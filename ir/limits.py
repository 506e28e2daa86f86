"""Resource limits checked before work starts: memory, and how a refusal is worded.

A compile or a run that cannot fit is refused *before* it allocates, with the
estimate and the budget in the message, instead of being killed by the kernel
minutes later with no message.  The budget is the machine's available memory
(``MemAvailable`` of ``/proc/meminfo``), or ``$PLAIT_MEMORY_LIMIT`` when set
(``"8G"``, ``"512M"``, ``"1000000"`` bytes) -- to leave room for other work, or to
plan for a smaller machine.

The estimates themselves belong to the layer that knows the work:
``plait.frontend.estimate_compile_memory`` for a compile,
``plait.runtime.session.estimate_run_memory`` for a run.
"""
from __future__ import annotations

import os
import re
import weakref

__all__ = ["LimitError", "available_memory", "check_memory", "format_bytes", "parse_bytes", "MEMORY_ENV",
           "PeakMeter"]

MEMORY_ENV = "PLAIT_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class LimitError(ValueError):
    """A request beyond a limit (memory, context length); the message gives both numbers."""


def parse_bytes(text: str, what: str = MEMORY_ENV) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise LimitError(f"{what}={text!r} is not a size (examples: 8G, 512M, 1000000)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_bytes(n: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def available_memory() -> tuple[int | None, str]:
    """``(bytes, where the number came from)``; ``(None, ...)`` when it cannot be known."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        return parse_bytes(env), f"${MEMORY_ENV}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory (MemAvailable)"
    except OSError:
        pass
    return None, "unknown"


def check_memory(estimate: int, what: str) -> None:
    """Raise :class:`LimitError` when ``estimate`` bytes do not fit the budget."""
    budget, source = available_memory()
    if budget is not None and estimate > budget:
        raise LimitError(f"{what} needs an estimated {format_bytes(estimate)}, more than the "
                         f"{format_bytes(budget)} of {source}; use a machine with more memory, a "
                         f"shape-only plan (--shape-only), or set ${MEMORY_ENV} if the estimate is wrong")


class PeakMeter:
    """The peak resident memory of a stretch of work, from its creation to :meth:`peak`.

    Linux keeps one high-water mark per process (``VmHWM``), reset by writing 5 to
    ``/proc/self/clear_refs``.  Every new meter resets it, after folding the mark so
    far into every meter still alive, so meters nest: a sweep cell's meter still
    sees the peak of a compile whose passes each had their own.  ``scoped`` is False
    where the reset is impossible: :meth:`peak` is then the process's lifetime peak.
    """

    def __init__(self):
        now = _vmhwm()
        for m in list(_METERS):
            m._folded = max(m._folded, now)
        self._folded = 0
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.scoped = True
        except OSError:
            self.scoped = False
        _METERS.add(self)

    def peak(self) -> int:
        """Peak resident bytes since this meter was made."""
        return max(self._folded, _vmhwm())


_METERS: "weakref.WeakSet[PeakMeter]" = weakref.WeakSet()


def _vmhwm() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
