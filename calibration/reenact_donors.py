"""Self-reenactment without footage: the donor library against the single-photo interior.

    python -m calibration.reenact_donors [IDENTITY …]

As `enroll --holdout 0.2 --report` scores a face pack (`face.reenact`), but the mouth comes from
the donor library (`render.donors`, the clip's own person left out of the donors) instead of a
bank of the clip's other frames: 20 % of the clip from 40 % (cap12: from 20 %, where it talks) is
re-synthesised, each frame's own tracked mouth shape as the command, on the real frame as a camera
frame, and scored on open-mouth frames (PSNR, SSIM, sharpness, flicker). Nothing is written.
"""

from __future__ import annotations

import sys

from calibration.clips import WEBCAM, available, clip_path, tracked
from calibration.realism import donor_renderer, photo_renderer
from firmware_app.face.clip import read_clip
from firmware_app.face.enroll import held_out
from firmware_app.face.reenact import MEASURES, OPEN, Scores, command, mouth_box
from firmware_app.frames import VideoFrame

HOLDOUT, AT = 0.2, 0.4  # the held-out block: 20 % of the clip from 40 % (GRID clips end in silence)
# cap12 talks only in its first third (no open frame from 40 %): its block is the one
# `enroll --holdout 0.2 --holdout-at 0.2 --report` scores (tests/test_enroll.py), so the figures compare
HOLDOUT_AT = {WEBCAM: 0.2}


def held_frames(identity: str) -> dict:
    """The clip's held-out tracked frames by index; refuses a block with no open frame (nothing to score)."""
    enrollment = tracked(identity)
    held_range, _ = held_out(enrollment.frames, enrollment.fps, HOLDOUT, HOLDOUT_AT.get(identity, AT))
    held = {f.index: f for f in enrollment.kept if f.index in held_range}
    if not any(f.gap >= OPEN for f in held.values()):
        raise ValueError(
            f"{identity}: no open-mouth frame in its held-out block {held_range.start}-{held_range.stop} "
            "(the person is silent there); set its block in calibration.reenact_donors.HOLDOUT_AT"
        )
    return held


def score(identity: str) -> dict[str, dict]:
    """Open-frame scores of the single-photo and the donor renderers on the clip's held-out end."""
    held = held_frames(identity)
    renderers = {"single_photo": photo_renderer(identity), "donors": donor_renderer(identity)}
    scores = {name: Scores() for name in renderers}
    previous: dict = {}
    for index, t, image in read_clip(clip_path(identity), min(held), max(held) + 1):
        f = held.get(index)
        if f is None or f.gap < OPEN:
            previous = {}  # flicker compares open neighbours only
            continue
        box = mouth_box(f.face, image.shape)
        for name, r in renderers.items():
            shape, r.settings = command(f, t, r.settings)
            out = r.render(VideoFrame(image, t, index), f.face, shape)
            before = (previous[name][0][box], previous[name][1][box]) if name in previous else None
            scores[name].add(image[box], out[box], before)
            previous[name] = (image, out)
    return {name: s.summary() for name, s in scores.items()}


def main() -> None:
    names = tuple(sys.argv[1:]) or available((WEBCAM,))
    print("| clip | renderer | " + " | ".join(MEASURES) + " |\n|---|---|" + "---|" * len(MEASURES))
    for name in names:
        for renderer, s in score(name).items():
            print(f"| {name} | {renderer} | " + " | ".join(str(s[m]) for m in MEASURES) + " |")


if __name__ == "__main__":
    main()
