"""How long a live-rate codec takes to settle after its key frame: chroma PSNR by frame.

The keying bench scores codec streams after a lead-in of each clip's own past
(``bench/keying.py --lead-in past``, 45 frames); this prints why that long. Each family
clip is rendered as one continuous stream, encoded from a key frame at the live rate and
decoded; the U and V planes are compared with the source's.

    .venv/bin/python bench/codec_settle.py --codec vp8 --frames 60 --every 3
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from greenroom.keying import I420Frame
from greenroom.keying.codec_roundtrip import roundtrip
from greenroom.keying.family import family_specs, render_clip


def chroma_psnr(stream: list[np.ndarray], codec: str, kbps: float) -> list[float]:
    """Chroma PSNR (dB) of each frame of ``stream`` after ``codec``, from its key frame on."""
    out = []
    for src, (_y, u, v) in zip(stream, roundtrip(stream, codec, kbps, lead_in=[]), strict=True):
        ref = I420Frame.from_rgb(src)
        err = np.concatenate(
            [(u.astype(np.float64) - ref.u).ravel(), (v.astype(np.float64) - ref.v).ravel()]
        )
        out.append(float(10.0 * np.log10(255.0**2 / max(np.mean(err**2), 1e-12))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="vp8", choices=("vp8", "h264"))
    ap.add_argument("--kbps", type=float, default=2000.0, help="rate at 720p (scaled by area)")
    ap.add_argument("--frames", type=int, default=60, help="frames per stream (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="family seed (default 0)")
    ap.add_argument("--clips", type=int, default=8, help="clips, spread over the family")
    ap.add_argument("--every", type=int, default=3, help="print every Nth frame (default 3)")
    args = ap.parse_args()
    specs = family_specs(24, seed=args.seed)
    specs = specs[:: max(len(specs) // args.clips, 1)][: args.clips]
    rows = []
    for spec in specs:
        clip = render_clip(replace(spec, frames=args.frames), start=-args.frames)
        rows.append(chroma_psnr(clip.frames, args.codec, args.kbps))
    shown = range(0, args.frames, args.every)
    print(f"Chroma PSNR (dB) of {args.codec} at {args.kbps:.0f} kbit/s-at-720p by frame after "
          f"its key frame, mean of {len(rows)} clips of seed {args.seed}:\n")  # fmt: skip
    print("| frame | " + " | ".join(str(i) for i in shown) + " |")
    print("|---|" + "---|" * len(shown))
    mean = np.mean(rows, axis=0)
    print("| chroma PSNR | " + " | ".join(f"{mean[i]:.1f}" for i in shown) + " |")


if __name__ == "__main__":
    main()
