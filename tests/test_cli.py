import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from embedkit import config as C
from embedkit.backbones import available, backbone_class
from embedkit.cli import COMMANDS, build_parser, config_class, main
from embedkit.flags import flag

ROOT = Path(__file__).resolve().parents[1]
STAGES = {name: config_class(spec[0]) for name, spec in COMMANDS.items() if spec[0]}


def subparser(name):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_flags_are_exactly_the_config_fields(stage):
    flags = {o for a in subparser(stage)._actions for o in a.option_strings if o.startswith("--")}
    fields = {flag(f.name) for f in dataclasses.fields(STAGES[stage])}
    assert flags - {"--help", "--config", "--verbose", *{f"--no-{f[2:]}" for f in flags}} == fields


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_shipped_toml_is_the_saved_form_of_the_defaults(stage):
    assert C.load(STAGES[stage], ROOT / "configs" / f"{stage}.toml") == STAGES[stage]()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_save_load_round_trip_and_flags_override(stage, tmp_path):
    cls = STAGES[stage]
    cfg = cls()
    C.save(cfg, tmp_path / "c.toml")
    assert C.load(cls, tmp_path / "c.toml") == cfg
    f = next(f for f in dataclasses.fields(cls) if f.type in ("str", str))
    args = build_parser().parse_args([stage, "--config", str(tmp_path / "c.toml"), flag(f.name), "zzz"])
    from embedkit.flags import config_from_args

    assert getattr(config_from_args(cls, args, stage), f.name) == "zzz"


def test_bad_config_values_are_clear(tmp_path):
    (tmp_path / "c.toml").write_text('batch_size = "big"\n')
    with pytest.raises(C.ConfigError, match="batch_size"):
        C.load(C.ExtractConfig, tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("colour = 1\n")
    with pytest.raises(C.ConfigError, match="unknown key"):
        C.load(C.ExtractConfig, tmp_path / "d.toml")


def test_params_key_values_merge_over_file(tmp_path):
    (tmp_path / "f.toml").write_text('head = "logreg"\n[params]\nC = 2.0\nmax_iter = 50\n')
    args = build_parser().parse_args(
        ["fit", "--config", str(tmp_path / "f.toml"), "--params", "C=0.5", "tag=x"]
    )
    from embedkit.flags import config_from_args

    cfg = config_from_args(C.FitConfig, args, "fit")
    assert cfg.params == {"C": 0.5, "max_iter": 50, "tag": "x"} and cfg.head == "logreg"


def test_extract_options_reach_every_backbone_that_accepts_them():
    from embedkit.extract import backbone_kwargs

    """Signature sync: every backbone option of ExtractConfig is a constructor argument of some backbone,
    and each backbone accepts the keyword arguments that backbone_kwargs hands it."""
    offered = {
        "weights",
        "layer",
        "device",
        "bf16",
        "threads",
        "batch_size",
        "chunk_offsets",
        "pool",
        "window_s",
    }
    accepted = set()
    for name in available():
        params = set(inspect.signature(backbone_class(name).__init__).parameters) - {"self"}
        accepted |= params
        kw = backbone_kwargs(C.ExtractConfig(backbone=name))
        assert set(kw) <= params
    assert offered <= accepted
    assert offered <= {f.name for f in dataclasses.fields(C.ExtractConfig)}


def test_run_functions_take_their_config():
    from embedkit.extract import run_extract
    from embedkit.predict.infer import run_infer
    from embedkit.train.run import run_fit

    for fn, cls in [(run_extract, C.ExtractConfig), (run_fit, C.FitConfig), (run_infer, C.InferConfig)]:
        first = next(iter(inspect.signature(fn).parameters.values()))
        assert first.annotation in (cls, cls.__name__)


@pytest.mark.parametrize("script", ["extract.py", "fit.py", "infer.py"])
def test_scripts_are_thin_shortcuts(script):
    out = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0
    assert "examples:" in out.stdout and "--config" in out.stdout
    assert len((ROOT / script).read_text().splitlines()) < 10


def test_every_help_ends_with_two_examples():
    for name in COMMANDS:
        text = subparser(name).format_help()
        tail = text.split("examples:")[-1].strip().splitlines()
        assert len(tail) == 2, name


def test_backbones_command_lists_registry(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    for name in ("birdnet", "panns", "wav2vec2"):
        assert name in out
    assert "48000" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("birdnet "))
    from embedkit.extract.options import backbone_kwargs

    kwargs = backbone_kwargs(C.ExtractConfig(backbone="birdnet"))
    built = backbone_class("birdnet")(**{**kwargs, "threads": 1})
    assert f" {built.dim}-D " in line and built.dim > 1024  # the window extract.py makes, not one chunk's
    built.close()


def test_heads_command_lists_registry(capsys):
    assert main(["heads"]) == 0
    out = capsys.readouterr().out
    assert {"logreg", "mlp", "lgbm"} <= {line.split()[0] for line in out.splitlines()}
