"""``deepaq degrade --ladder``: every rung of one family and a manifest ``deepaq eval --ladder`` reads."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.degrade import FAMILIES
from deepaq_core.evaluation.ladder import LADDER_COLUMNS
from deepaq_core.evaluation.manifest import load_manifest


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _ladder_rows(folder):
    # as 'deepaq eval --ladder' reads it: intensity is the subjective column, group the group
    return load_manifest(folder / "manifest.csv", subjective_col="intensity", group_col="group")


def test_ladder_of_a_family(capsys, signals, tmp_path):
    out = tmp_path / "ladder"
    code, stdout, err = run(capsys, "degrade", signals["mono"], "--kind", "lowpass", "--ladder", str(out))
    assert code == 0, err
    info = json.loads(stdout)
    fam = FAMILIES["lowpass"]
    assert info["rungs"] == len(fam.ladder) and info["param"] == "cutoff_hz"
    header = (out / "manifest.csv").read_text().splitlines()[0].split(",")
    assert header == LADDER_COLUMNS
    rows = _ladder_rows(out)
    assert len(rows) == len(fam.ladder) + 1  # the clean excerpt first, intensity 0
    intensities = [r.subjective for r in rows]
    assert intensities[0] == 0.0 and intensities == sorted(intensities)
    assert len({r.group for r in rows}) == 1
    for r in rows:
        assert sf.info(r.degraded).samplerate == 48000


def test_ladder_with_values_and_an_existing_folder(capsys, signals, tmp_path):
    out = tmp_path / "ladder"
    argv = ["degrade", signals["mono"], "--kind", "lowpass", "--ladder", str(out), "--values", "8000,2000"]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(stdout)["values"] == [8000.0, 2000.0]
    rows = _ladder_rows(out)
    assert [r.subjective for r in rows][0] == 0.0 and len(rows) == 3
    assert sorted(p.name for p in (out / "mono").iterdir()) == ["lowpass_2000.flac", "lowpass_8000.flac",
                                                                 "reference.flac"]
    # a folder that is not empty is refused, unless --overwrite
    code, _, err = run(capsys, *argv)
    assert code == 2 and "not empty" in err and "--overwrite" in err
    code, _, err = run(capsys, *argv[:-1], "3000", "--overwrite")
    assert code == 0, err
    assert len(_ladder_rows(out)) == 2


@pytest.mark.parametrize("extra, phrase", [
    (["--values", "8000,abc"], "not a number"),
    (["--cutoff", "3000"], "--values"),
])
def test_ladder_usage_errors(capsys, signals, tmp_path, extra, phrase):
    code, _, err = run(capsys, "degrade", signals["mono"], "--kind", "lowpass", "--ladder", str(tmp_path / "l"),
                       *extra)
    assert code == 2 and phrase in err and err.count("\n") == 1


@pytest.mark.parametrize("extra, phrase", [
    ([], "one of the arguments -o/--output --ladder is required"),
    (["--ladder", "x", "-o", "y.wav"], "not allowed with argument"),
])
def test_degrade_needs_an_output_or_a_ladder(capsys, signals, extra, phrase):
    with pytest.raises(SystemExit) as exc:  # a usage error, from the argument parser
        main(["degrade", signals["mono"], "--kind", "lowpass", *extra])
    assert exc.value.code == 2
    assert phrase in capsys.readouterr().err
