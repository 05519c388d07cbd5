"""The PeakNet-architecture runner (``peaknet`` batch model, torch): the network's shapes, a
network trained here on synthetic spots finding the synthetic run's peaks through a real
stream, and the GPU path when a device is present. Skipped, saying why, without torch (the
``peaknet`` extra: torch is ~1 GB and not needed by anything else)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install 'lclstream[peaknet]')"
)

from lclstream.errors import ConfigError  # noqa: E402
from lclstream.models import load_model  # noqa: E402
from lclstream.models.peaknet import build_peaknet  # noqa: E402
from lclstream.protocols import DetectorInfo  # noqa: E402
from test_hits import truth  # noqa: E402
from test_models import agreement_with_peakfinder8, received, stream  # noqa: E402

TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "fpn_channels": 16, "bifpn_layers": 1}
JF4M = DetectorInfo("detector_data", "jungfrau", (8, 512, 1024), "uint16")


def test_the_network_maps_panels_to_two_class_logits_at_their_size() -> None:
    net = build_peaknet().eval()  # ConvNeXt-V2 atto widths, BiFPN x2
    assert 3e6 < sum(p.numel() for p in net.parameters()) < 6e6
    with torch.inference_mode():
        y = net(torch.zeros(2, 1, 128, 256))
    assert tuple(y.shape) == (2, 2, 128, 256)


def _train(path: Path, steps: int = 300) -> None:
    """A tiny PeakNet trained on 64 x 64 crops drawn as the synthetic source draws its frames:
    Poisson background of 0.02-0.5 photons/pixel (the run's water ring), 0-5 spots of exponential intensity (mean 60 photons)
    over a 3 x 3 kernel, spot pixels labelled where the spot gives more than one photon."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    kern = np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]])

    def sample(b: int) -> tuple[Any, Any]:
        x = rng.poisson(rng.uniform(0.02, 0.5, (b, 1, 1)), (b, 64, 64)).astype(np.float32)
        y = np.zeros((b, 64, 64), np.int64)
        for i in range(b):
            for _ in range(int(rng.integers(0, 6))):
                cy, cx = rng.integers(2, 62, 2)
                lam = kern * (rng.exponential(60.0) + 3.0)
                x[i, cy - 1 : cy + 2, cx - 1 : cx + 2] += rng.poisson(lam)
                y[i, cy - 1 : cy + 2, cx - 1 : cx + 2] |= lam > 1.0
        return torch.from_numpy(x)[:, None], torch.from_numpy(y)

    net = build_peaknet(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()})
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    weight = torch.tensor([1.0, 20.0])
    for _ in range(steps):
        x, y = sample(16)
        loss = torch.nn.functional.cross_entropy(net(torch.log1p(x)), y, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(net.state_dict(), path)


@pytest.mark.timeout(300)
def test_a_peaknet_trained_here_vetoes_the_synthetic_runs_misses(tmp_path: Path) -> None:
    """Weights trained at test time (PeakNet's are not public), loaded by path from YAML: its
    verdict keeps exactly the source's hits, and its peaks are peakfinder8's (>= 75% found
    within 2 px)."""
    weights = tmp_path / "tiny_peaknet.pt"
    _train(weights)
    model = {"name": "peaknet", "parameters": {**TINY, "weights": str(weights),
             "normalize": "log1p", "min_peaks": 45, "min_pixels": 2}}  # fmt: skip
    sent, got, cfg = stream(
        tmp_path / "out", {"model": model, "hit_veto": {}}, number_of_events_to_generate=12
    )
    hits = truth(cfg)
    assert got.complete and got.events == len(hits) > 0
    data = received(got.files)
    assert sorted(int(i) for i in data["ids"]) == sorted(hits)
    assert all(found >= 0.75 for found, _ in agreement_with_peakfinder8(data))


def test_untrained_weights_are_refused_unless_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="weights"):
        load_model("peaknet", JF4M, {})
    m = load_model("peaknet", JF4M, {**TINY, "random_weights": True})
    out = m(np.zeros((1, 8, 512, 1024), np.uint16))
    assert out.peaks is not None and len(out.peaks) == 1
    with pytest.raises(ConfigError, match="dtype"):
        load_model("peaknet", JF4M, {**TINY, "random_weights": True, "dtype": "float16"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_the_gpu_path_gives_the_cpus_logits() -> None:
    """Pinned double-buffered uploads on a side stream, several chunks: the same logits as on
    the CPU (float32, to cuDNN's rounding)."""
    torch.manual_seed(1)
    params = {**TINY, "random_weights": True, "panel_batch": 3}
    cpu = load_model("peaknet", JF4M, params)
    gpu = load_model("peaknet", JF4M, {**params, "device": "cuda"})
    gpu.net.load_state_dict(cpu.net.state_dict())  # type: ignore[attr-defined]
    panels = np.random.default_rng(2).poisson(0.5, (8, 512, 1024)).astype(np.float32)
    a = cpu.logits(panels)  # type: ignore[attr-defined]
    b = gpu.logits(panels)  # type: ignore[attr-defined]
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
