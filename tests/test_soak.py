"""The soak and its stand-ins: a looped speech file on one clock, repeated log lines counted, and
a soak that fails when the voice stops moving the mouth or memory keeps rising."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from firmware_app.platform.logs import RepeatLimiter
from firmware_app.runners.metrics import LiveMetrics
from firmware_app.sources.audio_file import AudioFileSource, decode_audio
from firmware_app.tools.soak import summarise

from conftest import PORTRAIT, SPEECH, cli


def test_a_looped_speech_file_plays_again_and_again_on_one_clock():
    source = AudioFileSource(SPEECH, block_ms=10, realtime=False)
    source.loop_forever()
    speech = decode_audio(SPEECH)
    with source:
        blocks = [source.read(wait=True) for _ in range(3 * len(speech) // 160 + 7)]
    assert not source.finished and source.duration is None
    assert all(abs(b.t - a.t_end) < 1e-9 for a, b in zip(blocks, blocks[1:]))  # one continuous clock
    heard = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(heard, np.resize(speech, len(heard)))  # pass after pass, seamless


def test_a_repeated_message_is_logged_once_then_counted():
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    limiter = RepeatLimiter(window_s=60)
    handler.addFilter(limiter)
    logger = logging.getLogger("test.repeat")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for cause in range(5):
            logger.warning("microphone unavailable (%s); retrying in %.1f s", f"cause {cause}", 0.5)
        logger.warning("camera is back")  # a different message is not held back
        later = logging.LogRecord(
            "test.repeat",
            logging.WARNING,
            __file__,
            1,
            "microphone unavailable (%s); retrying in %.1f s",
            ("cause 9", 5.0),
            None,
        )
        later.created += 61  # after the window
        handler.handle(later)
        for period in range(1, 4):  # a status line every 10 s is not a flood
            status = logging.LogRecord("test.repeat", logging.INFO, __file__, 1, "soak %.0f s", (10.0 * period,), None)
            status.created += 10 * period
            handler.handle(status)
    finally:
        logger.removeHandler(handler)
    assert records[0] == "microphone unavailable (cause 0); retrying in 0.5 s"
    assert records[1] == "camera is back"
    assert re.fullmatch(
        r"microphone unavailable \(cause 9\); retrying in 5\.0 s \[and 4 more like it in the \d+ s before\]", records[2]
    ), records
    assert records[3:] == ["soak 10 s", "soak 20 s", "soak 30 s"]


def soak_samples(rss: list[float], widest: list[float]) -> list[tuple]:
    return [(10.0 * (i + 1), 300 * (i + 1), 0, r, 0.0, w) for i, (r, w) in enumerate(zip(rss, widest))]


def test_the_soak_fails_when_memory_keeps_rising_or_the_mouth_stops():
    metrics = LiveMetrics()
    flat = summarise(soak_samples([300.0] * 12, [0.5] * 12), metrics)
    assert flat.failures == [] and re.search(r"rss_slope_mb_per_h=-?0.00 ", flat.text)
    leaking = summarise(soak_samples([300.0 + 5 * i for i in range(12)], [0.5] * 12), metrics)
    assert any("memory keeps rising" in failure for failure in leaking.failures)
    still = summarise(soak_samples([300.0] * 12, [0.5] * 3 + [0.0] * 9), metrics)
    assert any("stopped producing mouth shapes" in failure for failure in still.failures)
    assert summarise(soak_samples([300.0] * 12, [0.0] * 12), metrics, speech_file=False).failures == []  # a quiet room


def test_the_soak_reports_the_voice_played_and_fails_when_it_is_skipped_or_runs_dry():
    metrics, samples = LiveMetrics(), soak_samples([300.0] * 12, [0.5] * 12)  # two minutes
    clean = summarise(samples, metrics, voice={"skipped_ms": 0.0, "waited_ms": 0.0, "stalls": 1, "underflows": 1})
    assert clean.failures == [] and "restarts=0 skipped_ms=0 underruns=2 (waits=1 device=1)" in clean.text
    skipped = summarise(samples, metrics, voice={"skipped_ms": 2180.0, "waited_ms": 0.0, "stalls": 0, "underflows": 0})
    assert skipped.failures == ["2180 ms of the voice was skipped (target 0)"]
    dry = summarise(samples, metrics, voice={"skipped_ms": 0.0, "waited_ms": 40.0, "stalls": 2, "underflows": 3})
    assert dry.failures == ["the voice ran dry 2.5 times a minute (target ≤ 1)"]
    assert "skipped_ms" not in summarise(samples, metrics).text  # no passthrough, nothing to report


@pytest.mark.integration
def test_a_short_soak_on_the_looped_speech_keeps_the_mouth_moving(tmp_path):
    """Mirror mode with the portrait as the camera, the bundled speech looped as the microphone:
    the file plays more than twice; it is never reopened, and the mouth opens in every period."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"sources: {{audio: 'file://{SPEECH}', camera: 'file://{PORTRAIT}'}}\n"
        "video: {width: 640, height: 360}\noutput: {uri: 'null://'}\n"
    )
    result = cli("bench", "soak", "--minutes", "0.6", "--config", str(config), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert float(re.search(r"soak minutes=([\d.]+)", result.stdout).group(1)) >= 0.6, result.stdout
    widest = [float(w) for w in re.findall(r"widest mouth=([\d.]+)", result.stderr)]
    assert len(widest) >= 3 and min(widest) > 0.15, result.stderr[-3000:]
    assert "microphone is back" not in result.stderr and "reopening" not in result.stderr
