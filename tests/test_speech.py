"""Speech: Kokoro synthesis with per-phoneme times, lipsync, playback without a device, export and recording.

The real Kokoro pipeline runs on a randomly initialised KModel built from a small hand-written config (no download);
its duration head is scaled up so phoneme durations differ. Text goes through misaki's espeak-ng G2P (offline).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from itertools import pairwise

import numpy as np
import pytest
import torch

pytest.importorskip("kokoro")
pytestmark = [  # kokoro's own notes when building a model
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning"),
]

from quiet import QUIET  # noqa: E402

from raven_avatar.engine import pose  # noqa: E402
from raven_avatar.engine.animator import Animator  # noqa: E402
from raven_avatar.engine.speech import (  # noqa: E402
    MOUTH_KEYS,
    LipsyncDriver,
    Phoneme,
    Player,
    Speaker,
    SpeechRecorder,
    Synthesizer,
    load_audio,
    mouth_track,
    phoneme_timeline,
    record_speech,
    save_audio,
    shape_at,
    split_sentences,
    tts,  # noqa: E402
)
from raven_avatar.engine.speech.lipsync import CLOSED, shape  # noqa: E402

SYMBOLS = " !',-.:;?AIOQWYabdefhijklmnoprstuvwzæðŋɑɒɔəɛɜɡɪɹɾʃʊʌʒʤʧˈˌːθᵊᵻT"
AAA = pose.param("mouth_aaa_index").index


def tiny_config() -> dict:
    """Kokoro's architecture with the smallest sizes its hard-coded layers allow (hidden 512, style 128)."""
    return {
        "istftnet": {
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            "resblock_dilation_sizes": [[1, 3, 5]],
            "resblock_kernel_sizes": [3],
            "upsample_initial_channel": 512,
        },
        "dim_in": 64,
        "dropout": 0.2,
        "hidden_dim": 512,
        "max_conv_dim": 512,
        "max_dur": 4,
        "multispeaker": True,
        "n_layer": 1,
        "n_mels": 80,
        "n_token": len(SYMBOLS) + 1,
        "style_dim": 128,
        "text_encoder_kernel_size": 5,
        "plbert": {
            "hidden_size": 32,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 512,
            "num_hidden_layers": 1,
            "dropout": 0.1,
        },
        "vocab": {s: i + 1 for i, s in enumerate(SYMBOLS)},
    }


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared, loaded CPU two spinning threads make this model ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Synthesizer:
    return tiny_synthesizer(tmp_path_factory.mktemp("kokoro"))


def tiny_synthesizer(folder) -> Synthesizer:
    """A real Synthesizer on a randomly initialised tiny KModel (also used by the server's speech test)."""
    from kokoro import KModel

    torch.manual_seed(0)
    empty = folder / "empty.pth"
    torch.save({}, empty)  # no weights to load: keep the random initialisation
    model = KModel(repo_id=tts.REPO_ID, config=tiny_config(), model=str(empty)).eval()
    with torch.no_grad():
        for p in model.predictor.duration_proj.parameters():
            p.mul_(30)  # spread the predicted durations so phonemes differ
    voices = {"test_a": torch.randn(510, 1, 256) * 0.1, "test_b": torch.randn(510, 1, 256) * 0.1}
    return Synthesizer(model=model, voices=voices)


def make_animator(clock=None) -> Animator:
    return Animator(QUIET, {"neutral": {"pose": {}, "cels": {}}}, clock=clock or time.monotonic)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recording:
    """An override target that records what it is sent and forwards it to a real Animator."""

    def __init__(self, animator: Animator) -> None:
        self.animator = animator
        self.calls: list[tuple[str, object]] = []

    def modify_overrides(self, action, overrides):
        self.calls.append((action, dict(overrides) if action == "set" else list(overrides)))
        self.animator.modify_overrides(action, overrides)


# ------------------------------------------------------------------------------------------------ text


def test_split_sentences():
    text = 'Hello there. Dr. Smith is here! Is it 3.14? Yes\n\nNew line… "Quoted." End'
    assert split_sentences(text) == [
        "Hello there.",
        "Dr. Smith is here!",
        "Is it 3.14?",
        "Yes",
        "New line…",
        '"Quoted."',
        "End",
    ]
    assert split_sentences("  ... \n !") == []


def test_clean_text_drops_markdown_and_emoji():
    text = "# Title\n**Hello** _world_ 😀👍🏽!\n- item one\n> quoted `code`\n1. First, snake_case stays.\n3.14 is pi"
    assert tts.clean_text(text).splitlines() == [
        "Title",
        "Hello world !",
        "item one",
        "quoted code",
        "First, snake_case stays.",
        "3.14 is pi",
    ]


def test_chunk_phonemes_cuts_at_punctuation_within_the_limit():
    ps = ", ".join(["həlˈO wˈɜːld"] * 80) + "."
    chunks = tts.chunk_phonemes(ps)
    assert len(chunks) > 1 and all(len(c) <= tts.MAX_PHONEMES for c in chunks)
    assert all(c.endswith((",", ".")) for c in chunks)
    assert " ".join(chunks).replace(" ", "") == ps.replace(" ", "")
    assert [len(c) for c in tts.chunk_phonemes("a" * 1100)] == [510, 510, 80]
    assert tts.chunk_phonemes("a" * 509 + ".b") == ["a" * 509 + ".", "b"]


def test_phoneme_timeline_from_durations():
    vocab = {c: i for i, c in enumerate("abc ")}
    # inputs: <bos> a b ? c <eos>  ("?" is not in the vocab: KModel drops it, so it has no duration)
    times = phoneme_timeline("ab?c", vocab, torch.tensor([2, 1, 3, 4, 2]), n_samples=12 * 600, sample_rate=24000)
    assert [p.symbol for p in times] == ["a", "b", "c"]
    frame = 600 / 24000
    edges = [t for p in times for t in (p.start, p.end)]
    assert edges == pytest.approx([2 * frame, 3 * frame, 3 * frame, 6 * frame, 6 * frame, 10 * frame])
    with pytest.raises(ValueError, match="durations"):
        phoneme_timeline("abc", vocab, torch.tensor([1, 1, 1]), 600, 24000)


# ------------------------------------------------------------------------------------------------ synthesis


def test_real_pipeline_gives_each_phoneme_its_own_time(synth, monkeypatch):
    from kokoro import KPipeline

    outputs = []  # what the model predicted, seen through the kokoro call the synthesizer makes
    infer = KPipeline.infer
    monkeypatch.setattr(KPipeline, "infer", staticmethod(lambda *a, **k: outputs.append(infer(*a, **k)) or outputs[-1]))
    text = "Maybe people will pay. The big moon is bright!"
    utterances = list(synth.synthesize(text, "test_a"))
    assert [u.text for u in utterances] == ["Maybe people will pay.", "The big moon is bright!"]
    assert len(outputs) == 2
    for u, out in zip(utterances, outputs, strict=True):
        assert u.audio.dtype == np.float32 and u.audio.ndim == 1 and np.isfinite(u.audio).all()
        assert [p.symbol for p in u.timeline] == [c for c in u.phonemes if c in synth.model.vocab]
        assert u.timeline[0].start > 0  # the start token has its own duration
        assert all(a.end == pytest.approx(b.start) for a, b in pairwise(u.timeline))
        assert all(p.end > p.start for p in u.timeline)
        assert u.timeline[-1].end < u.duration  # the end token's frames follow the last phoneme
        frames = out.pred_dur.numpy()
        assert len(u.audio) == frames.sum() * 600  # Kokoro: 600 samples (25 ms) per frame
        assert [round((p.end - p.start) * 40) for p in u.timeline] == list(frames[1:-1])
    # Phoneme-level, not a word's time split evenly: within some word the phonemes differ in length.
    words, word = [], []
    for p in utterances[0].timeline:
        if p.symbol == " ":
            words.append(word)
            word = []
        else:
            word.append(round(p.end - p.start, 6))
    assert any(len(set(w)) > 1 for w in [*words, word])


def test_speed_and_voice(synth):
    slow = synth.synthesize_phonemes("həlˈO wˈɜːld.", "test_a", speed=0.7)
    fast = synth.synthesize_phonemes("həlˈO wˈɜːld.", "test_a", speed=2.0)
    assert fast.duration < slow.duration
    assert synth.voice_pack("test_a,test_b").shape == (510, 1, 256)
    with pytest.raises(ValueError, match="unknown voice 'nope'.*test_a"):
        synth.synthesize_phonemes("hˈI", "nope")
    with pytest.raises(ValueError, match="too long"):
        synth.synthesize_phonemes("a" * 600, "test_a")


# ------------------------------------------------------------------------------------------------ lipsync


def timeline(*spec: tuple[str, float, float]) -> list[Phoneme]:
    return [Phoneme(s, a, b) for s, a, b in spec]


TRACK_SPEC = (
    ("b", 0.0, 0.1),
    ("ˈ", 0.1, 0.15),
    ("a", 0.15, 0.3),
    (" ", 0.3, 0.35),
    ("I", 0.35, 0.55),  # diphthong aɪ: aaa then iii
    (".", 0.55, 0.7),  # short pause: keep
    ("m", 0.7, 0.8),
    ("ʔ", 0.8, 0.9),  # unknown: keep
    ("ʊ", 0.9, 1.0),
    ("!", 1.0, 1.6),  # long pause: close
)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0.05, CLOSED),
        (0.12, None),
        (0.2, shape("mouth_aaa_index")),
        (0.32, None),
        (0.4, shape("mouth_aaa_index")),
        (0.5, shape("mouth_iii_index")),
        (0.6, None),
        (0.75, CLOSED),
        (0.85, None),
        (0.95, shape("mouth_uuu_index")),
        (1.3, CLOSED),
        (5.0, CLOSED),
        (-1.0, None),
    ],
)
def test_mouth_track(t, expected):
    assert shape_at(mouth_track(timeline(*TRACK_SPEC)), t) == expected


def test_driver_follows_the_clock_with_offset_and_releases_smoothly():
    clock = FakeClock()
    animator = make_animator(clock)
    target = Recording(animator)
    audio_clock = FakeClock()
    driver = LipsyncDriver(target, audio_clock, offset=-0.1)  # mouth 0.1 s ahead of the audio
    track = mouth_track(timeline(*TRACK_SPEC))

    audio_clock.now = 0.1  # shows t=0.2: aaa
    assert driver.update(track) == shape("mouth_aaa_index")
    assert animator.overrides["mouth_aaa_index"] == 1.0
    assert {k: v for k, v in animator.overrides.items() if v} == {"mouth_aaa_index": 1.0}
    audio_clock.now = 0.12  # same shape: nothing new is sent
    driver.update(track)
    assert len(target.calls) == 1
    audio_clock.now = 0.4  # shows 0.5: iii
    assert driver.update(track) == shape("mouth_iii_index")
    audio_clock.now = 0.5  # shows 0.6 (short pause): keeps iii
    assert driver.update(track) == shape("mouth_iii_index")
    assert len(target.calls) == 2

    for _ in range(20):  # let the animator reach the target
        clock.now += 0.04
        animator.advance()
    iii = pose.param("mouth_iii_index").index
    assert animator.advance().pose[iii] > 0.9

    audio_clock.now = 10.0  # past the end: closed
    assert driver.update(track) == CLOSED
    driver.release()
    assert target.calls[-1] == ("unset", list(MOUTH_KEYS))
    assert not set(animator.overrides) & set(MOUTH_KEYS)
    values = []
    for _ in range(8):
        clock.now += 0.04
        values.append(float(animator.advance().pose[iii]))
    assert values == sorted(values, reverse=True) and values[0] > 0.0 and values[-1] < 0.1  # eased, not cut


def test_driver_run_closes_at_the_end_and_stops_early():
    animator = make_animator()
    target = Recording(animator)
    audio_clock = FakeClock()
    driver = LipsyncDriver(target, audio_clock)
    track = mouth_track(timeline(("a", 0.0, 0.2), ("t", 0.2, 0.4)))

    def playing():  # the audio clock advances 50 ms per tick and the clip is 0.5 s long
        audio_clock.now += 0.05
        return audio_clock.now < 0.5

    assert driver.run(track, playing, tick=0.0) is True
    assert [c[1] for c in target.calls] == [shape("mouth_aaa_index"), shape("mouth_eee_index"), CLOSED]

    driver2 = LipsyncDriver(target, FakeClock(0.1))
    threading.Timer(0.05, driver2.stop).start()
    assert driver2.run(track, lambda: True, tick=0.01) is False
    assert target.calls[-1] == ("unset", list(MOUTH_KEYS))
    assert not set(animator.overrides) & set(MOUTH_KEYS)


# ------------------------------------------------------------------------------------------------ audio


def test_player_without_device_runs_on_the_wall_clock(monkeypatch, caplog):
    monkeypatch.setenv("RAVEN_AVATAR_NO_AUDIO", "1")
    with caplog.at_level("WARNING"):
        player = Player(24000)
    assert player.silent and "no audio output (RAVEN_AVATAR_NO_AUDIO is set)" in caplog.text
    assert not player.playing()
    player.play(np.zeros(2400, np.float32))  # 0.1 s
    assert player.playing()
    p0 = player.position()
    assert player.wait(timeout=5)
    assert not player.playing() and 0 <= p0 <= player.position() == pytest.approx(0.1)
    player.play(np.zeros(240000, np.float32))
    player.stop()
    assert not player.playing()


def test_player_falls_back_when_portaudio_fails(monkeypatch, caplog):
    class NoDevice:  # stands in for sounddevice: PortAudio present, but no output device
        class PortAudioError(Exception):
            pass

        @staticmethod
        def OutputStream(*args, **kwargs):  # noqa: N802 - sounddevice's name
            raise NoDevice.PortAudioError("Error querying device -1")

    monkeypatch.delenv("RAVEN_AVATAR_NO_AUDIO", raising=False)
    monkeypatch.setitem(sys.modules, "sounddevice", NoDevice)
    with caplog.at_level("WARNING"):
        player = Player(24000)
    assert player.silent and "no audio output (Error querying device -1)" in caplog.text
    player.play(np.zeros(240, np.float32))
    assert player.wait(timeout=5)


def test_player_clock_follows_the_dac(monkeypatch):
    """With a device, the position is the sample being heard: PortAudio's DAC time, not the samples handed over."""

    class Stream:  # stands in for sounddevice.OutputStream; the test plays PortAudio's part
        def __init__(self, samplerate, channels, dtype, callback, device):
            self.callback, self.time, self.latency = callback, 100.0, 0.05
            streams.append(self)

        def start(self):
            pass

        def close(self):
            pass

    class Info:
        def __init__(self, dac):
            self.outputBufferDacTime = dac

    streams = []
    monkeypatch.delenv("RAVEN_AVATAR_NO_AUDIO", raising=False)
    monkeypatch.setitem(sys.modules, "sounddevice", type("sd", (), {"OutputStream": Stream}))
    player = Player(1000)
    (stream,) = streams
    assert not player.silent
    player.play(np.ones(250, np.float32))
    assert player.playing() and player.position() == 0.0
    out = np.zeros((100, 1), np.float32)
    stream.callback(out, 100, Info(100.1), None)  # samples 0..99 will be heard from t=100.1
    assert out[:, 0].tolist() == [1.0] * 100
    assert player.position() == 0.0  # handed over, not heard yet
    stream.time = 100.15
    assert player.position() == pytest.approx(0.05)
    stream.callback(out, 100, Info(100.2), None)
    stream.callback(out, 100, Info(100.3), None)  # the last 50 samples, then silence
    assert out[:50, 0].tolist() == [1.0] * 50 and out[50:, 0].tolist() == [0.0] * 50
    stream.time = 100.32
    assert player.position() == pytest.approx(0.22) and player.playing()
    stream.time = 100.36  # the last sample has been heard
    assert player.position() == pytest.approx(0.25) and not player.playing()
    player.play(np.ones(250, np.float32))
    player.stop()
    stream.callback(out, 100, Info(101.0), None)
    assert not player.playing() and out[:, 0].tolist() == [0.0] * 100


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_save_audio_round_trip(tmp_path, ext):
    pytest.importorskip("soundfile")
    audio = (0.5 * np.sin(np.arange(4800) / 10)).astype(np.float32)
    path = save_audio(tmp_path / f"a{ext}", audio, 24000)
    back, rate = load_audio(path)
    assert rate == 24000 and np.abs(back - audio).max() < 1e-3
    assert path.read_bytes()[:4] == (b"RIFF" if ext == ".wav" else b"fLaC")


def test_save_audio_without_soundfile(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # import soundfile -> ImportError
    audio = np.linspace(-1, 1, 2400, dtype=np.float32)
    back, rate = load_audio(save_audio(tmp_path / "a.wav", audio, 24000))
    assert rate == 24000 and np.abs(back - audio).max() < 1e-4
    with pytest.raises(RuntimeError, match="soundfile"):
        save_audio(tmp_path / "a.flac", audio, 24000)
    with pytest.raises(ValueError, match="unsupported audio extension '.mp3'"):
        save_audio(tmp_path / "a.mp3", audio, 24000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]  # nothing half-written


# ------------------------------------------------------------------------------------------------ speaker


def test_speaker_speaks_with_lipsync_and_releases(synth):
    animator = make_animator()
    target = Recording(animator)

    class AudioSpy:  # a recorder that notes in the same log when each sentence's audio starts
        def add_audio(self, audio, sample_rate):
            target.calls.append(("audio", len(audio)))

    speaker = Speaker(target, synthesizer=synth, silent=True, offset=-0.5)  # mouth 0.5 s ahead of the audio
    assert speaker.available() == (True, "")
    assert speaker.voices() == ["test_a", "test_b"]
    done = threading.Event()
    speaker.speak("Bob is happy. Pam too.", "test_a", on_done=done.set, recorder=AudioSpy())
    assert done.wait(30) and speaker.wait(5) and not speaker.speaking
    assert speaker.last_error is None
    sets = [c[1] for c in target.calls if c[0] == "set"]
    opened = {key for shape_ in sets for key, value in shape_.items() if value == 1.0}
    assert len(opened) >= 2 and CLOSED in sets  # several mouth shapes, and closed (b, p, m and at the end)
    assert target.calls[-1] == ("unset", list(MOUTH_KEYS))
    assert not set(animator.overrides) & set(MOUTH_KEYS)
    # With a negative offset the mouth starts before the audio (lead-in), so a sentence start is not skipped.
    kinds = [c[0] for c in target.calls]
    assert kinds.index("set") < kinds.index("audio")
    assert [c[0] for c in target.calls].count("audio") == 2


def test_speaker_stop_at_any_time(synth):
    animator = make_animator()
    target = Recording(animator)
    speaker = Speaker(target, synthesizer=synth, silent=True)
    done = threading.Event()
    speaker.speak("Let us talk about it. " * 3, "test_a", on_done=done.set)
    deadline = time.monotonic() + 30
    while not any(c[0] == "set" for c in target.calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    speaker.stop(wait=False)  # silent and mouth released at once, even while a sentence is still synthesizing
    assert not speaker.player.playing()
    assert target.calls[-1] == ("unset", list(MOUTH_KEYS))
    assert not set(animator.overrides) & set(MOUTH_KEYS)
    assert speaker.wait(30) and done.is_set() and not speaker.speaking
    assert target.calls[-1] == ("unset", list(MOUTH_KEYS))  # nothing set after the stop


def test_export_audio(synth, tmp_path):
    pytest.importorskip("soundfile")
    speaker = Speaker(synthesizer=synth, silent=True)
    utterances = speaker.synthesize("Hi there. Bye.", "test_b", 1.5)
    path = speaker.export_audio("Hi there. Bye.", tmp_path / "speech.flac", "test_b", 1.5)
    audio, rate = load_audio(path)
    assert rate == tts.SAMPLE_RATE and len(audio) == sum(len(u.audio) for u in utterances)


def test_speech_unavailable_without_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    speaker = Speaker(silent=True)
    ok, why = speaker.available()
    assert not ok and "python -m raven_avatar.engine.speech download" in why
    assert speaker.voices() == []
    with pytest.raises(RuntimeError, match="speech download"):
        speaker.speak("Hello.")
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    with pytest.raises(tts.OfflineError, match="offline mode"):
        tts.download()
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE")
    asked = {}

    def no_network(repo_id, **kwargs):
        asked.update(kwargs, repo_id=repo_id)
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
    with pytest.raises(tts.OfflineError, match="could not download hexgrad/Kokoro-82M.*Name or service not known"):
        tts.download(["af_bella"], progress=False)
    assert asked["repo_id"] == tts.REPO_ID and asked["local_dir"] == tts.weights_dir()
    assert asked["allow_patterns"] == ["config.json", "kokoro-v1_0.pth", "voices/af_bella.pt"]
    find_spec = tts.importlib.util.find_spec
    monkeypatch.setattr(tts.importlib.util, "find_spec", lambda n, *a: None if n == "kokoro" else find_spec(n, *a))
    assert speaker.available() == (False, f"speech needs the packages kokoro; {tts.INSTALL_HINT}")


def test_default_synthesizer_loads_from_the_weights_folder(monkeypatch, tmp_path):
    """The no-argument path the apps use: config, weights and voice files found in the cache folder."""
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    folder = tts.weights_dir()
    (folder / "voices").mkdir(parents=True)
    (folder / tts.CONFIG_FILE).write_text(json.dumps(tiny_config()), encoding="utf-8")
    torch.save({}, folder / tts.MODEL_FILE)  # the architecture from config.json, weights left random
    torch.save(torch.randn(510, 1, 256) * 0.1, folder / "voices" / "zz_test.pt")
    speaker = Speaker(silent=True)
    assert speaker.available() == (True, "") and speaker.voices() == ["zz_test"]
    (u,) = speaker.synthesize("Hello.", "zz_test")
    assert u.phonemes.startswith("h") and u.timeline[-1].symbol == "." and len(u.audio) > 0
    assert speaker.synthesizer.voices == ["zz_test"]


# ------------------------------------------------------------------------------------------------ recording


def mouth_frame(animator: Animator) -> np.ndarray:
    """A tiny frame whose red channel shows how open the mouth (aaa) is."""
    state = animator.advance()
    img = np.zeros((8, 10, 4), np.uint8)
    img[..., 0] = int(round(float(state.pose[AAA]) * 255))
    img[..., 3] = 255
    return img


def test_record_speech_png_sequence(synth, tmp_path):
    animator = make_animator()
    speaker = Speaker(animator, synthesizer=synth, silent=True, offset=-0.3)
    rec = record_speech(
        speaker, "Papa had a car.", lambda: mouth_frame(animator), tmp_path / "rec", fps=30, voice="test_a"
    )
    timing = json.loads((tmp_path / "rec" / "timing.json").read_text())
    pngs = sorted(p.name for p in (tmp_path / "rec").glob("frame_*.png"))
    assert [f["file"] for f in timing["frames"]] == pngs and len(pngs) == len(rec.frame_times) > 5
    times = [f["t"] for f in timing["frames"]]
    assert times == sorted(times) and times[0] == 0.0
    assert timing["fps"] == pytest.approx((len(times) - 1) / times[-1], rel=1e-3)
    audio, rate = load_audio(tmp_path / "rec" / timing["audio"]["file"])
    # The audio track spans the frames: it ends one frame period after the last frame.
    assert len(audio) / rate == pytest.approx(timing["audio"]["duration"], abs=1e-4)
    assert len(audio) / rate == pytest.approx(times[-1] + 1 / timing["fps"], abs=2 / rate)
    (utt,) = timing["utterances"]
    assert 0 <= utt["start"] < utt["end"] <= times[-1]
    assert np.abs(audio[int(utt["start"] * rate) : int(utt["end"] * rate)]).max() > 0
    # The mouth moved while the sentence played, and frames before it show a closed mouth.
    from PIL import Image

    red = [np.asarray(Image.open(tmp_path / "rec" / f))[0, 0, 0] for f in pngs]
    assert max(red) > 100 and red[0] == 0
    first_open = next(t for t, r in zip(times, red, strict=True) if r > 0)
    assert first_open > utt["start"]  # recorded at offset 0: the mouth opens after the audio starts, not before
    assert speaker.offset == -0.3  # the live offset is restored


def test_recorder_video_file(tmp_path):
    av = pytest.importorskip("av")
    clock = FakeClock()
    rec = SpeechRecorder(tmp_path / "talk.mp4", clock=clock)
    tone = (0.3 * np.sin(np.arange(24000) * 0.05)).astype(np.float32)
    for i in range(24):  # 24 frames at a real 20 FPS, audio starting at the 4th frame
        clock.now = i * 0.05
        if i == 4:
            rec.add_audio(tone, 24000)
        img = np.zeros((16, 16, 4), np.uint8)
        img[..., 1], img[..., 3] = 10 * i, 255
        rec.add_frame(img)
    assert rec.fps == pytest.approx(20.0)
    assert rec.close() == tmp_path / "talk.mp4"
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]
    with av.open(str(tmp_path / "talk.mp4")) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        assert len(frames) == 24
        assert [round(float(f.time), 3) for f in frames] == pytest.approx([i * 0.05 for i in range(24)], abs=1e-3)
    with av.open(str(tmp_path / "talk.mp4")) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        # audio: 0.2 s of silence + 1 s tone, padded to the video's end (24 frames at 20 FPS = 1.2 s)
        assert samples / 24000 == pytest.approx(1.2, abs=0.05)
