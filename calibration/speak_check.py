"""Does a face pack speak? Render the bundled speech with it, re-track the render with MediaPipe,
and look at the frames the mouth model calls p/b/m (the lips must seal) and open vowels (the
person's own teeth must show).

    python -m calibration.speak_check NAME.face [--out DIR]

Writes DIR/speech.mp4 and DIR/speak_strip.png (frames of p/b/m and open vowels) and prints the
numbers; nothing is written inside the repository (a pack of a real person stays private).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from calibration.identities import SPEECH, speech_track
from firmware_app.config import Settings, TrackerSettings
from firmware_app.face.clip import read_clip
from firmware_app.face.enroll import normalise_mouth, teeth_share
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import VideoFrame
from firmware_app.render.mouth import face_light
from firmware_app.runners.offline import render_offline

CLOSURE = "viseme_PP"
OPEN_VOWELS = ("viseme_aa", "viseme_E", "viseme_ih")  # spread or open; oh and ou round the lips over the teeth
CLOSED_GAP = 0.01  # face heights: sealed lips, re-measured
TEETH = 0.05  # share of the opening's middle that looks like teeth


def check(pack: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    video = out / "speech.mp4"
    render_offline(Settings(), str(SPEECH), str(pack), str(video))
    track = speech_track()
    closures, vowels, strip = [], [], []
    with FaceTracker(TrackerSettings(smoothing=False, hold_frames=0)) as tracker:
        for index, t, image in read_clip(video):
            face = tracker.track(VideoFrame(image, t, index))
            shape = track.at(t)
            if face is None:
                continue
            patch, upper, lower, half_width = normalise_mouth(image, face, 160.0)
            gap = float((lower - upper)[10])
            weights = shape.weights
            if weights.get(CLOSURE, 0.0) > 0.5:
                closures.append(gap)
                if len(strip) < 4:
                    strip.append(("p/b/m", image, face))
            elif max(weights.get(v, 0.0) for v in OPEN_VOWELS) > 0.5 and shape.aperture > 0.4:
                vowels.append(
                    teeth_share(patch, upper, lower, half_width, 160.0, face_light(image, face, (0, 0, 0)).lips)
                )
                if len(strip) < 8 and len(vowels) % 5 == 1:
                    strip.append(("open vowel", image, face))
    result = {
        "closure_frames": len(closures),
        "closed_share": round(float(np.mean(np.array(closures) <= CLOSED_GAP)) if closures else 0.0, 3),
        "closure_gap_p95": round(float(np.percentile(closures, 95)), 4) if closures else None,
        "open_vowel_frames": len(vowels),
        "teeth_shown_share": round(float(np.mean(np.array(vowels) >= TEETH)) if vowels else 0.0, 3),
        "teeth_share_median": round(float(np.median(vowels)), 3) if vowels else None,
    }
    if strip:
        cv2.imwrite(
            str(out / "speak_strip.png"), np.hstack([_tile(label, image, face) for label, image, face in strip])
        )
    (out / "speak_check.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _tile(label: str, image: np.ndarray, face, size: int = 200) -> np.ndarray:
    p = face.landmarks[:, :2]
    centre = p[[13, 14]].mean(axis=0).astype(int)
    half = int(0.3 * np.linalg.norm(p[152] - p[10]))
    padded = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_CONSTANT)
    tile = cv2.resize(padded[centre[1] : centre[1] + 2 * half, centre[0] : centre[0] + 2 * half], (size, size))
    cv2.putText(tile, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pack", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp/speak-check"))
    args = parser.parse_args()
    print(json.dumps(check(args.pack, args.out), indent=2))


if __name__ == "__main__":
    main()
