"""The one chain of stages, wired in one place:

    audio source → features → mouth model ─┐
    video source → face tracker ───────────┼→ renderer → sink
    (puppet mode) performer camera → tracker → expression ─┘

`ventriloquist run` and `ventriloquist render` both build it here; only the sources' pacing and
the sink differ. Each video frame is rendered with the mouth shape for the audio time it shows.
What runs it is in `runners/`: `offline.run_offline` (a render, as fast as it goes) and
`live.run_live` (the kiosk's threads, paced by its devices).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from firmware_app.audio.passthrough import VoicePassthrough, passthrough_delay_s
from firmware_app.config import IdleSettings, Settings
from firmware_app.errors import CameraMissingError
from firmware_app.face.expression import Puppeteer
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import AudioBlock
from firmware_app.mouth import MouthModel, create_mouth_model, fallback_model
from firmware_app.render import Renderer
from firmware_app.sinks import Sink, open_sink
from firmware_app.sinks.provenance import provenance_for
from firmware_app.sources import AudioSource, VideoSource, open_audio_source, open_video_source

log = logging.getLogger(__name__)


@dataclass
class Pipeline:
    voice_source: AudioSource
    video_source: VideoSource
    model: MouthModel
    tracker: FaceTracker
    renderer: Renderer
    sink: Sink
    size: tuple[int, int]
    passthrough: VoicePassthrough | None = None
    puppeteer: Puppeteer | None = None  # puppet mode: head, blinks and brows
    fallback: Callable[[], MouthModel] | None = None  # takes over if the mouth model fails live
    audio_taps: list[Callable[[AudioBlock], None]] = field(default_factory=list)  # see every captured block (bench)
    idle: IdleSettings | None = None  # live: the attract prompt
    loop_audio: bool = False  # live: a speech file standing in for the microphone starts over at its end
    restart_above_mb: int = 0  # live: resident memory that asks for a restart (0: never)

    @property
    def fps(self) -> float:
        return self.video_source.fps


def build_pipeline(settings: Settings, realtime: bool) -> Pipeline:
    """Wire the stages the config asks for. `realtime` paces file sources to the wall clock."""
    puppet = settings.mode == "puppet"
    face_uri = settings.sources.portrait if puppet else settings.sources.camera
    model = create_mouth_model(settings.model, settings.inference)
    puppeteer = None
    if puppet:
        performer = (
            open_video_source(settings.sources.camera, settings, realtime) if settings.puppet.performer else None
        )
        puppeteer = Puppeteer(settings.puppet, performer, FaceTracker(settings.tracker) if performer else None)
    # a live puppet renders at the display's rate; a file render (no display, and a clip others
    # may use as a camera) keeps the camera rate unless video.fps says otherwise
    fps = settings.video.puppet_fps if puppet and realtime else settings.video.camera_fps
    passthrough = None
    if settings.audio.passthrough and realtime:  # an offline render has no audience to play to
        delay = passthrough_delay_s(model.lookahead_s, fps, settings.audio.passthrough_trim_ms)
        passthrough = VoicePassthrough(
            settings.audio.passthrough_device,
            delay,
            follow=settings.audio.passthrough_delay == "auto",
            trim_s=settings.audio.passthrough_trim_ms / 1000,
        )
    video_source, renderer = _face(settings, settings.sources.portrait, realtime, puppet, fps)
    return Pipeline(
        voice_source=open_audio_source(settings.sources.audio, settings, realtime),
        video_source=video_source or open_video_source(face_uri, settings, realtime, fps if puppet else None),
        model=model,
        tracker=FaceTracker(settings.tracker),
        renderer=renderer,
        sink=open_sink(settings.output.uri, settings.output.window_title, provenance_for(settings)),
        size=(settings.video.width, settings.video.height),
        passthrough=passthrough,
        puppeteer=puppeteer,
        fallback=lambda: fallback_model(model, settings.model),
        idle=settings.idle,
        restart_above_mb=settings.health.restart_above_mb,
    )


def _face(
    settings: Settings, portrait: str, realtime: bool, puppet: bool, fps: float
) -> tuple[VideoSource | None, Renderer]:
    """A face pack as the portrait (`file://NAME.face`) brings its mouth bank (`render.bank`) and,
    in puppet mode, its reference still as the picture; in mirror mode the camera's face speaks
    with the pack's mouth. Anything else: the picture's own source, the single-photo renderer."""
    from firmware_app.face.pack import face_pack_path, open_face_pack
    from firmware_app.render.bank import BankRenderer

    path = face_pack_path(portrait) if portrait else None
    if path is None:
        return None, Renderer(settings.renderer, settings.disclosure)
    from firmware_app.sources.face_pack import FacePackSource

    pack = open_face_pack(path, settings.disclosure)
    source = FacePackSource(pack, (settings.video.width, settings.video.height), fps, realtime) if puppet else None
    return source, BankRenderer(settings.renderer, settings.disclosure, pack)


def prove_pipeline(settings: Settings, camera_required: bool = True) -> list[str]:
    """Build what `build_pipeline` would from `settings`, without taking a device or the screen
    from the running kiosk: every file the config names is read with the reader the kiosk uses
    (the speech file decoded, a still or clip opened and its first frame read, a face pack loaded
    under its disclosure rule, the model files checked), and a camera must exist. The first problem
    raises its `VentriloquistError`; what only may go wrong is returned as warnings. Apply, SIGHUP
    and `config check` prove a config this way before it is kept (a missing camera is a warning
    only for `config check`, `camera_required=False`: `run` would show the demo)."""
    from firmware_app.assets import resolve_path, verify_model_file
    from firmware_app.config import InferenceSettings
    from firmware_app.face.pack import face_pack_path, load_face_pack, require_disclosure
    from firmware_app.uri import parse_uri

    warnings: list[str] = []
    puppet = settings.mode == "puppet"
    if settings.model.kind == "learned":  # its file read as the kiosk's CPU fallback reads it
        create_mouth_model(settings.model, InferenceSettings(backend="onnxruntime"))
    verify_model_file(resolve_path(settings.tracker.model_path))
    if parse_uri(settings.sources.audio, ("mic", "file")).scheme == "file":
        source = open_audio_source(settings.sources.audio, settings, realtime=False)
        source.open()
        source.close()
    pack = face_pack_path(settings.sources.portrait) if settings.sources.portrait else None
    if pack is not None:  # read and held to its disclosure rule as the kiosk will, but not logged as in use
        require_disclosure(load_face_pack(pack), settings.disclosure)
    videos = [settings.sources.camera] if not puppet or settings.puppet.performer else []
    if puppet and pack is None:
        videos.append(settings.sources.portrait)
    for text in videos:
        uri = parse_uri(text, ("v4l2", "csi", "file"))
        if uri.scheme == "v4l2":
            device = Path(uri.location or "/dev/video0")
            if not device.exists():
                if camera_required or puppet:
                    raise CameraMissingError(
                        f"no camera at {device} ({'sources.camera' if text == settings.sources.camera else text})",
                        "plug in the camera, or set sources.camera to another device or a file://clip.mp4",
                    )
                warnings.append(f"no camera at {device} now: `run` would show the demo (demo.when_no_camera)")
        elif uri.scheme == "file":
            _read_first_frame(open_video_source(text, settings, realtime=False), text)
    # the scheme and its path, nothing opened; a file's signing credentials as the kiosk's start makes them
    open_sink(settings.output.uri, settings.output.window_title, provenance_for(settings))
    return warnings


def _read_first_frame(source: VideoSource, text: str) -> None:
    from firmware_app.errors import MediaError

    source.open()
    try:
        if source.read() is None:
            raise MediaError(f"{text} has no picture in it", "give a still or a clip that plays in a video player")
    finally:
        source.close()
