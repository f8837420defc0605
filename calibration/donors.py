"""Build the donor library of real mouths (`firmware_app/face/donors.py`) from real footage.

    python -m calibration.donors [--out firmware_app/assets/mouth_donors.zip] [--only a,b]

Every donor clip is tracked as enrollment tracks a clip (`calibration.clips`, `face.enroll`), its
kept frames clustered into exemplars (`face.enroll.build_bank`, with more and less merged
exemplars than a face pack: a GRID clip is 3 s), and stored with who the person is, where the
footage comes from and its licence. The donors are the GRID talkers (CC BY 4.0, shippable with
attribution); the webcam clip is not a donor (its licence is not confirmed), and the photo donors
of DONORS.md are not used yet. The built library is package data (a few hundred kB) and is listed
in `THIRD_PARTY_NOTICES.md`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calibration.clips import GRID, available, clip_path, tracked
from firmware_app.face.clip import read_clip
from firmware_app.face.donors import LIBRARY, Donor, write_library
from firmware_app.face.enroll import Enrollment, build_bank
from firmware_app.render.mouth import face_light

FRAMES_PER_EXEMPLAR = 3  # one exemplar per this many kept frames (a pack: 8)
MERGED = 2  # frames merged per exemplar (a pack: 5): a short clip has few of each shape
SKIN_FRAMES = 9  # frames the donor's skin colour is read from
GRID_ORIGIN = "GRID audiovisual sentence corpus, talker clip {clip}.mpg (../shared/faces/videos/grid)"
GRID_LICENCE = "CC BY 4.0"
GRID_ATTRIBUTION = (
    "Cooke, Barker, Cunningham & Shao, An audio-visual corpus for speech perception and automatic speech "
    "recognition, JASA 120 (2006); Creative Commons Attribution 4.0"
)
WHO = {"bbaf2n": "man", "brbk7n": "woman", "lbax4n": "man with glasses", "lbbc2a": "woman", "sbwe5n": "man"}


def donor_skin(identity: str, enrollment: Enrollment) -> np.ndarray:
    """The donor's median cheek colour over a few kept frames, read as the renderer reads a target's."""
    picks = {
        enrollment.kept[i].index: enrollment.kept[i]
        for i in np.linspace(0, len(enrollment.kept) - 1, SKIN_FRAMES).astype(int)
    }
    skins = [
        face_light(image, picks[index].face, (0, 0, 0)).skin
        for index, _, image in read_clip(clip_path(identity), min(picks), max(picks) + 1)
        if index in picks
    ]
    return np.median(np.array(skins), axis=0).astype(np.float32)


def grid_donor(identity: str) -> Donor:
    enrollment = tracked(identity)
    bank = build_bank(enrollment.kept, enrollment.resolution, per_exemplar=FRAMES_PER_EXEMPLAR, merged=MERGED)
    return Donor(
        identity,
        GRID_ORIGIN.format(clip=identity) + f"; {WHO.get(identity, 'talker')}",
        GRID_LICENCE,
        GRID_ATTRIBUTION,
        donor_skin(identity, enrollment),
        bank,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="build the donor library of real mouths from the GRID clips")
    parser.add_argument("--out", default=str(LIBRARY))
    parser.add_argument("--only", default="", help="comma-separated GRID talkers (default: all that are here)")
    args = parser.parse_args()
    names = tuple(n for n in args.only.split(",") if n) or available(GRID)
    if not names:
        raise SystemExit(f"no GRID clip is here ({clip_path(GRID[0]).parent})")

    manifest = write_library(Path(args.out), [grid_donor(n) for n in names])
    for d in manifest["donors"]:
        print(f"{d['identity']}: {d['exemplars']} exemplars at {d['resolution']} px per face height ({d['licence']})")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
