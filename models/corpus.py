"""Build the synthetic lip-sync corpus: sentences spoken by several synthesizers with exact phoneme
timing, turned into features and coarticulated targets, heavily augmented, plus non-speech negatives.

    python -m models.corpus --out build/corpus --hours 3        # the full corpus (see models/README.md)
    python -m models.corpus --out build/smoke --smoke           # seconds, for CI

Splits never share a sentence or a voice with training:
- train: training sentences × training voices;
- heldout_sentence: held-out sentences × training voices;
- heldout_voice: held-out sentences × held-out voices (other espeak-ng accents/variants, a pitch-shifted
  Piper voice, and MBROLA en1 — a different synthesizer built from a human's diphones — when installed).
Training shards keep features and targets only; the held-out splits keep clean audio and phoneme
timing, so every method can be evaluated on the same sound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firmware_app.audio.features import features_of
from models import augment, synth
from models.targets import make_targets

SENTENCES = Path(__file__).parent / "data" / "sentences.txt"
HELD_OUT_VOICE_VARIANTS = {"f4", "m6", "klatt4"}
HELD_OUT_ACCENTS = {"en-029"}
PIPER_HELD_OUT_CENTS = 450.0


@dataclass(frozen=True)
class Job:
    split: str
    index: int
    text: str
    voice: str  # "espeak:<id>", "piper:joe", "mbrola:en1"
    cents: float
    rate: float
    augment: bool
    seed: int
    negative_seconds: float = 0.0


def sentence_split(text: str) -> str:
    """Deterministic: 15 % of sentences are held out."""
    return "heldout" if int(hashlib.sha1(text.encode()).hexdigest(), 16) % 100 < 15 else "train"


def voice_held_out(voice_id: str) -> bool:
    accent, _, variant = voice_id.partition("+")
    return accent in HELD_OUT_ACCENTS or variant in HELD_OUT_VOICE_VARIANTS


def plan(hours: float, seed: int, smoke: bool) -> list[Job]:
    rng = np.random.default_rng(seed)
    sentences = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    train_sentences = [s for s in sentences if sentence_split(s) == "train"]
    heldout_sentences = [s for s in sentences if sentence_split(s) == "heldout"]
    espeak_all = synth.espeak_voices()
    espeak_train = [v for v in espeak_all if not voice_held_out(v)]
    espeak_heldout = [v for v in espeak_all if voice_held_out(v)]
    # ~3.3 s per sentence on average; each spoken sentence is kept clean once and augmented once
    unique = max(4, int(hours * 3600 / 3.3 / 2)) if not smoke else 6
    jobs: list[Job] = []
    for i in range(unique):
        text = train_sentences[int(rng.integers(len(train_sentences)))]
        if i % 2 == 0:
            voice, cents = "piper:joe", float(rng.uniform(-300, 300))
        else:
            voice, cents = "espeak:" + espeak_train[int(rng.integers(len(espeak_train)))], float(rng.uniform(-200, 200))
        rate = float(rng.uniform(0.8, 1.25))
        for augmented in (False, True):
            jobs.append(Job("train", len(jobs), text, voice, cents, rate, augmented, int(rng.integers(2**31))))
    negatives = max(1, int(hours * 3600 * 0.06 / 10)) if not smoke else 1
    for _ in range(negatives):
        jobs.append(
            Job("train", len(jobs), "", "negative", 0.0, 1.0, True, int(rng.integers(2**31)), negative_seconds=10.0)
        )
    evaluation = 12 if smoke else 80
    # held-out voices in equal shares: a pitch-shifted Piper, unseen espeak-ng voices, MBROLA en1
    held_groups = [["piper:joe"], ["espeak:" + v for v in espeak_heldout]]
    if synth.mbrola_available():
        held_groups.append(["mbrola:en1"])
    for k in range(evaluation):
        text = heldout_sentences[k % len(heldout_sentences)]
        voice = "piper:joe" if k % 2 == 0 else "espeak:" + espeak_train[int(rng.integers(len(espeak_train)))]
        jobs.append(Job("heldout_sentence", len(jobs), text, voice, 0.0, 1.0, False, int(rng.integers(2**31))))
        group = held_groups[k % len(held_groups)]
        voice = group[int(rng.integers(len(group)))]
        cents = PIPER_HELD_OUT_CENTS if voice == "piper:joe" else 0.0
        jobs.append(Job("heldout_voice", len(jobs), text, voice, cents, 1.0, False, int(rng.integers(2**31))))
    return jobs


def speak(job: Job) -> synth.Utterance:
    kind, _, name = job.voice.partition(":")
    if kind == "piper":
        utterance = synth.piper_utterance(job.text, length_scale=1.0 / job.rate)
    elif kind == "espeak":
        utterance = synth.espeak_utterance(job.text, name, rate_wpm=int(165 * job.rate))
    else:
        utterance = synth.mbrola_utterance(job.text, name)
    if job.cents:
        utterance.audio = augment.pitch_shift(utterance.audio, job.cents)
    return utterance


def run_job(job: Job) -> dict:
    rng = np.random.default_rng(job.seed)
    if job.voice == "negative":
        audio = augment.negatives(rng, job.negative_seconds)
        phonemes = [("sil", 0.0, len(audio) / 16000)]
        voice = "negative"
    else:
        utterance = speak(job)
        audio, phonemes, voice = utterance.audio, utterance.phonemes, utterance.voice
        if job.cents:
            voice += f"{job.cents:+.0f}c"
    if job.augment:
        audio = augment.augment(audio, rng)
    else:
        audio = audio * float(10 ** (rng.uniform(-12, 3) / 20))  # only a level change
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    features = features_of(audio)
    targets = make_targets(phonemes, len(features))
    record = {
        "split": job.split,
        "voice": voice,
        "text": job.text,
        "seconds": len(audio) / 16000,
        "features": features.astype(np.float16),
        "visemes": targets.visemes.astype(np.int8),
        "blendshapes": targets.blendshapes.astype(np.float16),
    }
    if job.split != "train":
        record["audio"] = audio
        record["phonemes"] = phonemes
    return record


def build(out: Path, hours: float, seed: int, workers: int, smoke: bool) -> dict:
    started = time.time()
    jobs = plan(hours, seed, smoke)
    out.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict]] = {}
    with Pool(workers) as pool:
        for record in tqdm(pool.imap(run_job, jobs, chunksize=4), total=len(jobs), desc="corpus", unit="utt"):
            splits.setdefault(record["split"], []).append(record)
    manifest = {"seed": seed, "hours_requested": hours, "build_minutes": 0.0, "splits": {}}
    for split, records in splits.items():
        np.save(out / f"{split}.npy", np.array(records, dtype=object), allow_pickle=True)
        voices: dict[str, float] = {}
        for r in records:
            voices[r["voice"]] = voices.get(r["voice"], 0.0) + r["seconds"]
        manifest["splits"][split] = {
            "utterances": len(records),
            "hours": round(sum(r["seconds"] for r in records) / 3600, 3),
            "sentences": len({r["text"] for r in records if r["text"]}),
            "voices": {k: round(v / 60, 2) for k, v in sorted(voices.items())},  # minutes per voice
        }
    manifest["build_minutes"] = round((time.time() - started) / 60, 2)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def load_split(corpus: Path, split: str) -> list[dict]:
    path = corpus / f"{split}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: build the corpus first (python -m models.corpus --out {corpus})")
    return list(np.load(path, allow_pickle=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/corpus"))
    parser.add_argument("--hours", type=float, default=3.0, help="hours of training audio (clean + augmented)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--smoke", action="store_true", help="a tiny corpus in seconds, for CI")
    args = parser.parse_args()
    manifest = build(args.out, args.hours, args.seed, args.workers, args.smoke)
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
