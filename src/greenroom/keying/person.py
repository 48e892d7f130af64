"""A real photograph of a person with a conservative reference, for the segmentation keyer.

The photograph is ``skimage.data.astronaut()`` (NASA portrait of Eileen Collins, public
domain; shipped in the scikit-image wheel, a dev extra). It is cropped to 16:9 around the
face and scaled to 1280x720, the size avatars stream at.

There is no true matte for it, so the reference is a *trimap built without a hand*: a
face detector (scikit-image's LBP frontal-face cascade) finds the face, and rules that hold
for any head-and-shoulders frame mark

- sure person: the face box shrunk by 15 %, and a torso block from 0.6 face heights below
  the chin to the bottom, one face width either side of the face's centre;
- sure background: everything more than 1.3 face widths left or right of the face's centre
  above the shoulder line (chin + 0.3 face heights), and the rows above the hair (more
  than 0.6 face heights above the face box);
- unknown: the rest (hair outline, neck, shoulders' edge, lower corners), not scored.

Agreement on the sure regions is what can honestly be claimed: it shows the person is found
and the background dropped, not how good the edges are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PHOTO_CREDIT = (
    "skimage.data.astronaut(): NASA portrait of astronaut Eileen Collins, public domain, "
    "distributed with scikit-image (BSD-3-Clause)"
)


@dataclass
class PersonPhoto:
    rgb: np.ndarray  # (H, W, 3) uint8
    sure_fg: np.ndarray  # (H, W) bool
    sure_bg: np.ndarray  # (H, W) bool
    face: tuple[int, int, int, int]  # row, col, height, width in ``rgb``'s pixels


def astronaut(width: int = 1280, height: int = 720) -> PersonPhoto:
    """The astronaut photograph, 16:9, with its face-detector trimap (needs scikit-image)."""
    import importlib

    from PIL import Image

    # scikit-image is untyped: reach it through Any
    data: Any = importlib.import_module("skimage.data")
    feature: Any = importlib.import_module("skimage.feature")
    img = data.astronaut()
    det = feature.Cascade(data.lbp_frontal_face_cascade_filename())
    faces = det.detect_multi_scale(
        img=img, scale_factor=1.2, step_ratio=1, min_size=(60, 60), max_size=(300, 300)
    )
    if not faces:
        raise RuntimeError("no face found in the astronaut photograph")
    f = max(faces, key=lambda d: d["width"] * d["height"])
    ch = img.shape[1] * 9 // 16
    top = int(np.clip(f["r"] - 0.6 * f["height"], 0, img.shape[0] - ch))
    crop = img[top : top + ch]
    sy, sx = height / crop.shape[0], width / crop.shape[1]
    rgb = np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.BICUBIC))
    r, c = (f["r"] - top) * sy, f["c"] * sx
    fh, fw = f["height"] * sy, f["width"] * sx
    yy, xx = np.mgrid[0:height, 0:width]
    cx = c + fw / 2
    face_core = (
        (yy >= r + 0.15 * fh) & (yy < r + 0.85 * fh) & (xx >= c + 0.15 * fw) & (xx < c + 0.85 * fw)
    )
    torso = (yy >= r + 1.6 * fh) & (np.abs(xx - cx) <= fw)
    shoulders = r + 1.3 * fh
    bg_sides = (np.abs(xx - cx) > 1.3 * fw) & (yy < shoulders)
    bg_top = yy < r - 0.6 * fh
    return PersonPhoto(
        rgb=np.ascontiguousarray(rgb),
        sure_fg=face_core | torso,
        sure_bg=bg_sides | bg_top,
        face=(int(r), int(c), int(fh), int(fw)),
    )


def agreement(alpha: np.ndarray, photo: PersonPhoto) -> dict[str, float]:
    """How a matte (uint8 or float) agrees with the trimap: the share of sure-person pixels it
    keeps (alpha >= 0.5), of sure-background pixels it drops, and mean alpha on each."""
    a = alpha.astype(np.float32) / 255.0 if alpha.dtype == np.uint8 else alpha.astype(np.float32)
    fg, bg = a[photo.sure_fg], a[photo.sure_bg]
    return {
        "fg_kept": float((fg >= 0.5).mean()),
        "bg_dropped": float((bg < 0.5).mean()),
        "fg_mean_alpha": float(fg.mean()),
        "bg_mean_alpha": float(bg.mean()),
        "fg_share": float(photo.sure_fg.mean()),
        "bg_share": float(photo.sure_bg.mean()),
    }
