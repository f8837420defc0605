"""The one YAML file that sets every behaviour, validated into typed settings.

Unknown keys are refused. Errors name the key path, the line, the bad value and what is allowed.
`default_yaml()` writes the commented default config from the field descriptions below, so the
documentation of each key lives in exactly one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent

from firmware_app.errors import ConfigError, MissingFileError

MAX_CONFIG_BYTES = 256 * 1024  # a full commented default is 9 KiB
MAX_DEPTH = 16  # sections nest three deep


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SourcesSettings(Section):
    audio: str = Field(
        "mic://default",
        description="voice input: mic://default, mic://<device name>, or file://speech.wav",
    )
    camera: str = Field(
        "v4l2:///dev/video0",
        description="camera: v4l2:///dev/video0, csi://0, or file://clip.mp4 (stands in for a camera)",
    )
    portrait: str = Field(
        "bundled://portrait.jpg",
        description="puppet mode: the face that speaks, file://portrait.jpg, file://clip.mp4 or file://NAME.face "
        "(a face pack from "
        "`ventriloquist enroll`); mirror mode: a face pack here gives the camera's face that person's own mouth",
    )
    pace: Literal["auto", "realtime", "fast"] = Field(
        "auto",
        description="file sources: realtime (live simulation), fast (offline), auto (realtime for run, fast for "
        "render)",
    )
    loop_video: bool = Field(True, description="restart a video file at its end instead of stopping")
    csi_source: str = Field(
        "nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), framerate={fps} ! "
        "nvvidconv ! video/x-raw, format=BGRx, width={width}, height={height}",
        description="csi:// cameras: the GStreamer source part of the pipeline ({sensor} {width} {height} {fps} "
        "are filled in); "
        "'videotestsrc is-live=true ! video/x-raw, width={width}, height={height}, framerate={fps}' tests it "
        "without a camera",
    )


CAMERA_FPS = 30.0
PUPPET_FPS = 60.0  # what displays run at where their refresh is not known otherwise


class VideoSettings(Section):
    width: int = Field(1280, ge=64, le=7680, description="frame width the pipeline works at, pixels")
    height: int = Field(720, ge=64, le=4320, description="frame height the pipeline works at, pixels")
    fps: float | None = Field(
        None,
        gt=0,
        le=120,
        description="frames/s; null: cameras 30 (mirror mode shows their rate), a still portrait live in puppet "
        "mode 60 (its mouth waits at most 17 ms for a frame, not 33); `render` to a file 30",
    )

    @property
    def camera_fps(self) -> float:
        """What cameras (and a still standing in for one) are asked for."""
        return self.fps or CAMERA_FPS

    @property
    def puppet_fps(self) -> float:
        """A still portrait in puppet mode needs no camera frame: it renders at the display's rate."""
        return self.fps or PUPPET_FPS


class AudioSettings(Section):
    block_ms: int = Field(
        10, ge=5, le=200, description="audio block size read from the source, ms (smaller: less latency)"
    )
    passthrough: bool = Field(False, description="play the voice through the appliance, delayed to match the face")
    passthrough_device: str = Field("default", description="audio output device for passthrough")
    passthrough_delay: Literal["auto", "fixed"] = Field(
        "auto",
        description="auto: the delay follows the measured camera-to-screen latency; fixed: look-ahead + one frame",
    )
    passthrough_trim_ms: float = Field(
        0.0, ge=-500, le=500, description="added to the passthrough delay (e.g. the display's own lag), ms"
    )


class LoudnessSettings(Section):
    floor_db: float = Field(-50.0, le=0, description="level (dBFS) at or below which the mouth rests closed")
    ceil_db: float = Field(-18.0, le=0, description="level (dBFS) at which the jaw is fully open")
    attack_ms: float = Field(15.0, ge=0, description="how fast the jaw opens, ms")
    release_ms: float = Field(60.0, ge=0, description="how fast the jaw closes, ms")

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> LoudnessSettings:
        if self.floor_db >= self.ceil_db:
            raise ValueError(f"floor_db ({self.floor_db}) must be below ceil_db ({self.ceil_db})")
        return self


BUNDLED_MOUTH_MODELS = {50: "bundled://models/mouth.onnx", 20: "bundled://models/mouth20.onnx"}  # by look-ahead, ms


class ModelSettings(Section):
    kind: Literal["learned", "loudness"] = Field(
        "learned",
        description="mouth model: learned (lip sync from speech) or loudness (baseline: jaw follows the level)",
    )
    lookahead_ms: Literal[20, 50] = Field(
        50,
        description="how far ahead of the voice the learned model listens: 50 (the surer mouth) or 20 (on screen "
        "30 ms sooner, for a voice heard directly in the room; README, Latency)",
    )
    path: str = Field(
        "auto",
        description="the learned model's ONNX file; auto: the bundled model of lookahead_ms "
        "(models/mouth.onnx, models/mouth20.onnx)",
    )
    release_timing: bool = Field(
        True,
        description="the lips part at the p/b burst heard in the sound, to the millisecond (the model alone "
        "places it to a frame or two)",
    )
    loudness: LoudnessSettings = Field(default_factory=LoudnessSettings)

    def onnx_path(self) -> str:
        """The learned model's file as a config path: `path`, or for auto the bundled model of `lookahead_ms`."""
        return BUNDLED_MOUTH_MODELS[self.lookahead_ms] if self.path == "auto" else self.path


class InferenceSettings(Section):
    backend: Literal["auto", "tensorrt", "onnxruntime"] = Field(
        "auto", description="auto: TensorRT when it and a CUDA GPU are usable, else ONNX Runtime on the CPU"
    )
    fp16: bool = Field(True, description="TensorRT: build the engine in FP16 where the GPU supports it")
    engine_dir: str = Field(
        "auto",
        description="where TensorRT engines are cached; auto: $CACHE_DIRECTORY/engines or "
        "~/.cache/ventriloquist/engines",
    )


class TrackerSettings(Section):
    model_path: str = Field(
        "bundled://models/face_landmarker.task",
        description="MediaPipe face landmarker file (fetched by `ventriloquist models fetch`)",
    )
    max_faces: int = Field(2, ge=1, le=8, description="faces to look for; one of them is animated (see pick)")
    pick: Literal["largest", "centre"] = Field(
        "largest",
        description="which face to animate when several are in view: the largest, or the one nearest the centre",
    )
    hold_frames: int = Field(15, ge=0, description="frames to keep the last face when it is lost")
    smoothing: bool = Field(True, description="smooth landmark jitter of moving video (One Euro filter)")
    smoothing_min_cutoff_hz: float = Field(1.2, gt=0, description="One Euro: cutoff for a still face; lower = steadier")
    smoothing_beta: float = Field(0.02, ge=0, description="One Euro: how fast the cutoff rises with motion (per px/s)")


class RendererSettings(Section):
    mouth_gain: float = Field(1.0, ge=0, le=3, description="scales how wide the mouth opens")
    max_open: float = Field(0.12, gt=0, le=0.5, description="lip opening at jawOpen=1, as a fraction of face height")
    interior_color: tuple[int, int, int] = Field(
        (24, 22, 52), description="mouth cavity colour, B G R (0-255), blended with the lips' own colour"
    )
    donors: bool = Field(
        True,
        description="paint the inside of a mouth with no footage of its own from the shipped library of real "
        "mouths (false: the drawn interior)",
    )
    live_bank: bool = Field(
        True,
        description="bank a camera visitor's own open mouth in memory (never on disk) and paint their mouth "
        "with it as it covers the shapes",
    )
    fade_frames: int = Field(
        12,
        ge=0,
        le=300,
        description="after the face is lost (and the tracker's hold ends), frames to fade back to the untouched "
        "picture",
    )


class PuppetSettings(Section):
    performer: bool = Field(
        True, description="puppet mode: the performer on sources.camera drives the puppet's head, blinks and brows"
    )
    head_gain: float = Field(1.0, ge=0, le=3, description="puppet head turn per degree of performer head turn")
    max_head_degrees: float = Field(20.0, ge=0, le=45, description="largest head turn given to the puppet, degrees")
    performer_rest_rate: float = Field(
        0.002, ge=0, le=1, description="how fast the performer's resting pose is re-learned, per frame"
    )
    idle: bool = Field(True, description="with no performer, the puppet blinks, sways, breathes and nods on its own")
    idle_motion: float = Field(1.0, ge=0, le=3, description="scales the idle sway and breathing")
    blink_interval_s: float = Field(4.0, gt=0.5, le=30, description="mean time between idle blinks, seconds")
    seed: int = Field(1, description="random seed of the idle animation (renders repeat exactly)")


class OutputSettings(Section):
    uri: str = Field("display://0", description="where frames go: display://0 (fullscreen), file://out.mp4, null://")
    window_title: str = Field("Ventriloquist", description="window title for display outputs")
    recordings_dir: str = Field(
        "recordings",
        description="a file:// output set from the console must be inside this folder (relative: beside the config "
        "file), so the console never writes anywhere else",
    )


class DisclosureSettings(Section):
    enabled: bool = Field(True, description="show a visible mark that the video is synthetic (EU AI Act art. 50)")
    text: str = Field("SYNTHETIC VIDEO", min_length=1, description="the mark's text")
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = Field(
        "bottom-left", description="corner of the mark"
    )
    watermark: bool = Field(
        True, description="add the invisible pixel watermark (appliance id + synthetic) to every rendered frame"
    )
    appliance_id: str = Field("", description="the id the watermark carries (as 3 hex digits); empty: the host name")


class ProvenanceSettings(Section):
    enabled: bool = Field(
        True,
        description="sign C2PA content credentials into every file written (`provenance: off` writes files "
        "without them; see README, Provenance)",
    )
    cert: str = Field("", description="PEM certificate chain to sign with (ES256); empty: the appliance's own")
    key: str = Field("", description="PEM private key of provenance.cert")
    folder: str = Field(
        "",
        description="where the appliance's own signing certificate is made at first start (0600); empty: "
        "provenance/ in the config folder (/etc/ventriloquist when writable, as for the kiosk, else "
        "~/.config/ventriloquist)",
    )


class PrivacySettings(Section):
    allow_recording: bool = Field(
        False, description="allow writing camera or microphone media to disk (file:// output with live sources)"
    )


class HealthSettings(Section):
    enabled: bool = Field(True, description="serve /healthz and Prometheus /metrics while `run` is live")
    bind: str = Field("127.0.0.1", description="address to serve on; 127.0.0.1 keeps it on the appliance")
    port: int = Field(8095, ge=1, le=65535, description="TCP port of the health and metrics endpoint")
    restart_above_mb: int = Field(
        1536,
        ge=0,
        description="resident memory (MiB) above which the live kiosk restarts itself at a quiet moment (nobody "
        "in view "
        "or speaking for 30 s; at once above 1.25x); systemd starts it again in seconds; 0: never",
    )


LOOPBACK = ("127.0.0.1", "::1")  # the only binds the console serves without a token


class ConsoleSettings(Section):
    enabled: bool = Field(
        True, description="serve the operator's console page at / on the health address (needs health.enabled)"
    )
    token: str = Field(
        "",
        description="secret (16+ characters) every request must carry once set (Bearer header, or the page's login);"
        " required when health.bind is not 127.0.0.1 or ::1",
    )
    preview: bool = Field(
        False, description="show the frame on the screen now on the page (kept in memory only, never written)"
    )
    upload_max_mb: float = Field(
        50.0, gt=0, le=500, description="largest portrait (still, clip or face pack) the console accepts, MiB"
    )

    @model_validator(mode="after")
    def _token_long_enough(self) -> ConsoleSettings:
        if self.token and len(self.token) < 16:
            raise ValueError("token must be at least 16 characters (e.g. `openssl rand -hex 16`)")
        return self


class IdleSettings(Section):
    prompt: str = Field(
        "",
        description="text shown when nobody is in view and nobody speaks (empty: none), e.g. 'Step closer and speak'",
    )
    prompt_after_s: float = Field(8.0, ge=0, description="seconds of no face and no speech before the prompt shows")


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="log verbosity")
    format: Literal["text", "json"] = Field("text", description="text for people, json for the journal")


class DemoSettings(Section):
    when_no_camera: bool = Field(True, description="`run` without a camera renders the bundled demo instead")
    audio: str = Field("bundled://speech.wav", description="the demo's speech clip")
    face: str = Field("bundled://portrait.jpg", description="the demo's portrait")
    output: str = Field("ventriloquist-demo.mp4", description="where the demo MP4 is written")


class Settings(Section):
    mode: Literal["mirror", "puppet"] = Field(
        "mirror", description="mirror: the camera's face speaks; puppet: the portrait speaks"
    )
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    renderer: RendererSettings = Field(default_factory=RendererSettings)
    puppet: PuppetSettings = Field(default_factory=PuppetSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    disclosure: DisclosureSettings = Field(default_factory=DisclosureSettings)
    provenance: ProvenanceSettings = Field(default_factory=ProvenanceSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    idle: IdleSettings = Field(default_factory=IdleSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)

    @field_validator("provenance", mode="before")
    @classmethod
    def _provenance_off(cls, value: Any) -> Any:
        return {"enabled": False} if value is False or value == "off" else value  # YAML reads `off` as false

    @model_validator(mode="after")
    def _recording_needs_consent(self) -> Settings:
        live = self.sources.audio.startswith("mic://") or (
            self.mode == "mirror" and not self.sources.camera.startswith("file://")
        )
        if self.output.uri.startswith("file://") and live and not self.privacy.allow_recording:
            raise ValueError(
                f"output.uri {self.output.uri} would write live camera or microphone media to disk;"
                " that needs privacy.allow_recording: true"
            )
        return self

    @field_validator("console")
    @classmethod
    def _off_loopback_needs_a_token(cls, console: ConsoleSettings, info: ValidationInfo) -> ConsoleSettings:
        health = info.data.get("health")
        if health is not None and health.enabled and health.bind not in LOOPBACK and not console.token:
            raise ValueError(
                f"health.bind {health.bind} serves /metrics and the console beyond this machine, so console.token"
                " must be set (16+ characters); or bind 127.0.0.1 and reach it through an SSH tunnel"
            )
        return console


# --- loading -------------------------------------------------------------------------------


def load_settings(path: str | Path | None) -> Settings:
    """Read and validate a config file; None means the built-in defaults."""
    data: dict[str, Any] = {}
    lines: dict[tuple, int] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise MissingFileError(
                f"config file {path} does not exist",
                "check the path, or write a fresh one with `ventriloquist config default > config.yaml`",
            )
        if path.stat().st_size > MAX_CONFIG_BYTES:  # refused before it is read into memory
            raise ConfigError(
                f"{path} is {path.stat().st_size / 1024:.0f} KiB; a config file is at most "
                f"{MAX_CONFIG_BYTES // 1024} KiB",
                _fix_hint(source),
            )
        return settings_from_text(path.read_text(encoding="utf-8", errors="replace"), source)
    return _validate(data, source, lines)


def settings_from_text(text: str, source: str) -> Settings:
    """Validate config text as if read from `source` (errors name that file, its keys and lines)."""
    data, lines = parse_yaml(text, source)
    return _validate(data, source, lines)


def with_changes(settings: Settings, changes: dict[str, Any]) -> Settings:
    """A copy of `settings` with dotted keys replaced (`{"sources.audio": "file://x.wav"}`), re-validated."""
    data = settings.model_dump()
    for dotted, value in changes.items():
        _set_dotted(data, dotted.split("."), value)
    return _validate(data, "the command line", {})


def _validate(data: dict[str, Any], source: str, lines: dict[tuple, int]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, lines), _fix_hint(source)) from None


def _fix_hint(source: str) -> str:
    return f"edit {source}; `ventriloquist config default` lists every key with its meaning"


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple, int]]:
    """Config text as plain data and each key's line, or the ConfigError naming the problem."""
    tree = read_yaml(text, source)
    if tree is None:
        return {}, {}
    if not isinstance(tree, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys (mode:, sources:, ...), not {type(tree).__name__}",
            _fix_hint(source),
        )
    lines: dict[tuple, int] = {}
    _collect_lines(tree, (), lines)
    return _plain(tree), lines


def read_yaml(text: str, source: str) -> Any:
    """Config text as ruamel's round-trip tree (comments, order and line numbers kept), read the one
    way every reader of the file reads it (`config check`, SIGHUP, the console): at most
    `MAX_CONFIG_BYTES`, no anchors or aliases (a few hundred bytes of nested aliases expand to
    gigabytes), nested at most `MAX_DEPTH` deep, duplicate keys refused."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source} is {size / 1024:.0f} KiB; a config file is at most {MAX_CONFIG_BYTES // 1024} KiB",
            _fix_hint(source),
        )
    try:
        _refuse_aliases_and_depth(text, source)
        reader = YAML(typ="rt")
        reader.preserve_quotes = True  # the console writes the tree back as the operator wrote it
        return reader.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark:
            problem += f"; {context} that starts at line {context_mark.line + 1}"
        raise ConfigError(f"{source}{where}: not valid YAML ({problem})", _fix_hint(source)) from None


def _refuse_aliases_and_depth(text: str, source: str) -> None:
    """One pass over the parser's events, before anything is built from them."""
    depth = 0
    for event in YAML(typ="rt").parse(text):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(
                f"{source} line {line}: YAML anchors and aliases (&name, *name) are not accepted in a config file",
                "write each value out in full",
            )
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"{source} line {line}: nested more than {MAX_DEPTH} deep; a config is a few levels of sections",
                    _fix_hint(source),
                )
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


def _collect_lines(node: Any, path: tuple, out: dict[tuple, int]) -> None:
    """Each key's and item's line (1-based) from the round-trip tree; aliases are refused before,
    so this walk is as long as the text."""
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            key_path = path + (key,)
            out[key_path] = node.lc.key(key)[0] + 1
            _collect_lines(value, key_path, out)
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            out[path + (i,)] = node.lc.item(i)[0] + 1
            _collect_lines(item, path + (i,), out)


def _plain(node: Any) -> Any:
    """The round-trip tree as plain dicts, lists, str, int, float and bool (what pydantic sees)."""
    if isinstance(node, dict):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(node, kind):
            return kind(node)
    return node


def _set_dotted(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def _describe(exc: ValidationError, source: str, lines: dict[tuple, int]) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _nearest_line(loc, lines)
        where = f"{source} line {line}" if line else source
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            message = f"unknown key; allowed here: {allowed}"
        elif err["type"] != "missing":
            message += f" (got {err['input']!r})" if not isinstance(err["input"], (dict, BaseModel)) else ""
            allowed = _allowed_values(loc)
            if allowed and "should be" not in message:
                message += f"; allowed: {allowed}"
        problems.append(f"{where}: `{key}`: {message}")
    return "\n  ".join(problems)


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: Any = Settings
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _allowed_keys(loc: tuple) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _allowed_values(loc: tuple) -> str:
    if not loc:
        return ""
    model = _model_at(loc[:-1])
    if model is None or loc[-1] not in model.model_fields:
        return ""
    annotation = model.model_fields[loc[-1]].annotation
    if get_origin(annotation) is Literal:
        return " | ".join(str(v) for v in get_args(annotation))
    return ""


# --- the commented default -----------------------------------------------------------------


def default_yaml() -> str:
    """The default config as YAML, every key commented with its meaning."""
    header = (
        "# Ventriloquist configuration. Every key is optional; these are the defaults.\n"
        "# Check a file with: ventriloquist config check FILE\n"
    )
    return header + "\n".join(_section_yaml(Settings(), 0))


def _section_yaml(model: BaseModel, indent: int) -> list[str]:
    out: list[str] = []
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            if indent == 0:
                out.append("")
            out.append(f"{pad}{name}:")
            out.extend(_section_yaml(value, indent + 1))
            continue
        # one line whatever its length: a wrapped scalar would not parse beside its comment
        rendered = yaml.safe_dump(
            list(value) if isinstance(value, tuple) else value, default_flow_style=True, width=1 << 16
        )
        rendered = rendered.strip().removesuffix("...").strip()
        comment = field.description or ""
        if get_origin(field.annotation) is Literal:
            comment += f" [{' | '.join(str(v) for v in get_args(field.annotation))}]"
        out.append(f"{pad}{name}: {rendered}  # {comment}".rstrip())
    return out
