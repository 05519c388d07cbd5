"""``peaknet``: the PeakNet architecture (ConvNeXt-V2 backbone, BiFPN neck, 2-class
segmentation head) in torch, run on each batch's panels; peaks from the argmax mask's connected
components, as SLAC's PeakNet pipeline makes them.

Why here: PeakNet is fed today through hand-built Ray actors; as a batch model it runs where
the frames are, behind the pipeline's bounded queue, and its peaks travel as CXI lists. Its
weights are not public: ``weights`` names a ``state_dict`` file saved from this architecture
(``torch.save(net.state_dict(), path)``) with the same ``depths``/``dims``/``fpn_channels``.
Without weights the network would answer at random, so that needs ``random_weights: true``
(plumbing tests and speed only).

Panels go in as ``(events x modules, 1, H, W)``, times ``scale``, through ``normalize``
(``none`` or ``log1p``, as the network was trained), padded to a multiple of 32 (PeakNet merges
batch and panels the same way). On a GPU (``device: cuda``) each chunk of ``panel_batch``
panels is staged in a pinned host buffer reused across batches and copied on a side stream
while the previous chunk computes; ``dtype: bfloat16`` runs the network in bf16 as PeakNet does.
Needs the ``peaknet`` extra (torch); without it the config is refused, saying so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lclstream.models import ModelOutput, _module_view, label_spots, peaks_from_labels
from lclstream.protocols import DetectorInfo

__all__ = ["PeakNetRunner", "build_peaknet"]


def build_peaknet(
    depths: tuple[int, ...] = (2, 2, 6, 2),
    dims: tuple[int, ...] = (40, 80, 160, 320),
    fpn_channels: int = 64,
    bifpn_layers: int = 2,
) -> Any:
    """The network (a ``torch.nn.Module``): logits (N, 2, H, W) for panels (N, 1, H, W), H and W
    multiples of 32 (or of 2 ** (len(depths) + 1))."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class LayerNorm2d(nn.Module):
        """LayerNorm over channels of an (N, C, H, W) map (ConvNeXt's channels-first norm)."""

        def __init__(self, c: int) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(c, eps=1e-6)

        def forward(self, x: Any) -> Any:
            return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    class GRN(nn.Module):
        """ConvNeXt-V2's global response normalisation (channels-last)."""

        def __init__(self, c: int) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.zeros(1, 1, 1, c))
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, c))

        def forward(self, x: Any) -> Any:
            g = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
            nx = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
            return self.gamma * (x * nx) + self.beta + x

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
            self.norm = nn.LayerNorm(c, eps=1e-6)
            self.pw1 = nn.Linear(c, 4 * c)
            self.grn = GRN(4 * c)
            self.pw2 = nn.Linear(4 * c, c)

        def forward(self, x: Any) -> Any:
            y = self.dw(x).permute(0, 2, 3, 1)
            y = self.pw2(self.grn(F.gelu(self.pw1(self.norm(y)))))
            return x + y.permute(0, 3, 1, 2)

    class Backbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.ModuleList(
                [nn.Sequential(nn.Conv2d(1, dims[0], 4, stride=4), LayerNorm2d(dims[0]))]
                + [
                    nn.Sequential(LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], 2, 2))
                    for i in range(1, len(dims))
                ]
            )
            self.stages = nn.ModuleList(
                [
                    nn.Sequential(*[Block(d) for _ in range(k)])
                    for d, k in zip(dims, depths, strict=True)
                ]
            )

        def forward(self, x: Any) -> list[Any]:
            feats = []
            for down, stage in zip(self.down, self.stages, strict=True):
                x = stage(down(x))
                feats.append(x)
            return feats

    class BiFPNLayer(nn.Module):
        """One BiFPN round: top-down then bottom-up, fast normalised fusion weights."""

        def __init__(self, c: int, levels: int) -> None:
            super().__init__()
            self.levels = levels
            self.td_w = nn.Parameter(torch.ones(levels - 1, 2))
            self.bu_w = nn.Parameter(torch.ones(levels - 1, 3))
            self.td = nn.ModuleList([self._conv(c) for _ in range(levels - 1)])
            self.bu = nn.ModuleList([self._conv(c) for _ in range(levels - 1)])

        @staticmethod
        def _conv(c: int) -> Any:
            return nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1), nn.BatchNorm2d(c),
                nn.SiLU(),
            )  # fmt: skip

        def forward(self, feats: list[Any]) -> list[Any]:
            td = list(feats)
            for i in range(self.levels - 2, -1, -1):  # top-down
                w = F.relu(self.td_w[i])
                up = F.interpolate(td[i + 1], size=td[i].shape[-2:], mode="nearest")
                td[i] = self.td[i]((w[0] * feats[i] + w[1] * up) / (w.sum() + 1e-4))
            out = list(td)
            for i in range(1, self.levels):  # bottom-up
                w = F.relu(self.bu_w[i - 1])
                down = F.max_pool2d(out[i - 1], 2)
                fused = w[0] * feats[i] + w[1] * td[i] + w[2] * down
                out[i] = self.bu[i - 1](fused / (w.sum() + 1e-4))
            return out

    class PeakNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = Backbone()
            self.lateral = nn.ModuleList([nn.Conv2d(d, fpn_channels, 1) for d in dims])
            self.bifpn = nn.Sequential(
                *[BiFPNLayer(fpn_channels, len(dims)) for _ in range(bifpn_layers)]
            )
            self.head = nn.Conv2d(fpn_channels, 2, 1)

        def forward(self, x: Any) -> Any:
            feats = [lat(f) for lat, f in zip(self.lateral, self.backbone(x), strict=True)]
            for layer in self.bifpn:
                feats = layer(feats)
            # the finest map (stride 4) carries the spots; logits back at the input resolution
            return F.interpolate(self.head(feats[0]), size=x.shape[-2:], mode="bilinear")

    return PeakNet()


class PeakNetRunner:
    def __init__(
        self,
        detector: DetectorInfo,
        *,
        weights: str | None = None,
        random_weights: bool = False,
        device: str = "cpu",
        dtype: str = "float32",
        depths: tuple[int, ...] | list[int] = (2, 2, 6, 2),
        dims: tuple[int, ...] | list[int] = (40, 80, 160, 320),
        fpn_channels: int = 64,
        bifpn_layers: int = 2,
        panel_batch: int = 16,
        scale: float = 1.0,
        normalize: str = "none",
        min_pixels: int = 1,
        max_pixels: int = 400,
        min_peaks: int = 10,
        threads: int = 0,
    ) -> None:
        import torch

        _module_view((1, *detector.frame_shape))
        if weights is None and not random_weights:
            raise ValueError(
                "weights: a state_dict file of this architecture is needed (PeakNet's weights "
                "are not public); random_weights: true runs untrained (plumbing and speed only)"
            )
        if normalize not in ("none", "log1p"):
            raise ValueError(f"normalize: {normalize!r} is not none or log1p")
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype: {dtype!r} is not float32 or bfloat16")
        if len(depths) != len(dims):
            raise ValueError(f"depths {list(depths)} and dims {list(dims)} differ in length")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: cuda was asked for and torch sees no GPU")
        if threads:
            torch.set_num_threads(int(threads))
        self.dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self.net = build_peaknet(tuple(depths), tuple(dims), fpn_channels, bifpn_layers)
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        self.net.to(self.device, self.dtype).eval()
        self.multiple = 2 ** (len(dims) + 1)
        self.panel_batch = int(panel_batch)
        self.scale = float(scale)
        self.normalize = normalize
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.min_peaks = int(min_peaks)
        self._pinned: Any = None

    def _staging(self, h: int, w: int) -> list[Any]:
        """Two pinned host buffers of ``panel_batch`` panels, reused across batches (GPU
        only): one is filled while the other's copy to the device is in flight."""
        import torch

        shape = (self.panel_batch, h, w)
        if self._pinned is None or tuple(self._pinned[0].shape) != shape:
            self._pinned = [torch.empty(shape, dtype=torch.float32, pin_memory=True)
                            for _ in range(2)]  # fmt: skip
        return self._pinned  # type: ignore[no-any-return]

    def logits(self, panels: np.ndarray) -> np.ndarray:
        """Class-1 minus class-0 logits of (N, H, W) panels, as float32 numpy (N, H, W)."""
        import torch
        from torch.nn import functional as F

        n, h, w = panels.shape
        ph, pw = (math.ceil(s / self.multiple) * self.multiple for s in (h, w))
        src = torch.from_numpy(np.ascontiguousarray(panels, np.float32))  # zero copy for f32
        out = np.empty((n, h, w), np.float32)
        chunks = [(a, min(n, a + self.panel_batch)) for a in range(0, n, self.panel_batch)]
        cuda = self.device.type == "cuda"
        if cuda:
            stages = self._staging(h, w)
            copy_stream = torch.cuda.Stream()
            copied = [torch.cuda.Event(), torch.cuda.Event()]
            used = [False, False]

        def upload(k: int) -> Any:
            a, b = chunks[k]
            if not cuda:
                return src[a:b]
            j = k % 2
            if used[j]:
                copied[j].synchronize()  # its previous copy has left the buffer
            stages[j][: b - a].copy_(src[a:b])
            with torch.cuda.stream(copy_stream):
                x = stages[j][: b - a].to(self.device, non_blocking=True)
                copied[j].record(copy_stream)
            used[j] = True
            return x

        with torch.inference_mode():
            nxt: Any = upload(0) if chunks else None
            for k, (a, b) in enumerate(chunks):
                x = nxt
                if cuda:
                    torch.cuda.current_stream().wait_stream(copy_stream)
                    x.record_stream(torch.cuda.current_stream())
                if k + 1 < len(chunks):
                    nxt = upload(k + 1)  # the next chunk's copy overlaps this compute
                x = x[:, None] * self.scale
                if self.normalize == "log1p":  # photon counts span decades
                    x = torch.log1p(torch.clamp(x, min=0))
                x = F.pad(x, (0, pw - w, 0, ph - h)).to(self.dtype)
                y = self.net(x)[:, :, :h, :w].float()
                out[a:b] = (y[:, 1] - y[:, 0]).cpu().numpy()
        return out

    def __call__(self, frames: np.ndarray) -> ModelOutput:
        n = frames.shape[0]
        modules, rows, cols = _module_view(frames.shape)
        diff = self.logits(frames.reshape(n * modules, rows, cols))
        labels, count = label_spots(diff > 0, self.min_pixels, self.max_pixels)
        peaks = peaks_from_labels(frames, labels, count)
        mask = (labels > 0).astype(np.uint8).reshape(frames.shape)
        return ModelOutput(peaks=peaks, mask=mask, hit=peaks.n_peaks >= self.min_peaks)
