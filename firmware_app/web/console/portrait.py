"""A portrait uploaded through the console, checked before it may replace the current one: a still
(JPEG, PNG, WebP) or a clip (MP4, MOV, WebM, MKV) that decodes, of a sensible size, with exactly
one face that MediaPipe finds; or a face pack (`NAME.face` from `ventriloquist enroll`) that the
kiosk's own reader (`face.pack`) reads, that records its person's consent, whose reference still
shows one face, and that the config's disclosure mark allows. Everything happens in memory; only
a portrait that passes is written (by the caller, into the config folder)."""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from firmware_app.assets import resolve_path, verify_model_file
from firmware_app.config import DisclosureSettings
from firmware_app.errors import MediaError
from firmware_app.face.pack import BANK, SUFFIX, load_face_pack, require_disclosure
from firmware_app.sources.image import image_size, read_image

MIN_SIDE = 128  # px: smaller faces are below MediaPipe's detector
MAX_SIDE = 8192
UPLOAD_MAX_PIXELS = 40_000_000  # an upload over the console: a portrait needs far less (the kiosk reads up to 120 MP)
MAX_CLIP_S = 600.0
MAX_PACK_UNPACKED = 512 * 2**20  # bytes: a pack enrolled from a 720p clip unpacks to under 5 MiB
STILLS = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
PACK = SUFFIX.lstrip(".")  # "face"
ZIP = b"PK\x03\x04"  # a face pack is a zip archive (manifest.json, reference.png, bank.npz)
REENROLL = (
    'enroll the clip again with `ventriloquist enroll CLIP --out NAME.face --consent "…"` and upload the new pack'
)
FIX = ("upload a JPEG, PNG or WebP photo, or an MP4/MOV/WebM clip, of one face filling about a third of the picture, "
       "or a face pack (NAME.face) made by `ventriloquist enroll`")  # fmt: skip


@dataclass
class Portrait:
    extension: str  # what the checked file is, from its content (never from the uploaded name)
    width: int
    height: int
    clip: bool
    consent: str = ""  # a face pack's: the statement of the person whose likeness it is
    exemplars: int = 0  # a face pack's mouth exemplars

    def describe(self) -> str:
        if self.extension == PACK:
            return (
                f"face pack {self.width}x{self.height}, one face, {self.exemplars} mouth exemplars; consent: "
                f"\u201c{self.consent}\u201d"
            )
        return f"{'clip' if self.clip else 'still'} {self.width}x{self.height}, one face"


def kind_of(data: bytes) -> tuple[str, bool]:
    """(extension, is a clip) from the file's first bytes."""
    for magic, extension in STILLS.items():
        if data.startswith(magic):
            return extension, False
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", False
    if data[4:8] == b"ftyp":
        return ("mov" if data[8:10] == b"qt" else "mp4"), True
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return ("webm" if b"webm" in data[:64] else "mkv"), True
    if data.startswith(ZIP):
        return PACK, False
    raise MediaError("the upload is not an image or a video clip (its first bytes match no known format)", FIX)


def check_portrait(data: bytes, model_path: str, disclosure: DisclosureSettings) -> Portrait:
    if not data:
        raise MediaError("the upload is empty", FIX)
    extension, clip = kind_of(data)
    if extension == PACK:
        return check_face_pack(data, model_path, disclosure)
    if clip:
        width, height, duration = _probe(data)
    else:
        _, width, height = image_size(data, "the upload")
        duration = 0.0
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE or width * height > UPLOAD_MAX_PIXELS:
        raise MediaError(
            f"the picture is {width}x{height}; a portrait must be {MIN_SIDE} to {MAX_SIDE} px a side and at most "
            f"{UPLOAD_MAX_PIXELS // 1_000_000} MP", "scale it (1280x720 is plenty) and upload it again",
        )  # fmt: skip
    if clip and duration > MAX_CLIP_S:
        raise MediaError(
            f"the clip is {duration:.0f} s long; the portrait loops a clip of at most {MAX_CLIP_S:.0f} s", "trim it"
        )
    first = _decode_clip(data) if clip else cv2.cvtColor(read_image(data, "the upload"), cv2.COLOR_BGR2RGB)
    faces = count_faces(first, model_path)
    if faces != 1:
        found = "no face" if faces == 0 else f"{faces} faces"
        raise MediaError(f"{found} found in the {'clip' if clip else 'picture'}; a portrait shows exactly one", FIX)
    return Portrait(extension, width, height, clip)


def check_face_pack(data: bytes, model_path: str, disclosure: DisclosureSettings) -> Portrait:
    """A pack is read exactly as the kiosk will read it (`face.pack.load_face_pack`: members that
    decode, format version, consent recorded), refused if the disclosure mark is off, and its
    reference still must show one face, as any portrait."""
    _refuse_if_it_unpacks_too_large(data)
    with _in_memory_file(data) as path:
        try:
            pack = load_face_pack(path)
        except MediaError as exc:  # name the upload, not the memory file it was read from
            raise MediaError(exc.cause.replace(str(path), "the uploaded face pack"), exc.fix) from None
    pack = dataclasses.replace(pack, path=Path(f"portrait{SUFFIX}"))  # the name it will be stored under
    require_disclosure(pack, disclosure)
    if count_faces(cv2.cvtColor(pack.reference, cv2.COLOR_BGR2RGB), model_path) != 1:
        raise MediaError("the face pack's reference still does not show exactly one face", REENROLL)
    height, width = pack.reference.shape[:2]
    return Portrait(PACK, width, height, clip=False, consent=pack.consent, exemplars=len(pack.bank.keys))


def _refuse_if_it_unpacks_too_large(data: bytes) -> None:
    """A small upload must not unpack to gigabytes (a zip bomb): the sizes its archive, and the bank
    archive inside it, declare (zipfile never reads a member past its declared size) are summed
    before anything is unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as pack:
            declared = sum(member.file_size for member in pack.infolist())
            if declared <= MAX_PACK_UNPACKED and BANK in pack.namelist():
                with zipfile.ZipFile(io.BytesIO(pack.read(BANK))) as bank:
                    declared += sum(member.file_size for member in bank.infolist())
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError):
        return  # not readable as a zip: the pack's reader names the problem
    if declared > MAX_PACK_UNPACKED:
        raise MediaError(
            f"the uploaded face pack unpacks to {declared / 2**20:.0f} MiB; a face pack holds at most "
            f"{MAX_PACK_UNPACKED / 2**20:.0f} MiB",
            REENROLL,
        )


@contextmanager
def _in_memory_file(data: bytes) -> Iterator[Path]:
    """`data` as a file path that lives in memory only (a Linux memfd): the pack's reader takes a
    path, and nothing unchecked may touch the disk."""
    fd = os.memfd_create("console-upload")
    try:
        with open(fd, "wb", closefd=False) as handle:
            handle.write(data)
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _probe(data: bytes) -> tuple[int, int, float]:
    """Width, height and duration from the container's headers, before anything is decoded."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise MediaError("the upload has no picture in it", FIX)
            stream = container.streams.video[0]
            duration = float(container.duration / av.time_base) if container.duration else 0.0
            return stream.codec_context.width, stream.codec_context.height, duration
    except av.FFmpegError as exc:
        raise MediaError(f"the upload does not open as an image or a clip ({exc})", FIX) from None


def _decode_clip(data: bytes) -> np.ndarray:
    """A clip decoded to its end with the kiosk's decoder (PyAV), so a frame that fails there fails
    here first; its first frame (RGB)."""
    first = None
    try:
        with av.open(io.BytesIO(data)) as container:
            for frame in container.decode(video=0):
                if first is None:
                    first = frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise MediaError(f"the upload is damaged ({exc})", FIX) from None
    if first is None:
        raise MediaError("the upload has no picture in it", FIX)
    return first


def count_faces(rgb: np.ndarray, model_path: str) -> int:
    """Faces MediaPipe's face landmarker finds in one picture (up to 3), the same model the kiosk
    tracks with, on the picture scaled to at most 1280 px."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    scale = 1280 / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    path = verify_model_file(resolve_path(model_path))
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)), running_mode=vision.RunningMode.IMAGE, num_faces=3
    )
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    return len(result.face_landmarks)
