"""A class's MUSHRA ratings go straight into `deepaq eval` (the manifest format is shared)."""

from __future__ import annotations

import csv

from deepaq_core.cli import main as deepaq
from deepaq_gui.mushra import MushraPage
from deepaq_gui.playback import PlaybackEngine


def test_mushra_export_runs_in_deepaq_eval(qtbot, signals, tmp_path, capsys):
    import numpy as np

    engine = PlaybackEngine(backend="null")
    engine.set_tracks([np.zeros((4800, 2), np.float32)] * 4, 48000)
    paths = {0: signals["ref"], 1: signals["lp"], 2: signals["noisy"], 3: signals["lp8"]}
    page = MushraPage(engine, reference=0, versions=[1, 2, 3], anchor=None, paths=paths, seed=1)
    qtbot.addWidget(page)
    for index, value in {0: 98.0, 1: 30.0, 2: 20.0, 3: 70.0}.items():
        page.set_rating(index, value)
    manifest = tmp_path / "ratings.csv"
    page.export_manifest(str(manifest), listener="class")
    assert len(list(csv.DictReader(open(manifest)))) == 4

    code = deepaq(["eval", str(manifest), "--subjective-col", "subjective", "--group-col", "condition",
                   "--model", "compact", "--peers", "none", "--device", "cpu", "--bootstrap", "200",
                   "--no-plot", "--out", str(tmp_path / "out")])
    capsys.readouterr()
    assert code == 0
    assert any(p.suffix == ".csv" for p in (tmp_path / "out").iterdir())
    engine.close()
