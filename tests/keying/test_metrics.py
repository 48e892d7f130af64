import numpy as np
import pytest

from greenroom.keying.metrics import MatteScore, edge_band, score_clip

pytestmark = pytest.mark.unit


def _disc(shift: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:64, 0:64]
    return np.clip(12.5 - np.hypot(xx - 32 - shift, yy - 32), 0, 1).astype(np.float32)


def test_perfect_prediction_scores_zero():
    g = [_disc(s) for s in range(3)]
    r = score_clip([(x * 255).round().astype(np.uint8) for x in g], g)
    assert r["mad"] < 2e-3 / 255 * 255 and r["dtssd"] < 3e-3 and r["grad"] < 1e-3


def test_known_errors():
    g = _disc()
    p = np.clip(g + 0.1, 0, 1)
    r = score_clip([p, p], [g, g], grad=False)
    assert r["mad"] == pytest.approx(np.abs(p - g).mean(), rel=1e-5)
    assert r["dtssd"] == pytest.approx(0.0, abs=1e-7)  # a constant error does not flicker
    s = MatteScore(grad=False)
    s.add(g, g)
    s.add(np.zeros_like(g), g)
    assert s.result()["dtssd"] > 0.05


def test_edge_band_covers_the_edge_only():
    band = edge_band(_disc())
    assert band[32, 20] and not band[32, 32] and not band[0, 0]


def test_precomputed_bands_give_the_same_scores():
    g = [_disc(s) for s in range(3)]
    p = [np.clip(x + 0.05, 0, 1) for x in g]
    bands = [edge_band(x) for x in g]
    assert score_clip(p, g, grad=False, bands=bands) == score_clip(p, g, grad=False)
