"""Import contract: deepaq_core is headless and cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import deepaq_core

FORBIDDEN = ("PySide6", "pyqtgraph", "sounddevice", "deepaq_gui", "PyQt5", "PyQt6")
CORE = Path(deepaq_core.__file__).parent


def test_no_core_module_imports_gui_or_audio_devices():
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_core_loads_no_gui_and_cli_start_is_light():
    code = (
        "import sys, deepaq_core, deepaq_core.cli, deepaq_core.scoring, deepaq_core.model.registry;"
        f"bad=[m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}];"
        "assert not bad, bad;"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    light = subprocess.run(
        [sys.executable, "-c", "import sys, deepaq_core, deepaq_core.cli; print('torch' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )
    assert light.stdout.strip() == "False"  # the CLI parses arguments before any heavy import
