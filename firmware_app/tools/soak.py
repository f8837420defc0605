"""`ventriloquist bench soak --minutes N`: the live loop for a long time, watched for what kills a
kiosk over months: falling frame rate, dropped frames, memory growth, A/V drift.

Runs `run`'s live pipeline from the config's sources (on a test rig: a PulseAudio null sink as
the microphone, a paced video file as the camera, Xvfb as the screen; a speech file as the voice
is looped). Samples every SAMPLE_S; memory growth is the slope of a line fitted to the resident
set size after the first minute (start-up allocations excluded), and A/V drift is how far the
A/V offset (or, with no passthrough, the picture latency) moved from the first minute to the last.
Ends with one line: `soak minutes=… fps=… dropped=… rss_slope_mb_per_h=… av_drift_ms=… restarts=…`,
and with the passthrough on, `… skipped_ms=… underruns=… (waits=… device=…)` for the whole run.

The soak fails (exit 1, naming why) when what it watches stops being exercised or grows: a
speech file as the voice must open the mouth in every sample period after the warm-up (a looped
file that stops producing mouth shapes measures nothing), memory must not keep rising (slope
above RSS_SLOPE_LIMIT_MB_PER_H and more than RSS_RISE_LIMIT_MB in all), and the voice played into
the room must meet the load bench's targets: none of it skipped, at most one underrun a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_app.config import Settings, with_changes
from firmware_app.platform.memory import resident_mb
from firmware_app.runners.live import run_live
from firmware_app.runners.metrics import LiveMetrics
from firmware_app.tools.loadbench import TARGETS

log = logging.getLogger(__name__)

SAMPLE_S = 10.0
WARM_UP_S = 60.0
REACTS = 0.15  # aperture that counts as the mouth opening
RSS_SLOPE_LIMIT_MB_PER_H = 20.0
RSS_RISE_LIMIT_MB = 5.0  # a short soak's slope is noisy: it must also have grown this much


@dataclass
class SoakResult:
    text: str
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([self.text, *(f"soak FAILED: {failure}" for failure in self.failures)])


def run_soak(settings: Settings, minutes: float) -> SoakResult:
    from firmware_app.pipeline import build_pipeline

    settings = with_changes(
        settings, {"health.enabled": False, "health.restart_above_mb": 0}
    )  # measure growth, never mask it
    pipeline = build_pipeline(settings, realtime=True)
    pipeline.loop_audio = True
    metrics, stop, reload = LiveMetrics(), threading.Event(), threading.Event()
    samples: list[
        tuple[float, int, int, float, float, float]
    ] = []  # (elapsed s, frames, dropped, rss MB, sync ms, widest mouth)

    def sample() -> None:  # the pipeline keeps the main thread (the display wants it)
        started = time.monotonic()
        while not stop.wait(SAMPLE_S):
            sync = metrics.sync.av_offset_ms if pipeline.passthrough is not None else metrics.latency.median_ms()
            since = time.monotonic() - SAMPLE_S
            widest = max((frame.aperture for frame in metrics.frame_log.since(since)), default=0.0)
            samples.append(
                (time.monotonic() - started, metrics.frames.shown, metrics.frames.dropped, resident_mb(), sync, widest)
            )
            log.info("soak %.0f s: frames=%d dropped=%d rss=%.1f MB sync=%.1f ms widest mouth=%.2f", *samples[-1])
            if samples[-1][0] >= minutes * 60:
                stop.set()

    threading.Thread(target=sample, name="soak", daemon=True).start()
    run_live(pipeline, stop, reload, metrics)
    stop.set()
    speech_file = not settings.sources.audio.startswith("mic://")
    voice = pipeline.passthrough.report() if pipeline.passthrough is not None else None
    return summarise(samples, metrics, speech_file, voice)


def summarise(
    samples: list[tuple[float, int, int, float, float, float]],
    metrics: LiveMetrics,
    speech_file: bool = True,
    voice: dict[str, float] | None = None,
) -> SoakResult:
    """`voice` is the passthrough's report (`VoicePassthrough.report`), None without one."""
    if len(samples) < 2:
        return SoakResult("soak: too short to measure (run at least two sample periods)", ["too short to measure"])
    data = np.array(samples)
    elapsed, frames, dropped, rss, sync, widest = data.T
    steady = elapsed >= min(WARM_UP_S, elapsed[-1] / 2)
    slope_per_s = np.polyfit(elapsed[steady], rss[steady], 1)[0] if steady.sum() >= 2 else 0.0
    minute = elapsed <= elapsed[0] + 60
    last_minute = elapsed >= elapsed[-1] - 60
    drift = float(np.median(sync[last_minute]) - np.median(sync[minute]))
    fps = frames[-1] / elapsed[-1]
    lines = [
        f"soak: {elapsed[-1] / 60:.1f} min, {int(frames[-1])} frames, restarts {metrics.restarts.as_dict()}",
        f"  memory {rss[steady][0]:.1f} → {rss[-1]:.1f} MB; latency now {metrics.latency.median_ms():.0f} ms; A/V "
        f"offset now {metrics.sync.av_offset_ms:.0f} ms",
        f"soak minutes={elapsed[-1] / 60:.1f} fps={fps:.2f} dropped={int(dropped[-1])} "
        f"rss_slope_mb_per_h={slope_per_s * 3600:.2f} av_drift_ms={drift:.1f} restarts={metrics.restarts.total}",
    ]
    failures = []
    if voice is not None:
        heard, failures = _judge_voice(voice, elapsed[-1] / 60)
        lines[-1] += heard
    still = [t for t, w in zip(elapsed[steady], widest[steady]) if w < REACTS]
    if speech_file and still:
        failures.append(
            f"the voice stopped producing mouth shapes: the mouth never opened in {len(still)} of "
            f"{int(steady.sum())} periods of {SAMPLE_S:.0f} s (first ending at {still[0]:.0f} s)"
        )
    rise = rss[-1] - rss[steady][0]
    if slope_per_s * 3600 > RSS_SLOPE_LIMIT_MB_PER_H and rise > RSS_RISE_LIMIT_MB:
        failures.append(
            f"memory keeps rising: {slope_per_s * 3600:.1f} MB/h, {rise:.1f} MB since the warm-up "
            f"(limit {RSS_SLOPE_LIMIT_MB_PER_H:.0f} MB/h)"
        )
    return SoakResult("\n".join(lines), failures)


def _judge_voice(voice: dict[str, float], minutes: float) -> tuple[str, list[str]]:
    """The soak line's voice figures, and the load bench's targets the voice missed."""
    underruns = int(voice["stalls"] + voice["underflows"])
    heard = (
        f" skipped_ms={voice['skipped_ms']:.0f} underruns={underruns} (waits={int(voice['stalls'])} "
        f"device={int(voice['underflows'])})"
    )
    failures = []
    if voice["skipped_ms"] > TARGETS["skipped_ms"]:
        failures.append(f"{voice['skipped_ms']:.0f} ms of the voice was skipped (target 0)")
    if underruns / minutes > TARGETS["underruns_per_min"]:
        failures.append(
            f"the voice ran dry {underruns / minutes:.1f} times a minute (target ≤ {TARGETS['underruns_per_min']:.0f})"
        )
    return heard, failures
