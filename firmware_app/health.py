"""Health and metrics over HTTP for the kiosk's operators: `/healthz` and Prometheus `/metrics`.

Bound to 127.0.0.1 by default (`health.bind`): the appliance exposes nothing to the network
unless the operator asks. Served from a daemon thread; reads the live loop's metrics as they are.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from firmware_app.errors import DeviceError
from firmware_app.live import LiveMetrics

log = logging.getLogger(__name__)

HEALTHY_WITHIN_S = 2.0  # a frame shown this recently means the appliance is working


def health(metrics: LiveMetrics) -> tuple[bool, dict]:
    age = time.monotonic() - metrics.last_frame_at if metrics.last_frame_at else None
    ok = age is not None and age < HEALTHY_WITHIN_S
    return ok, {
        "status": "ok" if ok else "stalled",
        "seconds_since_last_frame": None if age is None else round(age, 3),
        "frames": metrics.frames,
        "fps": round(metrics.fps, 2),
        "face_present": metrics.face_present,
        "backend": metrics.backend,
        "restarts": metrics.restarts,
    }


def prometheus(metrics: LiveMetrics) -> str:
    lines = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP ventriloquist_{name} {help_text}")
        lines.append(f"# TYPE ventriloquist_{name} {kind}")
        lines.extend(f"ventriloquist_{name}{labels} {value:.6g}" for labels, value in samples)

    metric("fps", "gauge", "frames shown per second since start", [("", metrics.fps)])
    metric("frames_total", "counter", "frames shown", [("", metrics.frames)])
    metric("dropped_frames_total", "counter", "output frames skipped because the loop was behind", [("", metrics.dropped_frames)])
    metric("camera_frames_skipped_total", "counter", "camera frames replaced by a newer one before rendering", [("", metrics.camera_frames_skipped)])
    metric("resident_memory_megabytes", "gauge", "resident memory of the kiosk process (MiB)", [("", metrics.resident_mb)])
    metric("frames_repeated_total", "counter", "the last frame shown again (with a new mouth) because no new one was due", [("", metrics.frames_repeated)])
    metric("stage_milliseconds", "gauge", "per-frame time of each stage (moving average)", [(f'{{stage="{k}"}}', v) for k, v in metrics.stage_ms.items()])
    metric("latency_milliseconds", "gauge", "capture to display, median of recent frames", [("", metrics.median_latency_ms())])
    metric("av_offset_milliseconds", "gauge", "passthrough sound minus picture (+ = sound late)", [("", metrics.av_offset_ms)])
    metric("face_present", "gauge", "1 when a face is being animated", [("", float(metrics.face_present))])
    metric("backend_info", "gauge", "the mouth model and its inference backend", [(f'{{backend="{metrics.backend}"}}', 1.0)])
    metric("restarts_total", "counter", "devices reopened and models replaced after a fault", [(f'{{part="{k}"}}', v) for k, v in metrics.restarts.items()])
    return "\n".join(lines) + "\n"


class HealthServer:
    def __init__(self, bind: str, port: int, metrics: Callable[[], LiveMetrics]) -> None:
        self.bind, self.port, self.metrics = bind, port, metrics
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        get_metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                metrics = get_metrics()
                if self.path == "/healthz":
                    ok, body = health(metrics)
                    self._send(200 if ok else 503, "application/json", json.dumps(body))
                elif self.path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", prometheus(metrics))
                else:
                    self._send(404, "text/plain", "try /healthz or /metrics\n")

            def _send(self, code: int, kind: str, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # scrapes every few seconds: keep the journal quiet
                pass

        try:
            self._server = ThreadingHTTPServer((self.bind, self.port), Handler)
        except OSError as exc:
            raise DeviceError(f"cannot serve health on {self.bind}:{self.port}: {exc}", "set health.port to a free port, or health.enabled: false") from None
        threading.Thread(target=self._server.serve_forever, name="health", daemon=True).start()
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.bind, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
