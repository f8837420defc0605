"""Inference backends: selection, the TensorRT engine cache (keying, invalidation, atomic writes,
tamper detection), parity against the shipped golden outputs, FP16 tolerance and the graph lint.
The TensorRT execution itself runs only on a device (marked `hardware`)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from firmware_app.errors import DeviceError, ExitCode, ModelError
from firmware_app.inference import open_backend, tensorrt_usable
from firmware_app.inference.engine_cache import EngineCache, EngineKey
from firmware_app.inference.onnxruntime_backend import OnnxRuntimeBackend
from firmware_app.inference.parity import FP16_TOLERANCE, FP32_TOLERANCE, check_parity, golden_path
from firmware_app.platform.fileutil import write_atomically
from models.lint import lint

from conftest import PROJECT, SPEECH, cli

pytestmark = pytest.mark.wheels  # CI runs these again on the Jetson's pinned versions

MODEL = PROJECT / "firmware_app" / "assets" / "models" / "mouth.onnx"
MODELS = pytest.mark.parametrize("model", [MODEL, MODEL.with_name("mouth20.onnx")], ids=["50ms", "20ms"])
KEY = EngineKey(
    onnx_sha256="a" * 64,
    tensorrt_version="10.3.0",
    gpu_name="Orin",
    compute_capability="8.7",
    sm_count=16,
    total_memory_mb=62800,
    l4t_release="# R36 (release), REVISION: 4.0",
    precision="fp16",
    input_shapes=(("features", (1, 9, 41)), ("state", (1, 192))),
)


class Builds:
    """A stand-in for TensorRT's builder and runtime: counts builds, 'deserializes' bytes it made."""

    def __init__(self, payload: bytes = b"engine-bytes") -> None:
        self.payload, self.count = payload, 0

    def build(self) -> bytes:
        self.count += 1
        return self.payload + str(self.count).encode()

    @staticmethod
    def deserialize(data: bytes):
        return data if data.startswith(b"engine-bytes") else None


# --- backend selection -------------------------------------------------------------------------


def test_auto_uses_onnxruntime_without_tensorrt_and_says_why(caplog):
    usable, why = tensorrt_usable()
    if usable:
        pytest.skip("TensorRT is usable here; selection is covered by `doctor --selftest`")
    with caplog.at_level(logging.INFO):
        backend = open_backend("auto", MODEL, Path("/nonexistent"))
    assert backend.name == "onnxruntime"
    assert any("ONNX Runtime" in r.message and why in r.message for r in caplog.records)


@pytest.mark.integration
def test_forcing_tensorrt_where_it_cannot_run_is_a_clear_error(tmp_path):
    if tensorrt_usable()[0]:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(DeviceError, match="inference.backend is tensorrt"):
        open_backend("tensorrt", MODEL, tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("inference:\n  backend: tensorrt\n")
    result = cli("analyze", str(SPEECH), "--out", str(tmp_path / "c.csv"), "--config", str(config))
    assert result.returncode == ExitCode.DEVICE and "fix:" in result.stderr and "Traceback" not in result.stderr


# --- engine cache --------------------------------------------------------------------------------


def test_key_digest_changes_with_every_field():
    variants = [
        replace(KEY, onnx_sha256="b" * 64),
        replace(KEY, tensorrt_version="10.4.0"),
        replace(KEY, gpu_name="Xavier"),
        replace(KEY, compute_capability="7.2"),
        replace(KEY, precision="fp32"),
        replace(KEY, sm_count=8),
        replace(KEY, total_memory_mb=7620),
        replace(KEY, l4t_release="# R36 (release), REVISION: 4.3"),
        replace(KEY, input_shapes=(("features", (1, 9, 41)), ("state", (1, 128)))),
    ]
    digests = {KEY.digest(), *(v.digest() for v in variants)}
    assert len(digests) == len(variants) + 1
    assert KEY.digest() == replace(KEY).digest()  # stable


def test_build_once_then_reuse(tmp_path):
    cache, builds = EngineCache(tmp_path, "mouth"), Builds()
    first = cache.get_or_build(KEY, builds.build, builds.deserialize)
    second = cache.get_or_build(KEY, builds.build, builds.deserialize)
    assert first == second and builds.count == 1
    sidecar = json.loads(cache.sidecar_path(KEY).read_text())
    assert sidecar["key"] == KEY.as_json()
    assert sidecar["engine_sha256"] == hashlib.sha256(cache.engine_path(KEY).read_bytes()).hexdigest()


def test_other_model_or_gpu_gets_its_own_engine(tmp_path):
    cache, builds = EngineCache(tmp_path, "mouth"), Builds()
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    cache.get_or_build(replace(KEY, onnx_sha256="c" * 64), builds.build, builds.deserialize)
    cache.get_or_build(replace(KEY, gpu_name="Xavier"), builds.build, builds.deserialize)
    assert builds.count == 3


def test_sidecar_key_mismatch_rebuilds(tmp_path):
    cache, builds = EngineCache(tmp_path, "mouth"), Builds()
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    record = json.loads(cache.sidecar_path(KEY).read_text())
    record["key"]["tensorrt_version"] = "8.6.1"  # e.g. a file copied from an older JetPack
    cache.sidecar_path(KEY).write_text(json.dumps(record))
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    assert builds.count == 2


def test_tampered_engine_is_never_loaded(tmp_path):
    cache, builds = EngineCache(tmp_path, "mouth"), Builds()
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    engine = cache.engine_path(KEY)
    engine.write_bytes(b"engine-bytes-EVIL")  # valid-looking to the runtime, but not what we wrote
    loaded = cache.get_or_build(KEY, builds.build, builds.deserialize)
    assert loaded == b"engine-bytes2" and builds.count == 2
    assert cache.load(KEY) == b"engine-bytes2"


def test_truncated_engine_or_broken_sidecar_rebuilds(tmp_path):
    cache, builds = EngineCache(tmp_path, "mouth"), Builds()
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    engine = cache.engine_path(KEY)
    engine.write_bytes(engine.read_bytes()[:5])
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    cache.sidecar_path(KEY).write_text("{not json")
    cache.get_or_build(KEY, builds.build, builds.deserialize)
    assert builds.count == 3


def test_engine_the_runtime_refuses_is_rebuilt(tmp_path):
    cache = EngineCache(tmp_path, "mouth")
    cache.store(KEY, b"made-by-another-tensorrt")  # hash matches, but deserialization returns None
    builds = Builds()
    assert cache.get_or_build(KEY, builds.build, builds.deserialize) == b"engine-bytes1"


def test_an_engine_that_never_loads_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load it"):
        EngineCache(tmp_path, "mouth").get_or_build(KEY, lambda: b"x", lambda data: None)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "mouth.engine"
    write_atomically(target, b"old complete engine")

    def power_cut(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError):
        write_atomically(target, b"new engine, half written")
    monkeypatch.undo()
    assert target.read_bytes() == b"old complete engine"
    write_atomically(target, b"new engine")
    assert target.read_bytes() == b"new engine"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp")) == ["mouth.engine"]


# --- parity, FP16, lint ---------------------------------------------------------------------------


@MODELS
def test_onnxruntime_matches_the_shipped_golden_outputs(model):
    result = check_parity(OnnxRuntimeBackend(model), golden_path(model), FP32_TOLERANCE)
    assert result.ok and result.steps >= 100, result.line()


class HalfPrecision(OnnxRuntimeBackend):
    """The whole graph in float16, as a TensorRT FP16 engine would run it."""

    name = "onnxruntime-fp16"

    def run(self, inputs):
        outputs = super().run({k: v.astype(np.float16) for k, v in inputs.items()})
        return [o.astype(np.float32) for o in outputs]


@MODELS
def test_fp16_model_stays_within_tolerance(tmp_path, model):
    float16 = pytest.importorskip("onnxconverter_common.float16", reason="needs onnxconverter-common (dev extra)")
    half = float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=False)
    path = tmp_path / "mouth.fp16.onnx"
    onnx.save(half, str(path))
    result = check_parity(HalfPrecision(path), golden_path(model), FP16_TOLERANCE)
    assert result.ok, result.line()
    assert result.max_error > 0  # it really ran in half precision


@pytest.mark.integration
def test_selftest_command_passes_on_onnxruntime():
    result = cli("doctor", "--selftest")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: onnxruntime vs recorded ONNX Runtime outputs" in result.stdout


@MODELS
def test_lint_accepts_the_shipped_graphs(model):
    assert lint(model) == []
    assert lint(model.with_suffix(".chunk.onnx")) == []


def test_lint_rejects_dynamic_shapes_and_unsupported_operators(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Unique", ["x"], ["y"])], "bad", [x], [y])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    problems = lint(path)
    assert any("Unique" in p for p in problems)
    assert any("dynamic shape" in p and "x" in p for p in problems)


@pytest.mark.hardware
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="needs TensorRT and a CUDA GPU (Jetson)")
@MODELS
def test_tensorrt_backend_matches_golden_outputs(tmp_path, model):
    from firmware_app.inference.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(model, tmp_path, fp16=True)
    try:
        result = check_parity(backend, golden_path(model), FP16_TOLERANCE)
    finally:
        backend.close()
    assert result.ok, result.line()
    assert any(p.suffix == ".engine" for p in tmp_path.iterdir())
    assert np.isfinite(result.mean_error)


@pytest.mark.integration
def test_engine_build_without_tensorrt_falls_back_cleanly(tmp_path):
    if tensorrt_usable()[0]:
        pytest.skip("TensorRT is usable here; the build itself is exercised by the hardware test")
    result = cli("engine", "build")
    assert result.returncode == 0, result.stderr
    assert "nothing to build" in result.stdout and "ONNX Runtime" in result.stdout
    config = tmp_path / "config.yaml"
    config.write_text("inference:\n  backend: tensorrt\n")
    forced = cli("engine", "build", "--config", str(config))
    assert forced.returncode == ExitCode.DEVICE and "fix:" in forced.stderr
