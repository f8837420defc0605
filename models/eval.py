"""Evaluate the learned model side by side with its peers on the held-out splits.

    python -m models.eval --corpus build/corpus --model models/mouth.onnx --out models/report

Every method hears the same clean held-out audio and is scored by `models.metrics` against the
reference made from the synthesizers' exact phoneme timing. Prints a table per split and saves it
(JSON and Markdown). Any recording with a transcript can join: `--recording x.wav --transcript x.txt`
aligns it with pocketsphinx and scores it as its own split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np

from firmware_app.analyze import analyze_samples
from firmware_app.config import LoudnessSettings
from firmware_app.mouth.learned import load_learned_model
from firmware_app.mouth.loudness import LoudnessBaseline
from models.corpus import load_split
from models.metrics import HIGHER_IS_BETTER, Tally

Method = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # audio → (viseme probs, aperture)
SPLITS = ("heldout_sentence", "heldout_voice")
METRICS = tuple(HIGHER_IS_BETTER)


def model_method(path: Path) -> Method:
    model = load_learned_model(path)

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


def evaluate(cases: dict[str, list[tuple[np.ndarray, list]]], methods: dict[str, Method]) -> dict[str, dict[str, dict]]:
    """{split: {method: metrics}} for cases {split: [(audio, phonemes), ...]}."""
    results: dict[str, dict[str, dict]] = {}
    for split, items in cases.items():
        results[split] = {}
        for name, method in methods.items():
            tally = Tally()
            for audio, phonemes in items:
                visemes, aperture = method(audio)
                tally.add(visemes, aperture, phonemes)
            results[split][name] = tally.results()
    return results


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = []
    for split, by_method in results.items():
        lines.append(f"\n### {split}\n")
        lines.append("| method | " + " | ".join(METRICS) + " |")
        lines.append("|---|" + "---|" * len(METRICS))
        for name, metrics in by_method.items():
            cells = [f"{metrics[m]:.0f}" if m == "best_lag_ms" else f"{metrics[m]:.3f}" for m in METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--model", type=Path, default=Path("models/mouth.onnx"))
    parser.add_argument("--out", type=Path, default=Path("models/report"))
    parser.add_argument("--recording", type=Path, action="append", default=[], help="a recording to add (with --transcript)")
    parser.add_argument("--transcript", type=Path, action="append", default=[])
    args = parser.parse_args()
    cases = {split: [(r["audio"], r["phonemes"]) for r in load_split(args.corpus, split)] for split in SPLITS}
    if args.recording:
        from models.align import align_file
        from firmware_app.sources.audio_file import decode_audio

        cases["recordings"] = [(decode_audio(w), align_file(w, t)) for w, t in zip(args.recording, args.transcript)]
    methods = {"learned model": model_method(args.model), "loudness baseline": loudness_method, "pylipsync": pylipsync_method}
    results = evaluate(cases, methods)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps(results, indent=2))
    text = table(results)
    (args.out / "eval.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
