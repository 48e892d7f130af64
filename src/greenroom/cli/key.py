"""``greenroom key``: the same keyer and compositor as live sessions, on files."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from greenroom.errors import GreenroomError, InvalidInput

console = Console(stderr=True, soft_wrap=True)

IMAGE_OUT = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_OUT = {".mp4", ".mkv", ".mov", ".webm"}


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _keyer(mode: str, key_color: str):
    from greenroom.backgrounds.scene import make_keyer
    from greenroom.keying import ChromaParams, parse_color
    from greenroom.keying.params import KEYING_MODES

    if mode not in KEYING_MODES:
        raise InvalidInput(
            f"--mode must be one of {', '.join(KEYING_MODES)}, got {mode!r}", field="mode"
        )
    if key_color.lower() == "auto":
        params = ChromaParams()
    else:
        params = ChromaParams(key_color=parse_color(key_color, field="key-color"))
    return make_keyer(mode, params)


def _is_image(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError):
        return False


def key(
    input: Annotated[Path, typer.Argument(help="An image or a video of the avatar.")],
    background: Annotated[
        str,
        typer.Option(
            "-b", "--background", help="'#RRGGBB', 'blur[:r]', 'none', an image or a video path."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output image or video file.")],
    alpha_out: Annotated[
        Path | None, typer.Option("--alpha-out", help="Also write the matte here.")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode", help="chroma (green/blue screen), segment, or auto (look and pick)."
        ),
    ] = "chroma",
    key_color: Annotated[
        str, typer.Option("--key-color", help="'auto' or the screen colour #RRGGBB.")
    ] = "auto",
) -> None:
    """Key the avatar out of INPUT and composite it over a background."""
    from greenroom.backgrounds import BackgroundSpec, open_background

    if not input.is_file():
        raise _fail(f"input {input} does not exist")
    try:
        spec = BackgroundSpec.parse(background)
        source = open_background(spec)
        keyer = _keyer(mode, key_color)
        if _is_image(input):
            _key_image(input, output, alpha_out, source, keyer)
        else:
            _key_video(input, output, alpha_out, source, keyer)
    except InvalidInput as exc:
        name = f"--{exc.field}" if exc.field else "input"
        raise _fail(f"{name}: {exc.message}", 2) from None
    except GreenroomError as exc:
        raise _fail(exc.message) from None


def _key_image(path: Path, output: Path, alpha_out: Path | None, source, keyer) -> None:
    from PIL import Image

    from greenroom.keying import I420Frame

    if output.suffix.lower() not in IMAGE_OUT:
        raise InvalidInput(
            f"the input is an image, so the output must be one of {sorted(IMAGE_OUT)}",
            field="output",
        )
    if alpha_out is not None and alpha_out.suffix.lower() not in IMAGE_OUT:
        raise InvalidInput(
            "the input is an image, so the matte must be an image file", field="alpha-out"
        )
    with Image.open(path) as img:
        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
    h, w = rgb.shape[:2]
    if w < 2 or h < 2:
        raise InvalidInput(f"the image is {w}x{h}; it must be at least 2x2", field="input")
    bg = source.frame_i420(w, h, 0.0, I420Frame.from_rgb(rgb))
    if bg is None:
        out, alpha = rgb, keyer.matte(rgb)
    else:
        out, alpha = keyer.composite_with_alpha(rgb, bg.to_rgb())
    Image.fromarray(out).save(output)
    if alpha_out is not None:
        Image.fromarray(alpha).save(alpha_out)
    console.print(f"wrote {output}" + (f" and {alpha_out}" if alpha_out else ""))


def _planes(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arr = frame.to_ndarray()
    h, w = frame.height, frame.width
    y = arr[:h]
    u = arr[h : h + h // 4].reshape(h // 2, w // 2)
    v = arr[h + h // 4 :].reshape(h // 2, w // 2)
    return y, u, v


def _key_video(path: Path, output: Path, alpha_out: Path | None, source, keyer) -> None:
    import av

    from greenroom.keying import I420Frame

    if output.suffix.lower() not in VIDEO_OUT:
        raise InvalidInput(
            f"the input is a video, so the output must be one of {sorted(VIDEO_OUT)}",
            field="output",
        )
    if alpha_out is not None and alpha_out.suffix.lower() not in VIDEO_OUT:
        raise InvalidInput(
            "the input is a video, so the matte must be a video file", field="alpha-out"
        )
    try:
        src = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise InvalidInput(
            f"cannot read {path.name}: not an image or a video ({exc})", field="input"
        ) from None
    with src:
        if not src.streams.video:
            raise InvalidInput(f"{path.name} has no video stream", field="input")
        vin = src.streams.video[0]
        w, h = vin.codec_context.width, vin.codec_context.height
        if w % 2 or h % 2:
            raise InvalidInput(
                f"the video is {w}x{h}; width and height must be even", field="input"
            )
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        total = vin.frames or (
            int(float(src.duration / 1e6) * float(rate)) if src.duration else None
        )
        ain = src.streams.audio[0] if src.streams.audio else None
        dst = av.open(str(output), "w")
        amat = av.open(str(alpha_out), "w") if alpha_out is not None else None
        try:
            vout = dst.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
            vout.options = {"crf": "18", "preset": "veryfast"}
            vout.codec_context.time_base = vin.time_base
            mout = None
            if amat is not None:
                mout = amat.add_stream("libx264", rate=rate)
                mout.width, mout.height, mout.pix_fmt = w, h, "yuv420p"
                mout.options = {"crf": "12", "preset": "veryfast"}
                mout.codec_context.time_base = vin.time_base
            aout, transcode = _audio_stream(dst, ain)
            out = I420Frame.empty(w, h)
            alpha = np.empty((h, w), np.uint8)
            neutral = np.full((h // 2, w // 2), 128, np.uint8)
            t_start = time.perf_counter()
            streams = [vin] + ([ain] if ain is not None else [])
            with _progress() as progress:
                task = progress.add_task("keying", total=total, fps="")
                n = 0
                for packet in src.demux(*streams):
                    if packet.stream is ain:
                        _audio_packet(packet, aout, transcode, dst)
                        continue
                    for frame in packet.decode():
                        _one_frame(
                            frame,
                            keyer,
                            source,
                            out,
                            alpha,
                            n,
                            float(rate),
                            vout,
                            mout,
                            dst,
                            amat,
                            neutral,
                        )
                        n += 1
                        fps = n / max(time.perf_counter() - t_start, 1e-6)
                        progress.update(task, advance=1, fps=f"{fps:5.1f} fps")
                for pkt in vout.encode():
                    dst.mux(pkt)
                if mout is not None and amat is not None:
                    for pkt in mout.encode():
                        amat.mux(pkt)
                if transcode is not None and aout is not None:
                    for pkt in aout.encode():
                        dst.mux(pkt)
        finally:
            dst.close()
            if amat is not None:
                amat.close()
            source.close()
    console.print(f"wrote {output} ({n} frames)" + (f" and {alpha_out}" if alpha_out else ""))


def _one_frame(frame, keyer, source, out, alpha, n, rate, vout, mout, dst, amat, neutral) -> None:
    import av

    from greenroom.keying import I420Frame

    frame_yuv = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
    planes = _planes(frame_yuv)
    fi = I420Frame(*(np.ascontiguousarray(p) for p in planes))
    t = float(frame.time) if frame.time is not None else n / rate
    bg = source.frame_i420(fi.width, fi.height, t, fi)
    if bg is None:
        out.y[...], out.u[...], out.v[...] = fi.y, fi.u, fi.v
        if mout is not None:
            alpha[...] = keyer.matte_i420(fi)
    else:
        keyer.composite_i420(fi, bg, out, alpha_out=alpha if mout is not None else None)
    packed = np.frombuffer(out.to_bytes(), np.uint8).reshape(-1, fi.width)
    vf = av.VideoFrame.from_ndarray(packed, format="yuv420p")
    vf.pts, vf.time_base = frame.pts, frame.time_base
    for pkt in vout.encode(vf):
        dst.mux(pkt)
    if mout is not None:
        mpacked = np.concatenate(
            [alpha, neutral.reshape(-1, fi.width), neutral.reshape(-1, fi.width)]
        )
        mf = av.VideoFrame.from_ndarray(mpacked, format="yuv420p")
        mf.pts, mf.time_base = frame.pts, frame.time_base
        for pkt in mout.encode(mf):
            amat.mux(pkt)


def _audio_stream(dst, ain):
    """An output audio stream: a copy of the input's when the container takes it, else AAC."""
    if ain is None:
        return None, None
    try:
        aout = dst.add_stream_from_template(ain)
        return aout, None
    except (ValueError, TypeError, NotImplementedError, Exception):
        aout = dst.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
        return aout, True


def _audio_packet(packet, aout, transcode, dst) -> None:
    if aout is None or packet.dts is None:
        return
    if transcode:
        for frame in packet.decode():
            frame.pts = None
            for pkt in aout.encode(frame):
                dst.mux(pkt)
    else:
        packet.stream = aout
        dst.mux(packet)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def register(app: typer.Typer) -> None:
    app.command("key")(key)
