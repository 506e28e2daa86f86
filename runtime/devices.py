"""Devices a :class:`~plait.runtime.session.Session` runs on, behind one interface.

In the spirit of TVM VTA's driver, a device is five verbs: ``allocate`` a buffer,
``copy_in`` / ``copy_out`` arrays, ``write_register`` / ``read_register``, ``run`` a
kernel with arguments, and ``wait`` for it.  A Session needs one more thing from a
device: something that runs the model step by step (``runner(graph, weights, exact)``:
an object with ``logits(tokens)``, ``reset()``, ``cache_state()`` and
``load_cache_state(state)``, the interpreters' convention).

=======  ==========================================================================
cpu      the host: float mode -- the fast decoder (:mod:`plait.runtime.fast`, low-bit
         weights, one C call per token) where the graph is a supported decoder, else
         the graph runner (the accuracy reference) -- and exact mode (the integers of
         ``plait.ir.numerics``); buffers are numpy arrays, kernels Python callables
cuda     a CUDA GPU: exact mode with every linear on the TVM cuda kernels, float mode
         with every linear on the TVM cuda fp32 GEMM (weights kept on the GPU);
         unavailable without a GPU, and the reason says so
sim      the RTL engines in Verilator: exact mode with every linear on the DSP chain
         or LUT core it is mapped to (the stream player of plait.sim), the rest of exact
         mode the host's; needs Verilator, make and a C++ compiler; artifacts mapped for
         ``sim16``
fpga     a board through XRT's Python bindings (``pyxrt``): an xclbin, buffer objects,
         kernel runs; without XRT or a board the error names what is missing
=======  ==========================================================================

``device="auto"`` takes the first available of fpga, cuda, cpu and says why the others
were passed over (:func:`pick_device`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

DEVICES = ("cpu", "cuda", "sim", "fpga")
AUTO_ORDER = ("fpga", "cuda", "cpu")
XCLBIN_ENV = "PLAIT_XCLBIN"


class DeviceUnavailable(RuntimeError):
    """A device that is unknown, absent, or lacks what it needs; the message says which."""


@dataclass
class Buffer:
    """A device buffer: ``nbytes`` on the device; ``host`` mirrors it for the cpu device."""
    device: str
    nbytes: int
    handle: Any = None
    host: Optional[np.ndarray] = None


class Device:
    """The interface every device implements (see the module doc)."""
    name = "?"
    hardware: Optional[str] = None        # the target the device's engines are built for

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        """``(available, why not)`` without opening anything heavy."""
        raise NotImplementedError

    # -- the driver verbs
    def allocate(self, nbytes: int) -> Buffer:
        raise NotImplementedError

    def copy_in(self, buf: Buffer, array: np.ndarray, offset: int = 0) -> None:
        raise NotImplementedError

    def copy_out(self, buf: Buffer, dtype, shape, offset: int = 0) -> np.ndarray:
        raise NotImplementedError

    def write_register(self, name: str, value: int) -> None:
        raise NotImplementedError

    def read_register(self, name: str) -> int:
        raise NotImplementedError

    def run(self, kernel, *args) -> Any:
        raise NotImplementedError

    def wait(self, handle=None) -> None:
        raise NotImplementedError

    # -- what a Session uses
    runner_note = ""                      # which runner the last runner() built, and why

    def runner(self, graph, weights, *, exact: bool, fast: Optional[bool] = None,
               act_bits: Optional[int] = None):
        raise NotImplementedError

    def close(self) -> None:
        pass


def _no_fast_in_exact(fast: Optional[bool]) -> None:
    if fast:
        raise ValueError("fast=True is the float-mode decoder; exact mode runs the integers of "
                         "plait.ir.numerics (pass fast=None or False with exact=True)")


def _no_act_bits(device: str, act_bits: Optional[int]) -> None:
    if act_bits is not None:
        raise DeviceUnavailable(f"{device}: act_bits is an option of the cpu device's fast decoder "
                                f"(leave it unset, or use device='cpu')")


class CpuDevice(Device):
    """The host.  Buffers are numpy byte arrays; a kernel is a Python callable run at once."""
    name = "cpu"

    def __init__(self):
        self.registers: dict[str, int] = {}
        self._last = None

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        return True, ""

    def allocate(self, nbytes: int) -> Buffer:
        if nbytes < 0:
            raise ValueError(f"cpu: cannot allocate {nbytes} bytes")
        return Buffer("cpu", int(nbytes), host=np.zeros(int(nbytes), np.uint8))

    def copy_in(self, buf: Buffer, array: np.ndarray, offset: int = 0) -> None:
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        if offset < 0 or offset + raw.size > buf.nbytes:
            raise ValueError(f"cpu: copy of {raw.size} bytes at {offset} overruns a {buf.nbytes}-byte buffer")
        buf.host[offset:offset + raw.size] = raw

    def copy_out(self, buf: Buffer, dtype, shape, offset: int = 0) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if offset < 0 or offset + n > buf.nbytes:
            raise ValueError(f"cpu: read of {n} bytes at {offset} overruns a {buf.nbytes}-byte buffer")
        return buf.host[offset:offset + n].copy().view(dtype).reshape(shape)

    def write_register(self, name: str, value: int) -> None:
        self.registers[name] = int(value)

    def read_register(self, name: str) -> int:
        if name not in self.registers:
            raise KeyError(f"cpu: register {name!r} was never written")
        return self.registers[name]

    def run(self, kernel: Callable, *args) -> Any:
        self._last = kernel(*args)
        return self._last

    def wait(self, handle=None) -> None:
        return None                                   # runs are synchronous on the host

    def runner(self, graph, weights, *, exact: bool, fast: Optional[bool] = None,
               act_bits: Optional[int] = None):
        """Exact mode: the exact interpreter.  Float mode: the fast decoder
        (:class:`plait.runtime.fast.FastDecoder`) with ``fast`` True or None (the default),
        the graph runner (:class:`plait.ir.Interpreter`) with ``fast=False``.  With
        ``fast=None`` a graph the fast decoder does not support (or a host without a C
        compiler) falls back to the graph runner and :attr:`runner_note` says why; with
        ``fast=True`` (or ``act_bits`` given: the fast decoder's activation width, 16 or 8)
        it raises :class:`~plait.runtime.fast.FastUnsupported`."""
        from plait.ir import Interpreter
        from plait.ir.exact import ExactInterpreter
        if exact:
            _no_fast_in_exact(fast)
            self.runner_note = "exact interpreter (the integers of plait.ir.numerics)"
            return ExactInterpreter(graph, weights)
        if fast is False:
            self.runner_note = "graph runner (fast=False)"
            return Interpreter(graph, weights)
        from .fast import FastDecoder, FastUnsupported
        try:
            r = FastDecoder(graph, weights, act_bits=16 if act_bits is None else act_bits)
        except FastUnsupported as e:
            if fast or act_bits is not None:      # asked for the fast decoder by name
                raise FastUnsupported(f"the fast decoder cannot run this artifact: {e}") from None
            self.runner_note = f"graph runner (the fast decoder does not apply: {e})"
            return Interpreter(graph, weights)
        self.runner_note = r.describe()
        return r


class CudaDevice(Device):
    """A CUDA GPU.  Exact mode runs every linear on the TVM kernels built for ``cuda``
    (:class:`plait.runtime.kernels.linears.KernelLinears`; the norms, attention and
    activations stay the host's integer functions); float mode runs every linear on
    the TVM fp32 GEMM built for ``cuda``, its weights kept on the GPU
    (:class:`plait.runtime.kernels.fgemm.FloatKernelLinears`; the rest of float mode
    is the host's graph runner).  ``fast=True`` (the host's C decoder) is refused."""
    name = "cuda"

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        try:
            from plait.runtime.kernels.build import cuda_enabled, gpu_present
            if not cuda_enabled():
                return False, "this TVM was built without CUDA (USE_CUDA is off)"
            if not gpu_present():
                return False, "no CUDA GPU is visible to TVM's CUDA runtime"
        except ImportError as e:
            return False, f"TVM is not installed ({e}); pip install 'plait[kernels]'"
        except (OSError, RuntimeError) as e:          # a TVM whose runtime library fails to load
            return False, f"TVM does not load ({e})"
        return True, ""

    def runner(self, graph, weights, *, exact: bool, fast: Optional[bool] = None,
               act_bits: Optional[int] = None):
        _no_act_bits(self.name, act_bits)
        if not exact:
            if fast:
                raise DeviceUnavailable("cuda: fast=True is the cpu device's C decoder; on "
                                        "cuda float mode runs the linears on the GPU "
                                        "(leave fast unset, or use device='cpu')")
            from plait.ir import Interpreter
            from plait.runtime.kernels.fgemm import FloatKernelLinears
            self.linears = FloatKernelLinears("cuda")
            self.runner_note = "float mode, linears on the TVM cuda fp32 GEMM (weights on the GPU)"
            return Interpreter(graph, weights, linear=self.linears)
        _no_fast_in_exact(fast)
        from plait.ir.exact import ExactInterpreter
        from plait.runtime.kernels.linears import KernelLinears
        self.linears = KernelLinears("cuda")
        self.runner_note = "exact mode, linears on the TVM cuda kernels"
        return ExactInterpreter(graph, weights, linear_p=self.linears)


class SimDevice(CpuDevice):
    """The RTL engines in Verilator.  Exact mode runs every linear on the DSP chain or LUT
    core it is mapped to (:class:`plait.runtime.rtl_linears.RtlLinears`: the C++ stream
    player of :mod:`plait.sim`, no cocotb); the rest of exact mode is the host's.  Buffers
    and registers are the host's (the cpu device's verbs).  Float mode is refused."""
    name = "sim"
    hardware = "sim16"

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        from plait.sim.runner import check_build_tools
        from plait.sim.verilator import ToolMissing
        try:
            check_build_tools()
        except ToolMissing as e:
            return False, str(e)
        return True, ""

    def runner(self, graph, weights, *, exact: bool, fast: Optional[bool] = None,
               act_bits: Optional[int] = None):
        _no_act_bits(self.name, act_bits)
        if not exact:
            raise DeviceUnavailable("the sim device runs exact mode only (exact=True, "
                                    "`plait run --exact`): its RTL engines compute the integers "
                                    "of plait.ir.numerics; float mode is the cpu device's")
        _no_fast_in_exact(fast)
        from plait.ir.exact import ExactInterpreter
        from .rtl_linears import RtlLinears
        self.linears = RtlLinears(graph, self.hardware)
        self.runner_note = (f"exact mode, every linear on the RTL engines of {self.hardware} "
                            f"(Verilator, the stream player)")
        return ExactInterpreter(graph, weights, linear_p=self.linears)


class FpgaDevice(Device):
    """A board through XRT (``pyxrt``): ``xclbin`` from ``$PLAIT_XCLBIN`` or the artifact."""
    name = "fpga"

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        try:
            import pyxrt  # noqa: F401
        except ImportError:
            return False, ("XRT is not installed: its Python bindings (pyxrt) are missing; install "
                           "Xilinx XRT and `source /opt/xilinx/xrt/setup.sh`")
        try:
            import pyxrt
            pyxrt.device(0)
        except Exception as e:  # noqa: BLE001 - XRT raises RuntimeError with its own text
            return False, f"XRT is installed but no board was found ({e})"
        if not os.environ.get(XCLBIN_ENV):
            return False, f"no bitstream: set ${XCLBIN_ENV} to the accelerator's .xclbin"
        return True, ""

    def __init__(self, xclbin: Optional[str] = None, index: int = 0):
        import pyxrt
        self._xrt = pyxrt
        self.dev = pyxrt.device(index)
        path = xclbin or os.environ[XCLBIN_ENV]
        self.uuid = self.dev.load_xclbin(path)
        self.kernel = pyxrt.kernel(self.dev, self.uuid, "plait_top")
        self.hardware = os.environ.get("PLAIT_XCLBIN_TARGET", "u280")

    def allocate(self, nbytes: int) -> Buffer:
        bo = self._xrt.bo(self.dev, int(nbytes), self._xrt.bo.normal, self.kernel.group_id(0))
        return Buffer("fpga", int(nbytes), handle=bo)

    def copy_in(self, buf: Buffer, array: np.ndarray, offset: int = 0) -> None:
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        buf.handle.write(raw, offset)
        buf.handle.sync(self._xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, raw.size, offset)

    def copy_out(self, buf: Buffer, dtype, shape, offset: int = 0) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        buf.handle.sync(self._xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, n, offset)
        return np.frombuffer(buf.handle.read(n, offset), np.uint8).view(dtype).reshape(shape).copy()

    def run(self, kernel, *args):
        return (kernel or self.kernel)(*[a.handle if isinstance(a, Buffer) else a for a in args])

    def wait(self, handle=None) -> None:
        if handle is not None:
            handle.wait()

    def runner(self, graph, weights, *, exact: bool, fast: Optional[bool] = None,
               act_bits: Optional[int] = None):
        raise DeviceUnavailable("fpga: the controller program for a whole model is not generated yet "
                                "(the ISA encoder is future work); use device='cpu'")


_CLASSES = {"cpu": CpuDevice, "cuda": CudaDevice, "sim": SimDevice, "fpga": FpgaDevice}


@dataclass
class DeviceChoice:
    device: Device
    passed_over: dict[str, str] = field(default_factory=dict)     # name -> why not

    def describe(self) -> str:
        why = "; ".join(f"{n} unavailable: {r}" for n, r in self.passed_over.items())
        return f"device {self.device.name}" + (f" (auto; {why})" if why else "")


def open_device(name: str) -> Device:
    if name not in _CLASSES:
        raise DeviceUnavailable(f"unknown device {name!r}; choose one of auto, {', '.join(DEVICES)}")
    ok, why = _CLASSES[name].probe()
    if not ok:
        raise DeviceUnavailable(f"device {name!r} is not available: {why}")
    return _CLASSES[name]()


def pick_device(name: str = "auto") -> DeviceChoice:
    """The device for ``name``; ``auto`` tries fpga, cuda, cpu in that order."""
    if name != "auto":
        return DeviceChoice(open_device(name))
    passed = {}
    for cand in AUTO_ORDER:
        ok, why = _CLASSES[cand].probe()
        if ok:
            return DeviceChoice(_CLASSES[cand](), passed)
        passed[cand] = why
    raise DeviceUnavailable("no device is available: " + "; ".join(f"{n}: {r}" for n, r in passed.items()))
