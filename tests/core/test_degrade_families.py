"""deepaq_core.degrade.effects: packet loss, echo, reverb, interference, telephone band, MNRU,
compression, wow and flutter, time warp (generated signals; the ladder-wide teacher checks are in
test_degrade.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.degrade import (
    FAMILIES,
    DegradationError,
    bandpass,
    compression,
    degrade,
    degrade_file,
    echo,
    interference,
    logmel_distance,
    make_ladder,
    mnru,
    packet_loss,
    reverb,
    time_warp,
    wow_flutter,
)
from tests.core.test_degrade import _one_sentence, _snr_db, music

SR = 48000
NEW_FAMILIES = ("packet_loss", "echo", "reverb", "interferer", "bandpass", "mnru", "compression", "wow_flutter",
                "time_warp")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return music()


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _white(seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def _frames_lost(n: int, loss_rate: float, seed: int, frame_ms: float = 20.0) -> np.ndarray:
    """Which frames of an ``n``-sample signal a seed loses (booleans): the all-zero frames of
    ``mode="silence"`` applied to noise, which has none of its own. Content does not matter."""
    frame = int(round(frame_ms * SR / 1000))
    noise = 1.0 + np.random.default_rng(0).random((1, n))
    y, _ = packet_loss(noise, SR, loss_rate, frame_ms=frame_ms, mode="silence", seed=seed)
    return np.pad(y[0], (0, -n % frame), constant_values=1.0).reshape(-1, frame).max(axis=1) == 0


# ------------------------------------------------------------------------------- packet loss


def test_packet_loss_delete_shortens_by_the_loss_and_keeps_the_rest(x):
    y, info = packet_loss(x, SR, 0.2, mode="delete", seed=3)
    duration = x.shape[1] / SR
    assert info["packets"] == 125 and info["lost_packets"] == 25  # exactly round(0.2 * 125)
    assert info["removed_s"] == pytest.approx(0.2 * duration, abs=0.02)  # within a frame
    assert y.shape == (2, x.shape[1] - round(info["removed_s"] * SR)) == (2, info["output_samples"])
    # What is left is the input minus the lost frames, in order.
    lost = _frames_lost(x.shape[1], 0.2, seed=3)
    keep = np.repeat(~lost, 960)[: x.shape[1]]
    np.testing.assert_array_equal(y, x[:, keep])


def test_packet_loss_silence_and_repeat_replace_exactly_the_lost_frames(x):
    frame = 960  # 20 ms
    silent, info = packet_loss(x, SR, 0.1, mode="silence", seed=1)
    lost = _frames_lost(x.shape[1], 0.1, seed=1)
    assert lost.sum() == info["lost_packets"] == 12 and silent.shape == x.shape
    mask = np.repeat(lost, frame)[: x.shape[1]]
    np.testing.assert_array_equal(silent[:, ~mask], x[:, ~mask])
    assert np.all(silent[:, mask] == 0)
    repeated, _ = packet_loss(x, SR, 0.1, mode="repeat", seed=1)
    np.testing.assert_array_equal(repeated[:, ~mask], x[:, ~mask])
    for k in np.flatnonzero(lost):
        if k > 0 and not lost[k - 1]:  # the first frame of a gap is the frame before it again
            np.testing.assert_array_equal(repeated[:, k * frame : (k + 1) * frame],
                                          x[:, (k - 1) * frame : k * frame])


def test_packet_loss_is_seeded_and_nests_across_the_ladder(x):
    a = packet_loss(x, SR, 0.1, seed=5)[0]
    np.testing.assert_array_equal(a, packet_loss(x, SR, 0.1, seed=5)[0])
    assert not np.array_equal(a, packet_loss(x, SR, 0.1, seed=6)[0])
    low, high = _frames_lost(x.shape[1], 0.05, seed=5), _frames_lost(x.shape[1], 0.2, seed=5)
    assert low.sum() == 6 and high.sum() == 25 and np.all(high[low])


def test_packet_loss_concealment_continues_a_steady_tone_and_fades_long_gaps():
    # 1 kHz repeats every 48 samples, so a concealed 10 ms frame continues it almost seamlessly.
    tone = _tone(1000.0, seconds=4.0)[np.newaxis, :]
    concealed, _ = packet_loss(tone, SR, 0.5, frame_ms=10.0, seed=2)
    lost = _frames_lost(tone.shape[1], 0.5, seed=2, frame_ms=10.0)
    run_start = np.flatnonzero(~lost[:-1] & lost[1:]) + 1
    firsts = [k for k in run_start if k >= 2 and not lost[k - 2]]  # after two good frames
    assert len(firsts) > 10
    for k in firsts:  # the first lost frame of each gap: the tone goes on
        seg = slice(k * 480, (k + 1) * 480)
        assert _snr_db(tone[:, seg], concealed[:, seg]) > 40
    # In a gap of four or more frames the fourth is silent (level held one frame, faded over two).
    long_gaps = [k for k in run_start if k + 4 <= lost.size and lost[k : k + 4].all()]
    assert long_gaps
    for k in long_gaps:
        assert np.all(concealed[:, (k + 3) * 480 : (k + 4) * 480] == 0)
        assert np.abs(concealed[:, (k + 2) * 480 : (k + 3) * 480]).max() < 0.5 * 0.5 + 1e-6
    # On music, concealment sounds closer to the original than gaps do (a repeated frame is no
    # closer in waveform, so the comparison is on log-mel spectra).
    x1 = music(seconds=2.0, channels=1, seed=4)
    dist = {m: logmel_distance(x1, packet_loss(x1, SR, 0.1, mode=m, seed=0)[0], SR) for m in ("conceal", "silence")}
    assert dist["conceal"] < 0.8 * dist["silence"], dist


# --------------------------------------------------------------------------------- echo, reverb


def test_echo_autocorrelation_peaks_at_the_delay():
    noise = _white(2.0, seed=1)[0]
    y, info = echo(noise, SR, 0.5, delay_ms=80.0)
    assert info["delay_samples"] == 3840 and y.shape == noise.shape
    ac = scipy.signal.correlate(y, y, mode="full", method="fft")[y.size - 1 :]
    lag = int(np.argmax(ac[100 : y.size // 2])) + 100
    assert lag == 3840
    assert ac[lag] / ac[0] == pytest.approx(0.5 / (1 + 0.5**2), abs=0.03)  # g / (1 + g^2)


def test_echo_with_feedback_recirculates():
    impulse = np.zeros(SR, np.float32)
    impulse[0] = 1.0
    single, _ = echo(impulse, SR, 0.6, delay_ms=50.0)
    assert np.flatnonzero(single).tolist() == [0, 2400] and single[2400] == pytest.approx(0.6)
    train, info = echo(impulse, SR, 0.6, delay_ms=50.0, feedback=True)
    k = np.arange(info["echoes"] + 1)
    np.testing.assert_allclose(train[k * 2400], 0.6**k, rtol=1e-6)
    assert info["echoes"] == 19  # (SR - 1) // 2400 delays fit; 0.6^19 is still above -80 dB
    assert np.count_nonzero(train) == info["echoes"] + 1


def test_reverb_decays_at_the_requested_rt60():
    impulse = np.zeros((2, 2 * SR), np.float32)
    impulse[:, 0] = 1.0
    y, info = reverb(impulse, SR, 0.8, wet=1.0, seed=0)
    assert y.shape == impulse.shape and info["ir_samples"] == int(0.8 * SR)
    assert np.sum(y.astype(np.float64) ** 2, axis=1) == pytest.approx([1.0, 1.0], rel=1e-5)  # unit-energy IRs
    assert abs(np.corrcoef(y[0], y[1])[0, 1]) < 0.05  # independent per channel
    # Schroeder backward integration; the T20 slope (-5 to -25 dB) extrapolated to 60 dB.
    edc = 10 * np.log10(np.cumsum(y[0, ::-1].astype(np.float64) ** 2)[::-1])
    edc -= edc[0]
    t = np.arange(edc.size) / SR
    sel = (edc < -5) & (edc > -25)
    slope = np.polyfit(t[sel], edc[sel], 1)[0]
    assert -60 / slope == pytest.approx(0.8, rel=0.1)
    x1 = _white(0.5)
    np.testing.assert_array_equal(reverb(x1, SR, 0.5, wet=0.0)[0], x1)
    np.testing.assert_array_equal(reverb(x1, SR, 0.5, seed=3)[0], reverb(x1, SR, 0.5, seed=3)[0])
    assert not np.array_equal(reverb(x1, SR, 0.5, seed=3)[0], reverb(x1, SR, 0.5, seed=4)[0])


# ---------------------------------------------------------------------------- interference


def test_interferer_hits_the_sir_and_uses_a_given_source(x):
    for sir in (20.0, 5.0):
        y, info = interference(x, SR, sir, voices=3, seed=0)
        assert _snr_db(x, y) == pytest.approx(sir, abs=0.01)
        assert info["interferer"] == "self-reversed" and len(info["shifts_s"]) == 3
    np.testing.assert_array_equal(interference(x, SR, 10.0, seed=1)[0], interference(x, SR, 10.0, seed=1)[0])
    assert not np.array_equal(interference(x, SR, 10.0, seed=1)[0], interference(x, SR, 10.0, seed=2)[0])
    other = music(seed=7)[0]  # mono, broadcast to both channels
    y, info = degrade(x, SR, "interferer", sir_db=10.0, interferer=other)
    assert info["interferer"] == "given" and info["label"] == pytest.approx(0.75)
    residual = y.astype(np.float64) - x
    gain = np.sum(residual[0] * other) / np.sum(other.astype(np.float64) ** 2)
    np.testing.assert_allclose(residual, np.broadcast_to(gain * other, x.shape), atol=1e-6)


# ------------------------------------------------------------------------- telephone channel


def test_bandpass_passes_the_telephone_band_only():
    def gain_db(freq: float, **kw) -> float:
        tone = _tone(freq)
        y, _ = bandpass(tone, SR, **kw)
        mid = slice(SR // 4, 3 * SR // 4)
        return float(10 * np.log10(np.mean(y[mid].astype(np.float64) ** 2) / np.mean(tone[mid] ** 2.0)))

    assert gain_db(1000) == pytest.approx(0.0, abs=0.5)
    assert gain_db(100) < -20 and gain_db(8000) < -20
    _, info = bandpass(_tone(1000), SR)
    assert (info["low_hz"], info["high_hz"], info["kind"]) == (300.0, 3400.0, "bandpass")
    # Wider classes keep the bass too (50 Hz low edge above 4 kHz), unless told otherwise.
    assert gain_db(100, high_hz=7000) == pytest.approx(0.0, abs=0.5)
    assert gain_db(100, high_hz=7000, low_hz=300) < -20
    assert bandpass(_tone(1000), SR, high_hz=30000, low_hz=0)[1]["kind"] == "identity"


def test_mnru_snr_is_q_in_loud_and_quiet_passages():
    rng = np.random.default_rng(0)
    loud_quiet = np.concatenate([0.5 * rng.standard_normal(SR), 0.005 * rng.standard_normal(SR)])
    for q in (45.0, 25.0, 5.0):
        y, info = mnru(loud_quiet, SR, q, seed=1)
        assert _snr_db(loud_quiet, y) == pytest.approx(q, abs=0.5) and info["snr_db"] == pytest.approx(q, abs=0.5)
        # Unlike additive noise, the noise follows the level: the quiet second also has SNR q.
        assert _snr_db(loud_quiet[SR:], y[SR:]) == pytest.approx(q, abs=0.5)
    np.testing.assert_array_equal(mnru(loud_quiet, SR, 20.0, seed=2)[0], mnru(loud_quiet, SR, 20.0, seed=2)[0])
    assert not np.array_equal(mnru(loud_quiet, SR, 20.0, seed=2)[0], mnru(loud_quiet, SR, 20.0, seed=3)[0])


# ----------------------------------------------------------------------------------- dynamics


def _log_spectral_distance(ref: np.ndarray, deg: np.ndarray) -> float:
    """Mean |dB| difference of STFT power (2048-point frames), both scaled to the same RMS."""
    deg = deg * np.sqrt(np.mean(ref.astype(np.float64) ** 2) / np.mean(deg.astype(np.float64) ** 2))
    p = [np.abs(scipy.signal.stft(s, SR, nperseg=2048)[2]) ** 2 + 1e-10 for s in (ref, deg)]
    return float(np.mean(np.abs(10 * np.log10(p[0] / p[1]))))


def test_compression_follows_its_static_curve():
    # 1 s at the threshold, then 1 s 20 dB above it: 4:1 leaves 5 dB of the 20 (15 dB reduction).
    quiet, loud = _tone(1000.0, amp=0.1), _tone(1000.0, amp=1.0)
    y, info = compression(np.concatenate([quiet, loud]), SR, -20.0, ratio=4.0, makeup=False)
    settled = slice(SR + SR // 2, 2 * SR)
    assert np.abs(y[SR // 2 : SR]).max() == pytest.approx(0.1, rel=0.01)  # at the threshold: untouched
    assert 20 * np.log10(np.abs(y[settled]).max()) == pytest.approx(-15.0, abs=0.3)
    assert info["max_reduction_db"] == pytest.approx(15.0, abs=0.3)
    x1 = music(seconds=1.0, seed=2)
    np.testing.assert_allclose(compression(x1, SR, -20.0, ratio=1.0)[0], x1, atol=1e-6)


def test_compression_reduces_crest_keeps_loudness_and_grows_along_its_ladder(x):
    crest = lambda s: 20 * np.log10(np.abs(s).max() / np.sqrt(np.mean(s.astype(np.float64) ** 2)))  # noqa: E731
    distances, crests = [], []
    for threshold in FAMILIES["compression"].ladder:
        y, info = degrade(x, SR, "compression", threshold_db=threshold)
        assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(np.mean(x.astype(np.float64) ** 2), rel=1e-4)
        assert info["crest_out_db"] == pytest.approx(crest(y), abs=0.01)
        distances.append(_log_spectral_distance(x, y))
        crests.append(crest(y))
    assert crests[-1] < crest(x) - 3
    noise = _white(1.0, channels=2)  # no silent lead-in: the opening attack is caught as well
    assert all(compression(noise, SR, t)[1]["crest_out_db"] < crest(noise) - 1 for t in (-3, -12))
    assert all(np.diff(distances) > 0), np.round(distances, 3)
    assert all(np.diff(crests) < 0), np.round(crests, 2)


# ----------------------------------------------------------------------------- playback speed


def _instantaneous_hz(y: np.ndarray) -> np.ndarray:
    phase = np.unwrap(np.angle(scipy.signal.hilbert(y.astype(np.float64))))
    return scipy.signal.medfilt(np.diff(phase) * SR / (2 * np.pi), 101)[SR // 10 : -SR // 10]


def test_wow_flutter_swings_the_pitch_by_the_depth():
    tone = _tone(1000.0, seconds=2.0)
    y, info = wow_flutter(tone, SR, 1.0, rate_hz=2.0)
    assert y.shape == tone.shape
    f = _instantaneous_hz(y)
    assert f.max() == pytest.approx(1010.0, abs=1.0) and f.min() == pytest.approx(990.0, abs=1.0)
    assert info["max_shift_ms"] == pytest.approx(1000 * 0.01 / (2 * np.pi * 2.0))
    np.testing.assert_array_equal(wow_flutter(tone, SR, 0.0)[0], tone)


@pytest.mark.parametrize("factor", [0.98, 1.02])
def test_time_warp_changes_length_and_pitch_by_the_factor(factor):
    tone = _tone(1000.0, seconds=2.0)[np.newaxis, :].repeat(2, axis=0)
    y, info = time_warp(tone, SR, factor)
    assert y.shape == (2, round(2 * SR / factor)) == (2, info["output_samples"])
    assert info["length_change_s"] == pytest.approx(2.0 / factor - 2.0, abs=1 / SR)
    assert np.median(_instantaneous_hz(y[0])) == pytest.approx(1000.0 * factor, abs=0.5)
    assert info["pitch_cents"] == pytest.approx(1200 * np.log2(factor))


# ---------------------------------------------------------------------------- registry and API


def test_new_families_are_registered_with_monotone_ladders():
    for name in NEW_FAMILIES:
        fam = FAMILIES[name]
        assert fam.group == "signal" and fam.description
        assert 0 < fam.labels()[0] < 0.35 and fam.labels()[-1] == pytest.approx(1.0)
    assert [n for n, f in FAMILIES.items() if not f.time_aligned] == ["wow_flutter", "time_warp"]


def test_ladders_of_time_changing_families_have_their_lengths(x):
    for item in make_ladder(x, SR, "time_warp", include_clean=False):
        assert item["audio"].shape == (2, round(x.shape[1] / item["param"]))
    for item in make_ladder(x, SR, "wow_flutter", include_clean=False):
        assert item["audio"].shape == x.shape
    deleted = make_ladder(x, SR, "packet_loss", seed=0, include_clean=False, mode="delete")
    assert [it["audio"].shape[1] for it in deleted] == [x.shape[1] - round(it["info"]["removed_s"] * SR)
                                                       for it in deleted]
    assert all(np.diff([it["audio"].shape[1] for it in deleted]) < 0)


@pytest.mark.parametrize("kind,params", [
    ("packet_loss", {"loss_rate": 0.6}),
    ("packet_loss", {"loss_rate": 0.1, "mode": "drop"}),
    ("packet_loss", {"loss_rate": 0.1, "frame_ms": 0}),
    ("echo", {"gain": 1.5}),
    ("echo", {"gain": 1.0, "feedback": True}),
    ("echo", {"gain": 0.5, "delay_ms": -1}),
    ("echo", {"gain": 0.5, "feedback": "yes"}),
    ("reverb", {"rt60_s": 0}),
    ("reverb", {"rt60_s": 0.5, "wet": 2}),
    ("interferer", {"sir_db": float("nan")}),
    ("interferer", {"sir_db": 10, "voices": 0}),
    ("interferer", {"sir_db": 10, "interferer": np.zeros((3, 100))}),
    ("bandpass", {"high_hz": 300, "low_hz": 3400}),
    ("bandpass", {"high_hz": -5}),
    ("bandpass", {"high_hz": 3400, "order": 0}),
    ("mnru", {"q_db": float("inf")}),
    ("mnru", {}),
    ("compression", {"threshold_db": -20, "ratio": 0.5}),
    ("compression", {"threshold_db": -20, "attack_ms": 0}),
    ("compression", {"threshold_db": -20, "makeup": "false"}),
    ("wow_flutter", {"depth": 20}),
    ("wow_flutter", {"depth": 1, "rate_hz": 0}),
    ("time_warp", {"factor": 3}),
    ("time_warp", {"factor": 1.01, "speed": 2}),
])  # fmt: skip
def test_bad_parameters_raise_one_sentence(kind, params):
    with pytest.raises(DegradationError) as exc:
        degrade(_white(0.2, channels=2), SR, kind, **params)
    _one_sentence(str(exc.value))


def test_degrade_file_reports_the_new_length(tmp_path, x):
    src = tmp_path / "clean.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    info = degrade_file(src, tmp_path / "fast.flac", "time_warp", factor=1.02)
    assert info["frames"] == x.shape[1] and info["output_frames"] == round(x.shape[1] / 1.02)
    assert sf.info(tmp_path / "fast.flac").frames == info["output_frames"]


def test_cli_degrade_lists_and_applies_the_new_families(capsys, tmp_path, x):
    src, out = tmp_path / "clean.wav", tmp_path / "lossy.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    assert main(["degrade", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in NEW_FAMILIES)
    # Family parameters as --NAME VALUE, or --value / --param NAME=VALUE: the same request.
    for options in (["--loss_rate", "0.2", "--mode", "delete", "--seed=1"],
                    ["--value", "0.2", "--param", "mode=delete", "--param", "seed=1"]):
        code = main(["degrade", str(src), "--kind", "packet_loss", *options, "-o", str(out), "--json"])
        info = json.loads(capsys.readouterr().out)
        assert code == 0 and info["params"] == {"loss_rate": 0.2, "frame_ms": 20.0, "mode": "delete", "seed": 1}
        assert info["removed_s"] == pytest.approx(0.5, abs=0.02) and info["frames"] == x.shape[1]
        assert sf.info(out).frames == info["output_frames"] == x.shape[1] - round(info["removed_s"] * SR)
    code = main(["degrade", str(src), "--kind", "compression", "--json", "--threshold_db", "-12", "--makeup", "false",
                 "-o", str(out)])
    info = json.loads(capsys.readouterr().out)
    assert code == 0 and info["params"]["threshold_db"] == -12 and info["params"]["makeup"] is False
    assert info["makeup_db"] == 0.0
    for options, phrase in [(["--q_db", "70", "--mode", "x"], "'mode'"), (["--q_db"], "needs a value"),
                            (["stray", "--q_db", "70"], "'stray' is not understood")]:
        code = main(["degrade", str(src), "--kind", "mnru", *options, "-o", str(out), "--json"])
        err = capsys.readouterr().err
        assert code == 2 and phrase in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # other commands still reject unknown options
        main(["models", "--loss_rate", "1"])
