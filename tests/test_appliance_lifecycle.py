"""The kiosk's lifecycle in this process: `Appliance.start` on the main thread (as under systemd)
with a still portrait as the camera, a paced speech file as the microphone and the `null://`
screen, driven from a second thread through real SIGHUPs and `stop`, and watched through its own
/metrics and log. The stop deadline's forced exit is tried in a child process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_app.appliance.demo import demo_path
from firmware_app.appliance.kiosk import Appliance
from firmware_app.appliance.signals import STOP_DEADLINE_S, Latest, handle_signals
from firmware_app.errors import ConfigError, ExitCode
from firmware_app.frames import SAMPLE_RATE
from firmware_app.sources.audio_file import decode_audio, write_wav

from conftest import PORTRAIT, PROJECT, SPEECH, free_port, speech_lasting

START_S = 150  # a kiosk's start on a machine whose two cores other suites share (see test_kiosk_live)
BROKEN = "renderer: {mouth_gian: 2}\n"


class Log(logging.Handler):
    """Every message of the kiosk's own loggers. `setup_logging` replaces the root's handlers
    when the appliance starts; one on these loggers stays."""

    LOGGERS = ("ventriloquist", "firmware_app")

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def has(self, text: str) -> bool:
        return any(text in message for message in list(self.messages))

    def count(self, text: str) -> int:
        return sum(text in message for message in list(self.messages))


@pytest.fixture
def log():
    """The appliance installs the kiosk's signal handlers and its own root log handler in this
    process: both are put back afterwards, for the tests that follow."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    collected = Log()
    for name in Log.LOGGERS:
        logging.getLogger(name).addHandler(collected)
    yield collected
    for name in Log.LOGGERS:
        logging.getLogger(name).removeHandler(collected)
    root.handlers[:] = root_handlers
    root.setLevel(root_level)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


@pytest.fixture(scope="module")
def long_voice(tmp_path_factory) -> Path:
    """Three minutes of speech: the run lasts until the test stops it, however slow the machine."""
    return speech_lasting(tmp_path_factory.mktemp("voice"), minutes=3)


@pytest.fixture(scope="module")
def short_voice(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("short") / "voice.wav"
    write_wav(path, decode_audio(SPEECH)[: SAMPLE_RATE * 3 // 2])
    return path


def config_text(voice: Path, port: int, **sections: str) -> str:
    base = {
        "sources": f"{{audio: 'file://{voice}', camera: 'file://{PORTRAIT}'}}",
        "video": "{width: 640, height: 360}",
        "output": "{uri: 'null://'}",
        # the kiosk runs inside the test process, whose memory is what earlier tests left: no memory
        # restart here (test_kiosk_live tests the limit on a kiosk of its own)
        "health": f"{{port: {port}, restart_above_mb: 0}}",
    }
    return "".join(f"{key}: {value}\n" for key, value in {**base, **sections}.items())


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        lines = response.read().decode().splitlines()
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    }


def health_status(port: int) -> int | None:
    """/healthz's status, None while nothing answers on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def backend(port: int) -> str:
    return next(
        name for name, value in metrics(port).items() if name.startswith("ventriloquist_backend_info") and value == 1.0
    )


def frames(port: int) -> float:
    return metrics(port)["ventriloquist_frames_total"]


def run_driven(appliance: Appliance, script: Callable[[], None]) -> int:
    """`appliance.start()` on this, the main thread, while `script` drives it from another; the
    exit code. The appliance is stopped when the script ends or fails (its failure fails the test)."""
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            script()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failures.append(exc)
        finally:
            appliance.stop()

    driver = threading.Thread(target=drive, name="test-driver", daemon=True)
    driver.start()
    try:
        code = appliance.start()
    finally:
        appliance.stop()  # a start that failed ends the script's waits
        driver.join(30)
    if failures:
        raise failures[0]
    return code


def wait_until(appliance: Appliance, predicate: Callable[[], bool], what: str, timeout: float = START_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if appliance.state.stop.is_set():
            raise AssertionError(f"the appliance stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def frames_grow(appliance: Appliance, port: int) -> None:
    """The same pipeline keeps showing frames: 10 more, however slowly."""
    before = frames(port)
    wait_until(appliance, lambda: frames(port) > before + 10, "10 more frames", timeout=30)


# --- the signal side, alone ---------------------------------------------------------------------


def test_latest_holds_only_the_newest_value_until_it_is_taken():
    slot: Latest[str] = Latest()
    assert slot.take() is None
    slot.put("first")
    slot.put("second")
    assert slot.take() == "second"
    assert slot.take() is None


def test_reload_takes_a_valid_file_and_refuses_an_invalid_one(tmp_path, log):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(SPEECH, free_port(), model="{kind: loudness}"))
    appliance = Appliance(config)
    appliance.reload()
    assert appliance.state.reload.is_set()
    assert appliance.state.pending_settings.take().model.kind == "loudness"

    appliance.state.reload.clear()
    config.write_text(BROKEN)
    appliance.reload()
    assert not appliance.state.reload.is_set(), "a refused config must not end the running pipeline"
    refusal = appliance.state.refusal.take()
    assert isinstance(refusal, ConfigError) and "mouth_gian" in str(refusal)
    assert appliance.state.pending_settings.take() is None
    assert log.has("config reload refused, keeping the running config") and log.has("mouth_gian")

    appliance.state.awaiting_fix = True  # the error card is up: a refusal is news for it
    appliance.reload()
    assert appliance.state.reload.is_set()
    assert appliance.state.pending_settings.take() is None


def test_only_the_first_stop_is_asked_and_timed():
    appliance = Appliance(None)
    before = time.monotonic()
    assert appliance.stop() is True
    asked_at = appliance.state.stop_asked_at
    assert appliance.state.stop.is_set() and asked_at is not None and asked_at >= before
    assert appliance.stop() is False
    assert appliance.state.stop_asked_at == asked_at


def test_sighup_reloads_and_a_repeated_sigterm_arms_no_second_deadline(log):
    hangups: list[int] = []
    stops: list[int] = []

    def already_stopping() -> bool:
        stops.append(1)
        return False  # a stop was asked before: no new deadline

    def timers() -> int:
        return sum(isinstance(thread, threading.Timer) for thread in threading.enumerate())

    timers_before = timers()
    handle_signals(already_stopping, lambda: hangups.append(1))
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)  # the handlers run on this thread between bytecodes
    assert hangups == [1] and stops == [1, 1]
    assert timers() == timers_before


@pytest.mark.integration
def test_a_sigterm_that_the_stop_cannot_honour_exits_at_the_deadline():
    """Through the real handler: the first SIGTERM arms the deadline, and a thread stuck in a
    driver cannot keep the process past it."""
    code = (
        "import threading, time\n"
        "from firmware_app.appliance.signals import handle_signals\n"
        "handle_signals(lambda: True, lambda: None)\n"
        "threading.Thread(target=time.sleep, args=(60,), name='stuck-driver').start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        signalled = time.monotonic()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        child.kill()
        err = child.stderr.read()
    assert child.returncode == ExitCode.OK, err
    assert STOP_DEADLINE_S <= took < STOP_DEADLINE_S + 5, took  # the deadline, not the stuck 60 s
    assert f"still stopping {STOP_DEADLINE_S:.1f} s after the signal" in err and "Thread 0x" in err


def test_the_demo_goes_under_the_services_cache_directory_when_relative(tmp_path, monkeypatch):
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    assert demo_path("demo.mp4") == (tmp_path / "demo.mp4").resolve()
    assert demo_path("/srv/demo.mp4") == Path("/srv/demo.mp4")
    monkeypatch.delenv("CACHE_DIRECTORY")
    assert demo_path("demo.mp4") == Path("demo.mp4").resolve()


# --- the whole lifecycle, in this process -------------------------------------------------------


def test_a_valid_reload_starts_the_next_pipeline_on_it_and_a_refused_one_keeps_the_running_one(
    tmp_path, long_voice, log
):
    port = free_port()
    config = tmp_path / "config.yaml"
    good = config_text(long_voice, port)
    config.write_text(good)
    appliance = Appliance(config)

    def script() -> None:
        wait_until(appliance, lambda: health_status(port) == 200, "frames on the screen")
        assert "learned model" in backend(port)
        config.write_text(good + BROKEN)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(appliance, lambda: log.has("config reload refused"), "the refusal", timeout=30)
        frames_grow(appliance, port)
        assert not log.has("config reloaded") and metrics(port)["ventriloquist_pipeline_generation"] == 1
        config.write_text(good + "model: {kind: loudness}\n")
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(
            appliance,
            lambda: metrics(port)["ventriloquist_pipeline_generation"] == 2 and health_status(port) == 200,
            "the next pipeline to show frames",
        )
        assert "loudness" in backend(port), "the next pipeline runs on the reloaded config"
        frames_grow(appliance, port)

    assert run_driven(appliance, script) == ExitCode.OK
    assert log.count("config reloaded from") == 1 and log.has(f"config reloaded from {config}")
    assert log.count("pipeline finished") == 2  # one per pipeline, the process the same
    assert log.has("stopped cleanly") and not log.has("still stopping")
    assert health_status(port) is None, "the stop also stops the health server"


def test_a_kiosk_with_a_broken_config_waits_on_the_console_until_a_fixed_file_arrives(
    tmp_path, long_voice, log, monkeypatch
):
    monkeypatch.delenv("DISPLAY", raising=False)  # the card goes to the log only
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    port = free_port()
    config = tmp_path / "config.yaml"
    good = config_text(long_voice, port)
    config.write_text(good + BROKEN)
    appliance = Appliance(config, kiosk=True)

    def script() -> None:
        # the console answers on the file's own (valid) health section; no frames yet
        wait_until(appliance, lambda: health_status(port) == 503, "the waiting kiosk's console", timeout=60)
        assert appliance.state.awaiting_fix
        config.write_text(good + "renderer: {mouth_gain: banana}\n")  # still broken, differently
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(appliance, lambda: log.has("config reload refused"), "the refusal", timeout=30)
        wait_until(appliance, lambda: not appliance.state.reload.is_set(), "the card to take the new error", timeout=10)
        assert health_status(port) == 503 and not log.has("pipeline finished")
        config.write_text(good)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(appliance, lambda: health_status(port) == 200, "the fixed kiosk to show frames")
        frames_grow(appliance, port)

    assert run_driven(appliance, script) == ExitCode.OK
    assert log.has("refusing to start") and log.has("mouth_gian") and log.has("banana")
    assert not log.has("config reloaded"), "the fixed file is the first config, not a reload"
    assert log.has("stopped cleanly")


def test_a_kiosk_stopped_while_it_waits_for_a_fix_exits_with_the_config_error(tmp_path, log, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"health: {{port: {port}}}\n" + BROKEN)
    appliance = Appliance(config, kiosk=True)

    def script() -> None:
        wait_until(appliance, lambda: health_status(port) == 503, "the waiting kiosk's console", timeout=60)

    assert run_driven(appliance, script) == ExitCode.CONFIG
    assert log.has("refusing to start") and not log.has("stopped cleanly")
    assert health_status(port) is None, "the rescue console stops with the wait"


def test_outside_the_kiosk_a_broken_config_is_an_error_at_once(tmp_path, log):
    config = tmp_path / "config.yaml"
    config.write_text(BROKEN)
    with pytest.raises(ConfigError, match="mouth_gian"):
        Appliance(config).start()
    assert not log.has("refusing to start")


def test_the_run_ends_by_itself_when_the_speech_file_ends(tmp_path, short_voice, log):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(short_voice, free_port(), model="{kind: loudness}"))
    appliance = Appliance(config)
    watchdog = threading.Timer(START_S, appliance.stop)  # only if it never ends: the test then fails
    watchdog.start()
    try:
        assert appliance.start() == ExitCode.OK
    finally:
        watchdog.cancel()
    assert appliance.state.stop_asked_at is None, "it had to be stopped"
    assert log.count("pipeline finished") == 1 and not log.has("config reloaded") and not log.has("stopped cleanly")


def test_without_a_camera_the_bundled_demo_is_rendered_instead(tmp_path, short_voice, log, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "demo.mp4"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sources: {{audio: 'file://{short_voice}', camera: 'v4l2:///dev/video63'}}\n"
        "video: {width: 640, height: 360}\n"
        f"demo: {{audio: 'file://{short_voice}', output: '{out}'}}\nhealth: {{port: {free_port()}}}\n"
    )
    assert Appliance(config).start() == ExitCode.OK
    printed = capsys.readouterr().out
    assert log.has("rendering the bundled demo instead (demo.when_no_camera)")
    assert f"demo written to {out}" in printed and "no display found" in printed
    assert out.stat().st_size > 10_000


# --- the kiosk on a Jetson's first boot (issue 38) ------------------------------------------------


class NotifySocket:
    """systemd's notify socket, as the service manager binds it: every datagram the kiosk sends."""

    def __init__(self, path: Path) -> None:
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except OSError:
                continue

    def count(self, text: str) -> int:
        return sum(text in message for message in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_a_kiosk_without_a_camera_loops_the_demo_feeding_the_watchdog_until_a_camera_comes(
    tmp_path, short_voice, log, monkeypatch
):
    """A CSI board configured as v4l2:// (or no camera at all): the kiosk unit must neither exit
    (systemd restarts it, or leaves it dead) nor starve WatchdogSec; once the config names a camera
    that opens, the live face shows."""
    monkeypatch.delenv("DISPLAY", raising=False)  # the no-screen wait: the same loop, no window
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("firmware_app.appliance.demo.NO_DISPLAY_WAIT_S", 0.5)
    notify = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    port = free_port()
    config = tmp_path / "config.yaml"
    demo = f"demo: {{audio: 'file://{short_voice}', output: '{tmp_path / 'demo.mp4'}'}}\n"
    missing = config_text(short_voice, port, model="{kind: loudness}").replace(
        f"camera: 'file://{PORTRAIT}'", "camera: 'v4l2:///dev/video63'"
    )
    config.write_text(missing + demo)
    appliance = Appliance(config, kiosk=True)

    def script() -> None:
        wait_until(appliance, lambda: log.has("looking for the camera") or log.count("demo") > 1, "the demo")
        pings = notify.count("WATCHDOG=1")
        wait_until(appliance, lambda: notify.count("WATCHDOG=1") >= pings + 3, "watchdog pings", timeout=30)
        assert not appliance.state.stop.is_set(), "the kiosk must not exit without a camera"
        config.write_text(config_text(short_voice, port, model="{kind: loudness}") + demo)  # the camera is here
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(appliance, lambda: health_status(port) == 200, "the live face")

    try:
        assert run_driven(appliance, script) == ExitCode.OK
    finally:
        notify.close()
    assert log.has("rendering the bundled demo instead") and notify.count("READY=1") >= 1
    assert log.has("stopped cleanly")


def test_a_kiosk_whose_microphone_fails_at_start_stays_up_with_the_mouth_at_rest(tmp_path, log):
    """No sound server and a microphone that cannot be opened: the face shows (mouth at rest) and
    the voice thread keeps trying, instead of the kiosk exiting into its start limit."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        config_text(tmp_path / "unused.wav", port, model="{kind: loudness}").replace(
            f"audio: 'file://{tmp_path / 'unused.wav'}'", "audio: 'mic://no such microphone'"
        )
    )
    appliance = Appliance(config, kiosk=True)

    def script() -> None:
        wait_until(appliance, lambda: health_status(port) == 200, "frames on the screen")
        wait_until(appliance, lambda: log.count("microphone unavailable") >= 2, "the reopen loop", timeout=30)
        frames_grow(appliance, port)

    assert run_driven(appliance, script) == ExitCode.OK
    assert log.has("the face shows with its mouth at rest") and log.has("stopped cleanly")
    with pytest.raises(Exception, match="no such microphone"):  # outside the kiosk it is an error at once
        Appliance(config).start()


def test_a_reload_closes_the_running_tensorrt_backend_before_the_next_one_is_built(
    tmp_path, long_voice, log, monkeypatch
):
    """Every console save is a reload: the old pipeline's engine, buffers and context retain must be
    gone before the next pipeline builds its own (on a Jetson, GPU memory is the system's)."""
    fakes = Path(__file__).parent / "fakes"
    monkeypatch.syspath_prepend(str(fakes))
    for name in ("tensorrt", "pycuda", "pycuda.driver"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import pycuda.driver as cuda

    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(config_text(long_voice, port, inference=f"{{backend: tensorrt, engine_dir: '{tmp_path}'}}"))
    appliance = Appliance(config)
    retained: list[int] = []

    def script() -> None:
        wait_until(appliance, lambda: health_status(port) == 200, "frames on the screen")
        assert "tensorrt" in backend(port)
        retained.append(cuda.retained_contexts())
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(
            appliance,
            lambda: metrics(port)["ventriloquist_pipeline_generation"] == 2 and health_status(port) == 200,
            "the next pipeline",
        )
        retained.append(cuda.retained_contexts())

    try:
        assert run_driven(appliance, script) == ExitCode.OK
        events = list(cuda.EVENTS)
        assert retained == [1, 1], "the reload doubled the backend"
        second = [i for i, e in enumerate(events) if e == "retain primary context"][1]
        assert any(e.startswith("detach on") for e in events[:second]), "the old context outlived the new build"
        assert cuda.retained_contexts() == 0, "the stop left a backend open"
    finally:
        for name in ("tensorrt", "pycuda", "pycuda.driver"):
            sys.modules.pop(name, None)
