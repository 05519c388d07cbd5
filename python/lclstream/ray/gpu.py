"""Batches onto a GPU: Jungfrau calibration of raw batches in the consumer's array library,
and a host-to-device feeder that reuses pinned buffers and overlaps copies with compute.

Why calibrate on the consumer: a producer that streams raw uint16 words (LCLStreamer's
raw-producer example argues it) puts half the bytes of float32 keV on the wire, and a GPU
calibrates them as they land. Why the C++ kernel's operations, in its order: ``(word & 0x3FFF)
- (pedestal + offset)``, then ``* (1 / gain)`` with the mask folded in, each rounded to float32
on its own (one elementwise kernel each, so no fused multiply-add), so the device's keV are
the CPU's bit for bit; the constants are prepared once, on the host, exactly as the CPU path
prepares them, then moved to the device.

What runs where: numpy on CPU (the reference the tests hold against
:class:`lclstream.calib.Jungfrau`), cupy or torch on a CUDA device (tests run when one is
present and skip otherwise). :class:`ToDevice` needs torch with CUDA.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lclstream import calib_inputs

__all__ = ["JungfrauOnDevice", "ToDevice"]

#: unsigned words -> the signed type of their width, which torch computes with
_WORDS = {np.dtype(np.uint16): np.int16, np.dtype(np.uint32): np.int32}


def _namespace(xp: Any) -> tuple[str, Any]:
    """("numpy" | "cupy" | "torch", module) for a module or its name."""
    if xp is None:
        return "numpy", np
    if isinstance(xp, str):
        import importlib

        xp = importlib.import_module(xp)
    name = getattr(xp, "__name__", "")
    if name not in ("numpy", "cupy", "torch"):
        raise ValueError(f"array library {name or xp!r}: expected numpy, cupy or torch")
    return name, xp


class JungfrauOnDevice:
    """Calibrates raw Jungfrau batches ``(events, *frame)`` of uint16 words where they are.

    ``xp``: ``numpy`` (default), ``cupy`` or ``torch`` (the module or its name); ``device``:
    the torch device (``"cuda"``, ``"cuda:1"``), ignored by numpy and cupy (cupy uses its
    current device). Constants as for :class:`lclstream.calib.Jungfrau`: float32
    ``(3, *frame)`` pedestal, gain in ADU/keV and optional offset, mask like one frame
    (nonzero = good). ``output``: ``"keV"`` or ``"adu"`` (float32), ``"photons"`` (rounded
    half to even, clipped to ``dtype``, default uint16, at ``photon_energy_keV``).
    """

    def __init__(
        self,
        pedestal: npt.ArrayLike,
        gain: npt.ArrayLike,
        offset: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
        *,
        output: str = "keV",
        photon_energy_keV: float | None = None,
        dtype: npt.DTypeLike | None = None,
        xp: Any = None,
        device: str | None = None,
    ) -> None:
        self._kind, self._xp = _namespace(xp)
        # the CPU path's own checks, so both refuse the same inputs with the same words
        self.dtype = calib_inputs.output_dtype(output, dtype, photon_energy_keV)
        self.frame_shape, p, g, o, m = calib_inputs.jungfrau_constants(pedestal, gain, offset, mask)
        poff = p if o is None else p + o
        good = np.float32(1) if m is None else m.astype(np.float32)
        if output == "adu":
            factor = np.ones_like(g) * good
        else:  # 1/gain, 0 where the gain is 0 (psana's divide_protected), masked
            factor = np.zeros_like(g)
            np.divide(np.float32(1), g, out=factor, where=g != 0)
            factor = factor * good
        self.output = output
        self._energy = np.float32(photon_energy_keV or 0.0)
        self._device = device
        self._poff = [self._move(np.ascontiguousarray(poff[i])) for i in range(len(p))]
        self._factor = [self._move(np.ascontiguousarray(factor[i])) for i in range(len(p))]

    def _move(self, a: np.ndarray) -> Any:
        if self._kind == "torch":
            return self._xp.from_numpy(a).to(self._device or "cpu")
        return self._xp.asarray(a)

    def __call__(self, raw: Any) -> Any:
        """keV (or ADU, or photons) of ``raw``, in its library and on its device."""
        xp = self._xp
        if tuple(raw.shape[1:]) != self.frame_shape:
            raise ValueError(
                f"raw batch: shape {tuple(raw.shape)}, expected "
                f"(events, {', '.join(str(x) for x in self.frame_shape)})"
            )
        if self._kind == "torch":  # words as int16 (ToDevice's view) or uint16 tensors
            word = raw.to(xp.int32) & 0xFFFF
            data = (word & 0x3FFF).to(xp.float32)
        else:
            word = raw.astype(xp.int32) & 0xFFFF
            data = (word & 0x3FFF).astype(xp.float32)
        stage = word >> 14  # 0, 1, 3: the gain stage; 2 is not a stage (its pixels read 0)
        p = xp.where(stage == 0, self._poff[0], xp.where(stage == 1, self._poff[1], self._poff[2]))
        f = xp.where(
            stage == 0, self._factor[0], xp.where(stage == 1, self._factor[1], self._factor[2])
        )
        out = (data - p) * f
        out = xp.where(stage == 2, xp.zeros_like(out), out)
        if self.output != "photons":
            return out
        top = float(np.iinfo(self.dtype).max) if self.dtype.kind in "iu" else None
        if self._kind == "torch":  # torch.round rounds half to even, as rint does
            q = xp.round(out / self._scalar(self._energy)).clamp(min=0.0, max=top)
            return q.to(xp.int64).to(getattr(xp, str(self.dtype)))  # exact integers first
        q = xp.maximum(xp.rint(out / self._energy), 0.0)
        return (q if top is None else xp.minimum(q, top)).astype(self.dtype)

    def _scalar(self, v: np.float32) -> Any:
        return self._xp.tensor(float(v), dtype=self._xp.float32, device=self._device or "cpu")


class ToDevice:
    """Copies numpy batches (views of Ray's object store) to a CUDA device with torch.

    Each batch goes into the next of ``depth`` pinned host buffers, reused (the copy out of
    a buffer must have finished before it is refilled: it waits on that copy's event only),
    then to the device asynchronously on a stream of its own; the caller's stream waits for
    that copy before using the tensor, so the copy of batch N+1 runs while the caller
    computes on batch N. ``cupy.from_dlpack(tensor)`` hands the result to cupy without a copy.
    Unsigned words arrive as the signed tensor of their width holding the same bits (torch's
    uint16/uint32 lack most kernels); :class:`JungfrauOnDevice` reads them as words.
    """

    def __init__(self, device: str = "cuda", depth: int = 2) -> None:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("ToDevice needs a CUDA device (torch.cuda.is_available() is False)")
        self._torch = torch
        self.device = torch.device(device)
        self._stream = torch.cuda.Stream(self.device)
        self._buffers: list[Any] = [None] * max(1, depth)
        self._events: list[Any] = [None] * max(1, depth)
        self._next = 0
        #: pinned buffers allocated so far (they are reused while shapes stay the same)
        self.allocations = 0

    def __call__(self, array: np.ndarray) -> Any:
        torch = self._torch
        i = self._next
        self._next = (i + 1) % len(self._buffers)
        if self._events[i] is not None:
            self._events[i].synchronize()  # the copy out of this buffer is done
        array = array.view(_WORDS.get(array.dtype, array.dtype))
        host = self._buffers[i]
        if host is None or tuple(host.shape) != array.shape or host.numpy().dtype != array.dtype:
            host = torch.from_numpy(np.empty(array.shape, array.dtype)).pin_memory()
            self._buffers[i] = host
            self.allocations += 1
        np.copyto(host.numpy(), array)
        with torch.cuda.stream(self._stream):
            dev = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._events[i] = event
        current = torch.cuda.current_stream(self.device)
        current.wait_event(event)
        dev.record_stream(current)  # allocated on the copy stream, used on the caller's
        return dev
