#!/usr/bin/env python3
"""Does the desktop app's UI stay responsive while it scores? Prints a table of event-loop stalls.

A 10 ms QTimer runs on the UI thread while the real main window (already shown and painted)
opens a reference and ``--versions`` degraded versions (generated, ``--minutes`` long, 48 kHz
stereo) and scores them in its worker. Every gap between two timer ticks beyond 10 ms is the time the event loop could not run.
The target is no stall over 50 ms while scoring a 5-minute pair.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui_latency.py [--minutes 5] [--versions 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def make_pair(folder: Path, minutes: float, sr: int = 48000, versions: int = 1) -> tuple[str, ...]:
    rng = np.random.default_rng(0)
    n = int(minutes * 60 * sr)
    t = np.arange(n) / sr
    # A slowly changing chord plus noise bursts: enough structure for alignment and scoring.
    x = sum(0.1 * np.sin(2 * np.pi * f * t * (1 + 0.001 * np.sin(0.1 * t))) for f in (220, 277, 330, 440))
    x += 0.05 * rng.normal(size=n) * (np.sin(2 * np.pi * 2 * t) > 0.95)
    ref = np.stack([x, np.roll(x, 11)], axis=1).astype(np.float32)
    r = folder / "ref.flac"
    sf.write(r, ref, sr)
    paths = [str(r)]
    for k in range(versions):  # delayed, quieter and noisier, more so for each further version
        deg = np.concatenate([np.zeros((1500 + 100 * k, 2), np.float32), ref[: -(1500 + 100 * k)]]) * 0.7
        deg += rng.normal(0, 0.01 * (1 + k), deg.shape).astype(np.float32)
        d = folder / ("deg.flac" if k == 0 else f"deg{k + 1}.flac")
        sf.write(d, deg, sr)
        paths.append(str(d))
    return tuple(paths)


def run_event_loop(ms: int) -> None:
    """Run Qt's event loop for ``ms`` milliseconds."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--versions", type=int, default=1, help="degraded versions scored against the reference")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from PySide6 import QtCore, QtWidgets

    from deepaq_gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        files = make_pair(Path(tmp), args.minutes, versions=args.versions)
        w = MainWindow(device=args.device, audio_backend="null")
        w.show()
        # Let the window appear and paint itself first: a user opens files in a window that is
        # already on screen, so its very first paint (all views empty) is start-up, not scoring.
        run_event_loop(500)
        ticks: list[float] = []
        timer = QtCore.QTimer()
        timer.setTimerType(QtCore.Qt.PreciseTimer)
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        loop = QtCore.QEventLoop()
        w.ctl.scoringIdle.connect(lambda: loop.quit() if len(w.ctl.session.results) == args.versions else None)
        timer.start()
        t0 = time.perf_counter()
        w.ctl.open_files(list(files))
        # Qt's own event loop, as in the app (a Python loop around processEvents() would spin and
        # hold the GIL between calls, competing with the worker like no real session does).
        QtCore.QTimer.singleShot(1_800_000, loop.quit)
        loop.exec()
        timer.stop()
        total = time.perf_counter() - t0
        scores = [w.ctl.session.results[i].score for i in sorted(w.ctl.session.results)]
        w.close()

    gaps = np.diff(np.array(ticks)) * 1000.0
    stalls = gaps - 10.0
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, device {args.device}")
    print(f"files: {args.minutes:g} min reference + {args.versions} x {args.minutes:g} min degraded, 48 kHz stereo; "
          f"open + read + score + draw took {total:.1f} s; scores {', '.join(f'{x:.1f}' for x in scores) or 'none'}")
    print()
    print("| ticks | median gap (ms) | 99th pct gap (ms) | max gap (ms) | stalls > 50 ms | longest stall (ms) |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(ticks)} | {np.median(gaps):.1f} | {np.percentile(gaps, 99):.1f} | {gaps.max():.1f} | "
          f"{int((stalls > 50).sum())} | {stalls.max():.1f} |")
    worst = np.argsort(gaps)[-5:][::-1]
    print()
    print("five longest gaps at (s after opening):",
          ", ".join(f"{ticks[i] - t0:.2f} s: {gaps[i]:.0f} ms" for i in worst))


if __name__ == "__main__":
    main()
