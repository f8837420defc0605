"""`bench latency`'s report: the summary line says which path was measured, and the budget line
splits the median into the parts the run measured, the rest named as such."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from firmware_app.config import Settings
from firmware_app.runners.metrics import LiveMetrics
from firmware_app.tools.latency import budget, report


def test_the_budget_adds_up_to_the_measured_median_part_by_part():
    metrics = LiveMetrics()
    for stage, ms in (("voice", 0.8), ("renderer", 3.5), ("display", 2.0)):
        metrics.stages.add(stage, ms)
    model = SimpleNamespace(lookahead_s=0.05)  # the shipped model's look-ahead
    results = [(80.0, None), (90.0, None), (100.0, None)]
    for passthrough, device_s in (("off", None), ("on", 0.015)):
        line_ = None if device_s is None else SimpleNamespace(device_latency_s=device_s)
        pipeline = SimpleNamespace(model=model, passthrough=line_)
        line = budget(Settings(), pipeline, metrics, results, 16.7, passthrough)
        parts = dict(re.findall(r"(\w+)=([-\d.]+)", line))
        assert line.startswith(f"budget_ms passthrough={passthrough} ")
        assert float(parts["lookahead"]) == 50 and float(parts["block"]) == 10
        assert float(parts["frame_wait"]) == pytest.approx(8.35, abs=0.05)  # half a frame, on average
        assert float(parts.get("device", 0)) == (0 if device_s is None else 15)  # beside the sum, not in it
        added = sum(float(ms) for name, ms in parts.items() if name not in ("passthrough", "device"))
        assert added == pytest.approx(90, abs=0.5)


def test_the_summary_says_which_path_and_model_it_measured():
    assert report([(80.0, 3.0)], 16.7, "on").endswith("frame_interval_ms=17 passthrough=on lookahead_ms=50 busy=0")
    assert "passthrough=off lookahead_ms=20 busy=2" in report([], 33.3, "off", "20", 2)
