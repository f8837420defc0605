"""No camera at start-up (`demo.when_no_camera`): the bundled portrait speaks the bundled clip,
rendered to an MP4 and played in the output window, so a fresh install shows what it does.

`run` plays it once and exits. The kiosk service (`--kiosk`) must not exit (systemd would start it
again, or leave it dead): it plays the demo over and over, pinging systemd's watchdog all the while,
and between plays looks for the camera; when one opens, or on a reload or a stop, it returns.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from firmware_app.config import Settings
from firmware_app.errors import ExitCode, VentriloquistError
from firmware_app.platform.sdnotify import Notifier
from firmware_app.runners.offline import render_offline

log = logging.getLogger("ventriloquist")

NO_DISPLAY_WAIT_S = 5.0  # with no screen to play on, how often the waiting kiosk looks for a camera


def show_demo(settings: Settings) -> int:
    """Render the demo, then play it where there is a display; the exit code."""
    out = render_demo(settings)
    from firmware_app.sinks.display import display_available

    if display_available():
        play(settings, out)
    else:
        print("no display found: open the MP4 in a video player to watch it")
    return ExitCode.OK


def render_demo(settings: Settings) -> Path:
    out = demo_path(settings.demo.output)
    stats = render_offline(settings, settings.demo.audio, settings.demo.face, str(out))
    print(f"demo written to {out} ({stats.media_seconds:.1f} s, {stats.summary()})")
    return out


def loop_demo(settings: Settings, done: Callable[[], bool], notifier: Notifier) -> None:
    """The kiosk without a camera: the demo played again and again (the watchdog pinged on every
    frame, and while the demo renders and the camera is looked for) until `done()` (a stop or a
    reload) or the camera opens."""
    from firmware_app.sinks.display import display_available

    out = while_pinging(notifier, lambda: render_demo(settings))
    plays = 0
    while not done():
        if display_available():
            play(settings, out, notifier, done)
            plays += 1
            log.info("demo played %d times; looking for the camera %s", plays, settings.sources.camera)
        else:
            while_pinging(notifier, lambda: threading.Event().wait(NO_DISPLAY_WAIT_S))
        if not done() and while_pinging(notifier, lambda: camera_opens(settings)):
            log.info("camera %s is here: leaving the demo for the live face", settings.sources.camera)
            return


def camera_opens(settings: Settings) -> bool:
    from firmware_app.sources import open_video_source

    try:
        with open_video_source(settings.sources.camera, settings, realtime=True):
            return True
    except VentriloquistError:
        return False


def while_pinging(notifier: Notifier, work: Callable[[], object]):
    """`work()` on a helper thread while this one keeps systemd's watchdog fed (a render or a
    camera probe can take longer than WatchdogSec); its result, or its exception."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="demo-work", daemon=True)
    worker.start()
    while worker.is_alive():
        notifier.alive("demo: no camera")
        worker.join(0.5)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("result")


def demo_path(output: str) -> Path:
    """Where the demo is written: a relative `demo.output` goes under systemd's cache directory,
    because under systemd the app folder is read-only."""
    out = Path(output)
    if not out.is_absolute() and os.environ.get("CACHE_DIRECTORY"):
        out = Path(os.environ["CACHE_DIRECTORY"]) / out
    return out.resolve()


def play(
    settings: Settings, path: Path, notifier: Notifier | None = None, done: Callable[[], bool] = lambda: False
) -> None:
    """Show a rendered MP4 in the output window, at its own pace; each frame shown pings the watchdog."""
    from firmware_app.sinks import open_sink
    from firmware_app.sources.video_file import VideoFileSource

    notifier = notifier or Notifier()
    size = (settings.video.width, settings.video.height)
    with (
        VideoFileSource(path, size, realtime=True, loop=False) as video,
        open_sink("display://0", settings.output.window_title) as sink,
    ):
        sink.open(*size, video.fps)
        while not done() and (frame := video.read()) is not None and not sink.closed_by_user:
            sink.write_video(frame)
            notifier.frame_shown()
