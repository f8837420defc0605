"""The live appliance loop: capture, inference and rendering run concurrently.

Threads, not processes: PortAudio's callback, ONNX Runtime, MediaPipe, OpenCV and numpy do their
work in C with the GIL released, so threads overlap on the cores as processes would, while frames
and mouth shapes are shared without copying or serialising them.

    voice, camera and tracker threads (`runners.threads`): the microphone heard into mouth shapes,
                    the last half second of frames, each tracked while its mouth shape is awaited
    main thread     the next tracked frame whose instant the mouth model has covered → renderer
                    → display (`FrameStep`); when more are due than MAX_BEHIND it jumps to the
                    newest (the ones jumped over are dropped and counted, never queued); with the
                    passthrough on, `AVSync` holds the picture for a late voice and steers the
                    voice's delay

Each displayed frame's latency is display time minus capture time, measured on one clock
(`time.monotonic()`), and drives the passthrough delay.

Faults are survived where they happen: a camera or microphone that fails is reopened with
backoff (the screen keeps the last good frame, the mouth rests), a display window that closes
is reopened, a mouth model that fails hands over to its fallback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from firmware_app.errors import DeviceError
from firmware_app.frames import AudioBlock, MouthShape
from firmware_app.platform.memory import check_memory, resident_mb
from firmware_app.platform.priority import start_up_objects_frozen
from firmware_app.platform.sdnotify import Notifier
from firmware_app.render.disclosure import draw_prompt
from firmware_app.runners.avsync import AVSync
from firmware_app.runners.metrics import LiveMetrics, ShownFrame
from firmware_app.runners.steps import FrameStep
from firmware_app.runners.threads import CameraThread, NewestFrame, Tracked, TrackerThread, VoiceThread, reopen_forever

if TYPE_CHECKING:
    from firmware_app.pipeline import Pipeline
    from firmware_app.sinks import Sink
    from firmware_app.sources import AudioSource

log = logging.getLogger(__name__)

MAX_FRAME_FAILURES = 100  # frames in a row that fail to render before the loop gives up
MEMORY_CHECK_S = 5.0
REPEAT_AFTER_FRAMES = 1.5  # with no new frame for this many frame periods, the last one is shown again


def run_live(
    pipeline: Pipeline, stop: threading.Event, reload: threading.Event, metrics: LiveMetrics, keep_up: bool = False
) -> LiveMetrics:
    """The appliance: runs until `stop` or `reload` is set (or a speech file standing in for the
    microphone ends). See the module docstring. `keep_up` (the kiosk service): a microphone that
    cannot be opened at start-up is not an exit (systemd would restart the kiosk into its start
    limit) but a device to reopen, as one lost later is, with the mouth at rest meanwhile."""
    halt = threading.Event()  # stops this run's threads (on stop or reload)
    metrics.model_in_use(pipeline.model)
    # Camera and microphone open here first: a device missing at start-up is an error the operator
    # sees (with no camera `run` shows the demo instead); one lost later is reopened by its thread.
    pipeline.video_source.open()
    camera = CameraThread(pipeline.video_source, metrics, halt, opened=True)
    outputs: list[Callable[[AudioBlock], None]] = list(pipeline.audio_taps)
    with ExitStack() as stack:
        stack.callback(halt.set)
        stack.callback(pipeline.video_source.close)
        if pipeline.loop_audio:
            pipeline.voice_source.loop_forever()
        voice_open = open_voice(pipeline.voice_source, keep_up, metrics)
        stack.callback(pipeline.voice_source.close)
        progress = threading.Event()  # new mouth shapes or a newly tracked frame: the render loop looks
        voice = VoiceThread(
            pipeline.voice_source,
            pipeline.model,
            pipeline.fallback,
            outputs,
            metrics,
            halt,
            opened=voice_open,
            progress=progress,
        )
        stack.enter_context(pipeline.tracker)
        if pipeline.puppeteer is not None:
            if pipeline.puppeteer.camera is not None:
                pipeline.puppeteer.camera = NewestFrame(pipeline.puppeteer.camera, metrics, halt)
            stack.enter_context(pipeline.puppeteer)
        sink = stack.enter_context(pipeline.sink)
        # no screen at start-up is an error the operator must see (systemd retries the unit);
        # a window lost later is reopened in the loop
        sink.open(*pipeline.size, pipeline.fps)
        if pipeline.passthrough is not None:  # last: the slow start-up above would starve its device
            stack.enter_context(pipeline.passthrough)
            outputs.append(pipeline.passthrough.write)
        frames = FrameStep(pipeline.tracker, pipeline.renderer, sink, pipeline.puppeteer)
        tracking = TrackerThread(camera, frames, metrics, halt, progress)
        stack.enter_context(start_up_objects_frozen())
        camera.start()
        voice.start()
        tracking.start()
        try:
            RenderLoop(pipeline, frames, tracking, voice, metrics).run(stop, reload)
        finally:  # also when the loop gives up: the tracker thread must finish before its tracker closes
            halt.set()
            tracking.join(timeout=1.0)
    camera.join(timeout=1.0)
    tracking.count_unshown()  # once the camera has stopped too: it may deliver one more frame
    voice.join(timeout=1.0)
    log.info("pipeline finished: %s", metrics.summary())
    return metrics


def open_voice(source: AudioSource, keep_up: bool, metrics: LiveMetrics) -> bool:
    """Open the voice's source; whether it opened. A live one (a microphone) that fails under
    `keep_up` is logged and left to the voice thread's reopen loop."""
    try:
        source.open()
        return True
    except DeviceError as exc:  # a sound card that is absent or refuses (a missing file is an error still)
        if not keep_up:
            raise
        log.error(
            "%s — the face shows with its mouth at rest; reopening the microphone meanwhile (%s)", exc.cause, exc.fix
        )
        metrics.restarts.add("microphone")
        return False


class _SinkOpener:
    """`reopen_forever` takes anything with open(); a sink opens with its size and rate."""

    def __init__(self, sink: Sink, size: tuple[int, int], fps: float) -> None:
        self.sink, self.size, self.fps = sink, size, fps

    def open(self) -> None:
        self.sink.open(*self.size, self.fps)


class RenderLoop:
    """Shows each tracked frame as soon as the mouth model has covered its instant, so every frame
    gets the mouth shape of the moment it shows, with nothing queued. With no new frame within
    REPEAT_AFTER_FRAMES frame periods (a stalled camera) the last one is shown again with the
    newest mouth shape, so the mouth keeps moving and the watchdog keeps being fed."""

    def __init__(
        self, pipeline: Pipeline, frames: FrameStep, tracking: TrackerThread, voice: VoiceThread, metrics: LiveMetrics
    ) -> None:
        self.pipeline, self.frames, self.tracking, self.voice, self.metrics = pipeline, frames, tracking, voice, metrics
        self.sync = AVSync(pipeline.passthrough, pipeline.fps, metrics.sync)
        self.notifier = Notifier()
        self._memory_checked_at = 0.0

    def run(self, stop: threading.Event, reload: threading.Event) -> None:
        voice, metrics = self.voice, self.metrics
        period = 1.0 / self.pipeline.fps
        failures, last, last_shown_at = 0, None, time.monotonic()
        while not (stop.is_set() or reload.is_set() or voice.ended.is_set()):
            self._watch_memory()
            voice.progress.clear()
            known_until = self.sync.shown_until(voice.known_until(), self.tracking.newest_captured(), time.monotonic())
            item = self.tracking.next_due(known_until, after=last.frame.index if last is not None else -1)
            if item is None:
                overdue_in = last_shown_at + REPEAT_AFTER_FRAMES * period - time.monotonic()
                if last is None or overdue_in > 0:
                    voice.progress.wait(overdue_in if last is not None else 0.1)
                    continue
                item = Tracked(last.frame, known_until if known_until is not None else time.monotonic(), last.face)
                metrics.frames.repeated += 1
            try:
                self._show(item)
            except Exception:  # noqa: BLE001 - one bad frame must not darken the kiosk
                failures += 1
                log.exception("frame %d failed (%d in a row)", item.frame.index, failures)
                if failures >= MAX_FRAME_FAILURES:
                    raise  # a persistent fault: let systemd restart the service
                continue
            failures, last, last_shown_at = 0, item, time.monotonic()
            self.notifier.frame_shown()
            if self.frames.sink.closed_by_user:
                self._reopen_window(stop)

    def _watch_memory(self) -> None:
        if time.monotonic() - self._memory_checked_at > MEMORY_CHECK_S:
            self._memory_checked_at = time.monotonic()
            self.metrics.resident_mb = resident_mb()
            check_memory(
                self.pipeline.restart_above_mb, self.metrics.resident_mb, self.metrics.liveness.last_activity_at
            )

    def _reopen_window(self, stop: threading.Event) -> None:
        log.warning("the display window was closed; reopening it")
        sink = self.frames.sink
        sink.close()
        self.metrics.restarts.add("display")
        reopen_forever(
            "display",
            _SinkOpener(sink, self.pipeline.size, self.pipeline.fps),
            stop,
            self.metrics.restarts,
            first=False,
        )

    def _show(self, item: Tracked) -> None:
        idle, metrics, liveness = self.pipeline.idle, self.metrics, self.metrics.liveness
        chosen_at = time.monotonic()
        t_audio = self.voice.audio_time(item.captured)
        started = time.perf_counter()
        shape = self.voice.shape_at(t_audio) if t_audio is not None else MouthShape(0.0, {})
        image = self.frames.render(item.frame, item.face, shape)
        now = time.monotonic()
        if item.face is not None or shape.aperture > 0.1:
            liveness.last_activity_at = now
        if idle is not None and idle.prompt and now - liveness.last_activity_at > idle.prompt_after_s:
            draw_prompt(image, idle.prompt)  # nobody there: invite the next visitor
        rendered = time.perf_counter()
        self.frames.show(item.frame, image)
        shown = time.monotonic()
        metrics.stages.add("renderer", (rendered - started) * 1000)
        metrics.stages.add("display", (time.perf_counter() - rendered) * 1000)
        metrics.latency.add((shown - item.captured) * 1000)
        metrics.screen.image = image
        metrics.own_mouth.read(self.frames.renderer.source)
        metrics.frames.shown += 1
        liveness.face_present = item.face is not None
        liveness.last_frame_at = shown
        metrics.frame_log.append(
            ShownFrame(shown, t_audio if t_audio is not None else float("nan"), shape.aperture, item.captured)
        )
        self.sync.frame_shown(chosen_at, shown, metrics.latency.recent())
