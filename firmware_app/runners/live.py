"""The live appliance loop: capture, inference and rendering run concurrently.

Threads, not processes: PortAudio's callback, ONNX Runtime, MediaPipe, OpenCV and numpy do their
work in C with the GIL released, so threads overlap on the cores as processes would, while frames
and mouth shapes are shared without copying or serialising them.

    voice thread    microphone → passthrough ring → features → mouth model → MouthTrack; it
                    runs real-time (or at a lower nice level) where allowed (`priority.py`), so
                    when the cores are busy frames drop, not the voice. The video threads keep
                    the normal level: one holding the GIL must not be starved while holding it
    camera thread   camera → the last half second of frames, each stamped with its arrival
    tracker thread  each new frame → face landmarks, while the model still waits for the
                    look-ahead audio of that frame's instant (so tracking costs no latency)
    main thread     the next tracked frame whose instant the mouth model has covered → renderer
                    → display; when more are due than MAX_BEHIND it jumps to the newest (the ones
                    jumped over are dropped and counted, never queued)

All threads put their data on one clock (`time.monotonic()`): a camera frame shows the moment it
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
from prometheus_client import Histogram

from firmware_app.errors import VentriloquistError
from firmware_app.audio.features import FeatureStream
from firmware_app.frames import HOP_S, AudioBlock, MouthShape, VideoFrame
from firmware_app.platform.memory import check_memory, resident_mb
from firmware_app.mouth import MouthModel
from firmware_app.mouth.track import MouthTrack
from firmware_app.platform.priority import VOICE_RT_PRIORITY, make_this_thread_realtime, start_up_objects_frozen
from firmware_app.render.disclosure import draw_prompt
from firmware_app.sources import AudioSource, VideoSource

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # waits between reopen attempts; the last one repeats
ORIGIN_WINDOW = 500  # audio blocks (5 s at 10 ms) over which the audio clock's offset is estimated
MAX_BEHIND = 2  # frames due but not shown before the loop skips ahead to the newest
STALL_S = 1.5  # no camera frame or microphone block for this long: the device is treated as gone
FIRST_BLOCK_S = 5.0  # a (re)opened microphone's first block may take this long: a busy machine starts it slowly
MAX_FRAME_FAILURES = 100  # frames in a row that fail to render before the loop gives up
MEMORY_CHECK_S = 5.0
SYNC_WINDOW_S = 0.5  # the A/V offset is measured over this much of the latest picture (see _show)
MAX_HOLD_S = 0.3  # the most the picture waits for a late voice (the tracker keeps 16 frames: 0.5 s at 30 fps)
VOICE_NICE = -5  # relative to the process: the voice thread where real-time is not allowed
LATENCY_BUCKETS_MS = (25, 50, 75, 100, 125, 150, 200, 300, 500, 1000)
STAGE_BUCKETS_MS = (0.5, 1, 2, 5, 10, 15, 20, 30, 50, 100)


def _histogram(name: str, help_text: str, buckets: tuple, labels: tuple[str, ...] = ()) -> Histogram:
    """A prometheus-client histogram owned by one run's metrics (registry=None: /metrics collects it
    from the LiveMetrics in use, so a reload starts it afresh like every other counter)."""
    return Histogram(name, help_text, labels, buckets=buckets, registry=None)


@dataclass
class LiveMetrics:
    """What the loop knows about itself: read by /metrics, the soak and the latency bench."""

    frames: int = 0
    dropped_frames: int = 0  # output ticks missed because the loop was behind
    camera_frames_skipped: int = 0  # captured frames replaced by a newer one before rendering
    frames_repeated: int = 0  # the last frame shown again (new mouth) because no new one was due
    camera_frames: int = 0  # frames the camera delivered
    frames_unshown: int = 0  # delivered, never shown nor counted above: left in hand when the loop stopped
    restarts: dict[str, int] = field(default_factory=lambda: {"camera": 0, "microphone": 0, "display": 0, "model": 0})
    stage_ms: dict[str, float] = field(default_factory=dict)  # moving averages
    av_offset_ms: float = 0.0  # passthrough sound minus picture (+ = sound late)
    face_present: bool = False
    backend: str = ""
    audio_origin: float | None = None  # wall time of audio t = 0
    last_frame_at: float = 0.0
    resident_mb: float = 0.0  # read every MEMORY_CHECK_S
    last_activity_at: float = field(default_factory=time.monotonic)  # a face in view or a voice heard
    started_at: float = field(default_factory=time.monotonic)
    recent_latencies: deque = field(default_factory=lambda: deque(maxlen=300))
    frame_log: deque = field(default_factory=lambda: deque(maxlen=3000))  # (shown at, audio t, aperture, captured at): 100 s
    passthrough_delay_ms: float = 0.0  # capture of a voice sample to its sound leaving the device
    shown_image: np.ndarray | None = None  # the frame on the screen now (memory only: the console's preview)
    latency_histogram: Histogram = field(default_factory=lambda: _histogram(
        "ventriloquist_frame_latency_milliseconds", "capture to display of each frame shown", LATENCY_BUCKETS_MS))
    stage_histogram: Histogram = field(default_factory=lambda: _histogram(
        "ventriloquist_stage_duration_milliseconds", "time of each stage, per frame or audio block", STAGE_BUCKETS_MS, ("stage",)))

    def stage(self, name: str, ms: float) -> None:
        previous = self.stage_ms.get(name)
        self.stage_ms[name] = ms if previous is None else previous + 0.05 * (ms - previous)
        self.stage_histogram.labels(name).observe(ms)

    def latency(self, ms: float) -> None:
        self.recent_latencies.append(ms)
        self.latency_histogram.observe(ms)

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started_at
        return self.frames / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        stages = " ".join(f"{name}={ms:.2f}ms" for name, ms in self.stage_ms.items())
        return (
            f"frames={self.frames} fps={self.fps:.1f} dropped={self.dropped_frames} "
            f"camera_skipped={self.camera_frames_skipped} repeated={self.frames_repeated} "
            f"captured={self.camera_frames} unshown={self.frames_unshown} latency={self.median_latency_ms():.0f}ms "
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


def release_model(model: MouthModel) -> None:
    """Free what a replaced model holds (a TensorRT backend's GPU memory, which on a Jetson is system
    memory) now, not at exit; a close that fails only costs a log line."""
    backend = getattr(model, "backend", None)  # MouthModel has no close(); the learned model's backend does
    if backend is None:
        return
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001 - the handover must go on
        log.warning("closing the failed mouth model %s: %s", model.name, exc)


class VoiceThread(threading.Thread):
    """Microphone → mouth shapes, on the audio's own clock mapped to the wall clock."""

    def __init__(self, source: AudioSource, model: MouthModel, fallback: Callable[[], MouthModel] | None,
                 outputs: list[Callable[[AudioBlock], None]], metrics: LiveMetrics, stop: threading.Event,
                 opened: bool = False, progress: threading.Event | None = None) -> None:
        super().__init__(name="voice", daemon=True)
        self.progress = progress or threading.Event()  # set whenever new mouth shapes exist
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
        got = make_this_thread_realtime(VOICE_NICE, VOICE_RT_PRIORITY)  # the voice comes first when the cores are busy
        log.debug("voice thread: %s", got)
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
        self.source.skip_backlog()
        offset = None  # audio t of this stream's start on the voice's continuous clock
        listening_since = time.monotonic()
        while not self.stop.is_set():
            try:
                block = self.source.read(wait=True)
            except VentriloquistError as exc:
                log.warning("microphone failed: %s", exc.cause)
                return
            now = time.monotonic()
            if block is None:
                if self.source.finished and self.source.duration is not None:
                    self._finish(features)
                    return
                # silence is timed from this stream's own start until it delivers: from the old
                # stream's last block, a reopened one was dropped after one read timeout, before a
                # busy machine had started it, and the reopen-drop loop never settled
                silent_s = now - self.last_block_at if offset is not None else now - listening_since
                if self.source.finished or silent_s > (STALL_S if offset is not None else FIRST_BLOCK_S):
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
            failed, self.model, self.fallback = self.model, self.fallback(), None
            release_model(failed)
            self.metrics.restarts["model"] += 1
            self.metrics.backend = self.model.name
            self.model.reset()
            return
        with self.lock:
            self.track.extend(shapes)
        self.progress.set()
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
        self.delivered = 0  # frames this thread has delivered: the next one's index
        self.last_frame_at = 0.0
        self.arrived = threading.Event()  # set whenever a new frame is kept

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
                self._recent.append((VideoFrame(frame.image, frame.t, self.delivered, frame.still), now))
                self.delivered += 1
                self.metrics.camera_frames += 1
            self.last_frame_at = now
            self.arrived.set()

    def next_after(self, after: int) -> tuple[VideoFrame, float] | None:
        """The frame to process after frame `after`: the next one, or the newest when more than
        MAX_BEHIND are waiting (a slow consumer skips ahead rather than falling further behind)."""
        with self._lock:
            waiting = [item for item in self._recent if item[0].index > after]
        if not waiting:
            return None
        return waiting[-1] if len(waiting) > MAX_BEHIND else waiting[0]

    def newest(self) -> tuple[VideoFrame, float] | None:
        with self._lock:
            return self._recent[-1] if self._recent else None

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
        latest = self.thread.newest()
        if latest is None or latest[0].index == self._taken:
            return None
        self._taken = latest[0].index
        return latest[0]

    def close(self) -> None:
        """The thread stops with the loop's stop event."""


def run_live(pipeline, stop: threading.Event, reload: threading.Event, metrics: LiveMetrics) -> LiveMetrics:
    """The appliance: runs until `stop` or `reload` is set. See the module docstring."""
    from contextlib import ExitStack

    from firmware_app.platform.sdnotify import Notifier

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
        if p.loop_audio:
            p.voice_source.loop_forever()
        p.voice_source.open()
        stack.callback(p.voice_source.close)
        progress = threading.Event()  # new mouth shapes or a newly tracked frame: the render loop looks
        voice = VoiceThread(p.voice_source, p.model, p.fallback, outputs, metrics, halt, opened=True, progress=progress)
        stack.enter_context(p.tracker)
        if p.puppeteer is not None:
            if p.puppeteer.camera is not None:
                p.puppeteer.camera = NewestFrame(p.puppeteer.camera, metrics, halt)
            stack.enter_context(p.puppeteer)
        sink = stack.enter_context(p.sink)
        # no screen at start-up is an error the operator must see (systemd retries the unit);
        # a window lost later is reopened in the loop
        sink.open(*p.size, p.fps)
        if p.passthrough is not None:  # last: the slow start-up above would starve its device
            stack.enter_context(p.passthrough)
            outputs.append(p.passthrough.write)
        tracking = TrackerThread(camera, p.tracker, metrics, halt, progress)
        stack.enter_context(start_up_objects_frozen())
        camera.start()
        voice.start()
        tracking.start()
        try:
            _render_loop(p, tracking, voice, sink, metrics, notifier, stop, reload)
        finally:  # also when the loop gives up: the tracker thread must finish before its tracker closes
            halt.set()
            tracking.join(timeout=1.0)
    camera.join(timeout=1.0)
    tracking.count_unshown()  # once the camera has stopped too: it may deliver one more frame
    voice.join(timeout=1.0)
    log.info("pipeline finished: %s", metrics.summary())
    return metrics


class _SinkOpener:
    """`reopen_forever` takes anything with open(); a sink opens with its size and rate."""

    def __init__(self, sink, size: tuple[int, int], fps: float) -> None:
        self.sink, self.size, self.fps = sink, size, fps

    def open(self) -> None:
        self.sink.open(*self.size, self.fps)


@dataclass
class Tracked:
    frame: VideoFrame
    captured: float  # wall time the frame arrived: the instant it shows
    face: object


class TrackerThread(threading.Thread):
    """Tracks each camera frame as soon as it arrives. Its mouth shape cannot exist before the
    model has heard LOOK-AHEAD more audio, so tracking runs during that wait instead of after it
    and adds nothing to the latency."""

    def __init__(self, camera: CameraThread, tracker, metrics: LiveMetrics, stop: threading.Event, progress: threading.Event) -> None:
        super().__init__(name="tracker", daemon=True)
        self.camera, self.tracker, self.metrics, self.stop = camera, tracker, metrics, stop
        self.progress = progress  # set whenever a newly tracked frame is ready
        self._ready: deque[Tracked] = deque(maxlen=16)  # room for the picture to wait for a late voice (MAX_HOLD_S)
        self._lock = threading.Lock()
        self._last_tracked = -1
        self._shown_up_to = -1  # the newest frame index the render loop has asked past

    def run(self) -> None:
        while not self.stop.is_set():
            self.camera.arrived.clear()
            last = self._last_tracked
            item = self.camera.next_after(last)
            if item is None:
                self.camera.arrived.wait(0.1)
                continue
            frame, captured = item
            if frame.index > last + 1:
                self.metrics.camera_frames_skipped += frame.index - last - 1
            self._last_tracked = frame.index
            started = time.perf_counter()
            face = self.tracker.track(frame)
            self.metrics.stage("tracker", (time.perf_counter() - started) * 1000)
            with self._lock:
                if len(self._ready) == self._ready.maxlen and self._ready[0].frame.index > self._shown_up_to:
                    self.metrics.dropped_frames += 1  # pushed out unshown: the loop is that far behind
                self._ready.append(Tracked(frame, captured, face))
            self.progress.set()

    def count_unshown(self) -> None:
        """When the loop has stopped: the frames delivered that were neither shown nor counted as
        dropped or skipped (tracked and waiting, or not yet tracked), so every frame is accounted."""
        with self._lock:
            waiting = sum(1 for t in self._ready if t.frame.index > self._shown_up_to)
        self.metrics.frames_unshown += waiting + max(0, self.camera.delivered - 1 - self._last_tracked)

    def newest_captured(self) -> float | None:
        """When the newest tracked frame arrived (None before the first)."""
        with self._lock:
            return self._ready[-1].captured if self._ready else None

    def next_due(self, known_until: float | None, after: int) -> Tracked | None:
        """The tracked frame to show after frame `after`: the next one whose instant the mouth
        model has covered (any, while no voice arrives), or the newest such one when more than
        MAX_BEHIND are due; the ones jumped over count as dropped."""
        with self._lock:
            due = [t for t in self._ready if t.frame.index > after and (known_until is None or t.captured <= known_until)]
            chosen = due[-1] if len(due) > MAX_BEHIND else due[0] if due else None
            if chosen is not None:  # shown next; what it jumps over is counted as dropped here
                self._shown_up_to = max(self._shown_up_to, chosen.frame.index)
        if len(due) > MAX_BEHIND:
            self.metrics.dropped_frames += len(due) - 1
        return chosen


def _render_loop(p, tracking: TrackerThread, voice: VoiceThread, sink, metrics: LiveMetrics, notifier, stop, reload) -> None:
    """Shows each tracked frame as soon as the mouth model has covered its instant, so every frame
    gets the mouth shape of the moment it shows, with nothing queued. With no new frame within
    1.5 frame periods (a stalled camera) the last one is shown again with the newest mouth
    shape, so the mouth keeps moving and the watchdog keeps being fed."""
    period = 1.0 / p.fps
    failures, last, last_shown_at = 0, None, time.monotonic()
    memory_checked_at = 0.0
    hold = PictureHold()
    while not (stop.is_set() or reload.is_set() or voice.ended.is_set()):
        if time.monotonic() - memory_checked_at > MEMORY_CHECK_S:
            memory_checked_at = time.monotonic()
            metrics.resident_mb = resident_mb()
            check_memory(p.restart_above_mb, metrics.resident_mb, metrics.last_activity_at)
        voice.progress.clear()
        known_until = hold.shown_until(p, voice, tracking, metrics)
        item = tracking.next_due(known_until, after=last.frame.index if last is not None else -1)
        if item is None:
            overdue_in = last_shown_at + 1.5 * period - time.monotonic()
            if last is None or overdue_in > 0:
                voice.progress.wait(overdue_in if last is not None else 0.1)
                continue
            item = Tracked(last.frame, known_until if known_until is not None else time.monotonic(), last.face)
            metrics.frames_repeated += 1
        try:
            _show(p, item.frame, item.captured, item.face, voice, sink, metrics, hold)
        except Exception:  # noqa: BLE001 - one bad frame must not darken the kiosk
            failures += 1
            log.exception("frame %d failed (%d in a row)", item.frame.index, failures)
            if failures >= MAX_FRAME_FAILURES:
                raise  # a persistent fault: let systemd restart the service
            continue
        failures, last, last_shown_at = 0, item, time.monotonic()
        notifier.frame_shown()
        if sink.closed_by_user:
            log.warning("the display window was closed; reopening it")
            sink.close()
            metrics.restarts["display"] += 1
            reopen_forever("display", _SinkOpener(sink, p.size, p.fps), stop, metrics, first=False)


class PictureHold:
    """Keeps a passthrough voice and the picture together. The voice's delay follows the
    picture's natural delay (what it would be without waiting: the mouth model's and the
    tracker's lag, then rendering and display), never below its floor (passthrough.py). When the
    voice plays later than that (its device buffer, a starved voice thread), frames wait: a frame
    is chosen only once it is old enough that, rendered and shown, it lands with its sound.

    The wait is set each frame from the voice's measured play delay and the measured render and
    display time, neither of which the wait itself moves: a wait steered by the picture's own
    latency sees its effect a median window late and swings between nothing and MAX_HOLD_S. A
    slow correction from the measured A/V offset takes what the estimate misses."""

    SMOOTH = 0.1  # of the way to the wanted wait, per look: a few frames, so no jump is seen
    BIAS_GAIN = 0.002  # of the remaining A/V offset, per look (~15 s): what the estimate misses
    RECENT = 90  # frames whose medians are the picture's recent delays (3 s at 30 fps)

    def __init__(self) -> None:
        self.hold_s = 0.0
        self.bias_s = 0.0
        self._lag_s = 0.0  # at the last look: now minus the newest instant an unheld frame could show
        self._lags: deque[float] = deque(maxlen=self.RECENT)
        self._finishes: deque[float] = deque(maxlen=self.RECENT)  # from a frame's choice to its display
        self._shown_at: deque[float] = deque(maxlen=self.RECENT)

    def shown_until(self, p, voice: VoiceThread, tracking: TrackerThread, metrics: LiveMetrics) -> float | None:
        """Frames captured up to this wall time may be shown: the mouth model has covered them
        and, with the voice late, the picture has waited for it."""
        known_until = voice.known_until()
        line = p.passthrough
        if line is None or not line.follow or known_until is None:  # (None: no voice to wait for)
            return known_until
        now = time.monotonic()
        newest = tracking.newest_captured()
        self._lag_s = max(0.0, now - min(known_until, newest if newest is not None else known_until))
        if self._finishes:
            miss_ms = metrics.av_offset_ms - 1000 * line.trim_s  # the offset asked for is the trim
            if abs(miss_ms) < 80:  # steady running only: a start-up or a stall is not a bias
                self.bias_s = float(np.clip(self.bias_s + self.BIAS_GAIN * miss_ms / 1000, -0.05, 0.05))
            latency_s = line.play_delay_s - line.trim_s - self.half_frame_s(p.fps) + self.bias_s  # what lands with the sound
            wanted = float(np.clip(latency_s - float(np.median(self._finishes)), 0.0, MAX_HOLD_S))
            self.hold_s += self.SMOOTH * (wanted - self.hold_s)
        if self.hold_s <= 0.001:
            return known_until
        return min(known_until, now - self.hold_s)

    def shown(self, chosen_at: float, shown_at: float) -> None:
        self._lags.append(self._lag_s)
        self._finishes.append(shown_at - chosen_at)
        self._shown_at.append(shown_at)

    def half_frame_s(self, fps: float) -> float:
        """Half the time a frame stays on screen: a sound between two frames shows in the next
        one, this much later on average. Measured over the recent frames, not taken from the
        configured rate: on a machine too busy for it, frames stay up longer (at 8 fps, 60 ms
        where 30 fps would give 17) and the voice must be that much later to land with them."""
        if len(self._shown_at) < 2:
            return 0.5 / fps
        interval = (self._shown_at[-1] - self._shown_at[0]) / (len(self._shown_at) - 1)
        return 0.5 * max(interval, 1.0 / fps)

    def natural_delay_s(self, fps: float) -> float:
        """The picture's delay had it not waited, as sync counts it (a sound between two frames
        shows in the next one: half a frame later on average)."""
        if not self._finishes:
            return 0.0
        return float(np.median(self._lags) + np.median(self._finishes)) + self.half_frame_s(fps)


def _show(p, frame: VideoFrame, captured: float, face, voice: VoiceThread, sink, metrics: LiveMetrics, hold: PictureHold) -> None:
    chosen_at = time.monotonic()
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
    metrics.latency(latency)
    metrics.shown_image = image
    metrics.frames += 1
    metrics.face_present = face is not None
    metrics.last_frame_at = shown
    metrics.frame_log.append((shown, t_audio if t_audio is not None else float("nan"), shape.aperture, captured))
    if p.passthrough is not None:
        hold.shown(chosen_at, shown)
        # the voice follows the picture as it would be without waiting for the voice (else the two
        # would chase each other upwards); the picture's wait follows the voice
        p.passthrough.follow_latency(hold.natural_delay_s(p.fps))
        # over the last half second: long enough to smooth the frames' jitter, short enough that a
        # move of the voice's delay, which the picture's wait follows within a few frames, is not
        # reported as an offset for seconds
        recent = list(metrics.recent_latencies)[-round(SYNC_WINDOW_S * p.fps) :]
        picture_delay_s = float(np.median(recent)) / 1000 + hold.half_frame_s(p.fps)  # as natural_delay_s counts it
        metrics.av_offset_ms = (p.passthrough.play_delay_s - picture_delay_s) * 1000
        metrics.passthrough_delay_ms = p.passthrough.play_delay_s * 1000
