"""What the runners know about themselves, as typed pieces.

Offline, a render's `StageStats` (time per stage, for logs and `bench`). Live, `LiveMetrics`: a
few small pieces, each written by the thread that owns that part of the loop and read by whoever
needs only that part:

- `FrameCounts`: frames shown, dropped, skipped, repeated, captured, left unshown (render loop,
  tracker and camera threads); `Restarts`: devices reopened and models replaced;
- `StageTimes` and `Latencies`: moving averages and prometheus-client histograms of each stage's
  time and of every shown frame's capture → display latency;
- `SyncReading`: the passthrough's A/V offset and delay (written by `avsync`);
- `Liveness`: when the last frame was shown, whether a face is in view, when anyone was last
  there (health, the idle prompt, the memory watch);
- `FrameLog`: the last 100 s of shown frames as named `ShownFrame` records (the latency bench and
  the soak read it); `Screen`: the frame on the screen now (the console's preview, memory only).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from prometheus_client import Histogram

if TYPE_CHECKING:
    from firmware_app.mouth.base import MouthModel

LATENCY_BUCKETS_MS = (25, 50, 75, 100, 125, 150, 200, 300, 500, 1000)
STAGE_BUCKETS_MS = (0.5, 1, 2, 5, 10, 15, 20, 30, 50, 100)
RECENT_LATENCIES = 300  # frames: the "latency now" median (10 s at 30 fps)
FRAME_LOG = 3000  # frames: 100 s at 30 fps
STAGE_SMOOTHING = 0.05  # share of each new time taken into a stage's moving average


@dataclass
class StageStats:
    """An offline run's time per stage, summed over its frames."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    frames: int = 0
    media_seconds: float = 0.0
    wall_seconds: float = 0.0

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
            self.calls[stage] += 1

    def ms_per_frame(self, stage: str) -> float:
        return 1000.0 * self.seconds.get(stage, 0.0) / max(self.frames, 1)

    @property
    def realtime_factor(self) -> float:
        """Processing time over media time: below 1 means faster than real time."""
        return self.wall_seconds / self.media_seconds if self.media_seconds else float("nan")

    def summary(self) -> str:
        stages = " ".join(f"{name}={self.ms_per_frame(name):.2f}ms" for name in self.seconds)
        fps = self.frames / self.wall_seconds if self.wall_seconds else 0.0
        return (
            f"frames={self.frames} media={self.media_seconds:.2f}s wall={self.wall_seconds:.2f}s "
            f"rtf={self.realtime_factor:.3f} fps={fps:.1f} per-frame: {stages}"
        )


def _histogram(name: str, help_text: str, buckets: tuple, labels: tuple[str, ...] = ()) -> Histogram:
    """A prometheus-client histogram owned by one run's metrics (registry=None: /metrics collects it
    from the LiveMetrics in use, so a reload starts it afresh like every other counter)."""
    return Histogram(name, help_text, labels, buckets=buckets, registry=None)


@dataclass
class FrameCounts:
    shown: int = 0
    dropped: int = 0  # output ticks missed because the loop was behind
    camera_skipped: int = 0  # captured frames replaced by a newer one before rendering
    repeated: int = 0  # the last frame shown again (new mouth) because no new one was due
    captured: int = 0  # frames the camera delivered
    unshown: int = 0  # delivered, never shown nor counted above: left in hand when the loop stopped


@dataclass
class Restarts:
    """Devices reopened and mouth models replaced after a fault."""

    camera: int = 0
    microphone: int = 0
    display: int = 0
    model: int = 0

    def add(self, part: str) -> None:
        setattr(self, part, getattr(self, part) + 1)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


class StageTimes:
    """Each live stage's time (per frame or audio block): a moving average and a histogram."""

    def __init__(self) -> None:
        self._average_ms: dict[str, float] = {}
        self.histogram = _histogram(
            "ventriloquist_stage_duration_milliseconds",
            "time of each stage, per frame or audio block",
            STAGE_BUCKETS_MS,
            ("stage",),
        )

    def add(self, stage: str, ms: float) -> None:
        previous = self._average_ms.get(stage)
        self._average_ms[stage] = ms if previous is None else previous + STAGE_SMOOTHING * (ms - previous)
        self.histogram.labels(stage).observe(ms)

    def averages(self) -> dict[str, float]:
        return dict(self._average_ms)


class Latencies:
    """Capture → display of every shown frame: the recent ones and a histogram of all."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=RECENT_LATENCIES)
        self.histogram = _histogram(
            "ventriloquist_frame_latency_milliseconds", "capture to display of each frame shown", LATENCY_BUCKETS_MS
        )

    def add(self, ms: float) -> None:
        self._recent.append(ms)
        self.histogram.observe(ms)

    def recent(self, frames: int | None = None) -> list[float]:
        latest = list(self._recent)
        return latest if frames is None else latest[-frames:]

    def median_ms(self) -> float:
        return float(np.median(self._recent)) if self._recent else 0.0


@dataclass
class SyncReading:
    av_offset_ms: float = 0.0  # passthrough sound minus picture (+ = sound late)
    passthrough_delay_ms: float = 0.0  # capture of a voice sample to its sound leaving the device


@dataclass
class Liveness:
    last_frame_at: float = 0.0  # when the last frame was shown (0: none yet)
    face_present: bool = False
    last_activity_at: float = field(default_factory=time.monotonic)  # a face in view or a voice heard


class ShownFrame(NamedTuple):
    shown_at: float  # wall time (time.monotonic) it reached the screen
    audio_t: float  # the voice's time whose mouth it shows (nan: no voice)
    aperture: float  # the mouth's opening in it
    captured_at: float  # wall time of the instant it shows


class FrameLog:
    """The last FRAME_LOG shown frames, oldest first."""

    def __init__(self) -> None:
        self._frames: deque[ShownFrame] = deque(maxlen=FRAME_LOG)

    def append(self, frame: ShownFrame) -> None:
        self._frames.append(frame)

    def frames(self) -> list[ShownFrame]:
        return list(self._frames)

    def since(self, wall: float) -> list[ShownFrame]:
        return [f for f in list(self._frames) if f.shown_at >= wall]

    def __len__(self) -> int:
        return len(self._frames)


@dataclass
class OwnMouth:
    """Mirror mode's live bank of the visitor's own mouth (`render.live_bank`), memory only."""

    exemplars: int = 0  # the visitor's own exemplars banked
    bytes: int = 0  # their textures' size
    painted: int = 0  # openings painted since start …
    painted_own: int = 0  # … of them from the visitor's own exemplars

    def read(self, source: object) -> None:
        """The live bank's numbers, where `source` is one (else all stay 0)."""
        for name, attribute in (("exemplars", "own_exemplars"), ("bytes", "own_bytes"), ("painted", "painted")):
            setattr(self, name, int(getattr(source, attribute, 0)))
        self.painted_own = int(getattr(source, "painted_own", 0))


@dataclass
class Screen:
    """The frame on the screen now (memory only: the console's preview)."""

    image: np.ndarray | None = None


@dataclass
class LiveMetrics:
    """What the live loop knows about itself: read by /metrics, the console, the soak and the benches."""

    frames: FrameCounts = field(default_factory=FrameCounts)
    restarts: Restarts = field(default_factory=Restarts)
    stages: StageTimes = field(default_factory=StageTimes)
    latency: Latencies = field(default_factory=Latencies)
    sync: SyncReading = field(default_factory=SyncReading)
    liveness: Liveness = field(default_factory=Liveness)
    frame_log: FrameLog = field(default_factory=FrameLog)
    screen: Screen = field(default_factory=Screen)
    own_mouth: OwnMouth = field(default_factory=OwnMouth)
    backend: str = ""  # the mouth model in use and its inference backend
    lookahead_ms: float = 0.0  # how far ahead of the voice that model listens
    resident_mb: float = 0.0  # read every few seconds by the render loop
    started_at: float = field(default_factory=time.monotonic)

    def model_in_use(self, model: MouthModel) -> None:
        """The mouth model now turning sound into shapes (at the start, and after a fallback)."""
        self.backend, self.lookahead_ms = model.name, model.lookahead_s * 1000

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started_at
        return self.frames.shown / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        f = self.frames
        stages = " ".join(f"{name}={ms:.2f}ms" for name, ms in self.stages.averages().items())
        return (
            f"frames={f.shown} fps={self.fps:.1f} dropped={f.dropped} "
            f"camera_skipped={f.camera_skipped} repeated={f.repeated} "
            f"captured={f.captured} unshown={f.unshown} latency={self.latency.median_ms():.0f}ms "
            f"av_offset={self.sync.av_offset_ms:.0f}ms restarts={self.restarts.as_dict()} per-frame: {stages}"
        )
