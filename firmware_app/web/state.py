"""What the web side sees of the running kiosk, and how it may change it.

The server (`web.server`) and the console's pages (`web.console`) read this; neither reaches into
the other or into the runners beyond it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_app.runners.metrics import LiveMetrics

if TYPE_CHECKING:
    from firmware_app.config import Settings
    from firmware_app.pipeline import Pipeline


class LiveState:
    """What the web side sees of the running kiosk. `run` updates it as pipelines come and go
    (each SIGHUP reload builds a new one); the console changes the kiosk only through `reload`
    (the SIGHUP path, the same as `systemctl reload`) and the running passthrough's trim."""

    def __init__(self, config_path: Path | None, settings: Settings) -> None:
        self.config_path = config_path
        self.settings = settings
        self.metrics = LiveMetrics()
        self.pipeline: Pipeline | None = None
        self.generation = 0  # pipelines started: a reload shows as a new one

    def started(self, settings: Settings, pipeline: Pipeline | None, metrics: LiveMetrics) -> None:
        self.settings, self.pipeline, self.metrics = settings, pipeline, metrics
        self.generation += 1

    def reload(self) -> None:
        os.kill(os.getpid(), signal.SIGHUP)


def rescue_settings(path: Path | None) -> Settings:
    """While the config file is broken (`run --kiosk` waits for a fix, the console serves its
    editor): the file's health and console sections when those alone are valid, so the console
    is where the operator expects it; else the defaults (127.0.0.1:8095)."""
    from firmware_app.config import Settings, parse_yaml

    try:
        raw = parse_yaml(path.read_text(encoding="utf-8", errors="replace"), str(path))[0] if path is not None else {}
        return Settings.model_validate({key: value for key, value in raw.items() if key in ("health", "console")})
    except Exception:  # noqa: BLE001 - anything wrong in those two sections: the safe defaults
        return Settings()
