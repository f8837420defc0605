"""Choose the weights and the output stage on the validation speakers: among trained weights
(a run's `checkpoints/`, the shipped model, other runs), the aperture gain and the bilabial seal's
range and how that range scales with the aperture (`models.net.shapes_from_logits`). Never
looks at a test speaker.

    python -m models.tune models/mouth.pt build/run/checkpoints/*.pt --real build/real --out tune.json --jobs 2

Every candidate (weights × gain × seal × slope) is scored with `models.metrics` on the real validation
split and on the same speakers pitch-shifted up 4 semitones (`validation_pitch+4st`): higher
voices, and each p/b/m heard a second way, since validation's 132 alone cannot tell closures
apart (two models one closure apart there were 0.04 apart on the test speakers). The rule:

1. false-open rate at most MAX_FALSE_OPEN on both;
2. the smallest shortfall from the targets (TARGETS: viseme accuracy, closure recall, open-vowel
   recall, aperture correlation), summed over both splits: a mouth good enough on every measure
   beats one that trades one target for surplus on another (sealing every doubtful frame buys
   closures above 0.90 with correlation below 0.75);
3. ties: the best mean of those four measures, then the smaller burst-timing error.

Print the table, and the winner: its weights and the constants to put in `models/net.py`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
from pathlib import Path

import numpy as np
import torch

from firmware_app.audio.features import features_of, pad_silence
from firmware_app.audio.stop_bursts import releases_of
from firmware_app.mouth.release_timing import HOLD_S, hold_for, retime
from firmware_app.shapes import JAW_OPEN, MOUTH_CLOSE, aperture
from models.eval import Case, real_cases
from models.export import load_weights
from models.metrics import Tally
from models.net import APERTURE_GAIN, SEAL_FROM, SEAL_FULL, SEAL_SLOPE, MouthNet, shapes_from_logits

GAINS = (1.0, 1.2, 1.5)
SEALS = ((0.01, 0.06), (0.02, 0.1), (0.03, 0.15), (0.05, 0.2), (0.1, 0.25))
SLOPES = (0.0, 5.0, 10.0, 15.0)
SPLITS = ("validation", "validation_pitch+4st")
MAX_FALSE_OPEN = 0.05
TARGETS = {"viseme_accuracy": 0.70, "closure_recall": 0.90, "open_vowel_recall": 0.92, "aperture_correlation": 0.75}

Candidate = tuple[str, float, tuple[float, float], float]  # weights, gain, seal, slope


def logits(net: MouthNet, cases: list[Case]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    with torch.no_grad():
        return [
            net(torch.from_numpy(pad_silence(features_of(c.audio), net.context, net.lookahead))[None]) for c in cases
        ]


def score(
    heads: list,
    cases: list[Case],
    releases: list,
    gain: float,
    seal: tuple[float, float],
    slope: float,
    hold_s: float = HOLD_S,
) -> dict:
    """The metrics of one output stage, with the runtime's release timing after it (each case's
    `releases` heard once: every candidate is re-timed to the same ones; `hold_s` the weights' own,
    `hold_for` their look-ahead)."""
    tally = Tally()
    for (viseme_logits, shape_logits), case, heard in zip(heads, cases, releases):
        visemes, shapes = shapes_from_logits(viseme_logits[0], shape_logits[0], gain, seal, slope)
        shapes = retime(shapes.numpy(), heard, hold_s=hold_s)
        tally.add(visemes.numpy(), aperture(shapes[:, JAW_OPEN], shapes[:, MOUTH_CLOSE]), case.phonemes, case.bursts)
    return tally.results()


def merit(by_split: dict[str, dict]) -> tuple[float, float, float]:
    """(−shortfall from TARGETS summed over the splits, mean of the TARGETS' measures, −mean burst
    error): higher is better."""
    shortfall = sum(max(0.0, target - r[m]) for r in by_split.values() for m, target in TARGETS.items())
    mean = np.mean([r[m] for r in by_split.values() for m in TARGETS])
    bursts = [r["burst_error_ms"] if np.isfinite(r["burst_error_ms"]) else 1e3 for r in by_split.values()]
    return -round(float(shortfall), 4), round(float(mean), 4), -float(np.mean(bursts))


def rank(by_split: dict[str, dict]) -> tuple:
    """The rule of the module's docstring as a sort key (higher is better): keeping the mouth shut
    first, then `merit`."""
    return all(r["false_open_rate"] <= MAX_FALSE_OPEN for r in by_split.values()), *merit(by_split)


def choose(results: dict[Candidate, dict[str, dict]]) -> Candidate:
    """The best candidate by `rank`; `results` maps each candidate to its metrics per split."""
    return max(results, key=lambda k: rank(results[k]))


_CASES: dict[str, list[Case]] = {}  # set before the worker processes fork, shared with them
_RELEASES: dict[str, list] = {}
_STAGES: list[tuple[float, tuple[float, float], float]] = []  # the output stages `tune` scores


def tune(
    weights: list[Path], real: Path, jobs: int = 1, shipped_stage: bool = False
) -> tuple[Candidate, dict[Candidate, dict[str, dict]]]:
    """`shipped_stage`: score only the output stage in models/net.py (the one every shipped model
    shares, so a second model's weights are chosen without changing the first one's mouth)."""
    _STAGES[:] = (
        [(APERTURE_GAIN, (SEAL_FROM, SEAL_FULL), SEAL_SLOPE)]
        if shipped_stage
        else itertools.product(GAINS, SEALS, SLOPES)
    )
    _CASES.update({split: c for split, c in real_cases(real, splits=("validation",)).items() if split in SPLITS})
    _RELEASES.update({split: [releases_of(c.audio) for c in items] for split, items in _CASES.items()})
    results: dict[Candidate, dict[str, dict]] = {}
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for part in pool.imap(_score_weights, weights):
            for key, by_split in part.items():
                print(line(key, by_split), flush=True)
            results.update(part)
    return choose(results), results


def _score_weights(path: Path) -> dict[Candidate, dict[str, dict]]:
    """Every output stage of one set of weights, on both splits."""
    torch.set_num_threads(1)
    net = load_weights(path)
    heads = {split: logits(net, items) for split, items in _CASES.items()}
    hold = hold_for(net.lookahead_s)
    return {
        (str(path), gain, seal, slope): {
            split: score(heads[split], items, _RELEASES[split], gain, seal, slope, hold)
            for split, items in _CASES.items()
        }
        for gain, seal, slope in _STAGES
    }


def line(key: Candidate, by_split: dict[str, dict]) -> str:
    path, gain, seal, slope = key
    cells = "; ".join(
        f"{split}: acc {r['viseme_accuracy']:.3f} closure {r['closure_recall']:.3f} open {r['open_vowel_recall']:.3f} "
        f"false-open {r['false_open_rate']:.3f} r {r['aperture_correlation']:.3f}"
        for split, r in by_split.items()
    )
    shortfall, mean, _ = merit(by_split)
    return f"{path} gain {gain:.1f} seal {seal} slope {slope:.0f}: shortfall {-shortfall:.4f} mean {mean:.4f}; {cells}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="saved weights (.pt) to choose among")
    parser.add_argument("--real", type=Path, default=Path("build/real"))
    parser.add_argument(
        "--out", type=Path, default=None, help="write the choice and each weights' best candidate as JSON here"
    )
    parser.add_argument("--jobs", type=int, default=1, help="weights scored side by side (one core each)")
    parser.add_argument(
        "--shipped-stage", action="store_true", help="choose only the weights, with the output stage in models/net.py"
    )
    args = parser.parse_args()
    (path, gain, seal, slope), results = tune(args.weights, args.real, args.jobs, args.shipped_stage)
    print(
        f"chosen on validation: {path}; APERTURE_GAIN = {gain}, SEAL_FROM, SEAL_FULL = {seal[0]}, {seal[1]}, "
        f"SEAL_SLOPE = {slope}"
    )
    if args.out:
        args.out.write_text(json.dumps(summary(results, (path, gain, seal, slope)), indent=1))


def summary(results: dict[Candidate, dict[str, dict]], chosen: Candidate) -> dict:
    """The choice, the rule, and the best output stage of every set of weights (the whole grid is
    in the printed table)."""

    def row(key: Candidate) -> dict:
        weights, gain, seal, slope = key
        shortfall, mean, _ = merit(results[key])
        return {
            "weights": weights,
            "gain": gain,
            "seal": seal,
            "slope": slope,
            "shortfall": -shortfall,
            "mean": mean,
            **results[key],
        }

    best: dict[str, Candidate] = {}
    for key in sorted(results, key=lambda k: rank(results[k])):  # the best of each weights comes last
        best[key[0]] = key
    return {
        "rule": __doc__.split("The rule:")[1].split("Print")[0].strip(),
        "chosen": row(chosen),
        "best_per_weights": [row(k) for k in sorted(best.values(), key=lambda k: rank(results[k]), reverse=True)],
    }


if __name__ == "__main__":
    main()
