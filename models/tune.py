"""Choose the output stage on the validation speakers: the aperture gain and the bilabial seal's
range (`models.net.shapes_from_logits`), for trained weights. Never looks at a test speaker.

    python -m models.tune models/mouth.pt --real build/real

Each candidate is scored with `models.metrics` on the real validation split; among those whose
false-open rate is at most MAX_FALSE_OPEN, the one with the best mean of closure recall,
open-vowel recall and aperture correlation wins (a smaller burst-timing error breaks ties).
Print the table, and the winner as the constants to put in `models/net.py`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from firmware_app.features import features_of, pad_silence
from firmware_app.mouth.release_timing import retime
from firmware_app.releases import releases_of
from firmware_app.shapes import JAW_OPEN, MOUTH_CLOSE, aperture
from models.corpus import load_split
from models.export import load_weights
from models.metrics import Tally
from models.net import CONTEXT, LOOKAHEAD, shapes_from_logits

GAINS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5)
SEALS = ((0.02, 0.1), (0.03, 0.15), (0.05, 0.2), (0.1, 0.25), (0.15, 0.3))
MAX_FALSE_OPEN = 0.05


def logits(weights: Path, records: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    net = load_weights(weights)
    with torch.no_grad():
        return [net(torch.from_numpy(pad_silence(features_of(r["audio"]), CONTEXT, LOOKAHEAD))[None]) for r in records]


def score(heads: list, records: list[dict], gain: float, seal: tuple[float, float]) -> dict:
    """The metrics of one candidate, with the runtime's release timing after the output stage
    (each record carries its `releases`, heard once by `main`)."""
    tally = Tally()
    for (viseme_logits, shape_logits), record in zip(heads, records):
        visemes, shapes = shapes_from_logits(viseme_logits[0], shape_logits[0], gain, seal)
        shapes = retime(shapes.numpy(), record["releases"])
        tally.add(visemes.numpy(), aperture(shapes[:, JAW_OPEN], shapes[:, MOUTH_CLOSE]), record["phonemes"], record["bursts"])
    return tally.results()


def choose(results: dict[tuple, dict]) -> tuple:
    allowed = {k: r for k, r in results.items() if r["false_open_rate"] <= MAX_FALSE_OPEN} or results
    def merit(k):
        r = allowed[k]
        burst = r["burst_error_ms"] if np.isfinite(r["burst_error_ms"]) else 1e3
        return (round((r["closure_recall"] + r["open_vowel_recall"] + r["aperture_correlation"]) / 3, 3), -burst)
    return max(allowed, key=merit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--real", type=Path, default=Path("build/real"))
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = parser.parse_args()
    records = load_split(args.real, "validation")
    for record in records:  # heard once; every candidate is re-timed to the same releases
        record["releases"] = releases_of(record["audio"])
    heads = logits(args.weights, records)
    torch.set_num_threads(1)
    results = {}
    for gain, seal in itertools.product(GAINS, SEALS):
        results[(gain, seal)] = r = score(heads, records, gain, seal)
        print(f"gain {gain:.1f} seal {seal}: closure {r['closure_recall']:.3f} open {r['open_vowel_recall']:.3f} "
              f"false-open {r['false_open_rate']:.3f} r {r['aperture_correlation']:.3f} acc {r['viseme_accuracy']:.3f} "
              f"burst {r['burst_error_ms']:.1f} ms lag {r['best_lag_ms']:.0f}", flush=True)
    gain, seal = choose(results)
    print(f"chosen on validation: APERTURE_GAIN = {gain}, SEAL_FROM, SEAL_FULL = {seal[0]}, {seal[1]}")
    if args.out:
        args.out.write_text(json.dumps({"chosen": {"gain": gain, "seal": seal},
                                        "candidates": [{"gain": g, "seal": s, **r} for (g, s), r in results.items()]}, indent=2))


if __name__ == "__main__":
    main()
