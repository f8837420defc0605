"""The `.face` format (`firmware_app.face.pack`): what the writer stores, the kiosk's reader reads back
unchanged, and a pack it cannot trust is refused with the reason. Small synthetic banks: no clip,
no tracker."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from firmware_app.config import DisclosureSettings
from firmware_app.errors import ConfigError, MediaError
from firmware_app.face.pack import (
    EDGE_S,
    FORMAT_VERSION,
    MOUTH_BLENDSHAPES,
    Bank,
    load_face_pack,
    open_face_pack,
    write_face_pack,
)

CONSENT = "Synthetic test bank; no person"


def _bank(exemplars: int = 3) -> Bank:
    rng = np.random.default_rng(7)
    dims = len(MOUTH_BLENDSHAPES) + 4  # the blendshapes, three gaps, the half width
    return Bank(
        textures=rng.integers(0, 256, (exemplars, 8, 14, 3), dtype=np.uint8),
        upper=rng.random((exemplars, len(EDGE_S)), dtype=np.float32),
        lower=rng.random((exemplars, len(EDGE_S)), dtype=np.float32),
        half_width=rng.random(exemplars, dtype=np.float32),
        keys=rng.random((exemplars, dims), dtype=np.float32),
        scale=rng.random(dims, dtype=np.float32),
        lips=np.array([90.0, 80.0, 160.0], np.float32),
        resolution=96.0,  # stored as float32: a value it holds exactly
        teeth=rng.random(exemplars, dtype=np.float32),
    )


def _reference() -> np.ndarray:
    return np.random.default_rng(8).integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, dict, Bank]:
    path = tmp_path / "synthetic.face"
    bank = _bank()
    stored = write_face_pack(
        path, {"source_clip": "none.mp4", "frames_used": 24, "consent": CONSENT}, _reference(), bank
    )
    return path, stored, bank


def _rewrite(path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of the pack with one member's bytes changed."""
    out = path.with_name(f"changed-{member}.face")
    with zipfile.ZipFile(path) as pack, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for name in pack.namelist():
            copy.writestr(name, change(pack.read(name)) if name == member else pack.read(name))
    return out


def test_what_is_written_is_read_back_by_the_kiosks_reader(written: tuple[Path, dict, Bank]) -> None:
    path, stored, bank = written
    assert next(iter(stored)) == "format_version" and stored["format_version"] == FORMAT_VERSION
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically: no temporary file left
    pack = open_face_pack(path, DisclosureSettings())  # what the pipeline calls for `file://NAME.face`
    assert pack.path == path and pack.manifest == stored and pack.consent == CONSENT
    assert pack.reference.dtype == np.uint8 and np.array_equal(pack.reference, _reference())
    for field in fields(Bank):
        read, wrote = getattr(pack.bank, field.name), getattr(bank, field.name)
        assert np.array_equal(read, wrote), field.name
        assert np.asarray(read).dtype == np.asarray(wrote).dtype or field.name == "resolution", field.name
    assert isinstance(pack.bank.resolution, float)


def test_the_layout_is_the_one_packs_have_always_had(written: tuple[Path, dict, Bank]) -> None:
    """Format 1, byte-compatible with the packs enrolled before: the same members and array names."""
    path, _, _ = written
    with zipfile.ZipFile(path) as pack:
        assert pack.namelist() == ["manifest.json", "reference.png", "bank.npz"]
        arrays = np.load(io.BytesIO(pack.read("bank.npz")))
        assert arrays.files == [
            "textures",
            "upper",
            "lower",
            "half_width",
            "keys",
            "scale",
            "lips",
            "resolution",
            "teeth",
        ]
        assert arrays["resolution"].dtype == np.float32 and arrays["resolution"].shape == ()


def test_a_pack_from_before_teeth_levels_still_loads(written: tuple[Path, dict, Bank]) -> None:
    path, _, bank = written

    def without_teeth(data: bytes) -> bytes:
        arrays = dict(np.load(io.BytesIO(data)))
        del arrays["teeth"]
        out = io.BytesIO()
        np.savez_compressed(out, **arrays)
        return out.getvalue()

    pack = load_face_pack(_rewrite(path, "bank.npz", without_teeth))
    assert np.array_equal(pack.bank.teeth, np.zeros(len(bank.keys), np.float32)) and pack.bank.teeth.dtype == np.float32
    assert np.array_equal(pack.bank.textures, bank.textures)


def test_another_format_version_is_refused(written: tuple[Path, dict, Bank]) -> None:
    path, _, _ = written
    other = _rewrite(path, "manifest.json", lambda data: json.dumps({**json.loads(data), "format_version": 2}).encode())
    with pytest.raises(MediaError, match=f"is a face pack of format 2; this version reads format {FORMAT_VERSION}"):
        load_face_pack(other)


@pytest.mark.parametrize("member", ["bank.npz", "reference.png", "manifest.json"])
def test_a_damaged_member_is_refused(written: tuple[Path, dict, Bank], member: str) -> None:
    path, _, _ = written
    with pytest.raises(MediaError, match="is not a readable face pack"):
        load_face_pack(_rewrite(path, member, lambda data: data[: len(data) // 2]))


def test_a_pack_without_consent_or_without_the_mark_is_refused(written: tuple[Path, dict, Bank]) -> None:
    path, _, _ = written
    unconsented = _rewrite(path, "manifest.json", lambda data: json.dumps({**json.loads(data), "consent": ""}).encode())
    with pytest.raises(MediaError, match="records no consent statement"):
        load_face_pack(unconsented)
    with pytest.raises(ConfigError, match="cannot be switched off while a face pack is in use"):
        open_face_pack(path, DisclosureSettings(enabled=False))
    with pytest.raises(MediaError, match="does not exist"):
        load_face_pack(path.with_name("absent.face"))
