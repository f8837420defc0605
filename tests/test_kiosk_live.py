"""The live kiosk end to end: `ventriloquist run` as a child process on real substitutes (a paced
clip as the camera, a PulseAudio null sink as the microphone, Xvfb as the screen), watched
through its own /healthz and /metrics, with faults injected from outside."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import PORTRAIT, PROJECT, SPEECH, _need, _wait_for, assert_stopped_cleanly, cli, free_port, speech_lasting

# a kiosk's start (models, MediaPipe, the font cache) takes seconds here and over a minute on a
# machine whose two cores three other suites share; waits end as soon as it shows frames
START_S = 150


class Kiosk:
    """`ventriloquist run` in a child process; its log is read as it comes, so a test waits for
    what the kiosk says it did (however long a busy machine makes that take), not a fixed time."""

    def __init__(self, config: Path, env: dict, port: int, args: tuple[str, ...] = ()) -> None:
        import threading

        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "firmware_app", "run", "--config", str(config), *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self._lines.extend(iter(self.process.stderr.readline, "")), daemon=True
        )
        self._reader.start()

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def wait_logged(self, text: str, timeout: float = 60) -> None:
        try:
            _wait_for(
                lambda: text in self.log or self.process.poll() is not None, timeout, f"the kiosk to log {text!r}"
            )
        except RuntimeError as exc:
            raise AssertionError(f"{exc}; its log ends:\n{self.log[-3000:]}") from None
        assert text in self.log, self.log[-3000:]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        _, text = self.get("/metrics")
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def wait_healthy(self, timeout: float = START_S) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                self._reader.join(5)
                raise AssertionError(self.log[-3000:])
            try:
                return self.get("/healthz")[0] == 200
            except OSError:
                return False

        _wait_for(healthy, timeout, "the kiosk to show frames")

    def frames_grow(self, timeout: float = 20) -> bool:
        """The screen keeps changing: 10 more frames within `timeout` (a frozen one never does)."""
        before = self.metrics()["ventriloquist_frames_total"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metrics()["ventriloquist_frames_total"] > before + 10:
                return True
            time.sleep(0.1)
        return False

    def wait_exit(self, timeout: float) -> str:
        """Until the kiosk exits by itself; what it logged."""
        self.process.wait(timeout=timeout)
        self._reader.join(5)
        return self.log

    def stop(self) -> str:
        """SIGTERM; what the kiosk logged. `stopped_in` is how long it took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        self.stopped_in = time.monotonic() - started
        self._reader.join(5)
        return self.log


@pytest.fixture(scope="module")
def long_voice(tmp_path_factory) -> Path:
    """Three minutes of speech: the kiosk keeps running while faults are injected, however slowly
    a starved machine does it (a speech file that stands in for the microphone ends the run at
    its end)."""
    return speech_lasting(tmp_path_factory.mktemp("voice"), minutes=3)


def config_file(tmp_path: Path, port: int, voice: Path = SPEECH, **sections: str) -> Path:
    base = {
        "sources": f"{{audio: 'file://{voice}', camera: 'file://{PORTRAIT}'}}",
        "video": "{width: 640, height: 360}",
        "output": "{uri: 'null://'}",
        "health": f"{{port: {port}}}",
    }
    base.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text("".join(f"{key}: {value}\n" for key, value in base.items()))
    return path


@pytest.fixture
def camera_clip(tmp_path) -> Path:
    """A 3 s talking clip as the camera."""
    from firmware_app.sources.audio_file import decode_audio, write_wav

    voice, clip = tmp_path / "three.wav", tmp_path / "camera.mp4"
    write_wav(voice, decode_audio(SPEECH)[: 16000 * 3])
    result = cli("render", "--audio", str(voice), "--face", str(PORTRAIT), "--out", str(clip), "--size", "640x360")
    assert result.returncode == 0, result.stderr
    return clip


def test_health_metrics_and_sighup_reload(tmp_path, long_voice):
    port = free_port()
    config = config_file(tmp_path, port, long_voice)
    kiosk = Kiosk(config, {}, port)
    try:
        kiosk.wait_healthy()
        status, body = kiosk.get("/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["frames"] > 0
        metrics = kiosk.metrics()
        for name in (
            "fps",
            "frames_total",
            "dropped_frames_total",
            "latency_milliseconds",
            "av_offset_milliseconds",
            "face_present",
        ):
            assert f"ventriloquist_{name}" in metrics, name
        assert any(k.startswith('ventriloquist_stage_milliseconds{stage="tracker"') for k in metrics)
        assert any(k.startswith('ventriloquist_backend_info{backend="learned model') for k in metrics)
        assert metrics["ventriloquist_face_present"] == 1.0
        # a broken config is refused and the running one stays
        good = config.read_text()
        config.write_text(good + "renderer: {mouth_gian: 2}\n")
        kiosk.process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert kiosk.frames_grow()
        # a valid one is taken without restarting the process
        config.write_text(good.replace("640, height: 360", "480, height: 270"))
        kiosk.process.send_signal(signal.SIGHUP)
        time.sleep(2.0)
        kiosk.wait_healthy()
        assert kiosk.process.poll() is None
    finally:
        err = kiosk.stop()
    assert kiosk.process.returncode == 0, err[-2000:]
    assert_stopped_cleanly(err, kiosk.stopped_in)
    assert "config reload refused" in err and "mouth_gian" in err
    assert "config reloaded" in err


@pytest.mark.integration
def test_camera_unplugged_then_back(tmp_path, camera_clip, long_voice):
    port = free_port()
    clip = tmp_path / "live.mp4"
    shutil.copy(camera_clip, clip)
    config = config_file(
        tmp_path,
        port,
        sources=f"{{audio: 'file://{long_voice}', camera: 'file://{clip}', loop_video: false}}",
    )
    kiosk = Kiosk(config, {}, port)
    try:
        kiosk.wait_healthy()
        clip.rename(tmp_path / "unplugged.mp4")  # at its end the camera is gone
        _wait_for(lambda: kiosk.metrics()['ventriloquist_restarts_total{part="camera"}'] >= 1, 30, "a camera retry")
        assert kiosk.frames_grow(), "the screen froze while the camera was gone"
        assert kiosk.get("/healthz")[0] == 200
        (tmp_path / "unplugged.mp4").rename(clip)  # plugged back in
        kiosk.wait_logged("camera is back")
    finally:
        err = kiosk.stop()
    assert "camera unavailable" in err and "camera is back" in err


@pytest.mark.integration
def test_microphone_gone_then_back(tmp_path):
    _need("pulseaudio", "paplay")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    env = {"PULSE_RUNTIME_PATH": str(runtime), "HOME": str(runtime), "PULSE_SERVER": f"unix:{runtime / 'native'}"}
    start = [
        "pulseaudio", "-n", "-D", "--exit-idle-time=-1", "--disallow-exit",
        "-L", "module-native-protocol-unix", "-L", "module-null-sink sink_name=vsink", "-L", "module-always-sink",
    ]  # fmt: skip
    subprocess.run(start, env={**os.environ, **env}, check=True, capture_output=True, timeout=20)
    env.update(PULSE_SOURCE="vsink.monitor", PULSE_SINK="vsink")
    port = free_port()
    config = config_file(tmp_path, port, sources=f"{{audio: 'mic://pulse', camera: 'file://{PORTRAIT}'}}")
    kiosk = Kiosk(config, env, port)
    try:
        kiosk.wait_healthy()
        subprocess.run(["pulseaudio", "-k"], env={**os.environ, **env}, capture_output=True, timeout=10)  # unplugged
        _wait_for(
            lambda: kiosk.metrics()['ventriloquist_restarts_total{part="microphone"}'] >= 1, 30, "a microphone retry"
        )
        assert kiosk.frames_grow(), "the screen froze while the microphone was gone"
        subprocess.run(start, env={**os.environ, **env}, check=True, capture_output=True, timeout=20)  # back
        kiosk.wait_logged("microphone is back")
        time.sleep(5)  # the stop below is in steady running, as before
    finally:
        err = kiosk.stop()
        subprocess.run(["pulseaudio", "-k"], env={**os.environ, **env}, capture_output=True, timeout=10)
    assert "microphone unavailable" in err and "microphone is back" in err
    assert_stopped_cleanly(err, kiosk.stopped_in)


@pytest.mark.integration
def test_display_window_closed_is_reopened(tmp_path, xvfb, long_voice):
    _need("wmctrl")
    port = free_port()
    config = config_file(
        tmp_path, port, long_voice, output="{uri: 'display://0', window_title: 'Ventriloquist kiosk test'}"
    )
    kiosk = Kiosk(config, {"DISPLAY": xvfb}, port)
    try:
        kiosk.wait_healthy()
        subprocess.run(
            ["wmctrl", "-c", "Ventriloquist kiosk test"], env={**os.environ, "DISPLAY": xvfb}, check=True, timeout=10
        )
        _wait_for(
            lambda: kiosk.metrics()['ventriloquist_restarts_total{part="display"}'] >= 1,
            20,
            "the window to be reopened",
        )
        assert kiosk.frames_grow()
        listed = subprocess.run(
            ["wmctrl", "-l"], env={**os.environ, "DISPLAY": xvfb}, capture_output=True, text=True, timeout=10
        ).stdout
        assert "Ventriloquist kiosk test" in listed
    finally:
        kiosk.stop()


@pytest.mark.integration
def test_kiosk_with_a_broken_config_shows_the_error_and_waits_for_a_fix(tmp_path, xvfb, long_voice):
    _need("import")
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text("renderer: {mouth_gian: 2}\n")
    kiosk = Kiosk(config, {"DISPLAY": xvfb}, port, ("--kiosk",))
    try:
        import cv2

        shot = tmp_path / "shot.png"
        deadline = time.monotonic() + START_S  # a starved machine draws the card late; it must come
        while True:
            time.sleep(1)
            assert kiosk.process.poll() is None, "the kiosk exited instead of showing the error"
            subprocess.run(
                ["import", "-window", "root", str(shot)], env={**os.environ, "DISPLAY": xvfb}, check=True, timeout=20
            )
            image = cv2.imread(str(shot))
            assert image is not None
            background = np.median(image.reshape(-1, 3), axis=0)
            if np.allclose(background, (40, 24, 24), atol=6) or time.monotonic() > deadline:
                break
        assert np.allclose(background, (40, 24, 24), atol=6), background  # the error card fills the screen
        assert (image.max(axis=2) > 200).mean() > 0.005  # with its text
        config_file(tmp_path, port, long_voice)  # fixed
        kiosk.process.send_signal(signal.SIGHUP)
        kiosk.wait_healthy()
    finally:
        err = kiosk.stop()
    assert "refusing to start" in err and "mouth_gian" in err


def stop_when(done, stop, timeout: float = 60.0) -> None:
    """Set `stop` once `done()` holds (checked every 50 ms), or after `timeout` at the latest."""
    import threading

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()


@pytest.mark.parametrize("faulty_after", [40])
def test_a_failing_mouth_model_hands_over_to_its_fallback(faulty_after):
    """In process: the real learned model, made to fail after a while (as a GPU fault would)."""
    import threading

    from firmware_app.config import Settings, with_changes
    from firmware_app.pipeline import build_pipeline
    from firmware_app.runners.live import run_live
    from firmware_app.runners.metrics import LiveMetrics

    settings = with_changes(Settings(), {
        "sources.audio": f"file://{SPEECH}", "sources.camera": f"file://{PORTRAIT}",
        "video.width": 640, "video.height": 360, "output.uri": "null://",
    })  # fmt: skip
    pipeline = build_pipeline(settings, realtime=True)
    real_push, calls = pipeline.model.push, {"n": 0}

    def failing_push(features):
        calls["n"] += 1
        if calls["n"] > faulty_after:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (injected)")
        return real_push(features)

    pipeline.model.push = failing_push
    metrics, stop = LiveMetrics(), threading.Event()
    handed_over_at: list[int] = []

    def enough() -> bool:  # 60 frames after the handover, however long a busy machine takes
        if metrics.restarts.model and not handed_over_at:
            handed_over_at.append(metrics.frames.shown)
        return bool(handed_over_at) and metrics.frames.shown > handed_over_at[0] + 60

    stop_when(enough, stop)
    run_live(pipeline, stop, threading.Event(), metrics)
    assert metrics.restarts.model == 1
    assert "loudness" in metrics.backend
    assert metrics.frames.shown > 60
    apertures = np.array([frame.aperture for frame in metrics.frame_log.frames()])
    assert apertures[-40:].max() > 0.05  # the fallback still moves the mouth


def test_no_face_in_view_shows_the_picture_untouched(tmp_path):
    import threading

    import cv2

    from firmware_app.config import Settings, with_changes
    from firmware_app.pipeline import build_pipeline
    from firmware_app.runners.live import run_live
    from firmware_app.runners.metrics import LiveMetrics

    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((360, 640, 3), 128, np.uint8))
    settings = with_changes(Settings(), {
        "sources.audio": f"file://{SPEECH}", "sources.camera": f"file://{empty}",
        "video.width": 640, "video.height": 360, "output.uri": "null://",
    })  # fmt: skip
    metrics, stop = LiveMetrics(), threading.Event()
    stop_when(lambda: metrics.frames.shown > 50, stop)
    run_live(build_pipeline(settings, realtime=True), stop, threading.Event(), metrics)
    assert metrics.frames.shown > 50 and not metrics.liveness.face_present


@pytest.mark.integration
def test_speech_into_the_microphone_moves_the_mouth_on_screen_in_time(pulse, xvfb, tmp_path):
    """The full loop: a PulseAudio null sink as the microphone, Xvfb as the screen; bursts of
    speech played into the microphone, the mouth on screen timed against them."""
    config = config_file(tmp_path, free_port(), sources="{audio: 'mic://pulse'}", output="{uri: 'display://0'}")
    env = {**pulse, "DISPLAY": xvfb}
    result = cli(
        "bench", "latency", "--config", str(config), "--play-sink", "vsink", "--events", "6", env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr
    summary = re.search(r"latency_ms median=(\S+) p95=(\S+) av_offset_ms=(\S+) frame_interval_ms=(\S+)", result.stdout)
    assert summary, result.stdout
    events = re.findall(r"event \d+: mic → mouth on screen (\d+) ms", result.stdout)
    assert len(events) >= 4, result.stdout
    median, interval = float(summary.group(1)), float(summary.group(4))
    assert interval < 200, result.stdout  # the picture kept going (5 fps at the least)
    assert median <= latency_bound_ms(interval), result.stdout


LATENCY_TARGET_MS = 150  # the design target is 100 ms; CI machines are loaded two-core VMs (see the note)
NOMINAL_INTERVAL_MS = 1000 / 30


def latency_bound_ms(frame_interval_ms: float) -> float:
    """The target at 30 fps. A machine too busy for 30 fps shows fewer frames: a sound waits up
    to one (longer) interval for the next frame, and the frame shown at that instant was chosen
    one interval before (the display's pacing), so each millisecond the measured interval is
    over the nominal one allows two more. The voice path's own share (look-ahead, blocks, the
    model) gets no allowance: a slow mouth model still fails."""
    return LATENCY_TARGET_MS + 2 * max(0.0, frame_interval_ms - NOMINAL_INTERVAL_MS)


@pytest.mark.integration
def test_a_stop_that_hangs_in_a_driver_still_ends_within_the_deadline():
    """A thread stuck in a device call cannot hold the service past its 2 s: the process exits
    and logs every thread's stack so the hang can be found."""
    code = (
        "import threading, time\n"
        "from firmware_app.appliance.signals import exit_if_still_running_after\n"
        "threading.Thread(target=time.sleep, args=(60,), name='stuck-driver').start()\n"
        "print(time.monotonic(), flush=True)\n"
        "exit_if_still_running_after(0.5)\n"
        "time.sleep(60)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=PROJECT)
    # from the deadline's start (the system-wide monotonic clock; the interpreter's start-up, slow
    # on a starved machine, is not the deadline's business) to the exit: 0.5 s, not the stuck 60 s
    assert time.monotonic() - float(result.stdout.split()[0]) < 5
    assert result.returncode == 0
    assert "still stopping 0.5 s after the signal" in result.stderr
    assert "Thread 0x" in result.stderr


def test_memory_above_the_limit_restarts_the_kiosk_through_systemd(tmp_path):
    """Far above health.restart_above_mb the kiosk stops with EX_TEMPFAIL (75), which the unit's
    Restart=on-failure turns into a fresh start, and says why."""
    port = free_port()
    config = config_file(tmp_path, port, health=f"{{port: {port}, restart_above_mb: 60}}")
    kiosk = Kiosk(config, {}, port)
    err = kiosk.wait_exit(timeout=90)
    assert kiosk.process.returncode == 75, err[-2000:]
    assert "above health.restart_above_mb (60 MB); restarting" in err
    assert "Traceback" not in err


def test_memory_limit_waits_for_a_quiet_moment_unless_far_above():
    from firmware_app.platform.memory import MemoryLimitReached, check_memory

    now = time.monotonic()
    check_memory(0, 10_000, now - 3600)  # 0: never
    check_memory(1000, 900, now - 3600)  # below the limit
    check_memory(1000, 1100, now)  # above, but someone is there: wait
    with pytest.raises(MemoryLimitReached):
        check_memory(1000, 1100, now - 60)  # above, and nobody for a minute
    with pytest.raises(MemoryLimitReached):
        check_memory(1000, 1300, now)  # far above: at once
