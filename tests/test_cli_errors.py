"""Bad input gets one clear paragraph and a distinct exit code, never a traceback."""

from __future__ import annotations

import pytest

from firmware_app.errors import ExitCode

from conftest import PORTRAIT, SPEECH, cli

pytestmark = pytest.mark.integration  # every test here starts the CLI, a kiosk or a sound/display server


def assert_clean_error(result, code: int, *phrases: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert "fix:" in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def render(tmp_path, audio=SPEECH, face=PORTRAIT, config=None):
    """`ventriloquist render` of `audio` onto `face` into tmp_path/o.mp4, with `config` if given."""
    options = ("--config", str(config)) if config else ()
    return cli("render", *options, "--audio", str(audio), "--face", str(face), "--out", str(tmp_path / "o.mp4"))


def test_malformed_config(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("mode: mirror\nrenderer: {mouth_gain: 1.0\n")
    assert_clean_error(cli("run", "--config", str(config)), ExitCode.CONFIG, "not valid YAML", "line")


def test_unknown_key_in_run_config(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("ouput:\n  uri: null://\n")
    assert_clean_error(cli("run", "--config", str(config)), ExitCode.CONFIG, "`ouput`", "line 1", "output")


def test_missing_audio_file(tmp_path):
    result = render(tmp_path, audio=tmp_path / "nope.wav")
    assert_clean_error(result, ExitCode.MISSING_FILE, "nope.wav")
    assert not (tmp_path / "o.mp4").exists()


def test_missing_face_file(tmp_path):
    result = render(tmp_path, face=tmp_path / "nobody.jpg")
    assert_clean_error(result, ExitCode.MISSING_FILE, "nobody.jpg")


def test_audio_file_that_is_not_audio(tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF this is not really a wave file" * 10)
    result = render(tmp_path, audio=fake)
    assert_clean_error(result, ExitCode.MEDIA, "fake.wav")


def test_corrupt_face_model(tmp_path):
    model = tmp_path / "face_landmarker.task"
    model.write_bytes(b"\x00garbage" * 1000)
    config = tmp_path / "config.yaml"
    config.write_text(f"tracker:\n  model_path: {model}\n")
    result = render(tmp_path, config=config)
    assert_clean_error(result, ExitCode.BAD_MODEL, "corrupt", "models fetch")


def test_missing_face_model(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"tracker:\n  model_path: {tmp_path / 'absent.task'}\n")
    result = render(tmp_path, config=config)
    assert_clean_error(result, ExitCode.MISSING_FILE, "absent.task", "models fetch")


def test_wrong_scheme_for_a_source(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  audio: v4l2:///dev/video0\noutput:\n  uri: null://\n")
    assert_clean_error(cli("run", "--config", str(config)), ExitCode.CONFIG, "v4l2://", "mic://")


def test_unplugged_microphone_with_camera_file(tmp_path):
    """A camera stand-in is present but the named microphone is not: a device error that lists devices."""
    config = tmp_path / "config.yaml"
    config.write_text(f"sources:\n  audio: mic://No Such Mic\n  camera: file://{PORTRAIT}\noutput:\n  uri: null://\n")
    assert_clean_error(cli("run", "--config", str(config)), ExitCode.DEVICE, "No Such Mic", "input devices here")


def test_missing_camera_without_demo_fallback(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "sources:\n  camera: v4l2:///dev/video63\ndemo:\n  when_no_camera: false\noutput:\n  uri: null://\n"
    )
    assert_clean_error(cli("run", "--config", str(config)), ExitCode.DEVICE, "no camera at /dev/video63", "plug in")
