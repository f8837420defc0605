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
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_app.appliance.demo import loop_demo, show_demo
from firmware_app.appliance.signals import Proved, SignalState, handle_signals
from firmware_app.config import Settings, load_settings
from firmware_app.errors import CameraMissingError, ConfigError, ExitCode, VentriloquistError
from firmware_app.pipeline import build_pipeline, prove_pipeline
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
        self._reloading = threading.Lock()  # one SIGHUP's proof at a time, so the last file read wins

    def start(self) -> int:
        """Run on the config until the speech file ends or a stop; the exit code. On the main
        thread: it installs the signal handlers."""
        handle_signals(self.stop, self.reload)
        try:
            current = Proved(load_settings(self.config_path), self._file_text())
        except ConfigError as exc:
            if not self.kiosk:
                raise
            current = self._wait_for_valid_config(exc)
            if current is None:
                return exc.exit_code
        settings = current.settings
        setup_logging(self.log_level or settings.logging.level, settings.logging.format)
        if settings.sources.pace == "fast":
            from firmware_app.runners.offline import run_offline

            run_offline(build_pipeline(settings, realtime=False), self.state.stop)
            return ExitCode.OK
        return self._run_live(current)

    def reload(self) -> None:
        """Re-read the config file and prove it (`prove_pipeline`: every file it names read, the
        camera there): a good one is taken up by the next pipeline; any other is logged and the
        running config stays (on the error card, its error replaces the one shown). SIGHUP calls
        this on a thread of its own: the proof reads files, the screen goes on meanwhile."""
        with self._reloading:
            try:
                text = self._file_text()
                settings = load_settings(self.config_path)
                for warning in prove_pipeline(settings):
                    log.warning("config %s: %s", self.config_path, warning)
            except VentriloquistError as exc:
                log.error("config reload refused, keeping the running config: %s", exc)
                self.state.refusal.put(exc)
                if self.state.awaiting_fix:
                    self.state.reload.set()
                return
            self.state.pending_settings.put(Proved(settings, text))
            self.state.reload.set()

    def stop(self) -> bool:
        """Ask for a clean stop. True when this call asked it, False when a stop was already asked."""
        if self.state.stop.is_set():
            return False
        self.state.stop_asked_at = time.monotonic()
        self.state.stop.set()
        return True

    def _file_text(self) -> str:
        if self.config_path is None or not self.config_path.is_file():
            return ""
        return self.config_path.read_text(encoding="utf-8", errors="replace")

    def _run_live(self, current: Proved) -> int:
        from firmware_app.web.state import LiveState

        live = LiveState(self.config_path, current.settings)  # what /metrics and the console see
        server = _start_health(current.settings, live)
        try:
            return self._run_pipelines(current, live, serving=server is not None)
        finally:
            if server is not None:
                server.stop()
            if self.state.stop_asked_at is not None:  # what the 2 s promise covers, on the kiosk's own clock
                log.info("stopped cleanly %.2f s after the signal", time.monotonic() - self.state.stop_asked_at)

    def _run_pipelines(self, current: Proved, live: LiveState, serving: bool) -> int:
        """One pipeline after another, each on the config the last reload brought. A reloaded
        config whose pipeline fails before its first frame is rolled back to the last one that
        ran; under `--kiosk` a pipeline that cannot start waits on the error card for a fix, and
        one that ends by itself (a speech file) starts again: the kiosk never exits on its own."""
        from firmware_app.runners.live import run_live
        from firmware_app.runners.metrics import LiveMetrics

        last_good: Proved | None = None  # the config of the last pipeline that ran
        while not self.state.stop.is_set():
            settings = current.settings
            metrics = LiveMetrics()
            pipeline = None
            try:
                pipeline = build_pipeline(settings, realtime=True)
                live.started(settings, pipeline, metrics)
                run_live(pipeline, self.state.stop, self.state.reload, metrics, keep_up=self.kiosk)
            except VentriloquistError as exc:
                if metrics.frames.shown:
                    raise  # it ran, then failed: systemd restarts it on the same file
                if last_good is not None:
                    current, last_good = self._roll_back(last_good, exc), None  # once: it may fail too
                    continue
                if isinstance(exc, CameraMissingError) and settings.demo.when_no_camera and settings.mode == "mirror":
                    log.warning("%s — rendering the bundled demo instead (demo.when_no_camera)", exc.cause)
                    if not self.kiosk:
                        return show_demo(settings)
                    # the service must not exit: systemd would restart it in a loop (or leave it dead)
                    release_model(pipeline.model if pipeline is not None else None)
                    pipeline = None
                    loop_demo(settings, lambda: self.state.stop.is_set() or self.state.reload.is_set(), Notifier())
                    if not self.state.reload.is_set():
                        continue  # the camera is here (or a stop): the live face again
                    self.state.reload.clear()
                    current = self.state.pending_settings.take() or current
                    continue
                if not self.kiosk:
                    raise
                live.started(settings, None, LiveMetrics())  # the page shows no frames, not stale ones
                waited = self._wait_for_valid_config(exc, serve=not serving)
                if waited is None:
                    return exc.exit_code
                current = waited
                continue
            finally:
                # before the next pipeline builds its own: a TensorRT engine and its GPU memory
                # (system memory on a Jetson) and the context it retains, freed now, not doubled
                release_model(pipeline.model if pipeline is not None else None)
            last_good = current
            if not self.state.reload.is_set():
                if not self.kiosk:
                    break  # the speech file ended
                log.info("the sources ended; the kiosk starts them again")
                continue
            self.state.reload.clear()
            current = self.state.pending_settings.take() or current
            log.info("config reloaded from %s", self.config_path or "the built-in defaults")
        return ExitCode.OK

    def _roll_back(self, last_good: Proved, error: VentriloquistError) -> Proved:
        """A reloaded config that passed its proof and failed anyway: the file goes back to the last
        one that ran (the failed one kept as NAME.rejected), and the kiosk runs on that one again."""
        kept = ""
        if self.config_path is not None and last_good.text:
            from firmware_app.platform.fileutil import write_atomically

            rejected = self.config_path.with_name(f"{self.config_path.name}.rejected")
            write_atomically(rejected, self._file_text().encode())
            write_atomically(self.config_path, last_good.text.encode())
            kept = f"; {self.config_path} is the previous file again (the failed one is kept as {rejected.name})"
        log.error("the reloaded config could not start, running the previous one again%s: %s", kept, error)
        return last_good

    def _wait_for_valid_config(self, error: VentriloquistError, serve: bool = True) -> Proved | None:
        """Kiosk with a config it cannot run: refuse to start, show why on the screen and in the
        log, and wait for a fixed file (SIGHUP) or a stop. None when stopped. Meanwhile the console
        serves the file's editor (its own rescue server unless `serve` is False: the live one is up)."""
        from firmware_app.sinks.error_card import ErrorCard
        from firmware_app.web.state import LiveState, rescue_settings

        log.error("refusing to start: %s", error)
        self.state.awaiting_fix = True
        server = None
        if serve:
            rescue = rescue_settings(self.config_path)
            server = _start_health(rescue, LiveState(self.config_path, rescue))
        try:
            with ErrorCard(str(error)) as card:
                while not self.state.stop.is_set():
                    card.show()
                    if self.state.reload.wait(ERROR_CARD_POLL_S):
                        self.state.reload.clear()
                        if (proved := self.state.pending_settings.take()) is not None:
                            return proved
                        card.message = str(self.state.refusal.take() or error)
        finally:
            self.state.awaiting_fix = False
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
