"""`ventriloquist bench latency`: how long from a sound reaching the microphone to a mouth on the
screen reacting to it, and how far the passthrough voice is from that picture.

A known sound (a burst of the bundled speech after a silence) is played EVENTS times into the
microphone path — through PulseAudio (`paplay --device=SINK`) on a test rig whose microphone is
that sink's monitor, or through the speaker on the appliance. The live loop runs as in `run`
(puppet mode on the bundled portrait, so no camera is needed). Per event:

- onset: the first 10 ms of the captured audio above ONSET_DB after ≥ 300 ms of quiet, at the
  wall time that sample was captured (the voice thread's clock);
- latency: from that onset to the first frame on screen whose mouth opens (aperture > REACTS);
- A/V offset: when the passthrough is on, the onset's play-out time (its delay line plus the
  device latency PortAudio reports) minus the time the frame showing that instant was displayed
  (+ = sound after picture);
- frame interval: the median time between frames on screen over the run (a sound waits up to
  one for the next frame: on a busy machine the latency grows with it).

Camera and display hardware are outside this measurement (the camera's exposure and the
screen's scan-out add to both paths alike).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firmware_app.assets import BUNDLED_DIR
from firmware_app.config import Settings, with_changes
from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE
from firmware_app.runners.live import run_live
from firmware_app.runners.metrics import FrameLog, LiveMetrics
from firmware_app.sources.audio_file import decode_audio, write_wav

if TYPE_CHECKING:
    from firmware_app.pipeline import Pipeline

EVENTS = 8
GAP_S = 1.6  # quiet between bursts: the mouth settles, the onset is clean
BURST = (1.05, 1.55)  # seconds of the bundled speech: a syllable that opens the mouth wide
ONSET_DB = -35.0
QUIET_DB = -50.0
REACTS = 0.15
SETTLE_S = 4.0  # aperture that counts as the mouth reacting


def run_latency_benches(
    settings: Settings,
    play_sink: str | None,
    events: int = EVENTS,
    passthrough: str = "config",
    lookahead: str = "config",
    busy: int = 0,
) -> str:
    """`passthrough`: on, off, both (one run each, in that order) or as the config says;
    `lookahead`: the 50 or the 20 ms model, both, or the config's (every pairing is one run);
    `busy`: processes burning a core each meanwhile (`bench load`'s)."""
    with_passthrough = {"config": [None], "on": [True], "off": [False], "both": [True, False]}[passthrough]
    with_model = {"config": [None], "50": [50], "20": [20], "both": [50, 20]}[lookahead]
    runs = []
    for ms in with_model:
        for on in with_passthrough:
            changes = {"audio.passthrough": on, "model.lookahead_ms": ms}
            runs.append(with_changes(settings, {key: value for key, value in changes.items() if value is not None}))
    from firmware_app.tools.loadbench import busy_cores

    with busy_cores(busy):
        return "\n".join(run_latency_bench(run, play_sink, events, busy) for run in runs)


def run_latency_bench(settings: Settings, play_sink: str | None, events: int = EVENTS, busy: int = 0) -> str:
    if not settings.sources.audio.startswith("mic://"):
        raise DeviceError(
            "bench latency needs a microphone source", "set sources.audio to mic://default (or mic://pulse)"
        )
    settings = with_changes(
        settings, {"mode": "puppet", "puppet.performer": False, "puppet.idle": False, "health.enabled": False}
    )
    from firmware_app.pipeline import build_pipeline

    pipeline = build_pipeline(settings, realtime=True)
    captured: list[tuple[float, np.ndarray]] = []
    pipeline.audio_taps.append(lambda block: captured.append((block.t, block.samples)))
    metrics, stop, reload = LiveMetrics(), threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def play_events() -> None:  # the pipeline keeps the main thread (the display wants it)
        try:
            _wait_for(lambda: metrics.frames.shown > 30, 30, "the live loop to start")
            time.sleep(SETTLE_S)  # the passthrough delay converges on the measured latency
            burst = _burst()
            with tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "burst.wav"
                write_wav(wav, burst)
                for _ in range(events):
                    _play(wav, burst, play_sink)
                    time.sleep(GAP_S)
        except BaseException as exc:  # noqa: BLE001 - reported after the loop stops
            failure.append(exc)
        finally:
            stop.set()

    threading.Thread(target=play_events, name="latency-player", daemon=True).start()
    run_live(pipeline, stop, reload, metrics)
    if failure:
        raise failure[0]
    results = _measure(captured, metrics.frame_log, pipeline)
    interval = _frame_interval_ms(metrics.frame_log)
    on = "on" if pipeline.passthrough is not None else "off"
    looks = f"{pipeline.model.lookahead_s * 1000:.0f}"
    summary = report(results, interval, on, looks, busy)
    return summary + "\n" + budget(settings, pipeline, metrics, results, interval, on)


def budget(
    settings: Settings,
    pipeline: Pipeline,
    metrics: LiveMetrics,
    results: list[tuple[float, float | None]],
    frame_interval_ms: float,
    passthrough: str,
) -> str:
    """Where the median latency goes, part by part, as measured in this run: the model's look-ahead
    and one audio block (fixed by the model and config), the features and model per block, half a
    frame interval waiting for the next frame (on average), render and show per frame; `rest` is
    what these do not explain: thread hand-offs and, with the passthrough, the picture's wait for a
    voice that plays later than the picture would show (its device buffer, a starved voice thread).
    The device's buffer is printed beside, not added: the voice's delay follows the picture's
    latency, so it costs the picture only where it raises the voice's floor above that."""
    stages = metrics.stages.averages()
    parts = {
        "lookahead": pipeline.model.lookahead_s * 1000,
        "block": float(settings.audio.block_ms),
        "model": stages.get("voice", 0.0),
        "frame_wait": frame_interval_ms / 2,
        "render": stages.get("renderer", 0.0),
        "show": stages.get("display", 0.0),
    }
    measured = float(np.median([latency for latency, _ in results])) if results else float("nan")
    parts["rest"] = measured - sum(parts.values())
    if pipeline.passthrough is not None:
        parts["device"] = pipeline.passthrough.device_latency_s * 1000
    return f"budget_ms passthrough={passthrough} " + " ".join(f"{name}={ms:.1f}" for name, ms in parts.items())


def _measure(
    captured: list[tuple[float, np.ndarray]], shown: FrameLog, pipeline: Pipeline
) -> list[tuple[float, float | None]]:
    """(latency ms, A/V offset ms or None) per detected event."""
    if not captured or not len(shown):
        return []
    start = captured[0][0]
    audio = np.concatenate([samples for _, samples in captured])
    hop = SAMPLE_RATE // 100
    frames = len(audio) // hop
    level = 20 * np.log10(np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1)) + 1e-9)
    log = np.array(
        shown.frames(), dtype=float
    )  # columns: the fields of ShownFrame (shown at, audio t, aperture, captured at)
    results = []
    quiet_needed = 30
    for i in range(quiet_needed + 1, frames):
        # the hop before the onset may hold the sound's first milliseconds (a burst rarely starts
        # on a hop boundary): the quiet is required before that rising edge
        if level[i] > ONSET_DB and level[i - 1] <= ONSET_DB and (level[i - 1 - quiet_needed : i - 1] < QUIET_DB).all():
            t_on = start + i * hop / SAMPLE_RATE
            depicting = log[log[:, 1] >= t_on]
            if len(depicting) == 0:
                continue
            # the onset's capture time on the clock the loop used when it rendered that instant
            wall_on = depicting[0, 3] - depicting[0, 1] + t_on
            after = log[(log[:, 0] >= wall_on) & (log[:, 1] >= t_on - 0.2)]
            reacting = after[after[:, 2] > REACTS]
            if len(reacting) == 0:
                continue
            latency = (reacting[0, 0] - wall_on) * 1000
            offset = None
            if pipeline.passthrough is not None:
                offset = (wall_on + pipeline.passthrough.play_delay_s - depicting[0, 0]) * 1000
            results.append((latency, offset))
    return results


def _frame_interval_ms(shown: FrameLog) -> float:
    """The median time between two frames on screen over the run: a sound waits up to one
    interval for the next frame, so on a machine too busy for the nominal rate the latency
    grows with it, and a bound on the latency must know it."""
    shown_at = np.array([frame.shown_at for frame in shown.frames()], dtype=float)
    return float(np.median(np.diff(shown_at)) * 1000) if len(shown_at) > 2 else float("nan")


def report(
    results: list[tuple[float, float | None]],
    frame_interval_ms: float = float("nan"),
    passthrough: str = "on",
    lookahead_ms: str = "50",
    busy: int = 0,
) -> str:
    interval = (
        f" frame_interval_ms={frame_interval_ms:.0f} passthrough={passthrough} lookahead_ms={lookahead_ms} busy={busy}"
    )
    if not results:
        return (
            "latency: no sound reached the microphone (check the sink/microphone pairing)\nlatency_ms median=nan "
            "p95=nan av_offset_ms=nan" + interval
        )
    lines = [
        f"event {i + 1}: mic → mouth on screen {lat:.0f} ms"
        + (f", A/V offset {off:+.0f} ms" if off is not None else "")
        for i, (lat, off) in enumerate(results)
    ]
    latencies = np.array([lat for lat, _ in results])
    offsets = np.array([off for _, off in results if off is not None])
    offset_text = f"{np.median(offsets):.0f}" if len(offsets) else "n/a"
    lines.append(
        f"latency_ms median={np.median(latencies):.0f} p95={np.percentile(latencies, 95):.0f} "
        f"av_offset_ms={offset_text}" + interval
    )
    return "\n".join(lines)


def _burst() -> np.ndarray:
    speech = decode_audio(BUNDLED_DIR / "speech.wav")
    piece = speech[int(BURST[0] * SAMPLE_RATE) : int(BURST[1] * SAMPLE_RATE)].copy()
    ramp = np.linspace(0, 1, 80)
    piece[:80] *= ramp
    piece[-80:] *= ramp[::-1]
    return piece


def _play(wav: Path, samples: np.ndarray, sink: str | None) -> None:
    if sink is not None:
        if shutil.which("paplay") is None:
            raise DeviceError("--play-sink needs paplay", "sudo apt-get install pulseaudio-utils")
        subprocess.run(["paplay", f"--device={sink}", str(wav)], check=True, timeout=10)
    else:
        from firmware_app.sources.mic import require_sounddevice

        sd = require_sounddevice()
        sd.play(samples, SAMPLE_RATE, blocking=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DeviceError(f"timed out waiting for {what}", "check the microphone and `ventriloquist doctor`")
        time.sleep(0.05)
