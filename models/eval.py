"""Evaluate the learned model side by side with its peers, per split and per speaker.

    python -m models.eval --corpus build/corpus --real build/real \
        --model firmware_app/assets/models/mouth.onnx --out models/report
    python -m models.eval DIR [--model M.onnx] [--out eval-report/]   # any folder of WAV + transcript

Every method hears the same audio and is scored by `models.metrics` against the reference made
from phoneme timing: exact for the synthetic splits (`models.corpus`), aligned by pocketsphinx and
corrected against acoustic p/b bursts for real speech (`models.real_corpus`). Splits:

- `heldout_sentence`, `heldout_voice`: synthetic (unseen sentences; unseen voices);
- `validation`, `test`: real speakers held out whole (validation chose the weights; test chose
  nothing); `validation_pitch+4st`, `test_pitch+4st`: the same speakers pitch-shifted up 4
  semitones (a stand-in for children; `models.tune` chooses on both validation splits);
- `test_foreign`: an Italian speaker (another language, held out whole), aligned through
  Italian letter-to-sound rules and corrected against its bursts like the English speakers;
- `reference_exact`, `reference_aligned`: the synthetic held-out utterances the aligner keeps,
  scored against their exact timing and against a reference aligned and corrected as real speech
  is: the difference is what the PocketSphinx reference itself costs each metric
  (`reference_cases`; the report also scores that reference against the exact timing).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from firmware_app.assets import resolve_path
from firmware_app.config import InferenceSettings, LoudnessSettings, ModelSettings
from firmware_app.errors import MissingFileError
from firmware_app.mouth import open_learned_model
from firmware_app.mouth.loudness import LoudnessBaseline
from firmware_app.tools.analyze import analyze_samples
from models.metrics import HIGHER_IS_BETTER, HOP_S, Tally
from models.targets import VISEME_INDEX, make_targets

Method = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # audio → (viseme probs, aperture)
SYNTHETIC_SPLITS = ("heldout_sentence", "heldout_voice")
REAL_SPLITS = ("validation", "test")
FOREIGN_SPLIT = "test_foreign"
CHILD_CENTS = 400.0
METRICS = tuple(HIGHER_IS_BETTER)
REFERENCE_POOL = "synthetic held-out"


@dataclass
class Case:
    audio: np.ndarray
    phonemes: list
    speaker: str
    bursts: list[float] | None = None
    text: str = ""  # the words spoken, where the corpus keeps them


def model_method(path: Path, release_timing: bool = True) -> Method:
    """The learned model as the runtime runs it (`open_learned_model`: release timing on), any look-ahead."""
    model = open_learned_model(path, InferenceSettings(backend="onnxruntime"), release_timing)

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model.reset()
        curves = analyze_samples(audio, model)
        return curves.visemes, curves.aperture

    return run


def loudness_method(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    curves = analyze_samples(audio, LoudnessBaseline(LoudnessSettings()))
    return curves.visemes, curves.aperture


def pylipsync_method(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from models.peers import pylipsync_peer

    out = pylipsync_peer(audio)
    return out.viseme_probs, out.aperture


def score(tally: Tally, case: Case, method: Method) -> None:
    visemes, aperture = method(case.audio)
    tally.add(visemes, aperture, case.phonemes, case.bursts)


def evaluate(cases: dict[str, list[Case]], methods: dict[str, Method]) -> dict:
    """{"splits": {split: {method: metrics}}, "speakers": {split: {speaker: {method: metrics}}}}."""
    results: dict = {"splits": {}, "speakers": {}}
    for split, items in cases.items():
        results["splits"][split], results["speakers"][split] = {}, {}
        for name, method in methods.items():
            pooled: Tally = Tally()
            by_speaker: dict[str, Tally] = {}
            for case in items:
                for tally in (pooled, by_speaker.setdefault(case.speaker, Tally())):
                    score(tally, case, method)
            results["splits"][split][name] = pooled.results()
            for speaker, tally in by_speaker.items():
                results["speakers"][split].setdefault(speaker, {})[name] = tally.results()
    return results


def _cells(metrics: dict, names: tuple[str, ...]) -> str:
    def cell(m: str) -> str:
        value = metrics.get(m, float("nan"))
        if isinstance(value, float) and np.isnan(value):
            return "–"
        return f"{value:.0f}" if m in ("best_lag_ms",) else f"{value:.1f}" if m == "burst_error_ms" else f"{value:.3f}"

    return " | ".join(cell(m) for m in names)


def table(results: dict) -> str:
    lines = []
    for split, by_method in results["splits"].items():
        names = METRICS
        lines += [f"\n### {split}\n", "| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {name} | {_cells(metrics, names)} |" for name, metrics in by_method.items()]
        speakers = results["speakers"].get(split, {})
        if len(speakers) > 1:
            lines += [
                f"\n{split}, per speaker:\n",
                "| speaker | method | " + " | ".join(names) + " |",
                "|---|---|" + "---|" * len(names),
            ]
            for speaker, per_method in sorted(speakers.items()):
                lines += [f"| {speaker} | {name} | {_cells(metrics, names)} |" for name, metrics in per_method.items()]
    return "\n".join(lines) + "\n"


def synthetic_cases(corpus: Path) -> dict[str, list[Case]]:
    from models.corpus import load_split

    return {
        split: [Case(r["audio"], r["phonemes"], r["voice"], text=r["text"]) for r in load_split(corpus, split)]
        for split in SYNTHETIC_SPLITS
    }


def real_cases(
    real: Path, child: bool = True, splits: tuple[str, ...] = (*REAL_SPLITS, FOREIGN_SPLIT)
) -> dict[str, list[Case]]:
    """The real corpus's `splits` that exist, and (`child`) each English one pitch-shifted up
    4 semitones as `<split>_pitch+4st`: same timing and bursts, since the shift keeps the length."""
    from models.augment import pitch_shift
    from models.corpus import load_split

    cases = {
        split: [Case(r["audio"], r["phonemes"], r["voice"], r["bursts"]) for r in load_split(real, split)]
        for split in splits
        if (real / f"{split}.npy").exists()
    }
    if child:
        for split in [s for s in REAL_SPLITS if s in cases]:
            cases[f"{split}_pitch+4st"] = [
                Case(pitch_shift(c.audio, CHILD_CENTS), c.phonemes, c.speaker, c.bursts) for c in cases[split]
            ]
    return cases


def reference_cases(synthetic: dict[str, list[Case]]) -> tuple[dict[str, list[Case]], dict]:
    """What a PocketSphinx reference costs: the `synthetic` held-out utterances (`synthetic_cases`)
    labelled twice, with their exact timing (`reference_exact`) and aligned and corrected exactly
    as real speech is (`reference_aligned`: `folder_cases`), on the utterances the aligner keeps. Every method
    scored on both shows how much of its shortfall on real speech the reference itself may cause;
    the info's `agreement` scores the aligned reference as if it were a method, against the exact."""
    import tempfile

    from firmware_app.sources.audio_file import write_wav

    exact = {f"{split}-{i:03d}": case for split, items in synthetic.items() for i, case in enumerate(items)}
    with tempfile.TemporaryDirectory(prefix="ventriloquist-reference-") as tmp:
        for name, case in exact.items():  # one sub-folder each: the folder's "speaker" names the utterance
            (Path(tmp) / name).mkdir()
            write_wav(Path(tmp) / name / "utterance.wav", case.audio)
            (Path(tmp) / name / "utterance.txt").write_text(case.text, encoding="utf-8")
        aligned, info = folder_cases(Path(tmp))
    kept = [
        replace(exact[c.speaker], speaker=REFERENCE_POOL) for c in aligned
    ]  # one pool: per-voice tables of a few utterances say nothing
    aligned = [
        Case(truth.audio, c.phonemes, REFERENCE_POOL, c.bursts) for truth, c in zip(kept, aligned)
    ]  # the same sound, not its 16-bit copy
    agreement = Tally()
    for truth, labels in zip(kept, aligned):
        reference = make_targets(labels.phonemes, int(np.ceil(truth.phonemes[-1][2] / HOP_S)))
        agreement.add(np.eye(len(VISEME_INDEX))[reference.visemes], reference.aperture, truth.phonemes)
    info = {**info, "dropped": len(info["dropped"]), "agreement": agreement.results()}
    return ({"reference_exact": kept, "reference_aligned": aligned} if kept else {}), info


def folder_cases(folder: Path) -> tuple[list[Case], dict]:
    """Every audio file in `folder` with a transcript beside it (x.wav + x.txt), aligned and
    corrected against its own bursts (see `models.real_corpus.correct_folder`)."""
    from models.real_corpus import align_folder

    items, info = align_folder(folder)
    return [Case(audio, phonemes, speaker, bursts) for audio, phonemes, speaker, bursts in items], info


def default_methods(model: Path) -> dict[str, Method]:
    return {"learned model": model_method(model), "loudness baseline": loudness_method, "pylipsync": pylipsync_method}


def reference_table(info: dict) -> str:
    """The aligned reference scored against the exact timing, as if it were a method."""
    return (
        f"\n### the aligned reference against the exact timing ({info['kept']} of {info['recordings']} synthetic "
        f"held-out utterances kept; aligner bias {info['bias_ms']:.1f} ms)\n\n| | "
        + " | ".join(METRICS)
        + " |\n|---|"
        + "---|" * len(METRICS)
        + f"\n| PocketSphinx reference | {_cells(info['agreement'], METRICS)} |\n"
    )


def write_report(results: dict, out: Path, extra: dict | None = None) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps({**results, **(extra or {})}, indent=2))
    text = table(results)
    if extra and "reference" in extra:
        text += reference_table(extra["reference"])
    (out / "eval.md").write_text(text)
    return text


def evaluate_folder(folder: Path, model: Path, out: Path) -> str:
    """`python -m models.eval DIR`: align the folder, score every method, write out/eval.{md,json}."""
    cases, info = folder_cases(folder)
    results = evaluate({folder.name: cases}, default_methods(model))
    text = write_report(results, out, {"alignment": info})
    summary = (
        f"{info['kept']} of {info['recordings']} recordings aligned (aligner bias {info['bias_ms']:.1f} ms from "
        f"{info['b_anchors']} /b/ bursts); report: {out / 'eval.md'}"
    )
    return text + "\n" + summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "recordings",
        type=Path,
        nargs="?",
        help="score only this folder of x.wav (any audio format) with x.txt transcripts; sub-folders = speakers",
    )
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"), help="synthetic corpus (models.corpus)")
    parser.add_argument("--real", type=Path, default=None, help="real-speech corpus (models.real_corpus)")
    parser.add_argument("--model", type=Path, default=None, help="mouth model (.onnx; default: the shipped one)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for eval.md and eval.json (default: models/report, or eval-report for a folder)",
    )
    parser.add_argument(
        "--folder", type=Path, action="append", default=[], help="a folder of WAV + transcript to add as its own split"
    )
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic splits")
    args = parser.parse_args(argv)
    model = args.model or resolve_path(ModelSettings().onnx_path())
    if args.recordings is not None:
        return _score_folder(args.recordings, model, args.out or Path("eval-report"))
    cases: dict[str, list[Case]] = {}
    extra = {}
    if not args.no_synthetic:
        cases = synthetic_cases(args.corpus)
        reference, extra["reference"] = reference_cases(cases)
        cases.update(reference)
    if args.real is not None:
        cases.update(real_cases(args.real))
    for folder in args.folder:
        cases[folder.name], _ = folder_cases(folder)
    print(write_report(evaluate(cases, default_methods(model)), args.out or Path("models/report"), extra))
    return 0


def _score_folder(folder: Path, model: Path, out: Path) -> int:
    """A folder that is not one is the user's mistake: the cause and the fix, no traceback."""
    try:
        print(evaluate_folder(folder, model, out))
    except FileNotFoundError as exc:
        error = MissingFileError(
            str(exc).split(": give")[0], "give a folder of recordings (x.wav) with transcripts beside them (x.txt)"
        )
        print(str(error), file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
