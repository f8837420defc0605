"""`ventriloquist verify FILE`: is this picture or video marked as made by a Ventriloquist?

Reads the file's C2PA content credentials (sinks/provenance.py: present, valid, signer, claims) and
the invisible pixel watermark (render/watermark.py) over 2-second windows of the video (or the one
picture of a still): whether it is marked, the appliance id it carries and the confidence. Exit 0:
marked synthetic; 1: no mark found; 2: a manifest that is tampered or invalid. Also the
false-positive measurement of the detector on unmarked pictures and clips
(`ventriloquist verify --false-positives DIR`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware_app.errors import MediaError, MissingFileError
from firmware_app.render.watermark import THRESHOLD, Detection, Detector, detect
from firmware_app.sinks.provenance import CLAIMS_LABEL, SOURCE_TYPE, read_manifest

WINDOW_S = 2.0
MAX_BYTES = 4 << 30  # refuse larger files rather than spend hours decoding them
MAX_WINDOWS = 150  # 5 minutes of video is plenty of evidence
STILL_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Verdict:
    windows: list[Detection]
    manifest: dict | None = None  # the C2PA manifest store with its validation state, None when absent

    @property
    def marked(self) -> bool:
        # a majority of windows, so one chance peak in a long unmarked file is not a verdict
        return bool(self.windows) and 2 * sum(w.marked for w in self.windows) > len(self.windows)

    @property
    def tampered(self) -> bool:
        return self.manifest is not None and self.manifest.get("validation_state") not in ("Valid", "Trusted")

    @property
    def synthetic_claim(self) -> bool:
        active = _active(self.manifest) if self.manifest and not self.tampered else {}
        return SOURCE_TYPE in json.dumps(active.get("assertions", []))

    @property
    def exit_code(self) -> int:
        if self.tampered:
            return 2
        return 0 if self.marked or self.synthetic_claim else 1

    def report(self, name: str) -> str:
        return f"{name}:\n  content credentials: {self._manifest_report()}\n  watermark: {self._watermark_report()}"

    def _manifest_report(self) -> str:
        if self.manifest is None:
            return "none"
        if "error" in self.manifest:
            return f"INVALID, unreadable ({self.manifest['error']}): the file was altered after signing"
        active = _active(self.manifest)
        failures = [s.get("code", "?") for s in self.manifest.get("validation_status", []) if "untrusted" not in str(s)]
        if self.tampered:
            return f"INVALID ({', '.join(failures) or self.manifest.get('validation_state')}): altered after signing"
        sig = active.get("signature_info", {})
        trust = "a trusted issuer" if self.manifest["validation_state"] == "Trusted" else "not by a trusted issuer"
        claims = next((a["data"] for a in active.get("assertions", []) if a.get("label") == CLAIMS_LABEL), {})
        generator = active.get("claim_generator_info", [{}])[0]
        lines = [
            f"valid, signed by {sig.get('common_name', '?')} ({sig.get('issuer', '?')}), {trust}",
            f"created by {generator.get('name', '?')} {generator.get('version', '')}".rstrip(),
            "digital source type: trained algorithmic media" if self.synthetic_claim else "no synthetic-media claim",
            *(f"{k}: {v}" for k, v in claims.items() if v),
            *(f"ingredient: {i.get('title')}" for i in active.get("ingredients", [])),
        ]
        return "\n    ".join(lines)

    def _watermark_report(self) -> str:
        hits = [w for w in self.windows if w.marked]
        if not self.marked:
            best = max((w.confidence for w in self.windows), default=0.0)
            return f"none found ({len(hits)}/{len(self.windows)} windows, best z {best:.1f})"
        ids = sorted({w.payload for w in hits})
        z = np.median([w.confidence for w in hits])
        return (
            f"found, synthetic (Ventriloquist), appliance id {', '.join(ids)}, "
            f"confidence z {z:.1f} (threshold {THRESHOLD:.0f}), "
            f"{len(hits)}/{len(self.windows)} 2-s windows"
        )


def _active(store: dict) -> dict:
    return store.get("manifests", {}).get(store.get("active_manifest", ""), {})


def verify_file(path: Path) -> Verdict:
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist", "give the path of a video or picture file")
    if path.stat().st_size > MAX_BYTES:
        raise MediaError(
            f"{path} is {path.stat().st_size >> 20} MiB, over {MAX_BYTES >> 30} GiB", "verify a shorter cut"
        )
    if path.suffix.lower() in STILL_SUFFIXES:
        return Verdict([detect([_read_still(path)])], read_manifest(path))
    return Verdict(list(_video_windows(path)), read_manifest(path))


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
