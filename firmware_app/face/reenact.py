"""Self-reenactment on held-out real frames: is the bank's mouth the person's real mouth?

`ventriloquist enroll CLIP --out X.face --consent "…" --holdout 0.2 --report DIR` builds the bank
from the first 80 % of the clip; here the last 20 % is re-synthesised: every kept frame gets its
own tracked mouth shape (mouth blendshapes only) as the command, once through the bank
(`render.bank.BankRenderer`) and once through the single-photo renderer (`PhotoMouth`), each on
the real frame as a camera frame (moving video never shows its own mouth, so every pixel of the
opening is painted by the source under test). The mouth region (the outer lips' box with a
margin) of each render is compared with the real frame:

- PSNR (dB) and SSIM (grey, scikit-image): higher is closer;
- sharpness: variance of the Laplacian, rendered / real, pooled over frames: 1 is as sharp as
  real, below is blurred, above is harsher than real (the better renderer is the one nearer 1);
- flicker: mean |Δrendered − Δreal| between consecutive frames, 0-255: change the real video does
  not have (lower is better).

`DIR/report.json` holds `{"bank": {...}, "single_photo": {...}, "donors": {...}, "frames": N, ...}`
(single photo: the drawn interior; donors: a single photo with the donor library, `render.donors`); `DIR/sheet.png`
is a contact sheet of held-out frames, real | bank | single photo. The clip's frames are only
ever written to DIR (the test clip's licence forbids committing them).

Any frames with a tracked face and its inner-lip gap can be scored (`HeldFrame`): enrollment's own
(`face.enroll.TrackedFrame`), or the lab's cross-validation (`python -m calibration.reenact`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.face.clip import progress_bar, read_clip
from firmware_app.face.pack import MOUTH_BLENDSHAPES, load_face_pack
from firmware_app.frames import Face, MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.render.bank import BankRenderer

OUTER_LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]
MARGIN = (0.25, 0.4)  # the scored box: the outer lips' box grown by these shares of its width, height
SHEET_ROWS = 8
OPEN = 0.02  # inner-lip gap (face heights) from which a frame counts as open in the report's "open" part
MEASURES = ("psnr", "ssim", "sharpness", "flicker")


class HeldFrame(Protocol):
    """A real frame to re-synthesise: its index in the clip, its tracked face, its inner-lip gap."""

    index: int
    face: Face

    @property
    def gap(self) -> float: ...


def mouth_box(face: Face, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The scored region of a frame of `shape`: the outer lips' box grown by `MARGIN`."""
    p = face.landmarks[OUTER_LIPS, :2]
    (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
    dx, dy = MARGIN[0] * (x1 - x0), MARGIN[1] * (y1 - y0) + 2
    h, w = shape[:2]
    return slice(int(max(y0 - dy, 0)), int(min(y1 + dy, h))), slice(int(max(x0 - dx, 0)), int(min(x1 + dx, w)))


class Scores:
    """Per-frame comparisons of one renderer with the real frames, pooled at the end."""

    def __init__(self) -> None:
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.lap_rendered: list[float] = []
        self.lap_real: list[float] = []
        self.flicker: list[float] = []

    def add(self, real: np.ndarray, rendered: np.ndarray, previous: tuple[np.ndarray, np.ndarray] | None) -> None:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        self.psnr.append(float(peak_signal_noise_ratio(real, rendered, data_range=255)))
        grey_real, grey = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) for x in (real, rendered))
        self.ssim.append(
            float(structural_similarity(grey_real, grey, data_range=255, win_size=min(7, *grey.shape) // 2 * 2 + 1))
        )
        self.lap_rendered.append(float(cv2.Laplacian(grey, cv2.CV_32F).var()))
        self.lap_real.append(float(cv2.Laplacian(grey_real, cv2.CV_32F).var()))
        if previous is not None:
            before_real, before = (x.astype(np.float32) for x in previous)
            change = (rendered.astype(np.float32) - before) - (real.astype(np.float32) - before_real)
            self.flicker.append(float(np.abs(change).mean()))

    def summary(self) -> dict[str, float | None]:
        if not self.psnr:
            return {name: None for name in MEASURES}
        return {
            "psnr": round(float(np.mean(self.psnr)), 3),
            "ssim": round(float(np.mean(self.ssim)), 4),
            "sharpness": round(float(np.sum(self.lap_rendered) / max(np.sum(self.lap_real), 1e-6)), 4),
            "flicker": round(float(np.mean(self.flicker)) if self.flicker else 0.0, 3),
        }


def command(frame: HeldFrame, t: float, settings: RendererSettings) -> tuple[MouthShape, RendererSettings]:
    """The frame's own tracked mouth shape as the command (mouth blendshapes only: eyes and brows
    stay as filmed), with the renderer's gain for this frame set so that the opening it draws is
    the tracked inner-lip gap: the lips are asked to be where they were filmed."""
    shape = MouthShape(t, {name: float(frame.face.blendshapes.get(name, 0.0)) for name in MOUTH_BLENDSHAPES})
    gain = frame.gap / (settings.max_open * max(shape.aperture, 1e-3))
    return shape, settings.model_copy(update={"mouth_gain": float(np.clip(gain, 0.0, 10.0))})


def score_holdout(clip: Path, pack_path: Path, held: list[HeldFrame], out_dir: Path, progress: bool = True) -> dict:
    """Re-synthesise the `held` frames of `clip` through the pack and through the single-photo
    renderer and score both against the real frames; write DIR/report.json and DIR/sheet.png."""
    if not held:
        raise ValueError("no held-out frame was kept")
    pack = load_face_pack(pack_path)
    renderer, disclosure = RendererSettings(), DisclosureSettings()
    drawn = renderer.model_copy(update={"donors": False})
    renderers = {
        "bank": BankRenderer(renderer, disclosure, pack),
        "single_photo": Renderer(drawn, disclosure),  # the drawn interior
        "donors": Renderer(renderer, disclosure),  # a single photo with the donor library's real mouths
    }
    scores = {name: Scores() for name in renderers}
    open_scores = {name: Scores() for name in renderers}  # frames whose mouth is open: what a source paints
    by_index = {f.index: f for f in held}
    by_gap = sorted(held, key=lambda f: f.gap)
    sheet_at = {by_gap[int(q * (len(by_gap) - 1))].index for q in np.linspace(0.3, 1.0, SHEET_ROWS)}
    rows, previous, was_open = [], {}, False
    first, last = min(by_index), max(by_index)
    with progress_bar(last + 1 - first, "scoring held-out frames", progress) as bar:
        for index, t, image in read_clip(clip, first, last + 1):
            bar.update(1)
            f = by_index.get(index)
            if f is None:
                previous = {}  # a rejected frame breaks the chain: flicker compares neighbours only
                continue
            box = mouth_box(f.face, image.shape)
            real, is_open = image[box], f.gap >= OPEN
            renders = {}
            for name, r in renderers.items():
                shape, r.settings = command(f, t, renderer if name != "single_photo" else drawn)
                renders[name] = r.render(VideoFrame(image, t, index), f.face, shape)
                crop = renders[name][box]
                before = (previous[name][0][box], previous[name][1][box]) if name in previous else None
                scores[name].add(real, crop, before)
                if is_open:
                    open_scores[name].add(real, crop, before if was_open else None)
                previous[name] = (image, renders[name])
            was_open = is_open
            if index in sheet_at:
                rows.append(_sheet_row(image, renders, f.face))
    report = {
        **{name: s.summary() for name, s in scores.items()},
        "frames": len(held),
        "open": {**{name: s.summary() for name, s in open_scores.items()}, "frames": len(open_scores["bank"].psnr)},
        "clip": clip.name,
        "bank_frames": pack.manifest["frames_used"],
        "exemplars": len(pack.bank.keys),
        "better": "psnr, ssim: higher; sharpness: nearer 1; flicker: lower",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if rows:
        cv2.imwrite(str(out_dir / "sheet.png"), np.vstack(rows))
    return report


def bank_wins(report: dict) -> dict[str, bool]:
    """Per measure, whether the bank beats the single-photo renderer."""
    b, p = report["bank"], report["single_photo"]
    if b["psnr"] is None:
        return {name: False for name in MEASURES}
    return {
        "psnr": b["psnr"] > p["psnr"],
        "ssim": b["ssim"] > p["ssim"],
        "sharpness": bool(abs(np.log(max(b["sharpness"], 1e-6))) < abs(np.log(max(p["sharpness"], 1e-6)))),
        "flicker": b["flicker"] < p["flicker"],
    }


def table(report: dict) -> str:
    """The report as `enroll` prints it: per part, bank and single photo on every measure."""
    lines = [f"bank from {report['bank_frames']} frames, {report['exemplars']} exemplars"]
    for title, part in (("all held-out frames", report), ("open-mouth held-out frames", report["open"])):
        wins = bank_wins(part)
        lines.append(f"{title}: {part['frames']}")
        if not part["frames"]:
            continue
        lines.append(f"  {'':12s}{'bank':>10s}{'single photo':>14s}  bank better")
        for name in MEASURES:
            lines.append(
                f"  {name:12s}{part['bank'][name]:>10}{part['single_photo'][name]:>14}  {'yes' if wins[name] else 'NO'}"
            )
    return "\n".join(lines)


def _sheet_row(image: np.ndarray, renders: dict[str, np.ndarray], face: Face, height: int = 180) -> np.ndarray:
    """real | bank | single photo, each the lower face scaled to `height`, labelled."""
    p = face.landmarks[:, :2]
    centre = p[[13, 14]].mean(axis=0)
    half = int(max(0.32 * float(np.linalg.norm(p[152] - p[10])), 8))
    tiles = []
    for label, picture in (("real", image), ("bank", renders["bank"]), ("single photo", renders["single_photo"])):
        x, y = int(centre[0]), int(centre[1])
        padded = cv2.copyMakeBorder(picture, half, half, half, half, cv2.BORDER_CONSTANT)
        tile = cv2.resize(padded[y : y + 2 * half, x : x + 2 * half], (height, height), interpolation=cv2.INTER_CUBIC)
        cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    return np.hstack(tiles)
