"""The TensorRT backend's own logic, driven by fake `tensorrt` and `pycuda` modules (tests/fakes/):
ordering of clean-up with the context current, return values TensorRT and pycuda report, the
timing cache, the engine key, FP16 on a TensorRT without the flag, falling back to ONNX Runtime
and the parity verdict. The fakes really run the ONNX file on the bytes in their "device" buffers.
What only a Jetson proves (real TensorRT, real CUDA, the sandbox) is in scripts/jetson-smoke.sh."""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_app.config import Settings
from firmware_app.errors import DeviceError, ExitCode, ModelError
from firmware_app.inference import open_backend
from firmware_app.inference.parity import FP16_TOLERANCE, golden_path

from conftest import PROJECT, SPEECH, cli

pytestmark = pytest.mark.wheels  # CI runs these again on the Jetson's pinned versions

FAKES = Path(__file__).parent / "fakes"
MODEL = PROJECT / "firmware_app" / "assets" / "models" / "mouth.onnx"
MODEL_20 = MODEL.with_name("mouth20.onnx")  # model.lookahead_ms: 20
FAKE_MODULES = ("tensorrt", "pycuda", "pycuda.driver")
FAKE_MODES = [name for name in os.environ if name.startswith(("FAKE_TRT_", "FAKE_CUDA_"))]


@pytest.fixture
def cuda(monkeypatch):
    """The fake pycuda.driver (and tensorrt) importable for this test only."""
    for name in FAKE_MODES:
        monkeypatch.delenv(name)
    monkeypatch.syspath_prepend(str(FAKES))
    for name in FAKE_MODULES:
        sys.modules.pop(name, None)
    import pycuda.driver

    yield pycuda.driver
    for name in FAKE_MODULES:
        sys.modules.pop(name, None)


def open_trt(engine_dir: Path, fp16: bool = True, model: Path = MODEL, **kwargs):
    from firmware_app.inference.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(model, engine_dir, fp16, **kwargs)


def builds(cuda) -> list[str]:
    return [e for e in cuda.EVENTS if e.startswith("build")]


def assert_nothing_left(cuda) -> None:
    assert cuda.LIVE == {}, f"left to the garbage collector: {sorted(cuda.LIVE.values())}"
    assert cuda.retained_contexts() == 0 and not cuda.context_is_current()


# --- building, caching, running -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [MODEL, MODEL_20], ids=["50ms", "20ms"])
def test_engine_is_built_then_loaded_and_matches_the_golden_outputs_from_another_thread(cuda, tmp_path, model):
    from firmware_app.inference.tensorrt_backend import parity_from_another_thread

    backend = open_trt(tmp_path, model=model)
    result = parity_from_another_thread(backend, golden_path(model), FP16_TOLERANCE)
    backend.close()
    assert result.ok and result.steps >= 100, result.line()
    assert builds(cuda) == ["build (fp16: True, saved timing cache: False)"]
    again = open_trt(tmp_path, model=model)  # from the cache: no second build
    again.close()
    assert len(builds(cuda)) == 1
    assert "push on parity" in cuda.EVENTS  # the other thread pushed the context itself
    assert_nothing_left(cuda)


def test_close_destroys_everything_in_order_with_the_context_current_on_another_thread(cuda, tmp_path):
    backend = open_trt(tmp_path)
    start = len(cuda.EVENTS)
    closer = threading.Thread(target=backend.close, name="closer")
    closer.start()
    closer.join()
    events = cuda.EVENTS[start:]
    assert events[0] == "push on closer" and events[-1] == "detach on closer"  # released while current
    destroyed = [e for e in events if e.startswith("destroy")]
    assert destroyed == [
        "destroy execution context (context current: True)",
        "destroy engine (context current: True)",
        "destroy runtime (context current: True)",
        "destroy stream (context current: True)",
    ]
    frees = [i for i, e in enumerate(events) if e.startswith("free")]
    assert len(frees) == 2 * 5 and max(frees) < events.index(destroyed[0])  # 5 tensors: device + host buffers first
    backend.close()  # twice is harmless
    assert_nothing_left(cuda)


@pytest.mark.parametrize(
    "mode, message",
    [
        ("FAKE_TRT_NO_CONTEXT", "could not create an execution context"),
        ("FAKE_TRT_BAD_ADDRESS", "refused the buffer for tensor"),
    ],
)
def test_a_failed_construction_frees_what_it_made_and_releases_the_context(cuda, tmp_path, monkeypatch, mode, message):
    monkeypatch.setenv(mode, "1")
    with pytest.raises(ModelError, match=message):
        open_trt(tmp_path)
    assert cuda.EVENTS[-1] == "detach on MainThread"
    assert_nothing_left(cuda)


# --- the timing cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("corrupt", ["raise", "none", "mismatch"])
def test_a_corrupt_or_foreign_timing_cache_is_replaced_by_an_empty_one(cuda, tmp_path, monkeypatch, caplog, corrupt):
    from firmware_app.inference.tensorrt_backend import engine_key

    monkeypatch.setenv("FAKE_TRT_BAD_CACHE", corrupt)
    key = engine_key(MODEL, True, {"features": (1, 9, 41), "state": (1, 192)})
    cache_file = tmp_path / key.timing_cache_name()
    cache_file.write_bytes(b"\x00garbage from a power cut or another JetPack")
    with caplog.at_level(logging.WARNING):
        open_trt(tmp_path).close()
    assert builds(cuda) == ["build (fp16: True, saved timing cache: False)"]
    assert any("starting an empty one" in r.message for r in caplog.records)
    assert cache_file.read_bytes() == b"FAKE-TIMING-CACHE 10.3.0"  # replaced by the good one
    assert any(p.suffix == ".engine" for p in tmp_path.iterdir())


def test_a_build_that_fails_with_the_saved_timing_cache_is_retried_without_it(cuda, tmp_path, monkeypatch):
    open_trt(tmp_path).close()  # leaves a valid timing cache
    for engine in tmp_path.glob("*.engine"):
        engine.unlink()
    monkeypatch.setenv("FAKE_TRT_BUILD", "fail-with-cache")
    open_trt(tmp_path).close()
    assert builds(cuda)[1:] == [
        "build (fp16: True, saved timing cache: True)",
        "build (fp16: True, saved timing cache: False)",
    ]


def test_a_timing_cache_that_cannot_be_saved_does_not_fail_the_build(cuda, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_TRT_NO_SAVE", "1")
    with caplog.at_level(logging.WARNING):
        open_trt(tmp_path).close()
    assert any("no timing cache to save" in r.message for r in caplog.records)
    assert list(tmp_path.glob("*.engine")) and not list(tmp_path.glob("timing-*.cache"))


def test_timing_cache_is_named_per_tensorrt_version_and_gpu_not_per_model(cuda):
    from firmware_app.inference.tensorrt_backend import engine_key

    key = engine_key(MODEL, True, {"features": (1, 9, 41)})
    assert key.timing_cache_name().startswith("timing-10.3.0-")
    assert replace(key, onnx_sha256="f" * 64, precision="fp32").timing_cache_name() == key.timing_cache_name()
    others = {
        replace(key, tensorrt_version="10.7.0"),
        replace(key, sm_count=8),
        replace(key, l4t_release="# R36 (release), REVISION: 4.3"),
    }
    assert len({k.timing_cache_name() for k in others} | {key.timing_cache_name()}) == 4


# --- the engine key ---------------------------------------------------------------------------------------


def test_an_image_cloned_onto_another_orin_module_rebuilds(cuda, tmp_path, monkeypatch):
    release = tmp_path / "etc" / "nv_tegra_release"
    release.parent.mkdir()
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n")
    monkeypatch.setenv("TEGRA_ROOT", str(tmp_path))  # a fixture tree's /etc, as on the device
    engines = tmp_path / "engines"
    open_trt(engines).close()  # AGX Orin 64 GB: 16 SMs
    monkeypatch.setenv("FAKE_CUDA_SMS", "8")  # Orin Nano: same name, same compute capability 8.7
    monkeypatch.setenv("FAKE_CUDA_MEMORY_MB", "7620")
    open_trt(engines).close()
    monkeypatch.setenv("FAKE_CUDA_SMS", "16")
    monkeypatch.setenv("FAKE_CUDA_MEMORY_MB", "62800")
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    open_trt(engines).close()
    assert len(builds(cuda)) == 3 and len(list(engines.glob("*.engine"))) == 3
    sidecars = sorted(p.read_text() for p in engines.glob("*.json"))
    assert all('"l4t_release": "# R36' in text for text in sidecars)


# --- FP16 on a TensorRT that no longer has the flag ----------------------------------------------------------


def test_a_tensorrt_without_the_fp16_builder_flag_still_builds(cuda, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_TRT_NO_FP16", "1")
    monkeypatch.setenv("FAKE_TRT_VERSION", "11.0.0")
    with caplog.at_level(logging.WARNING):
        open_trt(tmp_path).close()
    assert builds(cuda) == ["build (fp16: False, saved timing cache: False)"]
    assert any("has no BuilderFlag.FP16" in r.message for r in caplog.records)


# --- selection and fallback ------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["raise", "fail"])
def test_auto_falls_back_to_onnxruntime_when_tensorrt_fails_to_start(cuda, tmp_path, monkeypatch, caplog, failure):
    monkeypatch.setenv("FAKE_TRT_BUILD", failure)
    with caplog.at_level(logging.WARNING):
        backend = open_backend("auto", MODEL, tmp_path)
    assert backend.name == "onnxruntime"
    assert any("TensorRT failed to start" in r.message for r in caplog.records)
    with pytest.raises(DeviceError if failure == "raise" else ModelError, match="TensorRT"):
        open_backend("tensorrt", MODEL, tmp_path / "fresh")
    assert_nothing_left(cuda)


def test_a_failed_build_is_recorded_per_key_and_only_engine_build_tries_again(cuda, tmp_path, monkeypatch, caplog):
    """A kiosk start must not spend TimeoutStartSec on a build that failed before: `auto` goes to
    ONNX Runtime at once, saying why; `engine build` tries again, and its success clears the record."""
    from firmware_app.config import Settings, with_changes
    from firmware_app.tools.doctor import build_and_check_engine

    monkeypatch.setenv("FAKE_TRT_BUILD", "fail")
    assert open_backend("auto", MODEL, tmp_path).name == "onnxruntime"
    assert len(builds(cuda)) == 1 and len(list(tmp_path.glob("*.failed.json"))) == 1
    with caplog.at_level(logging.WARNING):
        assert open_backend("auto", MODEL, tmp_path).name == "onnxruntime"
    assert len(builds(cuda)) == 1, "the next start built again"
    assert any("failed before (TensorRT could not build" in r.message for r in caplog.records)
    monkeypatch.setenv("FAKE_TRT_VERSION", "10.4.0")  # another key (a JetPack update): built afresh
    assert open_backend("auto", MODEL, tmp_path).name == "onnxruntime" and len(builds(cuda)) == 2
    monkeypatch.setenv("FAKE_TRT_VERSION", "10.3.0")
    monkeypatch.delenv("FAKE_TRT_BUILD")  # fixed (memory freed, …): the engine unit's build
    check = build_and_check_engine(with_changes(Settings(), {"inference.engine_dir": str(tmp_path)}))
    assert check.ok and len(builds(cuda)) == 3
    assert not [p for p in tmp_path.glob("*.failed.json") if "10.3" in p.read_text()]
    backend = open_backend("auto", MODEL, tmp_path)
    assert backend.name == "tensorrt" and len(builds(cuda)) == 3
    backend.close()
    assert_nothing_left(cuda)


def test_a_tensorrt_older_than_10_is_refused_with_the_reason_not_a_silent_cpu(cuda, tmp_path, monkeypatch, caplog):
    """JetPack 6.0's TensorRT 8.6: create_network(0) would be implicit batch, refused by the parser."""
    from firmware_app.inference import tensorrt_usable
    from firmware_app.tools.doctor import device_checks

    monkeypatch.setenv("FAKE_TRT_VERSION", "8.6.2")
    usable, why = tensorrt_usable()
    assert not usable and "8.6.2 is older than 10" in why
    with caplog.at_level(logging.WARNING):
        assert open_backend("auto", MODEL, tmp_path).name == "onnxruntime"
    assert any(r.levelno == logging.WARNING and "older than 10" in r.message for r in caplog.records)
    with pytest.raises(DeviceError, match="older than 10"):
        open_backend("tensorrt", MODEL, tmp_path)
    assert builds(cuda) == []
    checks = {c.name: c for c in device_checks(Settings(), dev=tmp_path, sys=tmp_path)}
    assert not checks["TensorRT version"].ok and checks["TensorRT version"].required
    assert "JetPack 6.1" in checks["TensorRT version"].fix
    monkeypatch.setenv("FAKE_TRT_VERSION", "10.3.0")
    assert {c.name: c for c in device_checks(Settings(), dev=tmp_path, sys=tmp_path)}["TensorRT version"].ok


def test_tensorrts_messages_go_through_logging_not_stdout(cuda, tmp_path, monkeypatch, caplog, capfd):
    """TensorRT's stock logger prints to stdout, past the journal's levels and the smoke's grep: the
    backend hands TensorRT an ILogger that forwards into logging, `[TRT] [E]` kept."""
    monkeypatch.setenv("FAKE_TRT_BUILD_LOG", "Error Code 2: out of workspace memory")
    with caplog.at_level(logging.DEBUG, logger="firmware_app.inference.tensorrt_backend"):
        open_trt(tmp_path).close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["[TRT] [E] Error Code 2: out of workspace memory"]
    assert "[TRT]" not in capfd.readouterr().out
    assert_nothing_left(cuda)


def test_auto_uses_tensorrt_when_it_starts(cuda, tmp_path):
    backend = open_backend("auto", MODEL, tmp_path)
    assert backend.name == "tensorrt"
    backend.close()


def test_an_engine_that_failed_parity_is_never_run_by_auto(cuda, tmp_path, monkeypatch):
    from firmware_app.config import Settings, with_changes
    from firmware_app.tools.doctor import build_and_check_engine

    settings = with_changes(Settings(), {"inference.engine_dir": str(tmp_path)})
    monkeypatch.setenv("FAKE_TRT_OFFSET", "0.5")  # an engine that computes the wrong thing
    check = build_and_check_engine(settings)
    assert not check.ok and "FAIL: tensorrt" in check.detail
    assert open_backend("auto", MODEL, tmp_path).name == "onnxruntime"
    with pytest.raises(ModelError, match="failed its parity check"):
        open_backend("tensorrt", MODEL, tmp_path)
    assert build_and_check_engine(settings).ok is False and len(builds(cuda)) == 2  # a failed engine is built again
    monkeypatch.delenv("FAKE_TRT_OFFSET")  # e.g. a build that picks other tactics
    assert build_and_check_engine(settings).ok and len(builds(cuda)) == 3
    assert build_and_check_engine(settings).ok and len(builds(cuda)) == 3  # a good engine is kept
    backend = open_backend("auto", MODEL, tmp_path)
    assert backend.name == "tensorrt"
    backend.close()
    assert_nothing_left(cuda)


# --- a backend that fails while live -----------------------------------------------------------------------------


def test_a_tensorrt_model_that_fails_live_is_closed_when_onnxruntime_takes_over(cuda, tmp_path, monkeypatch):
    from firmware_app.config import ModelSettings
    from firmware_app.frames import AudioBlock
    from firmware_app.mouth import fallback_model
    from firmware_app.mouth.learned import LearnedMouthModel
    from firmware_app.runners.metrics import LiveMetrics
    from firmware_app.runners.threads import VoiceThread
    from firmware_app.sources.audio_file import decode_audio

    model = LearnedMouthModel(open_backend("tensorrt", MODEL, tmp_path), MODEL)
    fallback = lambda: fallback_model(model, ModelSettings())  # noqa: E731 - as the pipeline builds it
    metrics = LiveMetrics()
    voice = VoiceThread(None, model, fallback, [], metrics, threading.Event())
    samples = decode_audio(SPEECH)[:16000]
    voice._hear(AudioBlock(samples[:1600], 0.0))
    assert voice.model is model and cuda.LIVE  # running on TensorRT, buffers held
    monkeypatch.setenv("FAKE_TRT_EXECUTE_FAILS", "1")
    voice._hear(AudioBlock(samples[1600:3200], 0.1))
    assert "onnxruntime" in voice.model.name and metrics.backend == voice.model.name
    assert metrics.restarts.model == 1
    assert_nothing_left(cuda)  # freed at the handover, not at exit


# --- the commands, as the engine unit and the kiosk run them ------------------------------------------------------


def fake_jetson_cli(tmp_path: Path, *args: str, **modes: str):
    config = tmp_path / "config.yaml"
    if not config.exists():
        config.write_text(f"inference:\n  engine_dir: {tmp_path / 'engines'}\n")
    env = {"PYTHONPATH": os.pathsep.join([str(FAKES), str(PROJECT)]), **modes}
    return cli(*args, "--config", str(config), env=env)


@pytest.mark.integration
def test_engine_build_under_auto_downgrades_instead_of_failing_the_boot(tmp_path):
    good = fake_jetson_cli(tmp_path, "engine", "build")
    assert good.returncode == 0 and "OK: tensorrt vs recorded ONNX Runtime outputs" in good.stdout, good.stderr
    (tmp_path / "wrong").mkdir()
    wrong = fake_jetson_cli(tmp_path / "wrong", "engine", "build", FAKE_TRT_OFFSET="0.5")
    assert wrong.returncode == 0 and "FAIL: tensorrt" in wrong.stdout and "will use ONNX Runtime" in wrong.stdout
    (tmp_path / "broken").mkdir()
    broken = fake_jetson_cli(tmp_path / "broken", "engine", "build", FAKE_TRT_BUILD="raise")
    assert (
        broken.returncode == 0
        and "TensorRT failed (RuntimeError" in broken.stdout
        and "will use ONNX Runtime" in broken.stdout
    )
    (tmp_path / "broken" / "config.yaml").write_text("inference:\n  backend: tensorrt\n  engine_dir: /nonexistent\n")
    forced = fake_jetson_cli(tmp_path / "broken", "engine", "build", FAKE_TRT_BUILD="raise")
    assert forced.returncode == ExitCode.DEVICE and "fix:" in forced.stderr
    for result in (good, wrong, broken, forced):
        assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.integration
def test_a_command_under_auto_runs_on_onnxruntime_when_tensorrt_breaks(tmp_path):
    result = fake_jetson_cli(
        tmp_path, "analyze", str(SPEECH), "--out", str(tmp_path / "curves.csv"), FAKE_TRT_BUILD="raise"
    )
    assert result.returncode == 0, result.stderr
    assert "TensorRT failed to start" in result.stderr and (tmp_path / "curves.csv").stat().st_size > 0
