"""Against the real person: each GRID talker's first frame driven by their own voice.

    python -m calibration.grid_voice [--no-scale] [IDENTITY …]

For each GRID clip (`../shared/faces/videos/grid`, CC BY 4.0): the first frame is the still, the
clip's own sound goes through the shipped mouth model, and the shipped renderer (donor library
with this person left out, per-face opening scale unless `--no-scale`) draws every frame at 25 fps; MediaPipe
re-tracks each render. The rendered inner-lip gap is compared frame by frame with the person's
own (the clip tracked, `calibration.clips`): Pearson r at the best lag within ±`MAX_LAG` frames
(positive: the render is late), and the most open 5 % of frames, rendered / real. Targets:
r ≥ 0.75, |lag| ≤ 40 ms, ratio 0.8–1.25. Beside it, the mouth model's commanded aperture against
the same real gap (`model_r`): what the renderer can at best pass on. Nothing is written.
"""

from __future__ import annotations

import sys

import numpy as np

from calibration.clips import GRID, available, clip_path, tracked
from calibration.fidelity import Measurer, lip_gap
from calibration.identities import SIZE, speech_track
from calibration.opening import TOP_SHARE
from calibration.realism import donor_renderer
from firmware_app.face.clip import read_clip
from firmware_app.frames import MouthShape, VideoFrame
from firmware_app.sources.base import fit_frame

FPS = 25.0
MAX_LAG = 3  # frames (120 ms) either way


def best_lag(real: np.ndarray, rendered: np.ndarray) -> tuple[float, int]:
    """(r, lag in frames) maximising the correlation of `rendered` shifted by lag against `real`
    (NaN where a frame was not found)."""
    best = (-1.0, 0)
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        a = real[max(-lag, 0) : len(real) - max(lag, 0)]
        b = rendered[max(lag, 0) : len(rendered) - max(-lag, 0)]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() > 10 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
            r = float(np.corrcoef(a[ok], b[ok])[0, 1])
            best = max(best, (r, lag))
    return best


def score(identity: str, scaled: bool = True) -> dict[str, float]:
    enrollment = tracked(identity)
    real = np.full(enrollment.frames, np.nan)
    for f in enrollment.kept:
        real[f.index] = f.gap
    _, _, first = next(read_clip(clip_path(identity), 0, 1))
    still = fit_frame(first, SIZE)
    track = speech_track(clip_path(identity))
    renderer = donor_renderer(identity)
    rendered = np.full(enrollment.frames, np.nan)
    commanded = np.full(enrollment.frames, np.nan)
    with Measurer() as measurer:
        face = measurer.face(still)
        renderer.measure = measurer.face if scaled else None
        for i in range(enrollment.frames):
            shape = track.at(i / FPS) if i / FPS <= track.covered_until else MouthShape(i / FPS, {})
            commanded[i] = shape.aperture
            seen = measurer.face(renderer.render(VideoFrame(still, i / FPS, i, still=i > 0), face, shape))
            rendered[i] = lip_gap(seen) if seen is not None else np.nan
    r, lag = best_lag(real, rendered)
    model_r, model_lag = best_lag(real, commanded)
    top = 100.0 - TOP_SHARE
    ratio = float(np.nanpercentile(rendered, top) / max(np.nanpercentile(real, top), 1e-6))
    return {
        "r": round(r, 3),
        "lag_ms": lag * 1000 / FPS,
        "top5_ratio": round(ratio, 3),
        "scale": renderer.opening_scale,
        "model_r": round(model_r, 3),  # the mouth model's aperture itself against the person: the renderer's ceiling
        "model_lag_ms": model_lag * 1000 / FPS,
    }


def main() -> None:
    scaled = "--no-scale" not in sys.argv[1:]
    names = tuple(a for a in sys.argv[1:] if a != "--no-scale") or available(GRID)
    print(
        "| talker | r at best lag (≥ 0.75) | lag ms (\\|·\\| ≤ 40) | top 5 % rendered / real (0.8–1.25) "
        "| opening scale | model's own aperture: r, lag ms |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        s = score(name, scaled)
        print(
            f"| {name} | {s['r']} | {s['lag_ms']:+.0f} | {s['top5_ratio']} | {s['scale']:.2f} "
            f"| {s['model_r']}, {s['model_lag_ms']:+.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
