"""`ventriloquist run` as the live loop, with a video file standing in for the camera and a paced
speech file for the microphone; systemd's notify socket watches it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_app.sources.audio_file import AudioFileSource, decode_audio, write_wav

from conftest import PORTRAIT, SPEECH, assert_stopped_cleanly, cli, free_port


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory) -> Path:
    """A short 640x360 talking clip, used as the camera."""
    folder = tmp_path_factory.mktemp("camera")
    voice = folder / "voice.wav"
    write_wav(voice, decode_audio(SPEECH)[8000 : 8000 + 16000 * 2])
    clip = folder / "camera.mp4"
    result = cli("render", "--audio", str(voice), "--face", str(PORTRAIT), "--out", str(clip), "--size", "640x360")
    assert result.returncode == 0, result.stderr
    return clip


@pytest.mark.integration
def test_mirror_mode_runs_live_from_substitutes_and_talks_to_systemd(camera_clip, tmp_path):
    voice = tmp_path / "voice.wav"
    write_wav(voice, decode_audio(SPEECH)[8000 : 8000 + 16000 * 2])
    config = tmp_path / "config.yaml"
    config.write_text(
        f"mode: mirror\nsources:\n  audio: file://{voice}\n  camera: file://{camera_clip}\n"
        "video:\n  width: 640\n  height: 360\noutput:\n  uri: null://\nlogging:\n  format: json\n"
        f"health:\n  port: {free_port()}\n"
    )
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(0.2)
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "firmware_app", "run", "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    messages = []
    while run.poll() is None and time.monotonic() - started < 60:
        try:
            messages.append(listener.recv(1024).decode())
        except TimeoutError:
            pass
    out, err = run.communicate(timeout=10)
    elapsed = time.monotonic() - started
    listener.close()
    assert run.returncode == 0, err
    assert elapsed >= 2.0, "file sources in `run` are paced like live ones"
    assert messages and messages[0].startswith("READY=1")
    assert any(m == "WATCHDOG=1" for m in messages)
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    finished = [r for r in records if r["message"].startswith("pipeline finished")]
    assert finished, err
    summary = finished[0]["message"]
    count = {
        key: int(summary.split(f" {key}=")[1].split()[0])
        for key in ("frames", "repeated", "dropped", "camera_skipped", "captured", "unshown")
    }
    assert 50 <= count["captured"] <= 62, summary  # 2 s of the clip's 30 fps, paced like a camera
    # each camera frame shown once, or (on a starved machine) counted as dropped by the render
    # loop, skipped by a tracker that fell behind, or left unshown when the voice ended; a frame
    # shown again for a stalled camera is not a camera frame
    accounted = count["frames"] - count["repeated"] + count["dropped"] + count["camera_skipped"] + count["unshown"]
    assert accounted == count["captured"], summary
    assert count["frames"] >= 15, summary


@pytest.mark.integration
def test_sigterm_stops_the_live_loop_cleanly(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"mode: mirror\nsources:\n  audio: file://{SPEECH}\n  camera: file://{PORTRAIT}\noutput:\n  uri: null://\n"
        f"health:\n  port: {free_port()}\n"
    )
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)  # a loaded machine may take long to start; the stop is what is timed
    run = subprocess.Popen(
        [sys.executable, "-m", "firmware_app", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
    )
    try:
        assert listener.recv(1024).decode().startswith("READY=1")  # the live loop is running
    finally:
        listener.close()
    time.sleep(1)
    stopped = time.monotonic()
    run.terminate()
    err = run.communicate(timeout=10)[1]
    assert run.returncode == 0, err
    assert "pipeline finished" in err
    assert_stopped_cleanly(err, time.monotonic() - stopped)


def test_frames_are_tracked_on_arrival_and_shown_only_once_their_mouth_exists():
    """The tracker finds the face while the model still waits for the look-ahead audio; the
    display loop gets a frame only once the mouth model has covered its instant, in order, and
    when it has fallen behind it jumps to the newest and counts the ones jumped over."""
    import threading

    from firmware_app.config import Settings
    from firmware_app.face.tracker import FaceTracker
    from firmware_app.render import Renderer
    from firmware_app.runners.metrics import LiveMetrics
    from firmware_app.runners.steps import FrameStep
    from firmware_app.runners.threads import MAX_BEHIND, CameraThread, TrackerThread
    from firmware_app.sinks import open_sink
    from firmware_app.sources import open_video_source

    settings = Settings()
    metrics, stop, progress = LiveMetrics(), threading.Event(), threading.Event()
    source = open_video_source(f"file://{PORTRAIT}", settings, realtime=True)
    source.open()
    camera = CameraThread(source, metrics, stop, opened=True)
    with FaceTracker(settings.tracker) as tracker:
        frames = FrameStep(tracker, Renderer(settings.renderer, settings.disclosure), open_sink("null://"))
        tracking = TrackerThread(camera, frames, metrics, stop, progress)
        camera.start()
        tracking.start()
        try:
            assert progress.wait(10), "no frame was tracked"
            time.sleep(0.5)  # about 15 frames tracked at 30 fps, none shown yet
            first = tracking.next_due(known_until=0.0, after=-1)
            assert first is None, "a frame was offered before the mouth shape for its instant existed"
            now = time.monotonic()
            newest = tracking.next_due(known_until=now, after=-1)
            assert newest is not None and newest.face is not None
            assert metrics.frames.dropped >= MAX_BEHIND, "the frames jumped over were not counted"
            # caught up: the next one is offered only when it is due, and then in order
            assert tracking.next_due(known_until=newest.captured, after=newest.frame.index) is None
            progress.clear()
            assert progress.wait(10), "no frame was tracked after the newest"  # however busy the machine
            following = tracking.next_due(known_until=newest.captured + 10.0, after=newest.frame.index)
            assert following is not None and following.frame.index > newest.frame.index
            # and not a moment before the mouth model has covered its instant
            assert tracking.next_due(known_until=following.captured - 1e-6, after=newest.frame.index) is None
        finally:
            stop.set()
            tracking.join(2)
            camera.join(2)
            source.close()


@pytest.mark.hardware
@pytest.mark.skipif(not Path("/dev/video0").exists(), reason="no camera at /dev/video0 (runs on the appliance)")
def test_real_camera_delivers_timestamped_frames():
    from firmware_app.config import Settings
    from firmware_app.sources import open_video_source

    with open_video_source("v4l2:///dev/video0", Settings(), realtime=True) as camera:
        frames = [camera.read() for _ in range(10)]
    assert all(f is not None and f.image.shape == (720, 1280, 3) for f in frames)
    assert np.all(np.diff([f.t for f in frames]) > 0)


class SlowStartingMicrophone(AudioFileSource):
    """The bundled speech as a live microphone whose stream, on a busy machine, takes 2.5 s after
    each open to deliver its first block: until then a read waits 1 s and gets nothing, as
    `MicSource.read` does on its empty queue."""

    START_S = 2.5

    def __init__(self) -> None:
        super().__init__(SPEECH, 10, realtime=True)
        self.loop_forever()
        self.opens, self.opened_at = 0, 0.0

    def open(self) -> None:
        super().open()
        self.opens += 1
        self.opened_at = time.monotonic()

    def read(self, wait: bool):
        if time.monotonic() - self.opened_at < self.START_S:
            time.sleep(1.0)
            return None
        return super().read(wait)


def test_a_microphone_slow_to_start_is_waited_for_not_reopened_again_and_again():
    """A (re)opened stream has FIRST_BLOCK_S to deliver its first block. Timed from the last block
    before it (or from nothing at the first open), a stream was dropped after one empty read, and on
    a busy machine the reopen-drop loop never settled (`test_microphone_gone_then_back` under load)."""
    import threading

    from firmware_app.config import ModelSettings
    from firmware_app.mouth import create_mouth_model
    from firmware_app.runners.metrics import LiveMetrics
    from firmware_app.runners.threads import FIRST_BLOCK_S, VoiceThread

    assert SlowStartingMicrophone.START_S < FIRST_BLOCK_S
    source, stop = SlowStartingMicrophone(), threading.Event()
    voice = VoiceThread(source, create_mouth_model(ModelSettings()), None, [], LiveMetrics(), stop)
    voice.start()
    try:
        deadline = time.monotonic() + 30
        while not voice.alive and time.monotonic() < deadline:
            time.sleep(0.1)
        assert voice.alive, "no block arrived"
        time.sleep(1.0)
        assert source.opens == 1, f"opened {source.opens} times"
    finally:
        stop.set()
        voice.join(5)


def test_a_still_puppet_renders_at_the_displays_rate_and_a_camera_at_its_own():
    from firmware_app.config import Settings

    assert Settings().video.puppet_fps == 60 and Settings().video.camera_fps == 30
    chosen = Settings.model_validate({"video": {"fps": 50}}).video
    assert chosen.puppet_fps == chosen.camera_fps == 50  # what the config says, everywhere


@pytest.mark.integration
def test_the_puppet_shows_about_60_frames_a_second_each_with_the_newest_mouth(tmp_path):
    """Puppet mode with a still portrait needs no camera frame: a live run into a file has ~60
    frames for every second of voice (a 30 fps one could have at most 30), frame count, not timing."""
    import cv2

    voice, out = tmp_path / "voice.wav", tmp_path / "puppet.mp4"
    seconds = 4.0
    write_wav(voice, decode_audio(SPEECH)[8000 : 8000 + round(16000 * seconds)])
    config = tmp_path / "config.yaml"
    config.write_text(
        f"mode: puppet\nsources: {{audio: 'file://{voice}', portrait: 'file://{PORTRAIT}'}}\n"
        f"video: {{width: 640, height: 360}}\noutput: {{uri: 'file://{out}'}}\nhealth: {{enabled: false}}\n"
    )
    result = cli("run", "--config", str(config), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    clip = cv2.VideoCapture(str(out))
    rate, frames = clip.get(cv2.CAP_PROP_FPS), clip.get(cv2.CAP_PROP_FRAME_COUNT)
    clip.release()
    assert rate == 60, rate
    assert frames / seconds > 40, (frames, result.stderr[-2000:])  # start-up and a busy CI machine drop some
