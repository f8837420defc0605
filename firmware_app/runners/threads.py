"""The live loop's threads (see `runners.live`): the voice, the camera and the tracker, each
surviving the faults of its own device.

    voice thread    microphone → the audio outputs (the passthrough ring) → `VoiceStep`; it runs
                    real-time (or at a lower nice level) where allowed (`platform.priority`), so
                    when the cores are busy frames drop, not the voice. The video threads keep
                    the normal level: one holding the GIL must not be starved while holding it
    camera thread   camera → the last half second of frames, each stamped with its arrival
    tracker thread  each new frame → face landmarks, while the model still waits for the
                    look-ahead audio of that frame's instant (so tracking costs no latency)

All put their data on one clock (`time.monotonic()`): a camera frame shows the moment it arrived,
and audio sample time maps to the wall clock through the earliest arrival seen (the sample clock
does not drift; only its start is unknown). A camera or microphone that fails or stalls is
reopened with backoff while the screen keeps the last good frame and the mouth rests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from firmware_app.errors import VentriloquistError
from firmware_app.frames import HOP_S, AudioBlock, Face, MouthShape, VideoFrame
from firmware_app.mouth.base import MouthModel
from firmware_app.platform.priority import VOICE_RT_PRIORITY, make_this_thread_realtime
from firmware_app.runners.metrics import FrameCounts, LiveMetrics, Restarts
from firmware_app.runners.steps import FrameStep, VoiceStep
from firmware_app.sources import AudioSource, VideoSource

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # waits between reopen attempts; the last one repeats
ORIGIN_WINDOW = 500  # audio blocks (5 s at 10 ms) over which the audio clock's offset is estimated
MAX_BEHIND = 2  # frames due but not shown before the loop skips ahead to the newest
STALL_S = 1.5  # no camera frame or microphone block for this long: the device is treated as gone
FIRST_BLOCK_S = 5.0  # a (re)opened microphone's first block may take this long: a busy machine starts it slowly
VOICE_NICE = -5  # relative to the process: the voice thread where real-time is not allowed
# frames the camera and the tracker keep: room for the picture to wait for a late voice (avsync.MAX_HOLD_S)
KEPT_FRAMES = 16


class Openable(Protocol):
    def open(self) -> None: ...


class Device(Openable, Protocol):
    def close(self) -> None: ...


def reopen_forever(name: str, resource: Openable, stop: threading.Event, restarts: Restarts, first: bool) -> bool:
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
            restarts.add(name)
            stop.wait(wait)
    return False


def use_until_stopped(
    name: str,
    device: Device,
    use: Callable[[], None],
    stop: threading.Event,
    restarts: Restarts,
    opened: bool,
    ended: threading.Event | None = None,
) -> None:
    """`use` the device until it fails or stalls (`use` returns), close it, reopen it with backoff
    (`reopen_forever`) and use it again, until `stop` (or `ended`) is set. `opened`: it is open
    already, the first time round."""
    first = True
    while not stop.is_set() and not (ended is not None and ended.is_set()):
        if not opened and not reopen_forever(name, device, stop, restarts, first):
            return
        first = opened = False
        use()
        device.close()


class VoiceThread(threading.Thread):
    """Microphone → mouth shapes (`VoiceStep`), on the audio's own clock mapped to the wall clock."""

    def __init__(
        self,
        source: AudioSource,
        model: MouthModel,
        fallback: Callable[[], MouthModel] | None,
        outputs: list[Callable[[AudioBlock], None]],
        metrics: LiveMetrics,
        stop: threading.Event,
        opened: bool = False,
        progress: threading.Event | None = None,
    ) -> None:
        super().__init__(name="voice", daemon=True)
        self.progress = progress or threading.Event()  # set whenever new mouth shapes exist
        self._already_open = opened
        self.source, self.step = source, VoiceStep(model, fallback)
        self.outputs, self.metrics, self.stop = outputs, metrics, stop
        self.origin: float | None = None  # wall time of audio t = 0
        self._lateness: deque[float] = deque(maxlen=ORIGIN_WINDOW)  # arrival minus end, per block
        self.last_block_at = 0.0
        self.alive = False  # blocks are arriving
        self.ended = threading.Event()  # a speech file (not a microphone) has been played to its end

    @property
    def model(self) -> MouthModel:
        return self.step.model

    def run(self) -> None:
        got = make_this_thread_realtime(VOICE_NICE, VOICE_RT_PRIORITY)  # the voice comes first when the cores are busy
        log.debug("voice thread: %s", got)
        use_until_stopped(
            "microphone", self.source, self._listen, self.stop, self.metrics.restarts, self._already_open, self.ended
        )

    def _listen(self) -> None:
        try:
            self._hear_stream()
        finally:
            self.alive = False  # until a reopened stream delivers: the mouth rests meanwhile

    def _hear_stream(self) -> None:
        self.step.restart()
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
                    self.step.finish()  # a speech file ended
                    self.ended.set()
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
            self.last_block_at, self.alive = now, True
            for output in self.outputs:
                output(block)
            self._hear(block)

    def _hear(self, block: AudioBlock) -> None:
        started = time.perf_counter()
        if not self.step.hear(block):  # the model failed: its fallback takes the next block
            self.metrics.restarts.add("model")
            self.metrics.model_in_use(self.model)
            return
        self.progress.set()
        self.metrics.stages.add("voice", (time.perf_counter() - started) * 1000)

    def audio_time(self, wall: float) -> float | None:
        return None if self.origin is None else wall - self.origin

    def known_until(self) -> float | None:
        """Wall time up to which mouth shapes exist (None while no voice arrives)."""
        if self.origin is None or not self.alive:
            return None
        return self.origin + self.step.covered_until - HOP_S

    def shape_at(self, t: float) -> MouthShape:
        """The shape at audio time t (the newest one if t is not covered yet); with no voice
        arriving the mouth rests."""
        if not self.alive:
            return MouthShape(t, {"jawOpen": 0.0, "mouthClose": 0.0})
        return self.step.shape_at(t)


class CameraThread(threading.Thread):
    """Keeps the last half second of frames with the wall time each arrived; reopens a failed or
    stalled camera. The render loop takes the newest frame whose mouth shape is already known."""

    def __init__(self, source: VideoSource, metrics: LiveMetrics, stop: threading.Event, opened: bool = False) -> None:
        super().__init__(name="camera", daemon=True)
        self.source, self.metrics, self.stop = source, metrics, stop
        self._already_open = opened
        self._recent: deque[tuple[VideoFrame, float]] = deque(maxlen=KEPT_FRAMES)
        self._lock = threading.Lock()
        self.delivered = 0  # frames this thread has delivered: the next one's index
        self.last_frame_at = 0.0
        self.arrived = threading.Event()  # set whenever a new frame is kept

    def run(self) -> None:
        use_until_stopped("camera", self.source, self._capture, self.stop, self.metrics.restarts, self._already_open)

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
                self.metrics.frames.captured += 1
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


@dataclass
class Tracked:
    frame: VideoFrame
    captured: float  # wall time the frame arrived: the instant it shows
    face: Face | None


class TrackerThread(threading.Thread):
    """Tracks each camera frame as soon as it arrives (`FrameStep.track`). Its mouth shape cannot
    exist before the model has heard LOOK-AHEAD more audio, so tracking runs during that wait
    instead of after it and adds nothing to the latency."""

    def __init__(
        self,
        camera: CameraThread,
        frames: FrameStep,
        metrics: LiveMetrics,
        stop: threading.Event,
        progress: threading.Event,
    ) -> None:
        super().__init__(name="tracker", daemon=True)
        self.camera, self.frames, self.metrics, self.stop = camera, frames, metrics, stop
        self.progress = progress  # set whenever a newly tracked frame is ready
        self._ready: deque[Tracked] = deque(maxlen=KEPT_FRAMES)
        self._lock = threading.Lock()
        self._last_tracked = -1
        self._shown_up_to = -1  # the newest frame index the render loop has asked past

    @property
    def counts(self) -> FrameCounts:
        return self.metrics.frames

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
                self.counts.camera_skipped += frame.index - last - 1
            self._last_tracked = frame.index
            started = time.perf_counter()
            face = self.frames.track(frame)
            self.metrics.stages.add("tracker", (time.perf_counter() - started) * 1000)
            with self._lock:
                if len(self._ready) == self._ready.maxlen and self._ready[0].frame.index > self._shown_up_to:
                    self.counts.dropped += 1  # pushed out unshown: the loop is that far behind
                self._ready.append(Tracked(frame, captured, face))
            self.progress.set()

    def count_unshown(self) -> None:
        """When the loop has stopped: the frames delivered that were neither shown nor counted as
        dropped or skipped (tracked and waiting, or not yet tracked), so every frame is accounted."""
        with self._lock:
            waiting = sum(1 for t in self._ready if t.frame.index > self._shown_up_to)
        self.counts.unshown += waiting + max(0, self.camera.delivered - 1 - self._last_tracked)

    def newest_captured(self) -> float | None:
        """When the newest tracked frame arrived (None before the first)."""
        with self._lock:
            return self._ready[-1].captured if self._ready else None

    def next_due(self, known_until: float | None, after: int) -> Tracked | None:
        """The tracked frame to show after frame `after`: the next one whose instant the mouth
        model has covered (any, while no voice arrives), or the newest such one when more than
        MAX_BEHIND are due; the ones jumped over count as dropped."""
        with self._lock:
            due = [
                t for t in self._ready if t.frame.index > after and (known_until is None or t.captured <= known_until)
            ]
            chosen = due[-1] if len(due) > MAX_BEHIND else due[0] if due else None
            if chosen is not None:  # shown next; what it jumps over is counted as dropped here
                self._shown_up_to = max(self._shown_up_to, chosen.frame.index)
        if len(due) > MAX_BEHIND:
            self.counts.dropped += len(due) - 1
        return chosen
