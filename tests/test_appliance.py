"""The appliance as an operator meets it: the main job, doctor, model provisioning, systemd, packaging."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_app.assets import FACE_LANDMARKER, ModelFile, fetch_model, sha256_of
from firmware_app.errors import ModelError

from conftest import PROJECT, cli
from media import stream_durations

UNIT = PROJECT / "systemd" / "ventriloquist.service"


@pytest.mark.integration
def test_run_without_camera_renders_the_bundled_demo(tmp_path):
    """`ventriloquist run` on a machine with no camera: the demo MP4 with sound, no window needed."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    config = tmp_path / "config.yaml"
    config.write_text(f"sources:\n  camera: v4l2:///dev/video63\ndemo:\n  output: {tmp_path / 'demo.mp4'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "firmware_app", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "no camera at /dev/video63" in result.stderr
    assert "demo written to" in result.stdout
    durations = stream_durations(tmp_path / "demo.mp4")
    assert durations["video"] > 10 and abs(durations["audio"] - durations["video"]) < 0.1


@pytest.mark.integration
def test_doctor_reports_every_part_with_a_status():
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for part in (
        "face model",
        "mouth model",
        "PortAudio",
        "microphones",
        "cameras",
        "display",
        "ONNX Runtime",
        "CUDA GPU",
        "TensorRT",
        "pycuda",
        "GStreamer",
    ):
        line = next((row for row in result.stdout.splitlines() if row.startswith(part)), None)
        assert line is not None, f"doctor does not report {part}"
        assert " OK " in line or " absent " in line or " MISSING " in line


@pytest.mark.integration
def test_doctor_fails_and_names_the_fix_for_a_corrupt_face_model(tmp_path):
    model = tmp_path / "bad.task"
    model.write_bytes(b"not a model")
    config = tmp_path / "config.yaml"
    config.write_text(f"tracker:\n  model_path: {model}\n")
    result = cli("doctor", "--config", str(config))
    assert result.returncode != 0
    assert "MISSING" in result.stdout and "models fetch" in result.stdout


def test_models_fetch_provisions_the_pinned_file(tmp_path):
    dest = tmp_path / "models" / "face_landmarker.task"
    assert fetch_model(dest) == dest
    assert sha256_of(dest) == FACE_LANDMARKER.sha256
    assert not list(dest.parent.glob("*.part"))


def test_models_fetch_refuses_a_file_that_fails_the_hash(tmp_path):
    wrong = ModelFile(**{**FACE_LANDMARKER.__dict__, "sha256": "0" * 64})
    dest = tmp_path / "face_landmarker.task"
    with pytest.raises(ModelError, match="sha256 mismatch"):
        fetch_model(dest, wrong)
    assert not dest.exists()


def verify_units(folder: Path, executable: str, source: Path = UNIT.parent) -> subprocess.CompletedProcess:
    """Copy every unit into `folder` with ExecStart pointing at `executable`, then verify them together."""
    folder.mkdir(exist_ok=True)
    units = []
    for unit in sorted(source.glob("*.service")):
        copy = folder / unit.name
        copy.write_text(unit.read_text().replace("/opt/ventriloquist/.venv/bin/ventriloquist", executable))
        units.append(str(copy))
    return subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)


@pytest.mark.integration
def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    assert "User=ventriloquist" in text and "SupplementaryGroups=audio video" in text
    assert "ventriloquist-engine.service" in text  # the engine is built or validated first
    engine_unit = (UNIT.parent / "ventriloquist-engine.service").read_text()
    assert "Type=oneshot" in engine_unit and "Before=ventriloquist.service" in engine_unit
    installed = str(Path(sys.executable).parent / "ventriloquist")
    result = verify_units(tmp_path / "good", installed)
    assert result.returncode == 0 and "ventriloquist" not in result.stderr, result.stderr
    for hardening in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "DevicePolicy=closed",
        "CapabilityBoundingSet=",
    ):
        assert hardening in text, hardening
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text and "--kiosk" in text
    display_unit = (UNIT.parent / "ventriloquist-display.service").read_text()
    assert "Xorg :0" in display_unit and "-nolisten tcp" in display_unit and "matchbox-window-manager" in display_unit
    # the check can fail: a unit whose program is missing is refused
    assert verify_units(tmp_path / "broken", "/nonexistent/ventriloquist").returncode != 0


@pytest.mark.integration
def test_runtime_never_imports_pytorch():
    script = (
        "import sys, firmware_app.cli, firmware_app.pipeline, firmware_app.tools.doctor, firmware_app.tools.bench\n"
        "assert 'torch' not in sys.modules, 'the runtime imported torch'\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@pytest.mark.integration
def test_bench_prints_per_stage_timings_and_realtime_factor():
    result = cli("bench", "--size", "640x360")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("real-time factor (render time / media duration):") == 3  # demo, mirror, puppet
    for stage in ("video", "tracker", "performer", "renderer", "sink", "audio", "features", "mouth"):
        assert f"  {stage} " in out
    assert out.count("of the 30 fps frame budget") == 3
    assert "mouth step (10 ms of audio" in out
    assert "with the head still" in out and "with the puppet's head moving" in out  # renderer alone, both ways
    renderer = next(line for line in out.splitlines() if line.startswith("renderer alone"))
    timings = re.findall(r"([\d.]+) ms/frame CPU \(median ([\d.]+),", renderer)
    assert len(timings) == 2 and all(float(best) <= float(median) for best, median in timings), renderer
    assert re.search(r"renderer on a camera visitor .* donor library [\d.]+ ms/frame CPU .* with the live bank", out)


@pytest.mark.integration
def test_install_script_stages_user_units_and_config(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    root = tmp_path / "root"

    def install() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(UNIT.parent / "install.sh"), "--no-systemctl"],
            env={**os.environ, "ROOT": str(root)},
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = install()
    assert result.returncode == 0, result.stderr
    for unit in ("ventriloquist.service", "ventriloquist-engine.service", "ventriloquist-display.service"):
        assert (root / "etc/systemd/system" / unit).read_text() == (UNIT.parent / unit).read_text()
    config = root / "etc/ventriloquist/config.yaml"
    assert config.read_text() == (PROJECT / "config" / "default.yaml").read_text()
    assert (root / "opt/ventriloquist/.venv/bin/ventriloquist").exists()
    config.write_text("mode: puppet\n")  # the operator's config survives a reinstall
    again = install()
    assert again.returncode == 0 and config.read_text() == "mode: puppet\n"
    # the staged units verify against the staged app
    staged = root / "etc/systemd/system"
    result = verify_units(tmp_path / "verify", str(root / "opt/ventriloquist/.venv/bin/ventriloquist"), staged)
    assert result.returncode == 0, result.stderr
