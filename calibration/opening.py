"""How far every face opens on speech, re-measured from the rendered pixels.

    python -m calibration.opening [--only NAME,…] [--face PHOTO …] [--no-mirror] [--step N]

Each identity of `calibration.identities` (the bundled portrait, the astronaut, the photos in
`../shared/faces`) is driven by the bundled speech as the pipeline drives a still (the default
renderer: donor library, per-face opening scale); MediaPipe re-tracks every `step`-th render and
the inner-lip gap (face heights, `fidelity.lip_gap`) of its most open 5 % of frames is reported
beside the real talkers' 0.07–0.115. Mirror mode: the real talking clip as the camera, the same
speech as the voice (`identities.measure_mirror`). Nothing is written.
"""

from __future__ import annotations

import argparse

import numpy as np

from calibration.fidelity import Measurer, lip_gap
from calibration.identities import MIRROR_CLIP, chosen_identities, identity_arguments, measure_mirror, speech_track
from firmware_app.config import Settings
from firmware_app.frames import Face, VideoFrame
from firmware_app.mouth.track import MouthTrack
from firmware_app.render import Renderer

TOP_SHARE = 5.0  # percent: the most open frames of speech
GAP_TARGET = 0.07  # their inner-lip gap, face heights, at least (real talkers: 0.07–0.115)
FPS = 25.0


def top_gap(gaps: list[float]) -> float:
    """The inner-lip gap of the most open `TOP_SHARE` % of frames (their lowest one: the percentile)."""
    return float(np.percentile(np.asarray(gaps, np.float64), 100.0 - TOP_SHARE)) if gaps else float("nan")


def speech_gaps(
    image: np.ndarray, face: Face, track: MouthTrack, measurer: Measurer, step: int = 2, scaled: bool = True
) -> list[float]:
    """The re-measured inner-lip gap of every `step`-th frame of `track` rendered on the still `image`;
    `scaled`: with the per-face opening scale (`render.opening`, the measurer lent as the tracker is)."""
    settings = Settings()
    renderer = Renderer(settings.renderer, settings.disclosure.model_copy(update={"enabled": False}))
    renderer.measure = measurer.face if scaled else None
    gaps = []
    for i in range(int(track.covered_until * FPS)):
        out = renderer.render(VideoFrame(image, i / FPS, i, still=i > 0), face, track.at(i / FPS))
        if i % step:
            continue
        seen = measurer.face(out)
        if seen is not None:
            gaps.append(lip_gap(seen))
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    identity_arguments(parser)
    parser.add_argument("--no-mirror", action="store_true")
    parser.add_argument("--step", type=int, default=2, help="re-measure every N-th frame")
    parser.add_argument("--no-scale", action="store_true", help="without the per-face opening scale (before)")
    args = parser.parse_args()
    images = chosen_identities(parser, args)
    track = speech_track()
    print(f"| identity | most open {TOP_SHARE:g} % gap (≥ {GAP_TARGET}) | frames measured |\n|---|---|---|", flush=True)
    for name, image in images.items():
        with Measurer() as measurer:  # a fresh MediaPipe per identity (see identities.measure_each)
            face = measurer.face(image)
            if face is None:
                print(f"| {name} | no face found | 0 |", flush=True)
                continue
            gaps = speech_gaps(image, face, track, measurer, args.step, not args.no_scale)
        print(f"| {name} | {_mark(top_gap(gaps))} | {len(gaps)} |", flush=True)
    clip = args.faces / MIRROR_CLIP
    if not args.no_mirror and clip.is_file():
        mirror = measure_mirror(clip, track, scaled=not args.no_scale)
        print(f"| mirror ({clip.name}) | {_mark(top_gap(mirror.measured))} | {mirror.frames} |", flush=True)


def _mark(value: float) -> str:
    return f"{value:.3f}" + ("" if value >= GAP_TARGET else " ✗")


if __name__ == "__main__":
    main()
