"""`ventriloquist bench load`: does the voice hold when the CPU is busy? The live loop runs with
the passthrough on while N busy processes (default: one per core) compete for the cores, and the
line reports what the visitor would hear and see:

- skipped_ms: voice never played (it must be 0: a late voice is waited for, never dropped);
- underruns: times the sound went silent inside the voice: the device ran dry, or the line had to
  wait for a starved voice thread (both are a click or gap to the listener), and per minute;
- fps: frames shown per second (frames are what drop first);
- av_offset_ms: sound minus picture, the median over the run after its warm-up (+ = sound late),
  and the 95th percentile of its size.

Voice and camera are repeatable stand-ins unless the config names files: the bundled speech,
looped on one clock, and (mirror mode) the bundled portrait. The verdict line ends `ok` or names
each target missed; the command then exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from firmware_app.config import Settings, with_changes
from firmware_app.errors import ConfigError
from firmware_app.runners.live import run_live
from firmware_app.runners.metrics import LiveMetrics

WARM_UP_S = 5.0  # after the first frame: start-up (model warm-up, the device's first buffers) is not measured
SAMPLE_S = 0.5
TARGETS = {"skipped_ms": 0.0, "underruns_per_min": 1.0, "fps": 15.0, "av_offset_ms": 20.0}


@dataclass
class LoadResult:
    busy: int
    seconds: float
    skipped_ms: float
    waits: int
    underflows: int
    fps: float
    av_offset_ms: float
    av_offset_p95_ms: float

    @property
    def underruns(self) -> int:
        return self.waits + self.underflows

    @property
    def underruns_per_min(self) -> float:
        return self.underruns / (self.seconds / 60)

    def missed(self) -> list[str]:
        misses = []
        if self.skipped_ms > TARGETS["skipped_ms"]:
            misses.append(f"voice skipped {self.skipped_ms:.0f} ms (target 0)")
        if self.underruns_per_min > TARGETS["underruns_per_min"]:
            misses.append(f"{self.underruns_per_min:.1f} underruns/min (target ≤ {TARGETS['underruns_per_min']:.0f})")
        if self.fps < TARGETS["fps"]:
            misses.append(f"{self.fps:.1f} fps (target ≥ {TARGETS['fps']:.0f})")
        if abs(self.av_offset_ms) > TARGETS["av_offset_ms"]:
            misses.append(f"A/V offset {self.av_offset_ms:+.0f} ms (target ±{TARGETS['av_offset_ms']:.0f})")
        return misses

    def line(self) -> str:
        verdict = "; ".join(self.missed()) or "ok"
        return (
            f"load busy={self.busy} seconds={self.seconds:.0f} skipped_ms={self.skipped_ms:.0f} "
            f"underruns={self.underruns} "
            f"(waits={self.waits} device={self.underflows}) underruns_per_min={self.underruns_per_min:.2f} "
            f"fps={self.fps:.1f} "
            f"av_offset_ms={self.av_offset_ms:+.0f} av_offset_p95_ms={self.av_offset_p95_ms:.0f} verdict={verdict}"
        )


def run_load_bench(settings: Settings, busy: int | None, seconds: float) -> LoadResult:
    from firmware_app.pipeline import build_pipeline

    busy = (os.cpu_count() or 1) if busy is None else busy
    changes = {
        "audio.passthrough": True,
        "audio.passthrough_delay": "auto",
        "health.enabled": False,
        "health.restart_above_mb": 0,
    }
    if not settings.sources.audio.startswith(("file://", "bundled://")):
        changes["sources.audio"] = "bundled://speech.wav"
    if settings.mode == "mirror" and not settings.sources.camera.startswith(("file://", "bundled://")):
        changes["sources.camera"] = "bundled://portrait.jpg"
    settings = with_changes(settings, changes)
    if seconds <= WARM_UP_S + 2 * SAMPLE_S:
        raise ConfigError(
            f"bench load --seconds {seconds:g} is too short",
            f"give more than {WARM_UP_S + 2 * SAMPLE_S:g} s (the first {WARM_UP_S:g} s are warm-up)",
        )
    pipeline = build_pipeline(settings, realtime=True)
    pipeline.loop_audio = True  # the speech plays on for as long as the bench runs
    metrics, stop = LiveMetrics(), threading.Event()
    offsets: list[float] = []
    steady: dict[str, float] = {}

    def watch() -> None:  # the pipeline keeps the main thread (the display wants it)
        started = None  # the warm-up counts from the first frame shown
        while not stop.wait(SAMPLE_S):
            if started is None:
                started = time.monotonic() if metrics.frames.shown else None
                continue
            elapsed = time.monotonic() - started
            if elapsed >= WARM_UP_S:
                if not steady:  # what happened during the warm-up is not counted
                    steady.update(at=time.monotonic(), frames=metrics.frames.shown, **pipeline.passthrough.report())
                offsets.append(metrics.sync.av_offset_ms)
            if elapsed >= seconds:
                steady.update(end=time.monotonic(), end_frames=metrics.frames.shown)
                stop.set()

    try:
        with busy_cores(busy):
            threading.Thread(target=watch, name="load-watch", daemon=True).start()
            run_live(pipeline, stop, threading.Event(), metrics)
    finally:
        stop.set()
    done = {key: value - steady.get(key, 0) for key, value in pipeline.passthrough.report().items()}
    measured = max(1e-6, steady.get("end", time.monotonic()) - steady.get("at", metrics.started_at))
    return LoadResult(
        busy=busy,
        seconds=measured,
        skipped_ms=done["skipped_ms"],
        waits=done["stalls"],
        underflows=done["underflows"],
        fps=(steady.get("end_frames", metrics.frames.shown) - steady.get("frames", 0)) / measured,
        av_offset_ms=float(np.median(offsets)) if offsets else float("nan"),
        av_offset_p95_ms=float(np.percentile(np.abs(offsets), 95)) if offsets else float("nan"),
    )


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes that only burn a core each, at this process's own priority (as other work
    would), for as long as the block runs (`bench load`, `bench latency --busy`)."""
    workers = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL) for _ in range(count)
    ]
    try:
        yield
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
