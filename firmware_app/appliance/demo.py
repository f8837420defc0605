"""No camera at start-up (`demo.when_no_camera`): the bundled portrait speaks the bundled clip,
rendered to an MP4 and played in the output window, so a fresh install shows what it does."""

from __future__ import annotations

import os
from pathlib import Path

from firmware_app.config import Settings
from firmware_app.errors import ExitCode
from firmware_app.runners.offline import render_offline


def show_demo(settings: Settings) -> int:
    """Render the demo, then play it where there is a display; the exit code."""
    out = demo_path(settings.demo.output)
    stats = render_offline(settings, settings.demo.audio, settings.demo.face, str(out))
    print(f"demo written to {out} ({stats.media_seconds:.1f} s, {stats.summary()})")
    from firmware_app.sinks.display import display_available

    if display_available():
        play(settings, out)
    else:
        print("no display found: open the MP4 in a video player to watch it")
    return ExitCode.OK


def demo_path(output: str) -> Path:
    """Where the demo is written: a relative `demo.output` goes under systemd's cache directory,
    because under systemd the app folder is read-only."""
    out = Path(output)
    if not out.is_absolute() and os.environ.get("CACHE_DIRECTORY"):
        out = Path(os.environ["CACHE_DIRECTORY"]) / out
    return out.resolve()


def play(settings: Settings, path: Path) -> None:
    """Show a rendered MP4 in the output window, at its own pace."""
    from firmware_app.sinks import open_sink
    from firmware_app.sources.video_file import VideoFileSource

    size = (settings.video.width, settings.video.height)
    with (
        VideoFileSource(path, size, realtime=True, loop=False) as video,
        open_sink("display://0", settings.output.window_title) as sink,
    ):
        sink.open(*size, video.fps)
        while (frame := video.read()) is not None and not sink.closed_by_user:
            sink.write_video(frame)
