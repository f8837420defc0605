"""Shared fixtures: real substitutes for the hardware we lack (Xvfb for HDMI, a PulseAudio null
sink for the microphone) and one rendered demo reused by several tests.

Two tiers (pytest.ini): a test that starts the CLI, a kiosk, a display or sound server, a browser,
or builds a package is marked `integration`; the rest run in-process, and
`pytest -m "not integration"` is the fast tier to run while working."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_app.frames import SAMPLE_RATE

PROJECT = Path(__file__).resolve().parent.parent
ASSETS = PROJECT / "firmware_app" / "assets"
SPEECH = ASSETS / "speech.wav"
PORTRAIT = ASSETS / "portrait.jpg"


# Fixtures that start a process (a server, a browser, the CLI): a test that takes one, directly
# or through another fixture, is an integration test and must say so, or the fast tier slows down.
PROCESS_FIXTURES = {"xvfb", "pulse", "demo_render", "kiosk", "browser", "camera_clip"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("integration")
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests start processes through their fixtures but are not marked "
            "@pytest.mark.integration (the fast tier would run them):\n  " + "\n  ".join(unmarked)
        )


def cli(
    *args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the real `ventriloquist` command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "firmware_app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd or PROJECT,
    )


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installed by `bash scripts/setup.sh --dev`)")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def xvfb():
    """An X display with a window manager (OpenCV's fullscreen needs one), 1280x720."""
    _need("Xvfb", "matchbox-window-manager")
    number = next(
        n for n in range(99, 160) if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists()
    )
    display = f":{number}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
    )
    _wait_for(lambda: Path(f"/tmp/.X11-unix/X{number}").exists(), 10, "Xvfb")
    manager = subprocess.Popen(
        ["matchbox-window-manager", "-use_titlebar", "no"],
        env={**os.environ, "DISPLAY": display},
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    yield display
    manager.terminate()
    server.terminate()
    manager.wait(5)
    server.wait(5)


def assert_stopped_cleanly(log: str, took_s: float) -> None:
    """A SIGTERM'd kiosk kept its 2 s promise: on its own clock, from its signal handler to the end
    of its clean stop (not by the deadline's forced exit). A starved machine also delays the
    handler and the exit itself, on the test's clock; the unit's TimeoutStopSec leaves room for that."""
    clean = re.search(r"stopped cleanly ([\d.]+) s after the signal", log)
    assert clean and float(clean.group(1)) < 2.0 and "still stopping" not in log, log[-2000:]
    unit = (PROJECT / "systemd" / "ventriloquist.service").read_text()
    assert took_s < float(re.search(r"^TimeoutStopSec=(\d+)", unit, re.M).group(1)), (took_s, log[-2000:])


def speech_lasting(folder: Path, minutes: float) -> Path:
    """The bundled speech played over and over for at least `minutes`, as one WAV in `folder`: a
    speech file standing in for the microphone ends a kiosk's run at its end, so a test that needs
    the kiosk running however slowly a starved machine gets through it gives it a long one."""
    import math

    from firmware_app.sources.audio_file import decode_audio, write_wav

    speech = decode_audio(SPEECH)
    path = folder / "long.wav"
    write_wav(path, np.tile(speech, math.ceil(minutes * 60 * SAMPLE_RATE / len(speech))))
    return path


def free_port() -> int:
    """A TCP port nothing listens on now: a kiosk under test serves its health there, so a second
    suite on the same machine (or anything on the default port) cannot clash with it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    """A private PulseAudio server whose null sink `vsink` stands in for the room: what is played
    into it is heard on `vsink.monitor`, the microphone."""
    _need("pulseaudio", "paplay")
    runtime = tmp_path_factory.mktemp("pulse")
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "HOME": str(runtime)}
    subprocess.run(
        [
            "pulseaudio",
            "-n",
            "-D",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "-L",
            "module-native-protocol-unix",
            "-L",
            "module-null-sink sink_name=vsink rate=48000",
            "-L",
            "module-always-sink",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=20,
    )
    _wait_for(lambda: (runtime / "native").exists(), 10, "PulseAudio")
    server = f"unix:{runtime / 'native'}"
    yield {
        "PULSE_SERVER": server,
        "PULSE_SINK": "vsink",
        "PULSE_SOURCE": "vsink.monitor",
        "PULSE_RUNTIME_PATH": str(runtime),
        "HOME": str(runtime),
    }
    subprocess.run(["pulseaudio", "-k"], env=env, capture_output=True, timeout=10)


@pytest.fixture(scope="session")
def demo_render(tmp_path_factory) -> Path:
    """The bundled portrait speaking the bundled clip, rendered by the real CLI."""
    out = tmp_path_factory.mktemp("render") / "demo.mp4"
    result = cli("render", "--audio", str(SPEECH), "--face", str(PORTRAIT), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out
