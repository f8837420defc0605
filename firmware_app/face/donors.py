"""The donor library: real mouths of other people, for faces that have no footage of their own.

A face pack (`face.pack`) holds one person's mouth, enrolled from a clip of them. A photo of
someone else has no such clip, so the renderer borrows the inside of the mouth from real people
who were filmed talking: each donor is a `Bank` exactly as enrollment builds it (`face.enroll`:
tracked, pose-normalised, keyed by the same shape descriptor), plus who they are, where the
footage comes from and under which licence. The renderer (`render.donors`) picks a donor and its
exemplars by the commanded shape and matches their colour, light and grain to the target face.

The library is one zip (`LIBRARY`, package data): `manifest.json` (format version, one entry per
donor: `identity`, `origin`, `licence`, `attribution`, the donor's median lip and skin colours,
its exemplar count) and `NAME.npz` per donor (`Bank.to_npz`). It is built from footage by
`python -m calibration.donors` and listed donor by donor in `THIRD_PARTY_NOTICES.md`.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_app.assets import BUNDLED_DIR
from firmware_app.errors import MediaError
from firmware_app.face.pack import Bank
from firmware_app.platform.fileutil import write_atomically

LIBRARY_FORMAT = 1
LIBRARY = BUNDLED_DIR / "mouth_donors.zip"
MANIFEST = "manifest.json"
REBUILD = "rebuild it with `python -m calibration.donors` (or reinstall the package)"


@dataclass(frozen=True)
class Donor:
    """One real person's mouth exemplars and where they come from."""

    identity: str
    origin: str
    licence: str
    attribution: str
    skin: np.ndarray  # B G R median cheek colour of the donor's frames (`render.mouth.face_light`)
    bank: Bank

    def entry(self) -> dict:
        return {
            "identity": self.identity,
            "origin": self.origin,
            "licence": self.licence,
            "attribution": self.attribution,
            "lips": [round(float(x), 2) for x in self.bank.lips],
            "skin": [round(float(x), 2) for x in self.skin],
            "exemplars": len(self.bank.keys),
            "resolution": round(float(self.bank.resolution), 2),
        }


def write_library(path: Path, donors: list[Donor]) -> dict:
    """The library zip, atomically; returns its manifest."""
    manifest = {"format_version": LIBRARY_FORMAT, "donors": [d.entry() for d in donors]}
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as library:
        library.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for d in donors:
            library.writestr(f"{d.identity}.npz", d.bank.to_npz())
    write_atomically(path, data.getvalue())
    return manifest


def load_library(path: Path = LIBRARY, exclude: tuple[str, ...] = ()) -> list[Donor]:
    """The donors of the library at `path`, leaving out the identities in `exclude` (a clip's own
    person when their clip is scored)."""
    if not path.is_file():
        raise MediaError(f"the mouth donor library {path} is missing", REBUILD)
    try:
        with zipfile.ZipFile(path) as library:
            manifest = json.loads(library.read(MANIFEST))
            if manifest.get("format_version") != LIBRARY_FORMAT:
                raise MediaError(
                    f"{path} is a donor library of format {manifest.get('format_version')}; this version reads "
                    f"format {LIBRARY_FORMAT}",
                    REBUILD,
                )
            return [
                Donor(
                    e["identity"],
                    e["origin"],
                    e["licence"],
                    e["attribution"],
                    np.array(e["skin"], np.float32),
                    Bank.from_npz(library.read(f"{e['identity']}.npz")),
                )
                for e in manifest["donors"]
                if e["identity"] not in exclude
            ]
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError) as exc:
        raise MediaError(f"{path} is not a readable donor library ({exc})", REBUILD) from None
