"""``infer``'s summary line: TTA (shifts or off), smoothing and its source, the models and their weights."""

from __future__ import annotations

from types import SimpleNamespace

from test_tta import _infer, model  # noqa: F401 - the module fixture

from embedkit.predict.summary import settings_text


def test_settings_text_names_tta_smoothing_models_and_weights():
    m = [SimpleNamespace(folder=SimpleNamespace(name="birdnet-logreg")), "mil"]
    t = settings_text((-1.25, 1.25), (0.5, "default"), 0.0, m, [0.75, 0.25])
    want = "TTA ±1.25 s (3 passes, mean); smoothing 0.5 (default); models birdnet-logreg (0.75), mil (0.25)"
    assert t == want
    off = settings_text((), (0.25, "--smooth"), 0.25, m[:1], [1.0])
    assert off == "TTA off; smoothing 0.25 (--smooth); file-max 0.25; models birdnet-logreg (1)"


def test_infer_summary_line_says_whether_tta_ran(model, capsys):  # noqa: F811
    _infer(model, "s_on.csv", tta=[1.25])
    on = [ln for ln in capsys.readouterr().err.splitlines() if "realtime" in ln][-1]
    _infer(model, "s_off.csv", tta=[])
    off = [ln for ln in capsys.readouterr().err.splitlines() if "realtime" in ln][-1]
    name = model["folder"].name
    assert "TTA ±1.25 s (3 passes, mean); smoothing 0 (--smooth)" in on and f"models {name} (1)" in on
    assert "TTA off; smoothing 0 (--smooth)" in off
