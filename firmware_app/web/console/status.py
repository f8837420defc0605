"""What the console's status panel shows: the live numbers now, a few minutes of their history
(sampled once a second, so the fps is the recent rate rather than the average since start), the
last warnings and errors from the log, the build and the host's health; and the log view's lines."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from firmware_app.platform.host import build_info, host_health
from firmware_app.platform.logs import RepeatLimiter

if TYPE_CHECKING:
    from firmware_app.web.state import LiveState

HISTORY_S = 300  # the charts show the last five minutes
SAMPLE_EVERY_S = 1.0
KEPT_ERRORS = 20
KEPT_LINES = 500  # the log view


class RecentLog(logging.Handler):
    """The last KEPT_LINES lines logged anywhere in the process at info and above, floods folded
    as the journal folds them, `secret` (the console's token) never among them: the log view. The
    last KEPT_ERRORS warnings and errors are kept apart for the status panel."""

    def __init__(self, secret: str = "", redacted: str = "") -> None:
        super().__init__(level=logging.INFO)
        self.lines: deque[dict] = deque(maxlen=KEPT_LINES)
        self.records: deque[dict] = deque(maxlen=KEPT_ERRORS)
        self.secret, self.redacted = secret, redacted
        self.addFilter(RepeatLimiter())

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.secret:
            message = message.replace(self.secret, self.redacted)
        line = {"time": record.created, "level": record.levelname.lower(), "logger": record.name, "message": message}
        self.lines.append(line)
        if record.levelno >= logging.WARNING:
            self.records.append({key: line[key] for key in ("time", "level", "message")})

    def text(self) -> str:
        """The kept lines as the journal's text format would show them (times in UTC)."""
        return "".join(
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(line['time']))} {line['level'].upper()} "
            f"{line['logger']}: {line['message']}\n"
            for line in list(self.lines)
        )

    def attach(self) -> RecentLog:
        logging.getLogger().addHandler(self)
        return self


class History(threading.Thread):
    """Samples the live metrics once a second into rings the charts draw."""

    def __init__(self, state: LiveState) -> None:
        super().__init__(name="console-history", daemon=True)
        self.state = state
        self.samples: deque[tuple[float, float, float, float]] = deque(
            maxlen=HISTORY_S
        )  # (unix time, fps, latency, A/V)
        self._last: tuple[float, int, int] | None = None  # (monotonic, frames, generation)

    def run(self) -> None:
        while True:
            self.sample()
            time.sleep(SAMPLE_EVERY_S)

    def sample(self) -> None:
        m, now = self.state.metrics, time.monotonic()
        fps = 0.0
        if self._last is not None and self._last[2] == self.state.generation and now > self._last[0]:
            fps = max(0, m.frames.shown - self._last[1]) / (now - self._last[0])
        elif m.frames.shown:
            fps = m.fps
        self._last = (now, m.frames.shown, self.state.generation)
        self.samples.append(
            (time.time(), round(fps, 2), round(m.latency.median_ms(), 1), round(m.sync.av_offset_ms, 1))
        )

    @property
    def recent_fps(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0

    def series(self) -> dict[str, list[float]]:
        columns = list(zip(*self.samples)) or [(), (), (), ()]
        return {name: list(values) for name, values in zip(("t", "fps", "latency_ms", "av_offset_ms"), columns)}


def likeness(state: LiveState) -> dict | None:
    """The face pack the kiosk speaks with now, as it was loaded (puppet mode), and the consent
    it records: whoever opens the page sees whose likeness is on the screen."""
    from firmware_app.render.bank import BankRenderer

    renderer = state.pipeline.renderer if state.pipeline is not None else None
    if not isinstance(renderer, BankRenderer):
        return None
    pack = renderer.bank.pack
    return {"name": pack.path.name, "consent": pack.consent, "enrolled": str(pack.manifest.get("date", ""))}


def snapshot(state: LiveState, history: History, errors: RecentLog, started_at: float) -> dict:
    """The status panel's JSON."""
    m, settings = state.metrics, state.settings
    passthrough = state.pipeline.passthrough if state.pipeline is not None else None
    return {
        "fps": history.recent_fps,
        "fps_average": round(m.fps, 2),
        "frames": m.frames.shown,
        "latency_ms": round(m.latency.median_ms(), 1),
        "av_offset_ms": round(m.sync.av_offset_ms, 1),
        "face_present": m.liveness.face_present,
        "own_exemplars": m.own_mouth.exemplars,  # the visitor's own mouth exemplars in use (mirror mode)
        "backend": m.backend,
        "restarts": m.restarts.as_dict(),
        "memory_mb": round(m.resident_mb, 1),
        "uptime_s": round(time.monotonic() - started_at),
        "pipeline_uptime_s": round(time.monotonic() - m.started_at),
        "generation": state.generation,
        "mode": settings.mode,
        "provenance": settings.provenance.enabled,  # C2PA credentials on written files (README, Provenance)
        "passthrough": {
            "on": passthrough is not None,
            "delay_ms": round(m.sync.passthrough_delay_ms, 1),
            "trim_ms": round(passthrough.trim_s * 1000, 1)
            if passthrough is not None
            else settings.audio.passthrough_trim_ms,
        },
        "preview": settings.console.preview,
        "face_pack": likeness(state),
        "config_path": str(state.config_path) if state.config_path else None,
        "build": build_info(),
        "host": host_health(state.config_path.parent if state.config_path else None),
        "errors": list(errors.records)[::-1],
        "history": history.series(),
    }
