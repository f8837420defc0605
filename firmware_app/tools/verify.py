"""`ventriloquist verify FILE`: is this picture or video marked as made by a Ventriloquist?

Reads the invisible pixel watermark (render/watermark.py) over 2-second windows of the video (or the
one picture of a still) and says, per file, whether it is marked, with the appliance id it carries
and the confidence. Exit 0: marked synthetic; 1: no mark found. Also the false-positive measurement
of the detector on unmarked pictures and clips (`ventriloquist verify --false-positives DIR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_app.errors import MediaError, MissingFileError
from firmware_app.render.watermark import THRESHOLD, Detection, Detector, detect

WINDOW_S = 2.0
MAX_BYTES = 4 << 30  # refuse larger files rather than spend hours decoding them
MAX_WINDOWS = 150  # 5 minutes of video is plenty of evidence
STILL_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Verdict:
    windows: list[Detection]

    @property
    def marked(self) -> bool:
        # a majority of windows, so one chance peak in a long unmarked file is not a verdict
        return bool(self.windows) and 2 * sum(w.marked for w in self.windows) > len(self.windows)

    def report(self, name: str) -> str:
        hits = [w for w in self.windows if w.marked]
        if not self.marked:
            best = max((w.confidence for w in self.windows), default=0.0)
            return f"{name}: no watermark found ({len(hits)}/{len(self.windows)} windows, best z {best:.1f})"
        ids = sorted({w.payload for w in hits})
        z = np.median([w.confidence for w in hits])
        return (
            f"{name}: watermark found, synthetic (Ventriloquist), appliance id {', '.join(ids)}, "
            f"confidence z {z:.1f} (threshold {THRESHOLD:.0f}), "
            f"{len(hits)}/{len(self.windows)} 2-s windows"
        )


def verify_file(path: Path) -> Verdict:
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist", "give the path of a video or picture file")
    if path.stat().st_size > MAX_BYTES:
        raise MediaError(
            f"{path} is {path.stat().st_size >> 20} MiB, over {MAX_BYTES >> 30} GiB", "verify a shorter cut"
        )
    if path.suffix.lower() in STILL_SUFFIXES:
        return Verdict([detect([_read_still(path)])])
    return Verdict(list(_video_windows(path)))


def _read_still(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"{path} is not a picture OpenCV can read", "give a JPEG/PNG or a video file")
    return image


def _video_windows(path: Path):  # type: ignore[no-untyped-def]
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path} is not a video or picture ({exc})", "give an MP4/MKV/WebM or a picture") from None
    with container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream", "give a file with pictures in it")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 30)
        per_window = max(1, round(WINDOW_S * rate))
        detector, windows = Detector(), 0
        try:
            for frame in container.decode(stream):
                detector.add(frame.to_ndarray(format="bgr24"))
                if detector.frames == per_window:
                    yield detector.result()
                    detector, windows = Detector(), windows + 1
                    if windows >= MAX_WINDOWS:
                        return
        except av.FFmpegError as exc:
            if windows == 0 and detector.frames == 0:
                raise MediaError(
                    f"{path} could not be decoded ({exc})", "the file may be truncated or damaged"
                ) from None
        if detector.frames >= per_window // 2 or windows == 0 and detector.frames:
            yield detector.result()  # a truncated file still gives what it has
        elif windows == 0:
            raise MediaError(f"{path} has no decodable frames", "the file may be truncated or damaged")


def false_positive_windows(folder: Path, crops_per_picture: int = 60, seed: int = 0):  # type: ignore[no-untyped-def]
    """Detections on unmarked windows: each picture under `folder` (and skimage's sample data) cut
    into random crops at random scales, and every 2-s window (stride 0.5 s) of each clip."""
    rng = np.random.default_rng(seed)
    for picture in _pictures(folder):
        h, w = picture.shape[:2]
        for _ in range(crops_per_picture):
            ch, cw = int(h * rng.uniform(0.5, 1)), int(w * rng.uniform(0.5, 1))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = cv2.resize(picture[y : y + ch, x : x + cw], None, fx=(s := rng.uniform(0.5, 2)), fy=s)
            yield detect([crop])
    for clip in sorted(folder.rglob("*.mp4")):
        yield from _sliding(clip)


def _pictures(folder: Path) -> list[np.ndarray]:
    pictures = [cv2.imread(str(p)) for p in sorted(folder.rglob("*")) if p.suffix.lower() in STILL_SUFFIXES]
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "page", "text"):
            image = getattr(data, name)()
            pictures.append(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, ::-1].copy())
    except ImportError:
        pass
    return [p for p in pictures if p is not None and min(p.shape[:2]) >= 64]


def _sliding(clip: Path):  # type: ignore[no-untyped-def]
    import av

    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    per_window = 60
    for start in range(0, max(1, len(frames) - per_window + 1), per_window // 4):
        yield detect(frames[start : start + per_window])


def false_positive_report(folder: Path) -> str:
    results = list(false_positive_windows(folder))
    hits = sum(r.marked for r in results)
    worst = max((r.confidence for r in results), default=0.0)
    rate = 100 * hits / max(len(results), 1)
    return (
        f"watermark false positives: {hits}/{len(results)} unmarked windows ({rate:.2f} %), "
        f"highest z {worst:.1f} (threshold {THRESHOLD:.0f}), from {folder} and skimage data"
    )
