"""A real fullscreen window on a real (virtual) X server, read back by screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from firmware_app.errors import ExitCode
from firmware_app.sources.audio_file import decode_audio, write_wav

from conftest import PORTRAIT, SPEECH, free_port

pytestmark = pytest.mark.integration  # every test here starts the CLI, a kiosk or a sound/display server

SHOW_FRAMES = """
import sys, time, numpy as np
from firmware_app.frames import VideoFrame
from firmware_app.sinks import open_sink
frame = np.zeros((360, 640, 3), np.uint8)
frame[:, :] = (40, 160, 220)            # B G R
frame[:, 320:] = (200, 60, 30)          # right half another colour
with open_sink("display://0", "Ventriloquist test") as sink:
    sink.open(640, 360, 30)
    sink.write_video(VideoFrame(frame, 0.0, 0))
    print("shown", flush=True)  # the test's screenshot waits for this, however slow the start
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        sink.write_video(VideoFrame(frame, 0.0, 0))
        time.sleep(0.03)
print("closed cleanly")
"""


def screenshot(display: str, path) -> np.ndarray:
    subprocess.run(["import", "-display", display, "-window", "root", str(path)], check=True, timeout=20)
    return cv2.imread(str(path))


def test_display_sink_fills_the_screen(xvfb, tmp_path):
    if shutil.which("import") is None:
        pytest.skip("needs ImageMagick's import (bash scripts/setup.sh --dev)")
    env = {**os.environ, "DISPLAY": xvfb}
    window = subprocess.Popen(
        [sys.executable, "-c", SHOW_FRAMES, "3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if window.stdout.readline().strip() != "shown":  # (a starved machine took over 2 s to get here)
        pytest.fail(f"the display sink never showed a frame: {window.communicate(timeout=20)[1][-2000:]}")
    time.sleep(1.0)  # the window manager's fullscreen
    shot = screenshot(xvfb, tmp_path / "screen.png")
    out, err = window.communicate(timeout=20)
    assert window.returncode == 0, err
    assert "closed cleanly" in out
    assert shot.shape == (720, 1280, 3)
    # fullscreen: the frame is scaled over the whole screen, left half one colour, right half the other
    left, right = shot[20:700, 20:620].reshape(-1, 3).mean(axis=0), shot[20:700, 660:1260].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(left, (40, 160, 220), atol=8)
    np.testing.assert_allclose(right, (200, 60, 30), atol=8)


def test_display_without_an_x_server_is_a_clear_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sources:\n  audio: file://{SPEECH}\n  camera: file://{PORTRAIT}\noutput:\n  uri: display://87\n"
        f"health:\n  port: {free_port()}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-m", "firmware_app", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == ExitCode.DEVICE, result.stderr
    assert "no X display :87" in result.stderr and "fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_camera_plays_the_demo_fullscreen(xvfb, tmp_path):
    if shutil.which("import") is None:
        pytest.skip("needs ImageMagick's import (bash scripts/setup.sh --dev)")
    voice = tmp_path / "voice.wav"
    write_wav(voice, decode_audio(SPEECH)[8000 : 8000 + 16000 * 4])
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sources:\n  camera: v4l2:///dev/video63\ndemo:\n  audio: file://{voice}\n  output: {tmp_path / 'demo.mp4'}\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "firmware_app", "run", "--config", str(config)],
        env={**os.environ, "DISPLAY": xvfb},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "demo.mp4").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the window comes up and plays (on a loaded machine that can take a few seconds)
    shown_by = time.monotonic() + 15
    shot = screenshot(xvfb, tmp_path / "screen.png")
    while shot[200:520, 500:780].mean() <= 60 and run.poll() is None and time.monotonic() < shown_by:
        time.sleep(0.3)
        shot = screenshot(xvfb, tmp_path / "screen.png")
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert "demo written to" in out
    # the portrait fills the middle of the screen; the disclosure mark sits bottom-left
    assert shot[200:520, 500:780].mean() > 60
    assert (shot[-80:, :300].max(axis=2) > 200).sum() > 300
