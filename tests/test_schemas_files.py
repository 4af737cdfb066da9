"""Issue 24, items 1-4: indexes, configs, flags, tables, submissions and kits checked at the door.

Each case from the issue's "Why" runs the real CLI and must give one line on stderr and exit 2 (or, for
``validate``, its problems and exit 1), never a traceback, a hang or a silently wrong result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_audio

from embedkit import kaggle_kit as kk
from embedkit.cli import main as cli_main
from embedkit.config import ExtractConfig
from embedkit.files import sha256_file


def run(args, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = cli_main(args)
    return rc, capsys.readouterr().err.strip().splitlines()


def one_line(rc, err, *needles, code=2):
    assert rc == code and len(err) == 1, err
    assert "Traceback" not in err[0] and all(n in err[0] for n in needles), err
    return err[0]


# -- bounded parsers and schemas -------------------------------------------------------------------------


def test_parsers_bound_depth_digits_and_dates():
    from embedkit.schemas import SchemaError, loads_json, loads_toml

    with pytest.raises(SchemaError, match="nested deeper than 32"):
        loads_json("[" * 200_000 + "]" * 200_000, "x.json")
    with pytest.raises(SchemaError, match="4300"):
        loads_json("1" * 4400, "x.json")
    with pytest.raises(SchemaError, match=r"integer out of range"):
        loads_json(str(2**64), "x.json")
    with pytest.raises(SchemaError, match="date/time"):
        loads_toml("smooth = 1979-05-27T07:32:00Z", "c.toml")
    with pytest.raises(SchemaError, match="nested deeper"):
        loads_toml("tta = " + "[" * 5000 + "]" * 5000, "c.toml")
    assert loads_json('{"a": [1, 2.5, "x"]}', "ok.json") == {"a": [1, 2.5, "x"]}


def test_messages_name_the_file_the_field_and_the_allowed_range():
    from embedkit.schemas import SchemaError, check_params, model_meta

    with pytest.raises(SchemaError) as e:
        check_params("mlp", {"hidden": 2_000_000}, "m/head/head.json")
    assert str(e.value).startswith("m/head/head.json: params: hidden = 2000000") and "<= 65536" in str(
        e.value
    )
    with pytest.raises(SchemaError) as e:
        model_meta({"format": 2, "head": "logreg", "labels": ["a"], "smooth": float("nan")}, "model.json")
    assert "model.json: smooth = nan" in str(e.value) and ">= 0.0 and < 1.0" in str(e.value)
    with pytest.raises(SchemaError, match="hidden \\* \\(D \\+ C\\)"):
        check_params("mlp", {"hidden": 65536}, "h.json", dims=(8192, 206))  # 550M weights: 2 GB
    check_params("mlp", {"hidden": 512, "device": "cpu"}, "h.json", dims=(1024, 206))  # the defaults fit


# -- configs and flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--smooth", "nan"], ("--smooth = nan", "finite")),
        (["--weights", "inf"], ("--weights[0] = inf", "finite")),
        (["--tta", "nan"], ("--tta[0] = nan", "finite")),
        (["--threads", "100000"], ("--threads = 100000", "1..1024")),
        (["--smooth", "1.5"], ("--smooth = 1.5", "[0, 1)")),
        (["--file-max=-inf"], ("--file-max = -inf", "finite")),
    ],
)
def test_non_finite_and_out_of_range_flags_are_refused(tmp_path, capsys, flags, needles):
    out = tmp_path / "sub.csv"
    one_line(*run(["infer", "--models", str(tmp_path / "m"), "--out", str(out), *flags], capsys), *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, needles",
    [
        ("smooth = nan\n", ("infer.toml: smooth = nan", "finite")),
        ("weights = [inf]\n", ("weights[0] = inf",)),
        ("smooth = 1979-05-27\n", ("date/time",)),
        ("tta = " + "[" * 5000 + "]" * 5000 + "\n", ("nested deeper",)),
        ("tta = [1979-05-27T07:32:00Z]\n", ("date/time",)),
        ("threads = 100000\n", ("threads = 100000", "1..1024")),
        ("batch_size = " + "9" * 30 + "\n", ("integer out of range",)),
    ],
)
def test_hostile_toml_configs_are_one_line(tmp_path, capsys, text, needles):
    cfg = tmp_path / "infer.toml"
    cfg.write_text(text)
    one_line(*run(["infer", "--config", str(cfg), "--models", str(tmp_path / "m")], capsys), *needles)


def test_extract_threads_flag_is_bounded(tmp_path, capsys):
    one_line(
        *run(["extract", "--threads", "100000", "--data", str(tmp_path)], capsys), "--threads", "1..1024"
    )


# -- search index ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from embedkit.extract import run_extract
    from embedkit.search.index_build import build_index

    base = tmp_path_factory.mktemp("idx")
    for i in range(6):
        path = base / "data" / "train_audio" / f"l{i % 3}" / f"XC{i}.ogg"
        write_audio(path, 6.0 + i, freq=500 + 700 * (i % 3), seed=i)
    s = run_extract(
        ExtractConfig(backbone="toy", data=str(base / "data"), out=str(base / "emb"), progress=False)
    )
    return build_index(s.dataset).folder


def tampered_index(src: Path, dst: Path, edit=None, rows=None, graph=None) -> Path:
    """A copy of an index with ``index.json`` edited, the rows or the graph bytes changed, hashes updated."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "index.json").read_text())
    meta["dataset"] = str(src.parent)
    if rows is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        f = dst / meta["files"]["rows"]["name"]
        table = pq.read_table(f).to_pandas()
        rows(table)
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), f)
        meta["files"]["rows"]["sha256"] = sha256_file(f)
    if graph is not None:
        f = dst / meta["files"]["graph"]["name"]
        f.write_bytes(graph(f.read_bytes()))
        meta["files"]["graph"]["sha256"] = sha256_file(f)
    if edit is not None:
        edit(meta)
    (dst / "index.json").write_text(json.dumps(meta))
    return dst


def _start(v):
    def edit(t):
        if isinstance(v, str):  # a text column, as a hand-edited table would hold
            t["start_s"] = t["start_s"].astype(str)
        t.loc[2, "start_s"] = v

    return edit


def _flip_body(b: bytes) -> bytes:
    a = bytearray(b)
    for i in range(256, len(a), 5):
        a[i] ^= 0xA5
    return bytes(a)


@pytest.mark.parametrize(
    "case, kw, needles",
    [
        ("files-missing", {"edit": lambda m: m.pop("files")}, ("index.json", "files", "Field required")),
        ("dim-missing", {"edit": lambda m: m.pop("dim")}, ("index.json: dim",)),
        (
            "hostile-params",
            {"edit": lambda m: m["params"].update(connectivity=10**9)},
            ("params.connectivity", "<= 1024"),
        ),
        (
            "etc-passwd",
            {"edit": lambda m: m["files"]["rows"].update(name="../../etc/passwd")},
            ("files.rows.name", "rows-"),
        ),
        (
            "absolute",
            {"edit": lambda m: m["files"]["graph"].update(name="/etc/passwd")},
            ("files.graph.name",),
        ),
        ("start-text", {"rows": _start("soon")}, ("start_s = 'soon'", "finite number of seconds")),
        ("start-nan", {"rows": _start(float("nan"))}, ("start_s = 'nan'",)),
        ("start-huge", {"rows": _start(1e308)}, ("start_s = '1e+308'",)),
        ("graph-bytes", {"graph": _flip_body}, ("refused: the search graph",)),
        ("graph-cut", {"graph": lambda b: b[: len(b) // 2]}, ("refused: the search graph",)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_tampered_index_is_one_line(index, tmp_path, case, kw, needles):
    """In a subprocess: a crafted graph must not take the process down with a signal either."""
    ix = tampered_index(index, tmp_path / case, **kw)
    code = ("import sys; sys.path.insert(0, 'tests'); import conftest; from embedkit.cli import main; "
            f"sys.exit(main(['search', '--index', {str(ix)!r}, '--row-id', 'XC0_5', '--out', "
            f"{str(tmp_path / 'h.csv')!r}]))")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    one_line(res.returncode, res.stderr.strip().splitlines(), *needles)


def test_an_index_file_that_is_a_symlink_is_refused(index, tmp_path, capsys):
    ix = tampered_index(index, tmp_path / "ix")
    meta = json.loads((ix / "index.json").read_text())
    rows = ix / meta["files"]["rows"]["name"]
    outside = tmp_path / "rows.parquet"
    rows.rename(outside)
    rows.symlink_to(outside)
    rc, err = run(
        ["search", "--index", str(ix), "--row-id", "XC0_5", "--out", str(tmp_path / "h.csv")], capsys
    )
    one_line(rc, err, "symbolic link")


# -- tables ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "col, value, needles",
    [
        ("start_s", "soon", ("line 3: start_s = 'soon'", "finite number of seconds")),
        ("end_s", "1e308", ("end_s = '1e+308'",)),
        ("window", "-1", ("window = '-1'", "integer")),
        ("file", "../../etc/passwd", ("file = '../../etc/passwd'", "relative path")),
    ],
)
def test_label_with_a_malformed_hits_table_is_one_line(tmp_path, capsys, col, value, needles):
    hits = pd.DataFrame(
        {
            "rank": [1, 2],
            "score": [0.9, 0.8],
            "file": ["a/x.ogg", "a/y.ogg"],
            "window": [0, 1],
            "start_s": [0.0, 5.0],
            "end_s": [5.0, 10.0],
            "species": ["a", "a"],
            "label": ["", ""],
        }
    )
    hits[col] = hits[col].astype(object)
    hits.loc[1, col] = value
    hits.to_csv(tmp_path / "hits.csv", index=False)
    args = ["label", "--hits", str(tmp_path / "hits.csv"), "--out", str(tmp_path / "l.csv"), "--no-loop"]
    one_line(*run(args, capsys), str(tmp_path / "hits.csv"), *needles)
    assert not (tmp_path / "l.csv").exists()


# -- submissions -------------------------------------------------------------------------------------------


def test_validate_flags_a_constant_submission_and_an_unknown_column(tmp_path, capsys):
    sample = tmp_path / "sample.csv"
    sample.write_text("row_id,a,b\n")
    flat = tmp_path / "flat.csv"
    pd.DataFrame({"row_id": ["s_5", "s_10"], "a": [0.0, 0.0], "b": [0.0, 0.0]}).to_csv(flat, index=False)
    rc, err = run(["validate", str(flat), "--sample", str(sample)], capsys)
    assert rc == 1 and any("every probability is 0" in e for e in err), err
    extra = tmp_path / "extra.csv"
    pd.DataFrame({"row_id": ["s_5"], "a": [0.1], "b": [0.2], "zzz": [0.3]}).to_csv(extra, index=False)
    rc, err = run(["validate", str(extra), "--sample", str(sample)], capsys)
    assert rc == 1 and any("unexpected ['zzz']" in e for e in err), err
    dup = tmp_path / "dup.csv"
    dup.write_text("row_id,a,b,a\ns_5,0.1,0.2,0.3\n")
    rc, err = run(["validate", str(dup), "--sample", str(sample)], capsys)
    assert rc == 1 and any("['a'] appear more than once" in e for e in err), err
    good = tmp_path / "good.csv"
    pd.DataFrame({"row_id": ["s_5", "s_10"], "a": [0.1, 0.0], "b": [0.0, 0.0]}).to_csv(good, index=False)
    assert run(["validate", str(good), "--sample", str(sample)], capsys)[0] == 0


def test_a_sample_with_a_repeated_column_is_an_error_not_a_phantom_label(tmp_path, capsys):
    sample = tmp_path / "sample.csv"
    sample.write_text("row_id,a,b,a\n")
    sub = tmp_path / "sub.csv"
    pd.DataFrame({"row_id": ["s_5"], "a": [0.1], "b": [0.2], "a.1": [0.3]}).to_csv(sub, index=False)
    one_line(*run(["validate", str(sub), "--sample", str(sample)], capsys), "['a'] appear more than once")


def test_infer_with_a_data_root_that_does_not_exist_is_one_line(tmp_path, capsys):
    out = tmp_path / "sub.csv"
    args = [
        "infer",
        "--data",
        str(tmp_path / "nonexistent"),
        "--models",
        str(tmp_path / "m"),
        "--out",
        str(out),
    ]
    one_line(*run(args, capsys), "--data", "no such folder")
    assert not out.exists()  # not a header-only submission


# -- the Kaggle kit's script -------------------------------------------------------------------------------


def _kit(tmp_path: Path) -> Path:
    from embedkit.store.manifest import manifest

    kit = tmp_path / "kit"
    (kit / "wheels").mkdir(parents=True)
    (kit / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (kit / "wheels" / "b-1.0-py3-none-any.whl").write_bytes(b"wheel b")
    (kit / "models" / "m").mkdir(parents=True)
    (kit / "models" / "m" / "model.json").write_text("{}")
    (kit / "kaggle_infer.py").write_text(kk.kit_script(["m"]))
    sha = {f"{part}/{k}": v for part in ("wheels", "models") for k, v in manifest(kit / part).items()}
    (kit / "kit.json").write_text(json.dumps({"sha256": sha}))
    return kit


def _run_kit(kit: Path):
    """The kit's script as a notebook runs it; a pip on PATH that records being called."""
    res = subprocess.run([sys.executable, str(kit / "kaggle_infer.py")], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    return res.returncode, res.stderr.strip().splitlines(), res.stdout


def test_kit_script_reports_every_problem_in_one_line_before_installing(tmp_path):
    kit = _kit(tmp_path)
    (kit / "wheels" / "a-1.0-py3-none-any.whl").unlink()  # listed, missing
    (kit / "wheels" / "b-1.0-py3-none-any.whl").write_bytes(b"changed")
    (kit / "models" / "m" / "extra.json").write_text("{}")
    rc, err, out = _run_kit(kit)
    line = one_line(rc, err, "a-1.0-py3-none-any.whl: listed in kit.json but missing",
                    "b-1.0-py3-none-any.whl: SHA-256 differs", "models/m/extra.json: not listed")  # fmt: skip
    assert "Processing" not in out and "running:" not in out  # pip never ran
    assert line.startswith("[kit] refused")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("{not json", "kit.json: unreadable or corrupt"),
        ('{"sha256": ["x"]}', "kit.json: sha256 is not"),
        ("[" * 100_000 + "]" * 100_000, "kit.json: unreadable or corrupt"),
        ("{}", "KeyError"),
    ],
)
def test_kit_script_with_a_corrupt_kit_json_is_one_line(tmp_path, text, needle):
    kit = _kit(tmp_path)
    (kit / "kit.json").write_text(text)
    one_line(*_run_kit(kit)[:2], needle)


def test_kit_script_refuses_a_path_that_leaves_the_kit(tmp_path):
    kit = _kit(tmp_path)
    doc = json.loads((kit / "kit.json").read_text())
    doc["sha256"]["wheels/../../../etc/passwd"] = "0" * 64
    (kit / "kit.json").write_text(json.dumps(doc))
    one_line(*_run_kit(kit)[:2], "outside wheels/ and models/")


def test_shipped_configs_and_defaults_pass_the_checks():
    from embedkit import config as C
    from embedkit.search.config import IndexConfig, LabelConfig, SearchConfig

    for cls, name in ((C.ExtractConfig, "extract"), (C.FitConfig, "fit"), (C.InferConfig, "infer")):
        path = C.CONFIG_DIR / f"{name}.toml"
        assert C.load(cls, path if path.is_file() else None) is not None
    for cls in (IndexConfig, SearchConfig, LabelConfig):
        assert C.load(cls) is not None
    assert np.isfinite(C.load(C.InferConfig).tta).all()


def test_a_full_disk_anywhere_in_the_cli_is_one_line(tmp_path, capsys, monkeypatch):
    """ENOSPC where no writer words it (the kit copying model files): the CLI names the path, exit 2."""
    import errno

    from embedkit.store.manifest import manifest

    model = tmp_path / "models" / "m"
    (model / "head").mkdir(parents=True)
    (model / "head" / "state.safetensors").write_bytes(b"x")
    doc = {"format": 2, "head": "lgbm", "labels": ["a"], "files": manifest(model)}
    (model / "model.json").write_text(json.dumps(doc))

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(shutil, "copyfile", full)
    rc, err = run(["kaggle-kit", "--models", str(model), "--out", str(tmp_path / "kit")], capsys)
    one_line(rc, err, "no space left to write", "state.safetensors", "free")
    assert not (tmp_path / "kit").exists()


def test_a_shard_whose_provenance_is_a_string_is_one_line(index, tmp_path, capsys):
    import pyarrow.parquet as pq

    src = index.parent
    dst = tmp_path / "ds"
    dst.mkdir()
    for shard in src.glob("part-*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.replace_schema_metadata({b"embedkit": b'"birdnet"'}), dst / shard.name)
    one_line(*run(["index", "--embeddings", str(dst)], capsys), "part-", "valid dictionary")
    assert not (dst / "index").exists()


def test_extra_labels_with_a_text_start_s_are_refused(tmp_path):
    from embedkit.errors import EmbedkitError
    from embedkit.train.extra import load_labels

    table = pd.DataFrame({"file": ["a/x.ogg"], "window": [0], "start_s": ["later"], "end_s": [5.0],
                          "species": ["a"], "label": ["y"], "dataset": [str(tmp_path)]})  # fmt: skip
    table.to_csv(tmp_path / "labelled.csv", index=False)
    with pytest.raises(EmbedkitError, match="line 2: start_s = 'later'"):
        load_labels(tmp_path / "labelled.csv")
