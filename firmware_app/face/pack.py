"""The face pack (`NAME.face`): one person's mouth, written by `ventriloquist enroll` (`face.enroll`)
and read by the renderer (`render.bank`), the portrait source and the console's upload check.

A pack is a zip of three members: `manifest.json` (format version, the clip's hash, frames used,
coverage, the consent statement, the date), `reference.png` (the person at rest, the picture that
speaks: their own closed mouth) and `bank.npz`, a bank of mouth exemplars, each pre-merged from the
clip's frames nearest one mouth shape (the weighted median of *Synthesizing Obama*) and
pose-normalised: stored in the mouth's own frame (u along the lips, v down the face, both in face
heights, origin at the lip seam) with the inner lip edges at `EDGE_S` shares of the half width.
Each exemplar is keyed by its shape's `descriptor`; enrollment and lookup describe shapes, and
read the stored patches (`exemplar_coords`, `patch_pixels`), the same way, so that geometry lives
here with the format.

The layout is versioned (`FORMAT_VERSION`): a pack of another version is refused, never guessed
at; the teeth levels, added after the first packs were written, are optional on read.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from firmware_app.config import DisclosureSettings
from firmware_app.errors import ConfigError, MediaError
from firmware_app.platform.fileutil import write_atomically
from firmware_app.sources.image import read_image

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUFFIX = ".face"
MANIFEST, REFERENCE, BANK = "manifest.json", "reference.png", "bank.npz"  # the members, in the order written
EDGE_S = np.linspace(-1.0, 1.0, 21).astype(np.float32)  # where along the inner lips the edges are stored
PATCH_U = 0.22  # the stored patch spans ± this along the lips, face heights
PATCH_V = (-0.10, 0.16)  # ... and this down the face from the lip seam
GAP_S = (-0.5, 0.0, 0.5)  # the inner-lip gap is described at these shares of the half width
CROWN = 0.03  # face heights of teeth kept rigid with each lip (about a crown's visible length)
MOUTH_BLENDSHAPES = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
)  # fmt: skip
ENROLL_AGAIN = "enroll the clip again with `ventriloquist enroll`"


def descriptor(weights: dict[str, float], gaps: np.ndarray, half_width: float) -> np.ndarray:
    """A mouth shape as a vector: the mouth blendshapes, the inner-lip gap at `GAP_S` and the inner
    half width (both in face heights). Enrollment and lookup describe shapes the same way."""
    shapes = [float(weights.get(name, 0.0)) for name in MOUTH_BLENDSHAPES]
    return np.array([*shapes, *np.asarray(gaps, np.float32), half_width], np.float32)


def exemplar_coords(
    s: np.ndarray, d_top: np.ndarray, d_bot: np.ndarray, upper: np.ndarray, lower: np.ndarray, half_width: float
) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in an exemplar (inner edges `upper`/`lower` at `EDGE_S`, `half_width`; face heights)
    of a point `s` half widths across, `d_top` below the upper lip's edge and `d_bot` above the
    lower's. A crown's length below the upper lip is read rigidly from below the exemplar's upper
    lip (upper teeth with the skull), a crown's length above the lower lip from above its lower lip
    (lower teeth with the jaw); only the space between stretches. Outside the opening the nearer
    lip is followed rigidly."""
    up, lo = np.interp(s, EDGE_S, upper), np.interp(s, EDGE_S, lower)
    gap_e = np.maximum(lo - up, 0.0)
    gap_c = np.maximum(d_top + d_bot, 0.0)
    crown = np.minimum(np.minimum(CROWN, 0.5 * gap_e), 0.5 * gap_c)
    between = np.clip((d_top - crown) / np.maximum(gap_c - 2 * crown, 1e-4), 0.0, 1.0)
    v = np.where(
        d_top <= crown, up + d_top, np.where(d_bot <= crown, lo - d_bot, up + crown + between * (gap_e - 2 * crown))
    )
    return (s * half_width).astype(np.float32), v.astype(np.float32)


def patch_pixels(u: np.ndarray, v: np.ndarray, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in a stored patch of mouth-frame (u, v) in face heights."""
    return ((u + PATCH_U) * resolution).astype(np.float32), ((v - PATCH_V[0]) * resolution).astype(np.float32)


@dataclass(frozen=True)
class Bank:
    """The mouth exemplars of one person, as `bank.npz` stores them (one array per field, by name)."""

    textures: np.ndarray  # K x H x W x 3 uint8, pose-normalised mouth exemplars
    upper: np.ndarray  # K x len(EDGE_S): inner upper lip edge, face heights
    lower: np.ndarray  # K x len(EDGE_S)
    half_width: np.ndarray  # K: inner half width, face heights
    keys: np.ndarray  # K x D descriptors
    scale: np.ndarray  # D: each descriptor dimension's spread over the clip (lookups divide by it)
    lips: np.ndarray  # B G R median lip colour of the enrolled frames
    resolution: float  # patch pixels per face height
    teeth: np.ndarray  # K: how much each exemplar shows its teeth, 0 … 1 (1: as much as the clip's toothiest tenth)

    def to_npz(self) -> bytes:
        """`bank.npz`'s bytes."""
        # the fields in their declared order are the archive's members in the order packs have always had
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        arrays["resolution"] = np.float32(self.resolution)
        data = io.BytesIO()
        np.savez_compressed(data, **arrays)
        return data.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> Bank:
        """The bank `bank.npz`'s bytes hold."""
        with np.load(io.BytesIO(data)) as archive:
            arrays = {name: archive[name] for name in archive.files}
        arrays.setdefault("teeth", np.zeros(len(arrays["keys"]), np.float32))  # packs written before teeth levels
        arrays["resolution"] = float(arrays["resolution"])
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class FacePack:
    """What `enroll` wrote: the manifest, the reference still and the bank."""

    path: Path
    manifest: dict
    reference: np.ndarray  # BGR uint8: the person at rest, the picture that speaks
    bank: Bank

    @property
    def consent(self) -> str:
        return str(self.manifest.get("consent", ""))


def write_face_pack(path: Path, manifest: dict, reference: np.ndarray, bank: Bank) -> dict:
    """Write a `.face` file atomically (a crash never leaves half a pack under its name); returns
    the manifest as stored, this format's version first."""
    stored = {
        "format_version": FORMAT_VERSION,
        **{key: value for key, value in manifest.items() if key != "format_version"},
    }
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as pack:
        pack.writestr(MANIFEST, json.dumps(stored, indent=2))
        pack.writestr(REFERENCE, cv2.imencode(".png", reference)[1].tobytes())
        pack.writestr(BANK, bank.to_npz())
    write_atomically(path, data.getvalue())
    return stored


def load_face_pack(path: Path) -> FacePack:
    """Read a `.face` file; a file that is not one, or of another format version, is refused."""
    if not path.is_file():
        raise MediaError(
            f"the face pack {path} does not exist",
            'build one with `ventriloquist enroll CLIP --out NAME.face --consent "…"`',
        )
    try:
        with zipfile.ZipFile(path) as pack:
            manifest = json.loads(pack.read(MANIFEST))
            reference_png = pack.read(REFERENCE)
            bank = Bank.from_npz(pack.read(BANK))
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError) as exc:  # zlib: a damaged member
        raise MediaError(f"{path} is not a readable face pack ({exc})", ENROLL_AGAIN) from None
    try:  # the kiosk's one reader of stills: a damaged or oversized reference is refused undecoded
        reference = read_image(reference_png, f"{path}'s reference still")
    except MediaError as exc:
        raise MediaError(f"{path} is not a readable face pack ({exc.cause})", ENROLL_AGAIN) from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise MediaError(
            f"{path} is a face pack of format {manifest.get('format_version')}; this version reads format "
            f"{FORMAT_VERSION}",
            "enroll the clip again with this version's `ventriloquist enroll`",
        )
    if not manifest.get("consent"):
        raise MediaError(f"{path} records no consent statement", 'enroll the clip again with --consent "…"')
    return FacePack(path, manifest, reference, bank)


def require_disclosure(pack: FacePack, disclosure: DisclosureSettings) -> None:
    """A face pack is a real person's likeness: its video is always marked as synthetic."""
    if not disclosure.enabled:
        raise ConfigError(
            f"disclosure.enabled is false, but the face pack {pack.path.name} shows a real person (consent: "
            f'"{pack.consent}"); video of a real person\'s likeness is always marked as synthetic (EU AI Act art. 50), '
            "so the mark cannot be switched off while a face pack is in use",
            "set disclosure.enabled: true (you may change disclosure.text and disclosure.position), or use a "
            "portrait that is not a face pack",
        )


def face_pack_path(uri_text: str) -> Path | None:
    """The face pack a `sources.portrait` or `--face` names (`file://NAME.face`), else None."""
    from firmware_app.uri import parse_uri

    uri = (
        parse_uri(uri_text, ("file",))
        if uri_text.startswith(("file://", "bundled://")) or "://" not in uri_text
        else None
    )
    return uri.path if uri is not None and uri.path.suffix.lower() == SUFFIX else None


def open_face_pack(path: Path, disclosure: DisclosureSettings) -> FacePack:
    """Load a pack for use, refuse it without the disclosure mark, and log whose likeness it is."""
    pack = load_face_pack(path)
    require_disclosure(pack, disclosure)
    m = pack.manifest
    log.info(
        "face pack %s: %d mouth exemplars from %d frames of %s (enrolled %s); consent: %s",
        path.name,
        len(pack.bank.keys),
        m.get("frames_used", 0),
        m.get("source_clip", "?"),
        m.get("date", "?"),
        pack.consent,
    )
    return pack
