"""`ventriloquist run`: the appliance from its start to its stop.

It starts on the config file; a broken one is an error (exit 3), except for the kiosk service
(`--kiosk`), which shows the error on the screen, serves the console's editor on the file and
waits for a fixed file. Then pipeline after pipeline: a SIGHUP with a valid config ends the
running one and the next starts on the new config, in the same process (the old one's mouth model
closed first); an invalid one is logged and the running one stays. With no camera at start-up the
bundled demo plays instead, and in the kiosk over and over until a camera opens; a microphone
that fails at the kiosk's start is reopened by its thread while the mouth rests. The stop is
clean within the 2 s the unit promises, and the log says how long it took on the kiosk's clock.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_app.appliance.demo import loop_demo, show_demo
from firmware_app.appliance.signals import SignalState, handle_signals
from firmware_app.config import Settings, load_settings
from firmware_app.errors import CameraMissingError, ConfigError, ExitCode, VentriloquistError
from firmware_app.pipeline import build_pipeline
from firmware_app.platform.logs import setup_logging
from firmware_app.platform.sdnotify import Notifier
from firmware_app.runners.steps import release_model

if TYPE_CHECKING:
    from firmware_app.web.server import HealthServer
    from firmware_app.web.state import LiveState

log = logging.getLogger("ventriloquist")

ERROR_CARD_POLL_S = 0.2  # how often the waiting kiosk redraws its error card and looks for a stop


class Appliance:
    """One `run`: `start` blocks until the sources end or a stop; `reload` and `stop` are what
    SIGHUP and SIGTERM call, and may be called from any thread."""

    def __init__(self, config_path: Path | None, kiosk: bool = False, log_level: str | None = None) -> None:
        self.config_path = config_path
        self.kiosk = kiosk  # a broken config waits on the screen for a fix instead of exiting
        self.log_level = log_level  # --log-level, over the config's logging.level
        self.state = SignalState()

    def start(self) -> int:
        """Run on the config until the speech file ends or a stop; the exit code. On the main
        thread: it installs the signal handlers."""
        handle_signals(self.stop, self.reload)
        try:
            settings = load_settings(self.config_path)
        except ConfigError as exc:
            if not self.kiosk:
                raise
            settings = self._wait_for_valid_config(exc)
            if settings is None:
                return exc.exit_code
        setup_logging(self.log_level or settings.logging.level, settings.logging.format)
        if settings.sources.pace == "fast":
            from firmware_app.runners.offline import run_offline

            run_offline(build_pipeline(settings, realtime=False), self.state.stop)
            return ExitCode.OK
        return self._run_live(settings)

    def reload(self) -> None:
        """Re-read the config file: a valid one is taken up by the next pipeline; an invalid one is
        logged and the running config stays (on the error card, its error replaces the one shown)."""
        try:
            self.state.pending_settings.put(load_settings(self.config_path))
        except VentriloquistError as exc:
            log.error("config reload refused, keeping the running config: %s", exc)
            self.state.refusal.put(exc)
            if self.state.awaiting_fix:
                self.state.reload.set()
            return
        self.state.reload.set()

    def stop(self) -> bool:
        """Ask for a clean stop. True when this call asked it, False when a stop was already asked."""
        if self.state.stop.is_set():
            return False
        self.state.stop_asked_at = time.monotonic()
        self.state.stop.set()
        return True

    def _run_live(self, settings: Settings) -> int:
        from firmware_app.web.state import LiveState

        live = LiveState(self.config_path, settings)  # what /metrics and the console see
        server = _start_health(settings, live)
        try:
            return self._run_pipelines(settings, live)
        finally:
            if server is not None:
                server.stop()
            if self.state.stop_asked_at is not None:  # what the 2 s promise covers, on the kiosk's own clock
                log.info("stopped cleanly %.2f s after the signal", time.monotonic() - self.state.stop_asked_at)

    def _run_pipelines(self, settings: Settings, live: LiveState) -> int:
        """One pipeline after another, each on the config the last reload brought."""
        from firmware_app.runners.live import run_live
        from firmware_app.runners.metrics import LiveMetrics

        while not self.state.stop.is_set():
            metrics = LiveMetrics()
            pipeline = None
            try:
                pipeline = build_pipeline(settings, realtime=True)
                live.started(settings, pipeline, metrics)
                run_live(pipeline, self.state.stop, self.state.reload, metrics, keep_up=self.kiosk)
            except CameraMissingError as exc:  # no camera at start-up
                if not (settings.demo.when_no_camera and settings.mode == "mirror"):
                    raise
                log.warning("%s — rendering the bundled demo instead (demo.when_no_camera)", exc.cause)
                if not self.kiosk:
                    return show_demo(settings)
                # the service must not exit: systemd would restart it in a loop (or leave it dead)
                release_model(pipeline.model if pipeline is not None else None)
                pipeline = None
                loop_demo(settings, lambda: self.state.stop.is_set() or self.state.reload.is_set(), Notifier())
                if not self.state.reload.is_set():
                    continue  # the camera is here (or a stop): the live face again
            finally:
                # before the next pipeline builds its own: a TensorRT engine and its GPU memory
                # (system memory on a Jetson) and the context it retains, freed now, not doubled
                release_model(pipeline.model if pipeline is not None else None)
            if not self.state.reload.is_set():
                break  # the speech file ended
            self.state.reload.clear()
            settings = self.state.pending_settings.take() or settings
            log.info("config reloaded from %s", self.config_path or "the built-in defaults")
        return ExitCode.OK

    def _wait_for_valid_config(self, error: ConfigError) -> Settings | None:
        """Kiosk start with a broken config: refuse to start, show why on the screen and in the log,
        and wait for a fixed file (SIGHUP) or a stop. None when stopped. Meanwhile the console serves
        the file's editor, so it can be fixed from a browser."""
        from firmware_app.sinks.error_card import ErrorCard
        from firmware_app.web.state import LiveState, rescue_settings

        log.error("refusing to start: %s", error)
        self.state.awaiting_fix = True
        rescue = rescue_settings(self.config_path)
        server = _start_health(rescue, LiveState(self.config_path, rescue))
        try:
            with ErrorCard(str(error)) as card:
                while not self.state.stop.is_set():
                    card.show()
                    if self.state.reload.wait(ERROR_CARD_POLL_S):
                        self.state.reload.clear()
                        if (settings := self.state.pending_settings.take()) is not None:
                            return settings
                        card.message = str(self.state.refusal.take() or error)
        finally:
            if server is not None:
                server.stop()  # the running kiosk serves it again, on its own settings
        return None


def _start_health(settings: Settings, live: LiveState) -> HealthServer | None:
    if not settings.health.enabled:
        return None
    from firmware_app.web.server import HealthServer

    server = HealthServer(settings, live)
    try:
        server.start()
    except VentriloquistError as exc:
        log.error("%s", exc)  # no metrics is no reason to leave the screen dark
        return None
    return server
