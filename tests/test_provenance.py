"""C2PA content credentials: every written file is signed with the claims, a tampered manifest is
caught, a bad certificate stops the write, and `provenance: off` writes without them."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from firmware_app.config import Settings, load_settings
from firmware_app.errors import MediaError
from firmware_app.frames import VideoFrame
from firmware_app.sinks import open_sink
from firmware_app.sinks.provenance import (
    Claims,
    Credentials,
    Provenance,
    SnapshotSigner,
    provenance_for,
    read_manifest,
)
from firmware_app.tools.verify import verify_file

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "faces"
PORTRAIT = Path(__file__).resolve().parents[1] / "firmware_app" / "assets" / "portrait.jpg"


def _settings(tmp_path: Path, **provenance: str) -> Settings:
    return Settings().model_copy(
        update={"provenance": Settings().provenance.model_copy(update={"folder": str(tmp_path / "id"), **provenance})}
    )


def _write(path: Path, provenance: Provenance | None, frames: int = 30) -> None:
    sink = open_sink(f"file://{path}", provenance=provenance)
    sink.open(320, 240, 30)
    rng = np.random.default_rng(0)
    for i in range(frames):
        sink.write_video(VideoFrame(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 30, i))
    sink.close()


def _signer(tmp_path: Path) -> Provenance:
    claims = Claims("puppet", "mouth.onnx", "ab" * 32, "ana.face", "Ana agreed on 2026-12-01", PORTRAIT)
    return Provenance(claims, Credentials(_settings(tmp_path).provenance))


def test_written_file_carries_a_valid_signed_manifest_with_the_claims(tmp_path):
    out = tmp_path / "out.mp4"
    _write(out, _signer(tmp_path))
    assert not (tmp_path / "out.mp4.part").exists()
    store = read_manifest(out)
    assert store["validation_state"] == "Valid"  # signed by the appliance's own CA: valid, not trusted
    report = verify_file(out).report("out.mp4")
    for claim in ("not by a trusted issuer", "Ventriloquist", "trained algorithmic media", "mode: puppet"):
        assert claim in report
    assert "ab" * 32 in report and "Ana agreed on 2026-12-01" in report and "ingredient: portrait.jpg" in report
    assert verify_file(out).exit_code == 0  # the claim alone marks it; random frames carry no watermark
    for name in ("appliance-key.pem", "appliance-chain.pem"):
        assert stat.S_IMODE((tmp_path / "id" / name).stat().st_mode) == 0o600


def test_altered_manifest_bytes_are_reported_as_tampered(tmp_path):
    out = tmp_path / "out.mp4"
    _write(out, _signer(tmp_path))
    data = bytearray(out.read_bytes())
    data[data.find(b"mouth_model_sha256") + 30] ^= 1
    out.write_bytes(bytes(data))
    verdict = verify_file(out)
    assert verdict.exit_code == 2 and "INVALID" in verdict.report("out.mp4")


def test_unsigned_file_has_no_manifest(tmp_path):
    out = tmp_path / "plain.mp4"
    _write(out, None)
    assert read_manifest(out) is None and verify_file(out).exit_code == 1


def test_a_certificate_that_cannot_sign_stops_before_anything_is_written(tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(MediaError, match="not usable for C2PA"):
        provenance_for(
            _settings(tmp_path, cert=str(tmp_path / "cert.pem"), key=str(tmp_path / "key.pem")).model_copy(
                update={"output": Settings().output.model_copy(update={"uri": f"file://{tmp_path}/x.mp4"})}
            )
        )
    chain = tmp_path / "id" / "appliance-chain.pem"
    Credentials(_settings(tmp_path).provenance)  # makes the appliance's own
    other = _settings(tmp_path / "other").provenance
    Credentials(other)
    wrong_key = str(tmp_path / "other" / "id" / "appliance-key.pem")
    with pytest.raises(MediaError, match="not usable for C2PA"):
        Credentials(_settings(tmp_path, cert=str(chain), key=wrong_key).provenance)  # found at start, not at write
    with pytest.raises(MediaError, match="together"):
        Credentials(_settings(tmp_path, cert=str(tmp_path / "cert.pem")).provenance)


def test_the_proof_of_a_config_refuses_credentials_that_cannot_sign(tmp_path):
    from firmware_app.pipeline import prove_pipeline

    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    broken = _settings(tmp_path, cert=str(tmp_path / "cert.pem"), key=str(tmp_path / "key.pem")).model_copy(
        update={"output": Settings().output.model_copy(update={"uri": f"file://{tmp_path}/x.mp4"})}
    )
    with pytest.raises(MediaError, match="not usable for C2PA"):  # Apply refuses it, not the reload after
        prove_pipeline(broken, camera_required=False)
    prove_pipeline(_settings(tmp_path).model_copy(update={"output": broken.output}), camera_required=False)


def test_provenance_off_and_non_file_outputs_sign_nothing(tmp_path):
    (tmp_path / "c.yaml").write_text("provenance: off\n")
    off = load_settings(tmp_path / "c.yaml")
    assert not off.provenance.enabled
    assert (
        provenance_for(off.model_copy(update={"output": off.output.model_copy(update={"uri": "file://x.mp4"})})) is None
    )
    assert provenance_for(Settings()) is None  # display://0: nothing is written


def test_a_snapshot_still_is_signed_in_memory_or_refused_never_unmarked(tmp_path):
    import cv2

    jpeg = cv2.imencode(".jpg", cv2.imread(str(PORTRAIT)))[1].tobytes()
    signer = SnapshotSigner()
    signed = tmp_path / "snapshot.jpg"
    signed.write_bytes(signer.credentialed(jpeg, "snapshot.jpg", _settings(tmp_path)))
    assert read_manifest(signed)["validation_state"] == "Valid" and verify_file(signed).exit_code == 0
    assert not any(tmp_path.glob("*.part")) and sorted(p.name for p in tmp_path.iterdir()) == ["id", "snapshot.jpg"]
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    broken = _settings(tmp_path, cert=str(tmp_path / "cert.pem"), key=str(tmp_path / "key.pem"))
    with pytest.raises(MediaError, match="not usable for C2PA"):
        signer.credentialed(jpeg, "snapshot.jpg", broken)
    off = broken.model_copy(update={"provenance": broken.provenance.model_copy(update={"enabled": False})})
    assert signer.credentialed(jpeg, "snapshot.jpg", off) == jpeg


@pytest.mark.integration
def test_render_verifies_as_synthetic_tampered_as_2_and_a_real_clip_as_1(demo_render, tmp_path):
    from tests.conftest import cli

    result = cli("verify", str(demo_render))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trained algorithmic media" in result.stdout and "watermark: found, synthetic" in result.stdout
    data = bytearray(demo_render.read_bytes())
    data[data.find(b"mouth_model_sha256") + 30] ^= 1
    (tmp_path / "t.mp4").write_bytes(bytes(data))
    assert cli("verify", str(tmp_path / "t.mp4")).returncode == 2
    clips = sorted((SHARED / "videos").rglob("*.mp4"))[:1]
    if not clips:
        pytest.skip("no real clips in ../shared/faces/videos")
    assert cli("verify", str(clips[0])).returncode == 1
