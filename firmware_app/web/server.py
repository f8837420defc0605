"""Health, metrics and the operator's console over HTTP: `/healthz`, Prometheus `/metrics` and the
page at `/` (`web/console/`), one Starlette app served by uvicorn from a daemon thread.

Bound to 127.0.0.1 by default (`health.bind`): the appliance exposes nothing to the network
unless the operator asks, and then only with `console.token`. The live loop's metrics are read as
they are at each scrape: a prometheus-client collector turns them into gauges, counters and the
loop's own latency and stage-time histograms.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from firmware_app.errors import DeviceError
from firmware_app.platform.host import build_info
from firmware_app.runners.metrics import LiveMetrics
from firmware_app.web.state import LiveState

if TYPE_CHECKING:
    from firmware_app.config import Settings

log = logging.getLogger(__name__)

HEALTHY_WITHIN_S = 2.0  # a frame shown this recently means the appliance is working
STOP_WITHIN_S = 1.0  # of the kiosk's 2 s SIGTERM budget
disable_created_metrics()  # `_created` series only double every counter; nothing here reads them


def health(metrics: LiveMetrics) -> tuple[bool, dict]:
    shown_at = metrics.liveness.last_frame_at
    age = time.monotonic() - shown_at if shown_at else None
    ok = age is not None and age < HEALTHY_WITHIN_S
    return ok, {
        "status": "ok" if ok else "stalled",
        "seconds_since_last_frame": None if age is None else round(age, 3),
        "frames": metrics.frames.shown,
        "fps": round(metrics.fps, 2),
        "face_present": metrics.liveness.face_present,
        "backend": metrics.backend,
        "restarts": metrics.restarts.as_dict(),
    }


class LiveCollector(Collector):
    """The live loop's LiveMetrics as Prometheus metrics, read at each scrape (the loop keeps its
    own numbers; a reload starts a fresh LiveMetrics, which Prometheus sees as a counter reset)."""

    def __init__(self, state: LiveState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        m = self.state.metrics

        def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"ventriloquist_{name}", help_text, value=value)

        def counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"ventriloquist_{name}", help_text, value=value)

        yield gauge("fps", "frames shown per second since start", m.fps)
        yield counter("frames", "frames shown", m.frames.shown)
        yield counter("dropped_frames", "output frames skipped because the loop was behind", m.frames.dropped)
        yield counter(
            "camera_frames_skipped", "camera frames replaced by a newer one before rendering", m.frames.camera_skipped
        )
        yield counter(
            "frames_repeated",
            "the last frame shown again (with a new mouth) because no new one was due",
            m.frames.repeated,
        )
        yield gauge("resident_memory_megabytes", "resident memory of the kiosk process (MiB)", m.resident_mb)
        stages = GaugeMetricFamily(
            "ventriloquist_stage_milliseconds", "per-frame time of each stage (moving average)", labels=["stage"]
        )
        for stage, ms in m.stages.averages().items():
            stages.add_metric([stage], ms)
        yield stages
        yield gauge("latency_milliseconds", "capture to display, median of recent frames", m.latency.median_ms())
        yield gauge("av_offset_milliseconds", "passthrough sound minus picture (+ = sound late)", m.sync.av_offset_ms)
        yield gauge(
            "passthrough_delay_milliseconds",
            "capture of a voice sample to its sound leaving the speaker",
            m.sync.passthrough_delay_ms,
        )
        yield gauge("face_present", "1 when a face is being animated", float(m.liveness.face_present))
        yield gauge(
            "own_exemplars", "the visitor's own mouth exemplars banked in memory (mirror mode)", m.own_mouth.exemplars
        )
        yield gauge("own_bank_bytes", "memory held by the visitor's own mouth exemplars", m.own_mouth.bytes)
        yield counter("mouth_painted", "openings painted", m.own_mouth.painted)
        yield counter("mouth_painted_own", "openings painted from the visitor's own exemplars", m.own_mouth.painted_own)
        backend = GaugeMetricFamily(
            "ventriloquist_backend_info", "the mouth model and its inference backend", labels=["backend"]
        )
        backend.add_metric([m.backend], 1.0)
        yield backend
        yield gauge(
            "model_lookahead_milliseconds", "how far ahead of the voice the mouth model listens", m.lookahead_ms
        )
        build = build_info()
        info = GaugeMetricFamily(
            "ventriloquist_build_info",
            "the version running (and its git commit, when known)",
            labels=["version", "commit"],
        )
        info.add_metric([build["version"], build["commit"]], 1.0)
        yield info
        restarts = CounterMetricFamily(
            "ventriloquist_restarts", "devices reopened and models replaced after a fault", labels=["part"]
        )
        for part, count in m.restarts.as_dict().items():
            restarts.add_metric([part], count)
        yield restarts
        yield gauge("uptime_seconds", "time since this pipeline started", time.monotonic() - m.started_at)
        yield gauge(
            "pipeline_generation",
            "pipelines started by this process (a config reload starts a new one)",
            self.state.generation,
        )
        yield from m.latency.histogram.collect()
        yield from m.stages.histogram.collect()


def metrics_registry(state: LiveState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LiveCollector(state))
    return registry


def build_app(settings: Settings, state: LiveState) -> Starlette:
    """/healthz and /metrics, and the console at / (when `console.enabled`), behind the console's
    guard: a token off-loopback, same-origin writes, loopback host names only on loopback."""
    from firmware_app.web.console.security import Guard, Policy

    registry = metrics_registry(state)
    policy = Policy(settings)

    def healthz(request: Request) -> JSONResponse:
        ok, body = health(state.metrics)
        return JSONResponse(body, status_code=200 if ok else 503)

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/healthz", healthz), Route("/metrics", metrics)]
    if settings.console.enabled:
        from firmware_app.web.console.routes import console_routes

        routes.append(Mount("/", routes=console_routes(settings, state, policy)))
    return Starlette(routes=routes, middleware=[Middleware(Guard, policy=policy)])


class HealthServer:
    def __init__(self, settings: Settings, state: LiveState) -> None:
        self.settings, self.state = settings, state
        self.bind, self.port = settings.health.bind, settings.health.port
        self._server = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        try:  # bound here, so a port in use is the operator's error now, not a dead thread later
            sock = socket.socket(socket.AF_INET6 if ":" in self.bind else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.bind, self.port))
        except OSError as exc:
            sock.close()
            raise DeviceError(
                f"cannot serve health on {self.bind}:{self.port}: {exc}",
                "set health.port to a free port, or health.enabled: false",
            ) from None
        config = uvicorn.Config(
            build_app(self.settings, self.state), http="h11", ws="none", lifespan="off",
            log_config=None, log_level="warning", access_log=False, timeout_graceful_shutdown=STOP_WITHIN_S,
        )  # fmt: skip
        self._server, self._socket = uvicorn.Server(config), sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="health", daemon=True)
        self._thread.start()
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        page = " and the console at /" if self.settings.console.enabled else ""
        log.info("health and metrics on http://%s:%d/healthz and /metrics%s", host, self.port, page)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=STOP_WITHIN_S)
            self._socket.close()  # the port is free at once for the next server
            self._server = None
