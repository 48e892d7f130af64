"""``greenroom key`` on an image and on a short generated video with audio."""

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from greenroom.cli import app
from greenroom.keying.synthetic import SyntheticClip

pytestmark = pytest.mark.unit

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("key")
    clip = SyntheticClip(320, 180)
    rgb, alpha = clip.frame(0)
    Image.fromarray(rgb).save(d / "in.png")
    with av.open(str(d / "in.mp4"), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 320, 180, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        for n in range(10):
            for p in v.encode(av.VideoFrame.from_ndarray(clip.frame(n)[0], format="rgb24")):
                out.mux(p)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(16000) / 48000)).astype(np.float32)
        for k in range(0, tone.size, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="fltp", layout="mono")
            af.sample_rate = 48000
            for p in a.encode(af):
                out.mux(p)
        for s in (v, a):
            for p in s.encode():
                out.mux(p)
    return d, alpha


@pytest.mark.parametrize("mode", ["chroma", "auto"])
def test_image(media, mode):
    d, truth = media
    r = runner.invoke(
        app,
        [
            "key",
            str(d / "in.png"),
            "-b",
            "#0044ff",
            "-o",
            str(d / "out.png"),
            "--alpha-out",
            str(d / "a.png"),
            "--mode",
            mode,
        ],
    )
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(d / "out.png"))
    alpha = np.asarray(Image.open(d / "a.png"))
    assert np.abs(out[5, 5].astype(int) - (0, 0x44, 0xFF)).max() <= 2
    assert np.abs(alpha / 255.0 - truth).mean() < 0.01


def test_video_keeps_audio_and_writes_the_matte(media):
    d, _ = media
    args = [
        "key",
        str(d / "in.mp4"),
        "-b",
        "#ff0000",
        "-o",
        str(d / "out.mp4"),
        "--alpha-out",
        str(d / "a.mp4"),
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    with av.open(str(d / "out.mp4")) as c:
        assert c.streams.audio, "audio was dropped"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 10
    assert np.abs(frames[5][5, 5].astype(int) - (255, 0, 0)).max() <= 12
    with av.open(str(d / "a.mp4")) as c:
        mattes = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(mattes) == 10 and mattes[0][5, 5] < 20 and mattes[0][100, 160] > 230


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--key-color", "#12"], "--key-color"),
        (["--mode", "magic"], "--mode"),
        (["-b", "#nothex"], "--background"),
    ],
)
def test_bad_options_are_explained(media, extra, message):
    d, _ = media
    args = ["key", str(d / "in.png"), "-b", "#000000", "-o", str(d / "x.png"), *extra]
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert message in _text(r)


def test_unreadable_input_and_wrong_output_kind(media, tmp_path):
    d, _ = media
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    r = runner.invoke(app, ["key", str(bad), "-b", "#000000", "-o", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2 and "cannot read" in _text(r)
    r = runner.invoke(
        app, ["key", str(d / "in.png"), "-b", "#000000", "-o", str(tmp_path / "o.mp4")]
    )
    assert r.exit_code == 2 and "output must be" in _text(r)
    r = runner.invoke(
        app, ["key", str(tmp_path / "missing.png"), "-b", "#000000", "-o", str(tmp_path / "o.png")]
    )
    assert r.exit_code == 1 and "does not exist" in _text(r)
