"""`ventriloquist bench`: the bundled demo rendered through the real pipeline, timed per stage."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from firmware_app.config import Settings, with_changes
from firmware_app.features import FeatureStream
from firmware_app.frames import SAMPLE_RATE, AudioBlock, FeatureFrames
from firmware_app.mouth import create_mouth_model
from firmware_app.pipeline import render_offline
from firmware_app.sources.audio_file import decode_audio
from firmware_app.uri import parse_uri

STAGES = ("video", "tracker", "renderer", "sink", "audio", "features", "mouth")


def run_bench(settings: Settings, width: int, height: int) -> str:
    settings = with_changes(settings, {"video.width": width, "video.height": height})
    demo = settings.demo
    lines = [f"bench: bundled demo at {width}x{height}, mouth model: {settings.model.kind}"]
    with tempfile.TemporaryDirectory() as tmp:
        demo_mp4 = str(Path(tmp) / "bench.mp4")
        runs = (
            ("portrait → MP4 (the demo render; a still is tracked once)", demo.face, demo_mp4),
            ("clip → null:// (tracked every frame, as a camera would be)", demo_mp4, "null://"),
        )
        for label, face, out in runs:
            stats = render_offline(settings, demo.audio, face, out)
            total = sum(stats.ms_per_frame(s) for s in STAGES)
            lines.append(f"{label}: {stats.frames} frames, {stats.media_seconds:.2f} s of media in {stats.wall_seconds:.2f} s")
            lines.append(f"  real-time factor (render time / media duration): {stats.realtime_factor:.3f}")
            for stage in STAGES:
                ms = stats.ms_per_frame(stage)
                lines.append(f"  {stage:<9} {ms:7.2f} ms/frame  {100 * ms / total:5.1f}%")
    lines.append(_mouth_step_line(settings, demo.audio))
    return "\n".join(lines)


def _mouth_step_line(settings: Settings, audio: str) -> str:
    """Cost of features + mouth model per 10 ms step, streamed in 10 ms blocks."""
    samples = decode_audio(parse_uri(audio, ("file",)).path)
    hop = SAMPLE_RATE // 100
    stream, model = FeatureStream(), create_mouth_model(settings.model, settings.inference)
    feature_s = model_s = 0.0
    steps = len(samples) // hop
    for i in range(steps):
        start = time.perf_counter()
        features: FeatureFrames = stream.push(AudioBlock(samples[i * hop : (i + 1) * hop], i * hop / SAMPLE_RATE))
        middle = time.perf_counter()
        model.push(features)
        end = time.perf_counter()
        feature_s += middle - start
        model_s += end - middle
    per_step = np.array([feature_s, model_s]) * 1000 / max(steps, 1)
    return f"mouth step (10 ms of audio, {steps} steps): features {per_step[0]:.3f} ms, {model.name} {per_step[1]:.3f} ms"
