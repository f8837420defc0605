"""The TensorRT engine cache: an engine is only reused for exactly the model, TensorRT version, GPU
module, L4T release, precision and shapes it was built for, and only if its bytes are the ones
that were written.

Each engine `<model>-<key digest>.engine` has a JSON sidecar holding the full key and the engine's
own sha256. A key mismatch, a hash mismatch (a tampered or half-copied file) or an engine that
TensorRT refuses to deserialize means: build again. Never a crash, never a file we did not write.
`engine build` records the engine's parity verdict in the sidecar, so `inference.backend: auto`
never runs an engine that failed it (it falls back to ONNX Runtime instead). A build that failed is
recorded per key too (`<model>-<digest>.failed.json`), so a kiosk start does not spend its start-up
time on a build that will fail again: only `engine build` tries again, and a success clears it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from firmware_app.errors import ModelError
from firmware_app.platform.fileutil import write_atomically

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    # AGX, NX and Nano Orin all say "Orin" / 8.7: SM count and memory tell them apart, and the L4T
    # release catches an image cloned onto a module with other firmware
    sm_count: int
    total_memory_mb: int
    l4t_release: str
    precision: str  # "fp16" or "fp32"
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()[:16]

    def timing_cache_name(self) -> str:
        """Timing caches depend on TensorRT and the GPU only (not the model), so one per pair."""
        gpu = [self.gpu_name, self.compute_capability, self.sm_count, self.total_memory_mb, self.l4t_release]
        return f"timing-{self.tensorrt_version}-{hashlib.sha256(json.dumps(gpu).encode()).hexdigest()[:12]}.cache"

    def as_json(self) -> dict:
        data = asdict(self)
        data["input_shapes"] = {name: list(shape) for name, shape in self.input_shapes}
        return data


class EngineCache:
    def __init__(self, directory: Path, model_name: str) -> None:
        self.directory = directory
        self.model_name = model_name

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / f"{self.model_name}-{key.digest()}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.engine_path(key).with_suffix(".json")

    def load(self, key: EngineKey) -> bytes | None:
        """The cached engine for this key, or None (with the reason logged) when it cannot be trusted."""
        engine, sidecar = self.engine_path(key), self.sidecar_path(key)
        if not engine.is_file() or not sidecar.is_file():
            log.info("no cached engine for %s (key %s)", self.model_name, key.digest())
            return None
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            log.warning("engine sidecar %s is unreadable: rebuilding", sidecar)
            return None
        if record.get("key") != key.as_json():
            log.warning("engine %s was built for another model, TensorRT, GPU or precision: rebuilding", engine)
            return None
        data = engine.read_bytes()
        if hashlib.sha256(data).hexdigest() != record.get("engine_sha256"):
            log.warning("engine %s does not match its recorded sha256 (tampered or incomplete): rebuilding", engine)
            return None
        return data

    def failure_path(self, key: EngineKey) -> Path:
        return self.engine_path(key).with_suffix(".failed.json")

    def record_build_failure(self, key: EngineKey, reason: str) -> None:
        try:
            record = {"key": key.as_json(), "reason": reason}
            write_atomically(self.failure_path(key), json.dumps(record, indent=2).encode())
        except OSError as exc:  # a read-only cache only costs the next start a rebuild attempt
            log.warning("could not record the failed build in %s (%s)", self.failure_path(key), exc)

    def build_failure(self, key: EngineKey) -> str | None:
        """Why the last build for exactly this key failed, or None."""
        try:
            record = json.loads(self.failure_path(key).read_text())
        except (OSError, ValueError):
            return None
        return str(record.get("reason", "unknown")) if record.get("key") == key.as_json() else None

    def store(self, key: EngineKey, data: bytes) -> Path:
        """Engine first, sidecar last: a sidecar only ever describes a complete engine."""
        self.failure_path(key).unlink(missing_ok=True)
        engine = self.engine_path(key)
        write_atomically(engine, data)
        record = {"key": key.as_json(), "engine_sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        write_atomically(self.sidecar_path(key), json.dumps(record, indent=2).encode())
        return engine

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes], deserialize: Callable[[bytes], T | None]) -> T:
        """A deserialized engine: from the cache when it is valid, otherwise built, stored and loaded."""
        cached = self.load(key)
        if cached is not None:
            engine = deserialize(cached)
            if engine is not None:
                log.info("loaded cached engine %s", self.engine_path(key))
                return engine
            log.warning("TensorRT could not deserialize %s: rebuilding", self.engine_path(key))
        data = build()
        path = self.store(key, data)
        engine = deserialize(data)
        if engine is None:
            raise ModelError(
                f"TensorRT built {path} but cannot load it", "check the TensorRT install (ventriloquist doctor)"
            )
        return engine

    def discard(self, key: EngineKey) -> None:
        """Forget this key's engine: sidecar first, so a half-done discard never leaves a described engine missing."""
        for path in (self.sidecar_path(key), self.engine_path(key)):
            path.unlink(missing_ok=True)

    def record_parity(self, key: EngineKey, ok: bool, line: str) -> None:
        """Note in the sidecar whether the stored engine matched the golden outputs."""
        sidecar = self.sidecar_path(key)
        record = json.loads(sidecar.read_text())
        record["parity"] = {"ok": ok, "line": line}
        write_atomically(sidecar, json.dumps(record, indent=2).encode())

    def parity_failure(self, key: EngineKey) -> str | None:
        """The recorded parity line if this key's engine failed its check, else None (passed or unchecked)."""
        try:
            parity = json.loads(self.sidecar_path(key).read_text()).get("parity") or {}
        except (OSError, ValueError):
            return None
        return None if parity.get("ok", True) else str(parity.get("line", "parity failed"))
