"""Bad input of every kind: the ``deepaq`` command exits 2 with one sentence, and inputs stay intact.

The command runs in-process; ``capfd`` captures file descriptors 1 and 2, so anything a C library
prints (libmpg123's notes on a garbage MP3) is caught too.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.errors import DeePAQError, InputFileError, OptionError, OutputPathError
from deepaq_core.validation import (
    check_number,
    check_output_path,
    check_output_paths,
    check_readable_file,
    same_file,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------- helpers


def _digests(*folders) -> dict[str, str]:
    out = {}
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    with open(path, "rb") as f:
                        out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


def run(capfd, *argv):
    """Run ``deepaq ARGV`` in-process; usage errors (argparse's SystemExit) give their code too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_sentence(code, err, phrase=None):
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("deepaq: error: ") and lines[0].endswith((".", ")")), lines[0]
    assert "Traceback" not in err
    if phrase:
        assert phrase in lines[0], lines[0]


@pytest.fixture
def work(tmp_path, signals):
    """A folder with a copy of the reference, a degraded file and a few bad files; all hashed."""
    shutil.copy(signals["ref"], tmp_path / "ref.wav")
    shutil.copy(signals["lp"], tmp_path / "deg.wav")
    (tmp_path / "garbage.mp3").write_bytes(np.random.default_rng(7).bytes(20000))
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio")
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "binary.csv").write_bytes(b"reference,degraded\n\xff\xfe\x00\x81" + bytes(range(128, 256)))
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reference", "degraded"])
        w.writerow(["ref.wav", "deg.wav"])
    (tmp_path / "no_degraded.csv").write_text("reference,degraded\nref.wav\n")
    (tmp_path / "header_only.csv").write_text("reference,degraded\n")
    (tmp_path / "bad.jsonl").write_text('{"reference": "ref.wav", "degraded": "deg.wav"}\n[1, 2]\n')
    (tmp_path / "number.jsonl").write_text('{"reference": "ref.wav", "degraded": 5}\n')
    ro = tmp_path / "readonly.jsonl"
    ro.write_text("")
    ro.chmod(0o444)
    os.symlink(tmp_path / "ref.wav", tmp_path / "link.wav")
    before = _digests(tmp_path, os.path.dirname(signals["ref"]))
    yield tmp_path
    assert _digests(tmp_path, os.path.dirname(signals["ref"])) == before, "an input file changed"


# --------------------------------------------------------------------------- the command line

# (arguments, a phrase of the message); "{d}" is the work folder.
BAD_INPUTS = {
    "offset nan": (["score", "{d}/ref.wav", "{d}/deg.wav", "--offset-ms", "nan"], "--offset-ms must be a finite"),
    "offset inf": (["score", "{d}/ref.wav", "{d}/deg.wav", "--offset-ms", "inf"], "got inf"),
    "offset -inf": (["score", "{d}/ref.wav", "{d}/deg.wav", "--offset-ms=-inf"], "got -inf"),
    "window nan": (["score", "{d}/ref.wav", "{d}/deg.wav", "--window", "nan"], "--window must be"),
    "window 0": (["score", "{d}/ref.wav", "{d}/deg.wav", "--window", "0"], "greater than 0"),
    "window -1": (["score", "{d}/ref.wav", "{d}/deg.wav", "--window", "-1"], "got -1"),
    "window huge": (["score", "{d}/ref.wav", "{d}/deg.wav", "--window", "1e9"], "at most 3600"),
    "hop nan": (["score", "{d}/ref.wav", "{d}/deg.wav", "--hop", "nan"], "--hop must be"),
    "hop 0": (["score", "{d}/ref.wav", "{d}/deg.wav", "--hop", "0"], "--hop must be"),
    "window not a number": (["score", "{d}/ref.wav", "{d}/deg.wav", "--window", "abc"], "invalid float value"),
    "unknown option": (["score", "{d}/ref.wav", "{d}/deg.wav", "--speed", "2"], "unrecognized arguments"),
    "missing arguments": (["score"], "required: reference, degraded"),
    "unknown command": (["rescore"], "invalid choice"),
    "bad channels choice": (["score", "{d}/ref.wav", "{d}/deg.wav", "--channels", "left"], "invalid choice"),
    "missing reference": (["score", "{d}/gone.wav", "{d}/deg.wav"], "'gone.wav': file not found"),
    "degraded is a folder": (["score", "{d}/ref.wav", "{d}/folder.wav"], "is a directory"),
    "garbage mp3": (["score", "{d}/ref.wav", "{d}/garbage.mp3"], "'garbage.mp3' is not an audio file"),
    "empty file": (["score", "{d}/ref.wav", "{d}/empty.wav"], "empty file"),
    "text as wav": (["score", "{d}/ref.wav", "{d}/text.wav"], "'text.wav' is not an audio file"),
    "unknown model": (["score", "{d}/ref.wav", "{d}/deg.wav", "--model", "no-such-model"], "Unknown model"),
    "frames in missing folder": (["score", "{d}/ref.wav", "{d}/deg.wav", "--frames", "{d}/nope/f.jsonl"],
                                 "does not exist"),
    "frames is a folder": (["score", "{d}/ref.wav", "{d}/deg.wav", "--frames", "{d}/folder.wav"], "is a directory"),
    "frames is an input": (["score", "{d}/ref.wav", "{d}/deg.wav", "--frames", "{d}/deg.wav"], "also an input"),
    "frames is an input via a link": (["score", "{d}/ref.wav", "{d}/deg.wav", "--frames", "{d}/link.wav"],
                                      "also an input"),
    "frames under a file": (["score", "{d}/ref.wav", "{d}/deg.wav", "--frames", "{d}/ref.wav/f.jsonl"],
                            "is not a folder"),
    "batch csv missing": (["batch", "--batch-input-csv", "{d}/gone.csv"], "'gone.csv': file not found"),
    "batch csv is a folder": (["batch", "--batch-input-csv", "{d}"], "is a directory"),
    "batch csv undecodable": (["batch", "--batch-input-csv", "{d}/binary.csv"], "not a UTF-8 text file"),
    "batch csv without rows": (["batch", "--batch-input-csv", "{d}/header_only.csv"], "lists no pairs"),
    "batch results overwrite the list": (["batch", "--batch-input-csv", "{d}/pairs.csv", "--results-csv",
                                          "{d}/pairs.csv"], "also an input"),
    "batch results overwrite audio": (["batch", "--batch-input-csv", "{d}/pairs.csv", "--results-jsonl",
                                       "{d}/deg.wav"], "also an input"),
    "batch two results in one file": (["batch", "--batch-input-csv", "{d}/pairs.csv", "--results-csv",
                                       "{d}/out.txt", "--results-jsonl", "{d}/out.txt"], "are the same file"),
    "batch results in missing folder": (["batch", "--batch-input-csv", "{d}/pairs.csv", "--results-csv",
                                         "{d}/nope/out.csv"], "does not exist"),
    "batch window nan": (["batch", "--batch-input-csv", "{d}/pairs.csv", "--window", "nan"], "--window"),
    "nmr clean folder missing": (["nmr", "{d}/deg.wav", "--clean", "{d}/nope"], "not found"),
    "nmr hop -1": (["nmr", "{d}/deg.wav", "--clean", "{d}", "--hop", "-1"], "--hop must be"),
    "nmr missing file": (["nmr", "{d}/gone.wav", "--clean", "{d}"], "file not found"),
    "degrade onto its input": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "3000", "-o",
                                "{d}/ref.wav"], "also an input"),
    "degrade onto its input, other spelling": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "3000",
                                                "-o", "{d}/folder.wav/../ref.wav"], "also an input"),
    "degrade onto its input via a link": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "3000",
                                           "-o", "{d}/link.wav"], "also an input"),
    "degrade onto its interferer": (["degrade", "{d}/ref.wav", "--kind", "separation", "--param",
                                     "interferer={d}/deg.wav", "-o", "{d}/deg.wav"], "also an input"),
    "degrade cutoff nan": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "nan", "-o", "{d}/o.wav"],
                           "--cutoff must be a positive number of Hz"),
    "degrade bitrate 0": (["degrade", "{d}/ref.wav", "--kind", "mp3", "--bitrate", "0", "-o", "{d}/o.wav"],
                          "--bitrate must be a positive"),
    "degrade snr inf": (["degrade", "{d}/ref.wav", "--kind", "white_noise", "--snr", "inf", "-o", "{d}/o.wav"],
                        "--snr must be a finite number of dB"),
    "degrade value nan": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--value", "nan", "-o", "{d}/o.wav"],
                          "--value must be"),
    "degrade param nan": (["degrade", "{d}/ref.wav", "--kind", "white_noise", "--param", "snr_db=nan", "-o",
                           "{d}/o.wav"], "--param snr_db must be"),
    "degrade param without =": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--param", "cutoff", "-o",
                                 "{d}/o.wav"], "is not NAME=VALUE"),
    "degrade unknown param": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--param", "speed=3", "-o",
                               "{d}/o.wav"], "speed"),
    "degrade unknown kind": (["degrade", "{d}/ref.wav", "--kind", "warp", "-o", "{d}/o.wav"], "Unknown degradation"),
    "degrade missing -o": (["degrade", "{d}/ref.wav", "--kind", "lowpass"], "one of the arguments -o/--output --ladder is required"),
    "degrade output in missing folder": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "3000", "-o",
                                          "{d}/nope/o.wav"], "does not exist"),
    "degrade output is a folder": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "3000", "-o",
                                    "{d}/folder.wav"], "is a directory"),
    "degrade output as mp3": (["degrade", "{d}/ref.wav", "--kind", "lowpass", "--cutoff", "3000", "-o",
                               "{d}/o.mp3"], "must end in .wav or .flac"),
    "degrade garbage input": (["degrade", "{d}/garbage.mp3", "--kind", "lowpass", "--cutoff", "3000", "-o",
                               "{d}/o.wav"], "'garbage.mp3' is not an audio file"),
    "degrade missing input": (["degrade", "{d}/gone.wav", "--kind", "lowpass", "--cutoff", "3000", "-o",
                               "{d}/o.wav"], "file not found"),
}


# A bad row of a batch input does not stop the batch: it becomes an error row in its place.
BAD_ROWS = {
    "batch csv without a value": (["--batch-input-csv", "{d}/no_degraded.csv"], "has 1 of the 2 columns"),
    "batch jsonl bad line": (["--batch-input-jsonl", "{d}/bad.jsonl"], "Line 2 of 'bad.jsonl'"),
    "batch jsonl number as path": (["--batch-input-jsonl", "{d}/number.jsonl"], "no 'degraded' file name"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS), ids=list(BAD_ROWS))
def test_bad_batch_row_becomes_an_error_row(capfd, work, case):
    argv, phrase = BAD_ROWS[case]
    out_path = work.parent / f"{work.name}-out.jsonl"
    code, _, err = run(capfd, "batch", *[a.replace("{d}", str(work)) for a in argv], "--results-jsonl", out_path)
    assert code == 2 and "Traceback" not in err
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    errors = [r["error"] for r in rows if r["error"]]
    assert len(errors) == 1 and phrase in errors[0]
    assert all(r["score"] != "" for r in rows if not r["error"])
    assert "deepaq: error: 1 of" in err


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_sentence(capfd, work, case):
    argv, phrase = BAD_INPUTS[case]
    code, out, err = run(capfd, *(a.replace("{d}", str(work)) for a in argv))
    assert_one_sentence(code, err, phrase)
    assert out == ""
    assert not (work / "o.wav").exists() and not (work / "out.txt").exists()
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]


@pytest.mark.skipif(IS_ROOT, reason="root may write read-only files")
def test_read_only_output_exits_2(capfd, work):
    code, _, err = run(capfd, "score", work / "ref.wav", work / "deg.wav", "--frames", work / "readonly.jsonl")
    assert_one_sentence(code, err, "is read-only")


def test_bad_input_kinds_are_many():
    assert len(BAD_INPUTS) >= 20


def test_output_checks_run_before_scoring(capfd, work, monkeypatch):
    import deepaq_core.scoring

    def fail(*args, **kwargs):
        raise AssertionError("scoring started")

    monkeypatch.setattr(deepaq_core.scoring.Scorer, "__init__", fail)
    for frames in (work / "nope" / "f.jsonl", work / "folder.wav", work / "ref.wav"):
        code, _, err = run(capfd, "score", work / "ref.wav", work / "deg.wav", "--frames", frames)
        assert_one_sentence(code, err)
    code, _, err = run(capfd, "score", work / "ref.wav", work / "deg.wav", "--window", "nan")
    assert_one_sentence(code, err, "--window")


def test_degrade_writes_through_a_temporary_file(capfd, work, monkeypatch):
    out = work / "o.wav"
    code, stdout, err = run(capfd, "degrade", work / "ref.wav", "--kind", "lowpass", "--cutoff", "3000", "-o", out,
                               "--json")
    assert code == 0 and json.loads(stdout)["output"] == str(out)
    first = out.read_bytes()
    assert sf.info(str(out)).subtype == "FLOAT"
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]

    # A failing write leaves the existing output as it was, and no temporary file.
    import soundfile

    def broken(*args, **kwargs):
        raise soundfile.LibsndfileError(0, "disk full")

    monkeypatch.setattr(soundfile, "write", broken)
    code, _, err = run(capfd, "degrade", work / "ref.wav", "--kind", "lowpass", "--cutoff", "2000", "-o", out)
    assert_one_sentence(code, err, "could not be written")
    assert out.read_bytes() == first
    assert not [p for p in os.listdir(work) if p.endswith(".tmp")]
    out.unlink()


def test_degrade_replaces_an_existing_output(capfd, work):
    out = work / "o.flac"
    out.write_bytes(b"old")
    code, _, _ = run(capfd, "degrade", work / "ref.wav", "--kind", "lowpass", "--cutoff", "3000", "-o", out)
    assert code == 0 and sf.info(str(out)).subtype == "PCM_24"
    out.unlink()


def test_garbage_mp3_prints_no_decoder_noise(capfd, work):
    from deepaq_core.audio import load_audio
    from deepaq_core.errors import AudioError

    with pytest.raises(AudioError, match=r"^'garbage\.mp3' is not an audio file"):
        load_audio(work / "garbage.mp3")
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    # File descriptor 2 works again afterwards.
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


def test_degrade_required_arguments_in_usage(capfd):
    code, out, _ = run(capfd, "degrade", "--help")
    assert code == 0
    usage = " ".join(out.split("\n\n")[0].split())
    assert "--kind KIND (-o OUTPUT | --ladder OUT_DIR)" in usage and "[--kind" not in usage and "[-o" not in usage
    assert usage.rstrip().endswith("input") and "[input]" not in usage
    code, out, _ = run(capfd, "degrade", "--list")
    assert code == 0 and "lowpass" in out


def test_debug_help_is_the_same_everywhere():
    from deepaq_core.cli import DEBUG_HELP, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helps = {}
    for name in ("score", "batch", "nmr", "models", "degrade"):
        helps[name] = next(a.help for a in sub.choices[name]._actions if "--debug" in a.option_strings)
    assert set(helps.values()) == {DEBUG_HELP}, helps


# --------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "nan", "x", None, True])
def test_check_number_rejects_non_finite(value):
    with pytest.raises(OptionError) as exc:
        check_number(value, "--x")
    assert str(exc.value).startswith("--x must be ") and str(exc.value).count(".") <= 2


def test_check_number_ranges():
    assert check_number("2.5", "--w", low=0, low_open=True) == 2.5
    assert check_number(0, "--w", low=0) == 0.0
    with pytest.raises(OptionError, match="positive"):
        check_number(0, "--w", low=0, low_open=True)
    with pytest.raises(OptionError, match="a number of seconds from 1 to 2, got 3"):
        check_number(3, "--w", low=1, high=2, unit="seconds")
    with pytest.raises(OptionError, match="at most 5"):
        check_number(6, "--w", high=5)
    assert issubclass(OptionError, DeePAQError)


def test_check_readable_file(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    assert check_readable_file(f) == str(f)
    for bad, phrase in [(tmp_path / "b.txt", "file not found"), (tmp_path, "directory"), ("", "empty")]:
        with pytest.raises(InputFileError, match=phrase):
            check_readable_file(bad)


def test_check_output_path(tmp_path):
    inp = tmp_path / "in.wav"
    inp.write_bytes(b"data")
    (tmp_path / "sub").mkdir()
    assert check_output_path(tmp_path / "out.wav", inputs=[inp]) == str(tmp_path / "out.wav")
    cases = [
        (tmp_path / "missing" / "out.wav", "does not exist"),
        (tmp_path / "sub", "is a directory"),
        (inp, "also an input"),
        (tmp_path / "sub" / ".." / "in.wav", "also an input"),
        (tmp_path / "in.wav" / "x.wav", "is not a folder"),
        ("", "empty"),
    ]
    for path, phrase in cases:
        with pytest.raises(OutputPathError, match=phrase):
            check_output_path(path, inputs=[inp])
    os.link(inp, tmp_path / "hard.wav")
    assert same_file(tmp_path / "hard.wav", inp)
    with pytest.raises(OutputPathError, match="also an input"):
        check_output_path(tmp_path / "hard.wav", inputs=[inp])
    assert inp.read_bytes() == b"data"


def test_check_output_paths_must_differ(tmp_path):
    got = check_output_paths({"a": tmp_path / "x.csv", "b": None, "c": tmp_path / "y.csv"})
    assert got == {"a": str(tmp_path / "x.csv"), "c": str(tmp_path / "y.csv")}
    with pytest.raises(OutputPathError, match="same file"):
        check_output_paths({"a": tmp_path / "x.csv", "c": tmp_path / "." / "x.csv"})


@pytest.mark.skipif(IS_ROOT, reason="root may write read-only files and folders")
def test_check_output_path_read_only(tmp_path):
    ro = tmp_path / "ro.wav"
    ro.write_bytes(b"")
    ro.chmod(0o444)
    with pytest.raises(OutputPathError, match="read-only"):
        check_output_path(ro)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_output_path(folder / "x.wav")
    finally:
        folder.chmod(0o755)


def test_check_output_path_read_only_simulated(tmp_path, monkeypatch):
    # The same checks as above, also when running as root (where os.access grants everything).
    existing = tmp_path / "ro.wav"
    existing.write_bytes(b"")
    real_access = os.access

    def access(path, mode, **kwargs):
        return False if mode & os.W_OK else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(OutputPathError, match="'ro.wav' is read-only"):
        check_output_path(existing)
    with pytest.raises(OutputPathError, match="is not writable"):
        check_output_path(tmp_path / "new.wav")
