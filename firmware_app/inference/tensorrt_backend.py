"""TensorRT 10 on a Jetson: the ONNX model compiled to an engine (cached, see engine_cache.py) and run
with pycuda — page-locked host buffers and device buffers allocated once, `set_tensor_address` +
`execute_async_v3` on one stream.

Everything lives in the device's primary context (the one TensorRT's own runtime uses), pushed
around every call: the pipeline's voice thread, `engine build`'s parity thread and whoever closes
the backend may each be a different thread, and pycuda frees memory from any thread only while
the owning context is current. `close()` (also after a failed construction) destroys what was
made newest first with that context pushed, then releases it — nothing is left to the garbage
collector at exit, when the context is gone.

Not executable on machines without TensorRT and a GPU: tests drive it with fake `tensorrt` and
`pycuda` modules (ordering, return values); `scripts/jetson-smoke.sh` runs it on the device.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from firmware_app.errors import ModelError
from firmware_app.inference.base import Backend
from firmware_app.inference.engine_cache import EngineCache, EngineKey
from firmware_app.platform.fileutil import write_atomically

log = logging.getLogger(__name__)

WORKSPACE_MB = 256
L4T_RELEASE = "etc/nv_tegra_release"


def tegra_root() -> Path:
    """Where the Jetson's /etc, /dev and /sys are read from: `/`, or a fixture tree of them in
    $TEGRA_ROOT (a dry run of `doctor --device` and scripts/jetson-smoke.sh off the device)."""
    return Path(os.environ.get("TEGRA_ROOT") or "/")


REBUILD_FIX = "run `ventriloquist engine build` (or set inference.backend: onnxruntime)"


def l4t_release(path: Path | None = None) -> str:
    """The L4T line (e.g. `# R36 (release), REVISION: 4.0, …`), or "none" off a Jetson."""
    try:
        return (path or tegra_root() / L4T_RELEASE).read_text(errors="replace").splitlines()[0].strip() or "none"
    except (OSError, IndexError):
        return "none"


_trt_logger = None  # one for the process: TensorRT keeps a pointer to it in every builder and runtime


def trt_logger():
    """TensorRT's messages through Python's logging (the journal under systemd), each prefixed as
    TensorRT's own logger prints it (`[TRT] [E] …`), so the log and the smoke script see them.
    TensorRT's stock trt.Logger writes to stdout, past logging."""
    import tensorrt as trt

    global _trt_logger
    if _trt_logger is None or _trt_logger[0] is not trt:  # (a test's fresh fake module gets its own)
        _trt_logger = (trt, _make_forwarder(trt))
    return _trt_logger[1]


def _make_forwarder(trt):
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: (logging.ERROR, "F"),
        severity.ERROR: (logging.ERROR, "E"),
        severity.WARNING: (logging.WARNING, "W"),
        severity.INFO: (logging.DEBUG, "I"),  # TensorRT's INFO is a line per layer: debug for us
        severity.VERBOSE: (logging.DEBUG, "V"),
    }

    class LoggingForwarder(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # pybind11: the base must be initialised explicitly

        def log(self, level, msg: str) -> None:  # called from TensorRT's threads too
            py_level, tag = levels.get(level, (logging.WARNING, "?"))
            log.log(py_level, "[TRT] [%s] %s", tag, msg)

    return LoggingForwarder()


def engine_key(onnx_path: Path, fp16: bool, input_shapes: dict[str, tuple[int, ...]]) -> EngineKey:
    import pycuda.driver as cuda
    import tensorrt as trt

    device = cuda.Device(0)
    major, minor = device.compute_capability()
    return EngineKey(
        onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        tensorrt_version=trt.__version__,
        gpu_name=device.name(),
        compute_capability=f"{major}.{minor}",
        sm_count=int(device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)),
        total_memory_mb=int(device.total_memory()) >> 20,
        l4t_release=l4t_release(),
        precision="fp16" if fp16 else "fp32",
        input_shapes=tuple(sorted(input_shapes.items())),
    )


def request_fp16(trt, builder, config) -> bool:
    """FP16 through the builder flag where this TensorRT still has it. `BuilderFlag.FP16` and
    `platform_has_fast_fp16` are deprecated from 10.5/10.12 and gone in 11 (strongly typed networks
    take the precision from the ONNX file): there the build goes on in the model's own precision."""
    flag = getattr(getattr(trt, "BuilderFlag", None), "FP16", None)
    if flag is None:
        log.warning("TensorRT %s has no BuilderFlag.FP16: building in the model's own precision", trt.__version__)
        return False
    if not getattr(builder, "platform_has_fast_fp16", True):
        log.info("this GPU has no fast FP16: building in FP32")
        return False
    config.set_flag(flag)
    return True


def attach_timing_cache(config, path: Path, use_saved: bool = True) -> bool:
    """Load the saved timing cache into `config`, or an empty one when the file is unreadable,
    corrupt or from another TensorRT/GPU. A timing cache only saves build time: it must never stop
    a build. Returns whether the saved file was used."""
    saved = b""
    if use_saved and path.is_file():
        try:
            saved = path.read_bytes()
        except OSError as exc:
            log.warning("timing cache %s is unreadable (%s): starting an empty one", path, exc)
    for data in ([saved] if saved else []) + [b""]:
        try:
            cache = config.create_timing_cache(data)
            if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
                return bool(data)
        except Exception as exc:  # noqa: BLE001 - TensorRT raises plain RuntimeErrors for bad caches
            log.warning("TensorRT refused the timing cache %s (%s)", path if data else "(empty)", exc)
        if data:
            log.warning("timing cache %s is corrupt or from another TensorRT or GPU: starting an empty one", path)
    log.warning("TensorRT refused even an empty timing cache: building without one")
    return False


def save_timing_cache(config, path: Path) -> None:
    """Keep the build's timings for the next build; a failure costs only time, so it is logged."""
    try:
        cache = config.get_timing_cache()
        if cache is None:
            log.warning("TensorRT returned no timing cache to save; the next build starts from scratch")
            return
        write_atomically(path, bytes(cache.serialize()))
    except Exception as exc:  # noqa: BLE001 - serialize errors and OSError alike only cost build time
        log.warning("could not save the timing cache %s (%s); the next build starts from scratch", path, exc)


def build_engine(onnx_path: Path, fp16: bool, timing_cache: Path, workspace_mb: int = WORKSPACE_MB) -> bytes:
    """Compile the ONNX file; parser errors are reported in full. A build that fails with the saved
    timing cache is tried once more without it."""
    import tensorrt as trt

    logger = trt_logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors}", "re-export the model with models/export.py")
    for use_saved in (True, False):
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        half = request_fp16(trt, builder, config)
        used_saved = attach_timing_cache(config, timing_cache, use_saved)
        log.info(
            "building TensorRT engine for %s (%s); this takes a minute on first boot",
            onnx_path.name,
            "fp16" if half else "model precision",
        )
        started = time.monotonic()
        serialized = builder.build_serialized_network(network, config)
        if serialized is not None:
            log.info("engine built in %.1f s", time.monotonic() - started)
            save_timing_cache(config, timing_cache)
            return bytes(serialized)
        if not used_saved:
            break
        log.warning("the build failed with the saved timing cache %s: trying once more without it", timing_cache)
    raise ModelError(f"TensorRT could not build an engine for {onnx_path}", "see the log above; check free memory")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(
        self, onnx_path: Path, engine_dir: Path, fp16: bool = True, rebuild_failed_parity: bool = False
    ) -> None:
        """An engine whose recorded parity check failed, or whose last build failed, is refused
        (`auto` then runs ONNX Runtime); `engine build` (`rebuild_failed_parity`) deletes it or
        tries the build again."""
        import pycuda.driver as cuda

        from firmware_app.inference.onnxruntime_backend import OnnxRuntimeBackend

        reference = OnnxRuntimeBackend(onnx_path)  # the graph's shapes and metadata, read once
        self.input_shapes, self.output_names = reference.input_shapes, reference.output_names
        self.metadata = reference.metadata
        self._cuda = cuda
        self.runtime = self.engine = self.execution = self.stream = None
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, object] = {}
        cuda.init()
        self._context = cuda.Device(0).retain_primary_context()
        self._context.push()
        try:
            self.cache = EngineCache(engine_dir, onnx_path.stem)
            self.key = engine_key(onnx_path, fp16, self.input_shapes)
            failure = self.cache.parity_failure(self.key)
            if failure and rebuild_failed_parity:
                log.warning("the cached engine failed its parity check (%s): building it again", failure)
                self.cache.discard(self.key)
            elif failure:
                raise ModelError(
                    f"the TensorRT engine {self.cache.engine_path(self.key)} failed its parity check ({failure})",
                    REBUILD_FIX,
                )
            built_before = self.cache.build_failure(self.key)
            if built_before is not None and not rebuild_failed_parity:
                raise ModelError(
                    f"building the TensorRT engine for this model, TensorRT and GPU failed before ({built_before}); "
                    "not trying again at every start",
                    REBUILD_FIX,
                )
            self._load(onnx_path, engine_dir, fp16)
        except BaseException:
            self._release()  # still pushed: the context is current for every free
            self._drop_context()
            raise
        self._context.pop()

    def _load(self, onnx_path: Path, engine_dir: Path, fp16: bool) -> None:
        import tensorrt as trt

        cuda = self._cuda
        self.runtime = trt.Runtime(trt_logger())
        self.engine = self.cache.get_or_build(
            self.key,
            build=lambda: self._build(onnx_path, fp16, engine_dir / self.key.timing_cache_name()),
            deserialize=self.runtime.deserialize_cuda_engine,
        )
        self.execution = self.engine.create_execution_context()
        if self.execution is None:
            raise ModelError(
                "TensorRT could not create an execution context for the engine (out of GPU memory?)", REBUILD_FIX
            )
        self.stream = cuda.Stream()
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            self.host[name] = cuda.pagelocked_empty(shape, trt.nptype(self.engine.get_tensor_dtype(name)))
            self.device[name] = cuda.mem_alloc(self.host[name].nbytes)
            if not self.execution.set_tensor_address(name, int(self.device[name])):
                raise ModelError(f"TensorRT refused the buffer for tensor {name!r}", REBUILD_FIX)
        missing = sorted((set(self.input_shapes) | set(self.output_names)) - set(self.host))
        if missing:
            raise ModelError(f"the TensorRT engine lacks the model's tensors {missing}", REBUILD_FIX)

    def _build(self, onnx_path: Path, fp16: bool, timing_cache: Path) -> bytes:
        try:
            return build_engine(onnx_path, fp16, timing_cache)
        except Exception as exc:
            reason = exc.cause if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            self.cache.record_build_failure(self.key, reason)
            raise

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        cuda = self._cuda
        self._context.push()
        try:
            for name, value in inputs.items():
                np.copyto(self.host[name], value)
                cuda.memcpy_htod_async(self.device[name], self.host[name], self.stream)
            if not self.execution.execute_async_v3(self.stream.handle):
                raise ModelError("TensorRT inference failed", "run `ventriloquist doctor --selftest`")
            for name in self.output_names:
                cuda.memcpy_dtoh_async(self.host[name], self.device[name], self.stream)
            self.stream.synchronize()
            return [self.host[name].copy() for name in self.output_names]
        finally:
            self._context.pop()

    def record_parity(self, ok: bool, line: str) -> None:
        self.cache.record_parity(self.key, ok, line)

    def close(self) -> None:
        if self._context is None:
            return
        self._context.push()
        try:
            self._release()
        finally:
            self._drop_context()

    def _release(self) -> None:
        """Newest first, with the context current: pending work, device and page-locked buffers,
        then the execution context before its engine before its runtime (TensorRT's order), then
        the stream. Dropping the last reference destroys each one here, not at interpreter exit.
        A step that fails is logged and the rest still run."""
        steps = [("wait for the stream", lambda: self.stream is not None and self.stream.synchronize())]
        steps += [(f"free device buffer {name}", buffer.free) for name, buffer in self.device.items()]
        # pycuda's page-locked arrays keep their allocation as .base
        steps += [(f"free host buffer {name}", array.base.free) for name, array in self.host.items()]
        steps += [
            ("forget buffers", lambda: (self.device.clear(), self.host.clear())),
            ("destroy the execution context", lambda: setattr(self, "execution", None)),
            ("destroy the engine", lambda: setattr(self, "engine", None)),
            ("destroy the runtime", lambda: setattr(self, "runtime", None)),
            ("destroy the stream", lambda: setattr(self, "stream", None)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - closing must finish; the log says what failed
                log.warning("TensorRT backend close: could not %s (%s)", what, exc)

    def _drop_context(self) -> None:
        """Release the primary context retained in __init__, while it is current: pycuda releases a
        context that is not current only on the thread that retained it, and takes a current one off
        its context stack itself (so no pop follows)."""
        self._context.detach()
        self._context = None


def parity_from_another_thread(backend: Backend, golden: Path, tolerance: float):
    """The parity check on a fresh thread, as the kiosk's voice thread will call the backend."""
    from firmware_app.inference.parity import check_parity

    outcome: dict[str, object] = {}

    def check() -> None:
        try:
            outcome["result"] = check_parity(backend, golden, tolerance)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=check, name="parity")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]
