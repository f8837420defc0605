"""A realism check anyone can rerun: can a simple classifier tell real mouth crops from rendered ones?

    python -m calibration.realism [--renderer photo] [--out calibration/report] [--private-out DIR]

Real crops are open-mouth frames of real talking clips (`calibration.clips`: the GRID talkers and
the webcam man); rendered crops are the same frames re-synthesised by the renderer under test the
way `enroll --report` does (the frame's own tracked mouth shape as the command, on the real frame
as a camera frame, so every pixel of the opening is painted by the mouth source; the lips asked to
be where they were filmed). Each crop is the scored mouth box of `face.reenact` resized to `CROP`.

The classifier is fixed here and was committed before the renderer it judges changed: HOG of the
grey crop plus Lab colour histograms of the crop, standardised, logistic regression (settings
below). It is split by identity: trained on the development identities' real and rendered crops,
tested on the held-out identities'. Accuracy 0.5 is chance: the renderer fools it; 1.0: it always
tells. Two figures per renderer: `retrained` (same features and settings, trained on this
renderer's development crops) and `frozen` (the weights trained on the baseline renderer's crops,
`report/realism_baseline.npz`, applied as they are).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from calibration.clips import GRID, WEBCAM, available, clip_path, tracked
from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.face.clip import read_clip
from firmware_app.face.reenact import OPEN, command, mouth_box
from firmware_app.frames import VideoFrame
from firmware_app.render import Renderer

PROJECT = Path(__file__).resolve().parent.parent
REPORT = PROJECT / "calibration" / "report"
BASELINE = REPORT / "realism_baseline.npz"
# split by identity: the classifier never sees a held-out person
DEVELOPMENT = ("bbaf2n", "brbk7n", "lbax4n")
HELD_OUT = ("lbbc2a", "sbwe5n", WEBCAM)
CROP = (64, 40)  # width, height of every crop
PER_IDENTITY = 60  # open frames per identity at most, spread over the clip
HOG = {"orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (2, 2), "block_norm": "L2-Hys"}
LAB_BINS = 8  # per channel
C = 0.1  # the logistic regression's inverse regularisation
assert set(DEVELOPMENT) | set(HELD_OUT) == {*GRID, WEBCAM}

RendererFor = Callable[[str], Renderer]  # the renderer under test for scoring one identity's clip
# the mouth is scored, not the disclosure: the invisible watermark (measured by `verify`) is a
# pattern a retrained classifier learns to see (held-out 0.87 with it on the donor renders, 0.71 without)
UNMARKED = DisclosureSettings(enabled=False, watermark=False)


def photo_renderer(identity: str) -> Renderer:
    """Today's single-photo renderer (`PhotoMouth`)."""
    return Renderer(RendererSettings(donors=False), UNMARKED)


def donor_renderer(identity: str) -> Renderer:
    """The renderer with the donor library, the scored clip's own person left out of the donors."""
    from firmware_app.render.donors import library_mouth

    renderer = Renderer(RendererSettings(donors=False), UNMARKED)
    source = library_mouth(exclude=(identity,))
    if source is None:
        raise SystemExit("the donor library is missing: build it with `python -m calibration.donors`")
    renderer.source = source
    return renderer


RENDERERS: dict[str, RendererFor] = {"photo": photo_renderer, "donors": donor_renderer}


def features(crop: np.ndarray) -> np.ndarray:
    """The fixed features of one BGR crop: HOG of its grey levels, then Lab histograms."""
    from skimage.feature import hog

    crop = cv2.resize(crop, CROP, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB)
    hists = [np.histogram(lab[..., c], bins=LAB_BINS, range=(0, 256))[0] / lab[..., c].size for c in range(3)]
    return np.concatenate([hog(grey, **HOG), *hists]).astype(np.float32)


def open_frames(identity: str) -> list:
    """Up to `PER_IDENTITY` kept open-mouth frames of the identity's clip, spread evenly."""
    kept = [f for f in tracked(identity).kept if f.gap >= OPEN]
    if len(kept) > PER_IDENTITY:
        kept = [kept[i] for i in np.linspace(0, len(kept) - 1, PER_IDENTITY).round().astype(int)]
    return kept


def crops(identity: str, renderer_for: RendererFor) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(real, rendered) mouth crops of the identity's open frames."""
    frames = {f.index: f for f in open_frames(identity)}
    renderer = renderer_for(identity)
    base = renderer.settings
    real, rendered = [], []
    for index, t, image in read_clip(clip_path(identity), min(frames), max(frames) + 1):
        f = frames.get(index)
        if f is None:
            continue
        shape, renderer.settings = command(f, t, base)
        out = renderer.render(VideoFrame(image, t, index), f.face, shape)
        box = mouth_box(f.face, image.shape)
        real.append(image[box].copy())
        rendered.append(out[box].copy())
    return real, rendered


def dataset(identities: tuple[str, ...], crops_of: dict) -> tuple[np.ndarray, np.ndarray]:
    x, y = [], []
    for name in identities:
        real, rendered = crops_of[name]
        x += [features(c) for c in real] + [features(c) for c in rendered]
        y += [0] * len(real) + [1] * len(rendered)
    return np.array(x), np.array(y)


def train(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Standardise, then logistic regression: the weights as plain arrays (they are committed)."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=C, max_iter=5000).fit((x - mean) / std, y)
    return {"mean": mean, "std": std, "coef": model.coef_[0], "intercept": model.intercept_}


def accuracy(weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    z = ((x - weights["mean"]) / weights["std"]) @ weights["coef"] + weights["intercept"][0]
    return float(((z > 0).astype(int) == y).mean())


def evaluate(renderer: str, private_out: Path | None = None, save_baseline: bool = False) -> dict:
    """The classifier's accuracy on the held-out identities for one renderer (see the module)."""
    names = available()
    if not set(DEVELOPMENT) <= set(names) or not set(HELD_OUT) & set(names):
        raise SystemExit(f"the clips are not all here ({clip_path(DEVELOPMENT[0]).parent}); see calibration/clips.py")
    crops_of = {name: crops(name, RENDERERS[renderer]) for name in names}
    if private_out is not None:
        write_sheet(crops_of, private_out / f"realism_{renderer}.jpg")
    x_dev, y_dev = dataset(DEVELOPMENT, crops_of)
    held = tuple(n for n in HELD_OUT if n in names)
    weights = train(x_dev, y_dev)
    result = {
        "renderer": renderer,
        "development": list(DEVELOPMENT),
        "held_out": list(held),
        "crops": {name: len(crops_of[name][0]) for name in names},
        "retrained": round(accuracy(weights, *dataset(held, crops_of)), 4),
        "retrained_per_identity": {n: round(accuracy(weights, *dataset((n,), crops_of)), 4) for n in held},
        "train_accuracy": round(accuracy(weights, x_dev, y_dev), 4),
    }
    if save_baseline:  # only ever from the renderer before the change it judges
        np.savez_compressed(BASELINE, **weights)
    if BASELINE.is_file():
        with np.load(BASELINE) as stored:
            frozen = {k: stored[k] for k in stored.files}
        result["frozen"] = round(accuracy(frozen, *dataset(held, crops_of)), 4)
    return result


def write_sheet(crops_of: dict, path: Path, per_row: int = 8) -> None:
    """real crops above rendered ones, a row pair per identity (outside the repository: real faces)."""
    rows = []
    for real, rendered in crops_of.values():
        pick = np.linspace(0, len(real) - 1, min(per_row, len(real))).round().astype(int)
        for group in (real, rendered):
            tiles = [cv2.resize(group[i], (128, 80), interpolation=cv2.INTER_CUBIC) for i in pick]
            tiles += [np.zeros_like(tiles[0])] * (per_row - len(tiles))
            rows.append(np.hstack(tiles))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description="real-vs-rendered mouth crop classifier, split by identity")
    parser.add_argument("--renderer", nargs="*", default=["photo"], choices=sorted(RENDERERS))
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--private-out", type=Path, default=None, help="crop sheets (real faces: not the repository)")
    parser.add_argument("--save-baseline", action="store_true", help="store these weights as the frozen baseline")
    args = parser.parse_args()
    results = [evaluate(name, args.private_out, args.save_baseline) for name in args.renderer]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "realism.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(
            f"{r['renderer']}: held-out accuracy retrained {r['retrained']} frozen {r.get('frozen')} "
            f"(per identity {r['retrained_per_identity']}; train {r['train_accuracy']})"
        )


if __name__ == "__main__":
    main()
