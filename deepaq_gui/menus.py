"""The main window's menus: each action calls the window (dialogs) or its controller."""

from __future__ import annotations

from PySide6 import QtGui


def build_menus(w) -> None:
    """Add File, Settings, Model, Listening tests and Help menus to main window ``w``."""
    ctl = w.ctl
    mb = w.menuBar()
    f = mb.addMenu("&File")
    f.addAction("Open &reference…", w.ask_reference, QtGui.QKeySequence.Open)
    f.addAction("&Add degraded versions…", w.ask_versions, QtGui.QKeySequence("Ctrl+D"))
    w.generate_action = f.addAction("&Generate degraded versions…", w.ask_generate, QtGui.QKeySequence("Ctrl+G"))
    f.addAction("Open &ladder (rate-quality)…", lambda: _open_ladder(w))
    f.addSeparator()
    f.addAction("Open &session…", w.ask_session, QtGui.QKeySequence("Ctrl+Shift+O"))
    w.recent_menu = f.addMenu("Open &recent session")
    w.recent_menu.aboutToShow.connect(lambda: _fill_recent(w))
    w.restore_action = f.addAction("Restore the &autosaved session", lambda: _restore_autosave(w))
    f.aboutToShow.connect(lambda: _update_file_menu(w))
    f.addAction("&Save session", w.save_session, QtGui.QKeySequence.Save)
    f.addAction("Save session &as…", lambda: w.save_session(ask=True), QtGui.QKeySequence("Ctrl+Shift+S"))
    f.addSeparator()
    from deepaq_gui.main_window import VIEW_EXPORTS

    exp = f.addMenu("&Export")
    exp.addAction("Window as PNG…", lambda: w.ask_export("window_png"))
    for key, label in VIEW_EXPORTS.items():
        exp.addAction(f"{label} as PNG…", lambda k=key: w.ask_export(f"{k}_png"))
        exp.addAction(f"{label} as SVG…", lambda k=key: w.ask_export(f"{k}_svg"))
    exp.addAction("Curves as CSV…", lambda: w.ask_export("csv"))
    exp.addAction("Scores as JSON…", lambda: w.ask_export("json"))
    exp.addAction("One-page report (PDF or PNG)…", lambda: w.ask_export("report"))
    f.addSeparator()
    f.addAction("&Quit", w.close, QtGui.QKeySequence.Quit)

    s = mb.addMenu("&Settings")
    w.align_action = s.addAction("Align versions to the reference")
    w.loud_action = s.addAction("Match loudness")
    for action in (w.align_action, w.loud_action):
        action.setCheckable(True)
        action.setChecked(True)
        action.toggled.connect(lambda _on: ctl.set_settings(align=w.align_action.isChecked(),
                                                             match_loudness=w.loud_action.isChecked()))
    s.addSeparator()
    w.rescore_action = s.addAction("&Score the unscored versions", ctl.resume_scoring, QtGui.QKeySequence("F5"))
    w.cancel_action = s.addAction("&Cancel scoring", ctl.cancel_scoring)
    w.model_menu = mb.addMenu("&Model")
    w.model_menu.aboutToShow.connect(lambda: _fill_model_menu(w))

    t = mb.addMenu("&Listening tests")
    t.addAction("Blind &ABX…", lambda: ctl.open_blind("abx"))
    t.addAction("Blind A/B &preference…", lambda: ctl.open_blind("ab"))
    t.addAction("&MUSHRA rating page…", lambda: ctl.open_blind("mushra"))
    t.addSeparator()
    t.addAction("&Close the listening test", ctl.close_blind)

    h = mb.addMenu("&Help")
    h.addAction("Open the &demo", ctl.open_demo)
    h.addAction("&Keys", lambda: ctl.say(
        "Keys: R or 0 reference, 1-9 versions, Tab last two, Space play/pause, ←/→ seek 5 s; "
        "Esc clears the loop; click a view to seek, Shift+drag on a view to loop, click a worst "
        "moment to loop it; F5 scores unscored versions.", "info"))
    h.addAction("&About", lambda: ctl.say(
        f"DeePAQ: perceptual audio quality from learned embeddings. Model: {w.model_label.text()}", "info"))


def _fill_model_menu(w) -> None:
    from deepaq_core.model.registry import list_models

    w.model_menu.clear()
    group = QtGui.QActionGroup(w.model_menu)
    current = w.ctl.session.model_name or "compact"
    for entry in list_models():
        act = w.model_menu.addAction(f"{entry.name}  ({entry.status})")
        act.setCheckable(True)
        act.setChecked(entry.name == current)
        act.setEnabled(entry.available)
        act.setToolTip(entry.description if entry.available else f"{entry.where}: {entry.description}")
        group.addAction(act)
        act.triggered.connect(lambda _=False, n=entry.name: w.ctl.set_model(n))


def _update_file_menu(w) -> None:
    from deepaq_gui.session_file import autosave_path

    w.restore_action.setEnabled(autosave_path().is_file())
    w.generate_action.setEnabled(w.ctl.session.reference is not None)


def _fill_recent(w) -> None:
    from deepaq_gui.session_file import recent_sessions

    w.recent_menu.clear()
    paths = recent_sessions()
    for p in paths:
        w.recent_menu.addAction(p, lambda p=p: w.ctl.load_session_file(p))
    if not paths:
        w.recent_menu.addAction("(none)").setEnabled(False)


def _restore_autosave(w) -> None:
    from deepaq_gui.session_file import autosave_path

    w.ctl.load_session_file(str(autosave_path()))


def _open_ladder(w) -> None:
    from deepaq_gui.views.ladder import open_ladder

    open_ladder(w)
