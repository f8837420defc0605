"""The live appliance loop: capture, inference and rendering run concurrently.

Threads, not processes: PortAudio's callback, ONNX Runtime, MediaPipe, OpenCV and numpy do their
work in C with the GIL released, so threads overlap on the cores as processes would, while frames
and mouth shapes are shared without copying or serialising them.

    voice thread   microphone → features → mouth model → MouthTrack (+ the passthrough speaker)
    camera thread  camera → only the newest frame is kept (older unrendered ones are skipped)
    main thread    every 1/fps: newest frame → wait (bounded) for the mouth shape of the instant
                   it shows → tracker → renderer → display; a tick missed is dropped, not queued

Both threads put their data on one clock (`time.monotonic()`): a camera frame shows the moment it
arrived, and audio sample time maps to the wall clock through the earliest arrival seen (the
sample clock does not drift; only its start is unknown). Each displayed frame's latency is then
display time minus capture time, measured, and drives the passthrough delay.

Faults are survived where they happen: a camera or microphone that fails is reopened with
backoff (the screen keeps the last good frame, the mouth rests), a display window that closes
is reopened, a mouth model that fails hands over to its fallback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from firmware_app.errors import VentriloquistError
from firmware_app.features import FeatureStream
from firmware_app.frames import HOP_S, AudioBlock, MouthShape, VideoFrame
from firmware_app.mouth import MouthModel
from firmware_app.mouth.track import MouthTrack
from firmware_app.render.disclosure import draw_prompt
from firmware_app.sources import AudioSource, VideoSource

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # waits between reopen attempts; the last one repeats
ORIGIN_WINDOW = 500  # audio blocks (5 s at 10 ms) over which the audio clock's offset is estimated
MAX_BEHIND = 2  # frames due but not shown before the loop skips ahead to the newest
STALL_S = 1.5
MAX_FRAME_FAILURES = 100  # frames in a row that fail to render before the loop gives up  # no camera frame or microphone block for this long: the device is treated as gone


@dataclass
class LiveMetrics:
    """What the loop knows about itself: read by /metrics, the soak and the latency bench."""

    frames: int = 0
    dropped_frames: int = 0  # output ticks missed because the loop was behind
    camera_frames_skipped: int = 0  # captured frames replaced by a newer one before rendering
    restarts: dict[str, int] = field(default_factory=lambda: {"camera": 0, "microphone": 0, "display": 0, "model": 0})
    stage_ms: dict[str, float] = field(default_factory=dict)  # moving averages
    av_offset_ms: float = 0.0  # passthrough sound minus picture (+ = sound late)
    face_present: bool = False
    backend: str = ""
    audio_origin: float | None = None  # wall time of audio t = 0
    last_frame_at: float = 0.0
    last_activity_at: float = field(default_factory=time.monotonic)  # a face in view or a voice heard
    started_at: float = field(default_factory=time.monotonic)
    recent_latencies: deque = field(default_factory=lambda: deque(maxlen=300))
    frame_log: deque = field(default_factory=lambda: deque(maxlen=3000))  # (shown at, audio t, aperture, captured at): 100 s

    def stage(self, name: str, ms: float) -> None:
        previous = self.stage_ms.get(name)
        self.stage_ms[name] = ms if previous is None else previous + 0.05 * (ms - previous)

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started_at
        return self.frames / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        stages = " ".join(f"{name}={ms:.2f}ms" for name, ms in self.stage_ms.items())
        return (
            f"frames={self.frames} fps={self.fps:.1f} dropped={self.dropped_frames} "
            f"camera_skipped={self.camera_frames_skipped} latency={self.median_latency_ms():.0f}ms "
            f"av_offset={self.av_offset_ms:.0f}ms restarts={self.restarts} per-frame: {stages}"
        )

    def median_latency_ms(self) -> float:
        return float(np.median(self.recent_latencies)) if self.recent_latencies else 0.0


def reopen_forever(name: str, resource, stop: threading.Event, metrics: LiveMetrics, first: bool) -> bool:
    """Open `resource`, retrying with backoff until it opens or `stop` is set."""
    attempt = 0
    while not stop.is_set():
        try:
            resource.open()
            if not first:
                log.info("%s is back", name)
            return True
        except VentriloquistError as exc:
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            log.warning("%s unavailable (%s); retrying in %.1f s", name, exc.cause, wait)
            attempt += 1
            metrics.restarts[name] += 1
            stop.wait(wait)
    return False


class VoiceThread(threading.Thread):
    """Microphone → mouth shapes, on the audio's own clock mapped to the wall clock."""

    def __init__(self, source: AudioSource, model: MouthModel, fallback: Callable[[], MouthModel] | None,
                 outputs: list[Callable[[AudioBlock], None]], metrics: LiveMetrics, stop: threading.Event, loop: bool = False,
                 opened: bool = False) -> None:
        super().__init__(name="voice", daemon=True)
        self.loop = loop
        self._already_open = opened
        self.source, self.model, self.fallback = source, model, fallback
        self.outputs, self.metrics, self.stop = outputs, metrics, stop
        self.track = MouthTrack()
        self.lock = threading.Lock()
        self.origin: float | None = None  # wall time of audio t = 0
        self._lateness: deque[float] = deque(maxlen=ORIGIN_WINDOW)  # arrival minus end, per block
        self.last_block_at = 0.0
        self.alive = False  # blocks are arriving
        self.ended = threading.Event()  # a speech file (not a microphone) has been played to its end

    def run(self) -> None:
        first = True
        while not self.stop.is_set() and not self.ended.is_set():
            if not self._already_open and not reopen_forever("microphone", self.source, self.stop, self.metrics, first):
                return
            first, self._already_open = False, False
            self._listen()
            self.source.close()
            self.alive = False

    def _listen(self) -> None:
        features = FeatureStream()
        self.model.reset()
        offset = None  # audio t of this stream's start on the voice's continuous clock
        while not self.stop.is_set():
            try:
                block = self.source.read(wait=True)
            except VentriloquistError as exc:
                log.warning("microphone failed: %s", exc.cause)
                return
            now = time.monotonic()
            if block is None:
                if self.source.finished and self.source.duration is not None:
                    if self.loop:
                        return  # reopened from the start, on the same clock
                    self._finish(features)
                    return
                if self.source.finished or now - self.last_block_at > STALL_S:
                    log.warning("microphone delivers nothing; reopening")
                    return
                continue
            if offset is None:  # a reopened stream restarts at t = 0: continue the clock instead
                offset = 0.0 if self.origin is None else now - block.duration - self.origin
            block = AudioBlock(block.samples, block.t + offset)
            # the block that arrived soonest after it ended shows the clock offset best; a window
            # (not all time) lets the estimate follow a sound card whose clock drifts either way
            self._lateness.append(now - block.t_end)
            self.origin = min(self._lateness)
            self.metrics.audio_origin = self.origin
            self.last_block_at, self.alive = now, True
            for output in self.outputs:
                output(block)
            self._infer(features, block)

    def _finish(self, features: FeatureStream) -> None:
        """A speech file ended: its last shapes (the look-ahead's worth) come from silence."""
        with self.lock:
            self.track.extend(self.model.flush())
        self.ended.set()

    def _infer(self, features: FeatureStream, block: AudioBlock) -> None:
        started = time.perf_counter()
        rows = features.push(block)
        try:
            shapes = self.model.push(rows)
        except Exception as exc:  # noqa: BLE001 - any inference failure: hand over, keep talking
            if self.fallback is None:
                raise
            log.error("mouth model %s failed (%s); falling back", self.model.name, exc)
            self.model, self.fallback = self.fallback(), None
            self.metrics.restarts["model"] += 1
            self.metrics.backend = self.model.name
            self.model.reset()
            return
        with self.lock:
            self.track.extend(shapes)
        self.metrics.stage("voice", (time.perf_counter() - started) * 1000)

    def audio_time(self, wall: float) -> float | None:
        return None if self.origin is None else wall - self.origin

    def known_until(self) -> float | None:
        """Wall time up to which mouth shapes exist (None while no voice arrives)."""
        if self.origin is None or not self.alive:
            return None
        with self.lock:
            return self.origin + self.track.covered_until - HOP_S

    def shape_at(self, t: float) -> MouthShape:
        """The shape at audio time t (the newest one if t is not covered yet); with no voice
        arriving the mouth rests."""
        if not self.alive:
            return MouthShape(t, {"jawOpen": 0.0, "mouthClose": 0.0})
        with self.lock:
            return self.track.at(t)


class CameraThread(threading.Thread):
    """Keeps the last half second of frames with the wall time each arrived; reopens a failed or
    stalled camera. The render loop takes the newest frame whose mouth shape is already known."""

    def __init__(self, source: VideoSource, metrics: LiveMetrics, stop: threading.Event, opened: bool = False) -> None:
        super().__init__(name="camera", daemon=True)
        self.source, self.metrics, self.stop = source, metrics, stop
        self._already_open = opened
        self._recent: deque[tuple[VideoFrame, float]] = deque(maxlen=16)
        self._lock = threading.Lock()
        self._index = 0
        self.last_frame_at = 0.0

    def run(self) -> None:
        first = True
        while not self.stop.is_set():
            if not self._already_open and not reopen_forever("camera", self.source, self.stop, self.metrics, first):
                return
            first, self._already_open = False, False
            self._capture()
            self.source.close()

    def _capture(self) -> None:
        while not self.stop.is_set():
            try:
                frame = self.source.read()
            except VentriloquistError as exc:
                log.warning("camera failed: %s", exc.cause)
                return
            if frame is None:
                log.warning("camera delivered no frame; reopening")
                return
            now = time.monotonic()
            with self._lock:
                self._recent.append((VideoFrame(frame.image, frame.t, self._index, frame.still), now))
                self._index += 1
            self.last_frame_at = now

    def latest(self, captured_by: float | None = None, after: int = -1) -> tuple[VideoFrame, float] | None:
        """The frame to show next: the one after frame `after` if it arrived by `captured_by` (any
        time if None), jumping to the newest such frame when more than MAX_BEHIND are waiting;
        the newest one shown again when nothing new is due."""
        with self._lock:
            if not self._recent:
                return None
            due = [item for item in self._recent if captured_by is None or item[1] <= captured_by]
            if not due:
                return self._recent[0]
            waiting = [item for item in due if item[0].index > after]
            if not waiting:
                return due[-1]
            return waiting[-1] if len(waiting) > MAX_BEHIND else waiting[0]

    @property
    def stalled(self) -> bool:
        return self.last_frame_at > 0 and time.monotonic() - self.last_frame_at > STALL_S


class NewestFrame(VideoSource):
    """A live video source read without blocking: the newest frame not yet taken, else None.
    Puppet mode reads the performer camera through it, so a slow camera never holds up a frame."""

    live = True

    def __init__(self, source: VideoSource, metrics: LiveMetrics, stop: threading.Event) -> None:
        self.thread = CameraThread(source, metrics, stop)
        self.fps = source.fps
        self._taken: int | None = None

    def open(self) -> None:
        self.thread.start()

    def read(self) -> VideoFrame | None:
        latest = self.thread.latest()
        if latest is None or latest[0].index == self._taken:
            return None
        self._taken = latest[0].index
        return latest[0]

    def close(self) -> None:
        """The thread stops with the loop's stop event."""


def run_live(pipeline, stop: threading.Event, reload: threading.Event, metrics: LiveMetrics) -> LiveMetrics:
    """The appliance: runs until `stop` or `reload` is set. See the module docstring."""
    from contextlib import ExitStack

    from firmware_app.sdnotify import Notifier

    p = pipeline
    halt = threading.Event()  # stops this run's threads (on stop or reload)
    notifier = Notifier()
    metrics.backend = p.model.name
    # Camera and microphone open here first: a device missing at start-up is an error the operator
    # sees (with no camera `run` shows the demo instead); one lost later is reopened by its thread.
    p.video_source.open()
    camera = CameraThread(p.video_source, metrics, halt, opened=True)
    outputs: list[Callable[[AudioBlock], None]] = list(p.audio_taps)
    with ExitStack() as stack:
        stack.callback(halt.set)
        stack.callback(p.video_source.close)
        p.voice_source.open()
        stack.callback(p.voice_source.close)
        if p.passthrough is not None:
            stack.enter_context(p.passthrough)
            outputs.append(p.passthrough.write)
        voice = VoiceThread(p.voice_source, p.model, p.fallback, outputs, metrics, halt, loop=p.loop_audio, opened=True)
        stack.enter_context(p.tracker)
        if p.puppeteer is not None:
            if p.puppeteer.camera is not None:
                p.puppeteer.camera = NewestFrame(p.puppeteer.camera, metrics, halt)
            stack.enter_context(p.puppeteer)
        sink = stack.enter_context(p.sink)
        # no screen at start-up is an error the operator must see (systemd retries the unit);
        # a window lost later is reopened in the loop
        sink.open(*p.size, p.fps)
        tracking = TrackerThread(camera, voice, p.tracker, metrics, halt)
        camera.start()
        voice.start()
        tracking.start()
        _render_loop(p, tracking, voice, sink, metrics, notifier, stop, reload)
        halt.set()
        tracking.join(timeout=1.0)  # before the tracker closes
    camera.join(timeout=1.0)
    voice.join(timeout=1.0)
    log.info("pipeline finished: %s", metrics.summary())
    return metrics


class _SinkOpener:
    """`reopen_forever` takes anything with open(); a sink opens with its size and rate."""

    def __init__(self, sink, size: tuple[int, int], fps: float) -> None:
        self.sink, self.size, self.fps = sink, size, fps

    def open(self) -> None:
        self.sink.open(*self.size, self.fps)


class TrackerThread(threading.Thread):
    """Tracks the next due camera frame while the main thread renders the previous one, so
    tracking and rendering share the frame time instead of adding up."""

    def __init__(self, camera: CameraThread, voice: VoiceThread, tracker, metrics: LiveMetrics, stop: threading.Event) -> None:
        super().__init__(name="tracker", daemon=True)
        self.camera, self.voice, self.tracker, self.metrics, self.stop = camera, voice, tracker, metrics, stop
        self._tracked: tuple[VideoFrame, float, object] | None = None
        self._lock = threading.Lock()
        self.fresh = threading.Event()  # a newly tracked frame waits to be shown

    def run(self) -> None:
        last = -1
        while not self.stop.is_set():
            item = self.camera.latest(self.voice.known_until(), after=last)
            if item is None or item[0].index == last:
                self.stop.wait(0.002)
                continue
            frame, captured = item
            if last >= 0 and frame.index > last + 1:
                self.metrics.camera_frames_skipped += frame.index - last - 1
            last = frame.index
            started = time.perf_counter()
            face = self.tracker.track(frame)
            self.metrics.stage("tracker", (time.perf_counter() - started) * 1000)
            with self._lock:
                if self.fresh.is_set():
                    self.metrics.dropped_frames += 1  # tracked but replaced before it was shown
                self._tracked = (frame, captured, face)
                self.fresh.set()

    def latest(self) -> tuple[VideoFrame, float, object] | None:
        with self._lock:
            self.fresh.clear()
            return self._tracked


def _render_loop(p, tracking: TrackerThread, voice: VoiceThread, sink, metrics: LiveMetrics, notifier, stop, reload) -> None:
    """Shows each tracked frame as soon as it is ready (every frame was picked because the mouth
    model had already covered its instant, so nothing waits and each gets its own mouth shape).
    With no new frame within a frame period (a stalled camera, a still portrait) the last one is
    shown again, so the mouth keeps moving and the watchdog keeps being fed."""
    period = 1.0 / p.fps
    failures = 0
    while not (stop.is_set() or reload.is_set() or voice.ended.is_set()):
        tracking.fresh.wait(1.5 * period)
        latest = tracking.latest()
        if latest is None:
            continue
        frame, captured, face = latest
        try:
            _show(p, frame, captured, face, voice, sink, metrics)
        except Exception:  # noqa: BLE001 - one bad frame must not darken the kiosk
            failures += 1
            log.exception("frame %d failed (%d in a row)", frame.index, failures)
            if failures >= MAX_FRAME_FAILURES:
                raise  # a persistent fault: let systemd restart the service
            continue
        failures = 0
        notifier.frame_shown()
        if sink.closed_by_user:
            log.warning("the display window was closed; reopening it")
            sink.close()
            metrics.restarts["display"] += 1
            reopen_forever("display", _SinkOpener(sink, p.size, p.fps), stop, metrics, first=False)


def _show(p, frame: VideoFrame, captured: float, face, voice: VoiceThread, sink, metrics: LiveMetrics) -> None:
    t_audio = voice.audio_time(captured)
    started = time.perf_counter()
    shape = voice.shape_at(t_audio) if t_audio is not None else MouthShape(0.0, {})
    controls = p.puppeteer.controls(frame.t, shape) if p.puppeteer is not None else None
    image = p.renderer.render(frame, face, shape, controls)
    now = time.monotonic()
    if face is not None or shape.aperture > 0.1:
        metrics.last_activity_at = now
    if p.idle is not None and p.idle.prompt and now - metrics.last_activity_at > p.idle.prompt_after_s:
        draw_prompt(image, p.idle.prompt)  # nobody there: invite the next visitor
    rendered = time.perf_counter()
    sink.write_video(VideoFrame(image, frame.t, frame.index))
    shown = time.monotonic()
    metrics.stage("renderer", (rendered - started) * 1000)
    metrics.stage("display", (time.perf_counter() - rendered) * 1000)
    latency = (shown - captured) * 1000
    metrics.recent_latencies.append(latency)
    metrics.frames += 1
    metrics.face_present = face is not None
    metrics.last_frame_at = shown
    metrics.frame_log.append((shown, t_audio if t_audio is not None else float("nan"), shape.aperture, captured))
    if p.passthrough is not None:
        # a sound between two frames shows in the next one: half a frame later on average
        p.passthrough.follow_latency(metrics.median_latency_ms() / 1000 + 0.5 / p.fps)
        metrics.av_offset_ms = p.passthrough.play_delay_s * 1000 - metrics.median_latency_ms()
