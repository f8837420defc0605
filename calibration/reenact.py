"""Cross-validated self-reenactment: which block of a clip is held out matters on a short clip (one
block may be all rest), so here the clip is tracked once and each block is held out in turn, the
bank built from the rest (`firmware_app.face.enroll`) and the block scored as `enroll --holdout
--report` scores its one (`firmware_app.face.reenact`):

    python -m calibration.reenact CLIP --folds 5 [--at 0.1 …] --out DIR

writes DIR/fold_*/report.json and sheet.png, DIR/folds.json, and prints one table of all blocks.
The scratch packs are deleted; the contact sheets hold the clip's frames, so DIR stays outside the
repository.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from firmware_app.face.enroll import build_bank, held_out, track_clip, write_enrollment
from firmware_app.face.reenact import MEASURES, bank_wins, score_holdout


def cross_validate(
    clip: Path, model_path: str, folds: int, out_dir: Path, extra_starts: tuple[float, ...] = (), progress: bool = True
) -> list[dict]:
    """Hold out each of `folds` equal blocks of `clip` in turn (and a block of the same length from
    each of `extra_starts`), build the bank from the rest and score the block; the clip is tracked
    once. Returns one row per block: its start, frames, the scores and which the bank wins."""
    enrollment = track_clip(clip, model_path, progress=progress)
    share = 1.0 / folds
    starts = sorted(
        {round(k * share, 4) for k in range(folds)} | {round(x, 4) for x in extra_starts if 0.0 <= x <= 1.0 - share}
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for start in starts:
            held, excluded = held_out(enrollment.frames, enrollment.fps, share, start)
            used = [f for f in enrollment.kept if f.index not in excluded]
            pack = Path(scratch) / f"fold_{start:.2f}.face"
            write_enrollment(
                pack,
                enrollment,
                build_bank(used, enrollment.resolution),
                used,
                "cross-validation of the enrollment (scratch pack, deleted after)",
                share,
            )
            report = score_holdout(
                clip, pack, [f for f in enrollment.kept if f.index in held], out_dir / f"fold_{start:.2f}", progress
            )
            rows.append(
                {
                    "start": start,
                    "report": report,
                    "wins": bank_wins(report),
                    "open_wins": bank_wins(report["open"]) if report["open"]["frames"] else None,
                }
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "folds.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def folds_table(rows: list[dict]) -> str:
    """A markdown table: per held-out block, bank / single photo on every measure (* the bank wins)."""
    lines = ["| held out | part | frames | " + " | ".join(MEASURES) + " |", "|---|---|---|" + "---|" * len(MEASURES)]
    for row in rows:
        for title, part in (("all", row["report"]), ("open", row["report"]["open"])):
            if not part["frames"]:
                lines.append(f"| {row['start']:.2f}+ | {title} | 0 | " + " | ".join("–" for _ in MEASURES) + " |")
                continue
            wins = bank_wins(part)
            cells = [f"{part['bank'][n]} / {part['single_photo'][n]}{' *' if wins[n] else ''}" for n in MEASURES]
            lines.append(f"| {row['start']:.2f}+ | {title} | {part['frames']} | " + " | ".join(cells) + " |")
    lines.append(
        "cells: bank / single photo; * the bank is better (psnr, ssim higher; sharpness nearer 1; flicker lower)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="cross-validated self-reenactment of a talking clip: each block held out in turn"
    )
    parser.add_argument("clip", type=Path)
    parser.add_argument("--folds", type=int, default=5, help="equal blocks, each held out in turn (5: fifths)")
    parser.add_argument(
        "--at",
        type=float,
        nargs="*",
        default=(),
        help="also hold out a block of the same length from these shares of the clip",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/reenact-folds"),
        help="reports and contact sheets (never inside the repository)",
    )
    parser.add_argument("--model", default="bundled://models/face_landmarker.task", help="the MediaPipe face model")
    args = parser.parse_args()
    print(folds_table(cross_validate(args.clip, args.model, args.folds, args.out, tuple(args.at))))


if __name__ == "__main__":
    main()
