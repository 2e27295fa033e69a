"""``deepaq-gui``: application start-up, logging, exception hook and command-line options.

    deepaq-gui [REF DEG ...] [--model NAME] [--allow-unverified] [--device auto|cpu|cuda|cuda:N|mps] [--screenshot OUT.png]

With ``--screenshot`` the app opens the files, waits until scoring has finished, saves a PNG of
the whole window and exits 0 (non-zero, with one line on stderr, if anything failed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("deepaq_gui")


def log_path() -> Path:
    """Where the app writes its log (unexpected exceptions land here with tracebacks)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepaq" / "deepaq-gui.log"


def _setup_logging(debug: bool) -> None:
    path = log_path()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    except OSError:
        pass  # no writable cache: log to stderr only
    handlers[0].setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _missing_xcb_libraries() -> list[str]:
    """Shared libraries Qt's X11 platform plugin needs but cannot find (``ldd``), Linux only."""
    import importlib.util
    import shutil
    import subprocess

    spec = importlib.util.find_spec("PySide6")
    ldd = shutil.which("ldd")
    if spec is None or not spec.submodule_search_locations or ldd is None:
        return []
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return []
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line})


class ExceptionReporter:
    """``sys.excepthook`` for the running app: log an unexpected exception, tell the user once.

    The first occurrence of each distinct error (type, message and where it was raised) is
    logged with its traceback and shown as one non-blocking message; repeats (an error in a
    30 Hz timer would repeat 30 times a second) are only counted, so neither the log nor the
    message bar floods. The app keeps running.

    Parameters
    ----------
    show : callable(str)
        Shows one message to the user (the window's message bar).
    on_first : callable(BaseException), optional
        Called instead of ``show`` for the first error of all (``--screenshot`` exits on it).
    """

    def __init__(self, show, on_first=None) -> None:
        self.show = show
        self.on_first = on_first
        self.counts: dict[tuple, int] = {}

    def __call__(self, etype, value, tb) -> None:
        frames = traceback.extract_tb(tb)
        where = (frames[-1].filename, frames[-1].lineno) if frames else None
        key = (etype, str(value), where)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.counts[key] > 1:
            if self.counts[key] in (10, 100, 1000):
                log.error("the error above (%s: %s) has now happened %d times", etype.__name__, value, self.counts[key])
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        log.error("unexpected exception:\n%s", text)
        if self.on_first is not None and len(self.counts) == 1:
            self.on_first(value)
            return
        self.show(f"Unexpected error ({etype.__name__}: {value}); the app keeps running; details in {log_path()}.")


def open_initial(window, args: argparse.Namespace, settings) -> str | None:
    """Open what the command line names; on the very first start (no files) open the demo.

    Returns ``"files"``, ``"demo"`` or ``None`` (an empty window). The first start is recorded
    in ``settings`` (a ``QSettings``), so the demo opens by itself only once.
    """
    if args.files:
        window.open_files(args.files)
        return "files"
    first_start = not settings.value("demo_shown", False, bool)
    if args.demo or (first_start and not args.no_demo and not args.screenshot):
        settings.setValue("demo_shown", True)
        window.open_demo()
        return "demo"
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepaq-gui", description="DeePAQ desktop app: listen A/B and see where quality drops.")
    p.add_argument("files", nargs="*", help="reference file, then degraded versions (up to 9)")
    p.add_argument("--model", default=None, help="model name from 'deepaq models' or a bundle folder")
    p.add_argument("--allow-unverified", action="store_true",
                   help="also load a model bundle whose card has no weights checksum (weights_sha256)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--screenshot", metavar="OUT.png", help="save a PNG of the window once scoring is done, then exit")
    p.add_argument("--demo", action="store_true", help="open the demo")
    p.add_argument("--no-demo", action="store_true", help="do not open the demo on first start")
    p.add_argument("--no-audio", action="store_true", help="start with playback off")
    p.add_argument("--timeout", type=float, default=600.0, help="--screenshot: give up after this many seconds")
    p.add_argument("--debug", action="store_true", help="verbose logging")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deepaq-gui``; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    if args.screenshot and not os.environ.get("QT_QPA_PLATFORM") and not os.environ.get("DISPLAY") \
            and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # screenshots work without a display

    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        print("deepaq-gui: error: no display was found (DISPLAY is not set); use 'deepaq score' in a terminal, "
              "or --screenshot to render the window to a file.", file=sys.stderr)
        return 2

    if sys.platform.startswith("linux") and os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        missing = _missing_xcb_libraries()
        if missing:  # Qt would abort the process (no exception to catch) when loading its xcb plugin
            print(f"deepaq-gui: error: Qt cannot open a window: system libraries are missing ({', '.join(missing)}); "
                  "install them (e.g. 'bash tools/bootstrap.sh --system' on Debian/Ubuntu).", file=sys.stderr)
            return 2

    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("deepaq-gui")
    app.setOrganizationName("DeePAQ")

    from deepaq_gui.main_window import MainWindow

    window = MainWindow(device=args.device, audio_backend="null" if args.no_audio else "auto", model=args.model,
                        allow_unverified=args.allow_unverified)
    exit_code = {"value": 0}

    def fatal(value: BaseException) -> None:
        exit_code["value"] = 1
        print(f"deepaq-gui: error: {value}", file=sys.stderr)
        app.exit(1)

    excepthook = ExceptionReporter(window.ctl.say, on_first=fatal if args.screenshot else None)
    sys.excepthook = excepthook
    window.show()

    opened = open_initial(window.ctl, args, QtCore.QSettings())
    if args.screenshot and opened is None:
        print("deepaq-gui: error: --screenshot needs files to open (or --demo).", file=sys.stderr)
        return 2

    if args.screenshot:
        out = Path(args.screenshot)

        def finish() -> None:
            if window.ctl.errors_seen:
                print(f"deepaq-gui: error: {window.ctl.errors_seen[0]}", file=sys.stderr)
                app.exit(1)
                return
            if window.ctl.session.reference is None:
                print("deepaq-gui: error: nothing could be opened.", file=sys.stderr)
                app.exit(1)
                return
            QtWidgets.QApplication.processEvents()
            if window.save_screenshot(out):
                app.exit(0)
            else:
                print(f"deepaq-gui: error: cannot write '{out}'.", file=sys.stderr)
                app.exit(1)

        def on_idle() -> None:
            # idle = no worker left; give queued paints one more turn before grabbing
            QtCore.QTimer.singleShot(300, lambda: finish() if window.ctl.is_idle() else None)

        window.ctl.scoringIdle.connect(on_idle)

        def on_timeout() -> None:
            print(f"deepaq-gui: error: scoring did not finish within {args.timeout:g} s.", file=sys.stderr)
            app.exit(3)

        QtCore.QTimer.singleShot(int(args.timeout * 1000), on_timeout)

    code = app.exec()
    window.close()
    return code or exit_code["value"]


if __name__ == "__main__":
    sys.exit(main())
