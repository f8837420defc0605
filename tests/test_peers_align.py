"""The pylipsync peer and the PocketSphinx forced aligner,
run on real synthetic speech from espeak-ng."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_app.sources.audio_file import decode_audio

SR = 16_000
VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")


def _espeak(tmp: Path, text: str, *flags: str) -> np.ndarray:
    """espeak-ng speaking `text`, as float32 mono 16 kHz (decoded and resampled by PyAV)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    out = tmp / f"espeak{len(list(tmp.iterdir()))}.wav"
    subprocess.run(["espeak-ng", *flags, "-w", str(out), text], check=True, capture_output=True, timeout=30)
    return decode_audio(out)


def _pad(audio: np.ndarray, seconds: float) -> np.ndarray:
    z = np.zeros(int(seconds * SR), np.float32)
    return np.concatenate([z, audio, z])


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("peers_align")


@pytest.fixture(scope="module")
def sentence(tmp) -> np.ndarray:
    """A spoken sentence, trimmed to its first and last audible sample, with 0.5 s of digital
    silence on each side: speech spans exactly [0.5, duration - 0.5]."""
    audio = _espeak(tmp, "Bob bought a big blue boat", "-v", "en-us")
    audible = np.flatnonzero(np.abs(audio) > 1e-3)
    return _pad(audio[audible[0] : audible[-1] + 1], 0.5)


# ---------------------------------------------------------------- peers


def _peers():
    from models import peers

    return peers


def _pylipsync_peer():
    pytest.importorskip("pylipsync", reason="needs `pip install pylipsync`")
    return _peers().pylipsync_peer


def test_visemes_order_matches_the_project():
    peers = _peers()
    assert peers.VISEMES == VISEMES
    shapes = pytest.importorskip("firmware_app.shapes")
    assert peers.VISEMES == shapes.VISEMES


@pytest.mark.parametrize("n", [16000, 16001, 16159, 100])
def test_peer_frame_count_and_ranges(n):
    peer = _pylipsync_peer()
    audio = np.random.default_rng(n).normal(0, 0.05, n).astype(np.float32)
    out = peer(audio)
    t = -(-n // 160)  # frame i = time i * 10 ms, every frame time inside the clip
    assert out.viseme_probs.shape == (t, 15)
    assert out.aperture.shape == (t,)
    np.testing.assert_allclose(out.viseme_probs.sum(axis=1), 1.0, atol=1e-5)
    assert out.viseme_probs.min() >= 0.0
    assert 0.0 <= out.aperture.min() and out.aperture.max() <= 1.0


def test_peer_closed_in_silence_open_in_speech(sentence):
    peer = _pylipsync_peer()
    out = peer(sentence)
    assert len(out.aperture) == -(-len(sentence) // 160)
    speech_end = len(sentence) / SR - 0.5
    times = np.arange(len(out.aperture)) * 0.01
    # digital silence, away from where the analysis windows (≤ 64 ms) and release (60 ms) reach speech
    quiet = (times < 0.45) | (times > speech_end + 0.35)
    assert out.aperture[quiet].max() < 0.05
    assert (out.viseme_probs[quiet].argmax(axis=1) == 0).all()  # "sil"
    speech = (times > 0.5) & (times < speech_end)
    assert np.percentile(out.aperture[speech], 90) > 0.5
    assert (out.viseme_probs[speech].argmax(axis=1) != 0).mean() > 0.4


def test_pylipsync_analysis_window_is_centred_on_the_frame_time():
    """pylipsync's window for segment k is centred at 160k + 80 and its MFCC low-pass FIR delays
    49.5 samples; the peer's 30-sample shift must put the effective MFCC centre on 160k."""
    pylipsync_peer = _pylipsync_peer()
    from models import peers

    analyzer = peers._pylipsync_analyzer()
    chunks: list[np.ndarray] = []
    original = analyzer._extract_features
    analyzer._extract_features = lambda chunk, sr: (chunks.append(chunk.copy()), original(chunk, sr))[1]
    try:
        audio = np.random.default_rng(3).normal(0, 0.1, 8000).astype(np.float32)
        pylipsync_peer(audio)
    finally:
        del analyzer._extract_features
    for k in (5, 20, 40):
        chunk = chunks[k]
        start = int(np.argmax(np.correlate(audio, chunk[:256], "valid")))
        np.testing.assert_array_equal(audio[start : start + len(chunk)], chunk)
        effective_centre = start + len(chunk) / 2 - 49.5
        assert abs(effective_centre - 160 * k) <= 1.0


@pytest.mark.parametrize(
    "phonemes, expected",
    [("[[A:]]", ("aa", "oh")), ("[[i:]]", ("ih", "E"))],
    ids=["ah", "ee"],
)
def test_pylipsync_vowels_map_to_the_right_visemes(tmp, phonemes, expected):
    """Sustained vowels. pylipsync's bundled templates are one female speaker: with espeak's
    male en-us voice it calls "ee" "ou", so a female variant is used."""
    pylipsync_peer = _pylipsync_peer()
    audio = _espeak(tmp, phonemes, "-v", "en-us+f3", "-s", "80")
    out = pylipsync_peer(audio)
    voiced = out.aperture > 0.05
    assert voiced.sum() > 30
    mean = out.viseme_probs[voiced].mean(axis=0)
    assert sum(mean[VISEMES.index(v)] for v in expected) > 0.7, dict(zip(VISEMES, mean.round(2)))


@pytest.mark.parametrize(
    "folder, recording, viseme", [("aa", "A_female", "aa"), ("ee", "E_female", "E"), ("oh", "O_female", "oh")]
)
def test_pylipsync_own_template_recordings_keep_their_vowel(folder, recording, viseme):
    """The recordings pylipsync's templates were made from must come back as their own viseme:
    catches a permuted vowel mapping (A→aa, E→E, O→oh)."""
    _pylipsync_peer()
    import pylipsync

    path = Path(pylipsync.__file__).parent / "phonemes" / "audio" / folder / f"{recording}.mp3"
    if not path.exists():
        pytest.skip(f"this pylipsync has no {path.name}")
    out = _peers().pylipsync_peer(decode_audio(path))
    voiced = out.aperture > 0.05
    mean = out.viseme_probs[voiced].mean(axis=0)
    assert mean.argmax() == VISEMES.index(viseme), dict(zip(VISEMES, mean.round(2)))


# ---------------------------------------------------------------- forced alignment


def _align():
    pytest.importorskip("pocketsphinx", reason="needs `pip install pocketsphinx` (5.x)")
    from models import align

    return align


def _check_contiguous(segments, duration):
    assert segments[0][1] == 0.0
    assert segments[-1][2] == duration
    for (_, _, end), (_, start, _) in zip(segments[:-1], segments[1:]):
        assert start == end
    assert all(end > start for _, start, end in segments)


def test_arpabet_table_is_complete():
    align = _align()
    phones = (
        "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
    )
    assert set(phones) <= set(align.ARPABET_TO_IPA)
    assert align.ARPABET_TO_IPA["AA"] == "ɑ" and align.ARPABET_TO_IPA["NG"] == "ŋ" and align.ARPABET_TO_IPA["G"] == "ɡ"


def test_align_bob(tmp):
    align = _align()
    audio = _pad(_espeak(tmp, "bob", "-v", "en-us"), 0.3)
    segments = align.align(audio, "Bob.")
    _check_contiguous(segments, len(audio) / SR)
    labels = [p for p, _, _ in segments]
    assert labels[0] == "sil" and labels[-1] == "sil"
    assert [p for p in labels if p != "sil"] == ["b", "ɑ", "b"]
    # the leading silence ends where the padding ends (espeak starts voicing ~10 ms in)
    assert abs(segments[0][2] - 0.3) < 0.05


def test_align_sentence_phonemes_and_energy(tmp, sentence):
    align = _align()
    segments = align.align(sentence, "Bob bought a big blue boat")
    duration = len(sentence) / SR
    _check_contiguous(segments, duration)
    labels = [p for p, _, _ in segments]
    assert labels[0] == "sil" and labels[-1] == "sil"
    assert [p for p in labels if p != "sil"] == "b ɑ b b ɑ t ə b ɪ ɡ b l u b oʊ t".split()
    assert abs(segments[0][2] - 0.5) < 0.05  # speech starts where the padding ends
    assert abs(segments[-1][1] - (duration - 0.5)) < 0.05  # and ends where the padding starts

    def energy(start, end):
        x = sentence[int(start * SR) : int(end * SR)]
        return float(np.mean(x.astype(np.float64) ** 2)) if len(x) else 0.0

    speech = np.mean([energy(s, e) for p, s, e in segments if p != "sil"])
    silence = max(energy(s, e) for p, s, e in segments if p == "sil")
    assert speech > 1000 * max(silence, 1e-12)


def test_an_unstressed_ah_is_a_schwa_and_a_stressed_one_is_not():
    align = _align()
    # CMUdict: above = AH0 B AH1 V; the(2nd pronunciation) and unknown words keep what was aligned
    assert align._with_stress("above", ["AH", "B", "AH", "V"]) == ["AX", "B", "AH", "V"]
    assert align._with_stress("the(2)", ["DH", "AH"]) == ["DH", "AX"]
    assert align._with_stress("zzyzxq", ["Z", "AH"]) == ["Z", "AH"]
    assert align.ARPABET_TO_IPA["AX"] == "ə" and align.ARPABET_TO_IPA["AH"] == "ʌ"


def test_align_labels_schwa_and_strut_apart(tmp):
    align = _align()
    audio = _pad(_espeak(tmp, "the sun is above us", "-v", "en-us"), 0.3)
    labels = [p for p, _, _ in align.align(audio, "The sun is above us.") if p != "sil"]
    assert labels == "ð ə s ʌ n ɪ z ə b ʌ v ʌ s".split()


def test_align_errors():
    align = _align()
    noise = np.random.default_rng(0).normal(0, 1e-4, SR).astype(np.float32)
    with pytest.raises(ValueError, match="zzyzxq"):
        align.align(noise, "hello zzyzxq world")
    with pytest.raises(ValueError, match="cannot align"):
        align.align(np.zeros(SR, np.float32), "hello world")  # no speech in the recording
    with pytest.raises(ValueError, match="mono"):
        align.align(np.zeros((2, SR), np.float32), "hello")
    assert align.align(np.zeros(SR, np.float32), " ... ") == [("sil", 0.0, 1.0)]


def test_align_file_reads_and_resamples(tmp):
    align = _align()
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    wav = tmp / "shells.wav"  # espeak-ng writes 22.05 kHz: align_file must resample to 16 kHz
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "she sells sea shells"], check=True, timeout=30)
    (tmp / "shells.txt").write_text("She sells sea-shells!\n", encoding="utf-8")
    segments = align.align_file(wav, tmp / "shells.txt")
    assert [p for p, _, _ in segments if p != "sil"] == "ʃ i s ɛ l z s i ʃ ɛ l z".split()
    assert segments[-1][0] == "sil"
    _check_contiguous(segments, len(decode_audio(wav)) / SR)


# espeak-ng's own phoneme timing (sample-exact), through libespeak-ng's event API


def test_align_boundaries_match_espeak_timing():
    """Phone starts against espeak-ng's own phoneme events: no systematic offset, ~10 ms error."""
    align = _align()
    synth = pytest.importorskip("models.synth", reason="needs the train extra")
    from models.targets import viseme_of

    errors = []
    for text in (
        "The quick brown fox jumps over the lazy dog.",
        "Please call Stella and ask her to bring these things.",
    ):
        utterance = synth.espeak_utterance(text, "en-us")
        lead = np.zeros(SR // 2, np.float32)  # the aligner wants silence around the speech
        audio = np.concatenate([lead, utterance.audio, lead])
        reference = [(viseme_of(p), start + 0.5) for p, start, _ in utterance.phonemes if p != "sil"]
        ours = [(viseme_of(p), start) for p, start, _ in align.align(audio, text) if p != "sil"]
        matcher = difflib.SequenceMatcher(None, [v for v, _ in reference], [v for v, _ in ours], autojunk=False)
        pairs = [
            (reference[b.a + k][1], ours[b.b + k][1]) for b in matcher.get_matching_blocks() for k in range(b.size)
        ]
        assert len(pairs) >= 0.8 * len(reference)
        errors += [o - r for r, o in pairs]
    errors = np.array(errors)
    assert abs(np.median(errors)) < 0.008  # no offset (it was -12.5 ms before compensation)
    assert np.median(np.abs(errors)) < 0.02
