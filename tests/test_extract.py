import numpy as np
import pytest
from conftest import ToyBackbone, write_audio

from embedkit.audio import window_spans
from embedkit.cli import main
from embedkit.config import ExtractConfig
from embedkit.extract import in_part, parse_part, run_extract
from embedkit.store import read_embeddings, read_failures, shard_paths


def cfg_for(root, out, **kw):
    return ExtractConfig(
        backbone="toy", data=str(root), split="train_audio", out=str(out), progress=False, **kw
    )


def test_rows_keys_and_embeddings(toy_split, tmp_path):
    s = run_extract(cfg_for(toy_split, tmp_path / "emb", batch_size=4))
    keys, X = read_embeddings(s.dataset)
    assert s.dataset == tmp_path / "emb" / "toy" / "train_audio"
    assert s.files_done == 9 and s.files_failed == 0
    for f, g in keys.groupby("file"):
        dur = float(f.split("XC")[1][1]) * 4.5 + 3  # the fixture's durations
        assert g["window"].tolist() == list(range(len(window_spans(dur))))
        assert g["row_id"].iloc[-1] == f"{f.split('/')[1][:-4]}_{int(g['end_s'].iloc[-1])}"
    assert X.shape == (len(keys), 8) and np.isfinite(X).all()
    # embeddings are the backbone's output on the windows (batching across files changes nothing)
    s1 = run_extract(cfg_for(toy_split, tmp_path / "emb1", batch_size=1))
    _, X1 = read_embeddings(s1.dataset)
    np.testing.assert_allclose(X, X1, rtol=2e-3)  # float16 storage


def test_resume_after_interrupt_gives_identical_rows(toy_split, tmp_path):
    ref = run_extract(cfg_for(toy_split, tmp_path / "ref", batch_size=2))
    k_ref, X_ref = read_embeddings(ref.dataset)
    cfg = cfg_for(toy_split, tmp_path / "emb", batch_size=2, flush_s=0.0)
    with pytest.raises(KeyboardInterrupt):
        run_extract(cfg, backbone=ToyBackbone(fail_after=6))
    partial, _ = read_embeddings(tmp_path / "emb" / "toy" / "train_audio")
    assert 0 < partial["file"].nunique() < 9  # some files saved, not all
    s = run_extract(cfg)
    assert s.files_skipped_done == partial["file"].nunique()
    k, X = read_embeddings(s.dataset)
    assert k[["file", "window", "row_id"]].equals(k_ref[["file", "window", "row_id"]])
    np.testing.assert_array_equal(X, X_ref)
    assert run_extract(cfg).files_done == 0  # a finished dataset is never embedded twice


def test_parts_are_disjoint_and_cover(toy_split, tmp_path):
    files = set()
    for i in range(3):
        s = run_extract(cfg_for(toy_split, tmp_path / "emb", part=f"{i}/3"))
        files_i = set(read_embeddings(s.dataset)[0]["file"]) - files
        assert s.files_done == len(files_i)
        files |= files_i
    keys, _ = read_embeddings(tmp_path / "emb" / "toy" / "train_audio")
    assert len(files) == 9 and not keys.duplicated(["file", "window"]).any()
    assert sum(in_part("x/y.ogg", i, 4) for i in range(4)) == 1
    with pytest.raises(ValueError, match="i/N"):
        parse_part("3")
    with pytest.raises(ValueError):
        parse_part("3/3")


def test_bad_files_recorded_and_run_completes(toy_split, tmp_path):
    bad = toy_split / "train_audio" / "bad"
    bad.mkdir()
    (bad / "empty.ogg").write_bytes(b"")
    (bad / "junk.ogg").write_bytes(np.random.default_rng(1).bytes(3000))
    (bad / "dangling.ogg").symlink_to(tmp_path / "nowhere.ogg")
    write_audio(bad / "fine name with spaces é.ogg", 6.0)
    s = run_extract(cfg_for(toy_split, tmp_path / "emb"))
    fails = read_failures(s.dataset).set_index("file")["reason"].to_dict()
    assert set(fails) == {"bad/empty.ogg", "bad/junk.ogg", "bad/dangling.ogg"}
    assert "empty" in fails["bad/empty.ogg"] and "missing" in fails["bad/dangling.ogg"]
    assert s.files_done == 10 and s.files_failed == 3
    assert "bad/fine name with spaces é.ogg" in set(read_embeddings(s.dataset)[0]["file"])


def test_max_windows_and_files_list(toy_split, tmp_path):
    s = run_extract(cfg_for(toy_split, tmp_path / "emb", max_windows=1))
    keys, _ = read_embeddings(s.dataset)
    assert keys.groupby("file").size().max() == 1
    lst = tmp_path / "list.txt"
    paths = sorted((toy_split / "train_audio").rglob("*.ogg"))[:2]
    lst.write_text("\n".join(str(p) for p in paths))
    s2 = run_extract(cfg_for(toy_split, tmp_path / "emb2", files=str(lst)))
    assert s2.files_done == 2 and s2.dataset.name == "list"


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["extract", "--backbone", "toy", "--data", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "data root not found" in err and len(err.splitlines()) == 1
    assert main(["extract", "--backbone", "nosuch", "--data", str(tmp_path)]) == 2
    assert "unknown backbone" in capsys.readouterr().err
    tmp_path.joinpath("train_audio").mkdir()
    assert main(["extract", "--backbone", "toy", "--data", str(tmp_path), "--split", "test_soundscapes"]) == 2
    assert "split folder not found" in capsys.readouterr().err


def test_resume_with_other_settings_is_refused(toy_split, tmp_path):
    run_extract(cfg_for(toy_split, tmp_path / "emb"))
    rc = main(
        [
            "extract",
            "--backbone",
            "toy",
            "--data",
            str(toy_split),
            "--out",
            str(tmp_path / "emb"),
            "--hop-s",
            "2.5",
            "--no-progress",
        ]
    )
    assert rc == 2
    assert len(shard_paths(tmp_path / "emb" / "toy" / "train_audio")) >= 1


@pytest.mark.slow
def test_birdnet_on_real_clips(shared_data, tmp_path):
    files = sorted((shared_data / "xc-pr-birds" / "train_audio").glob("*/*.ogg"))[:4]
    lst = tmp_path / "files.txt"
    lst.write_text("\n".join(map(str, files)))
    cfg = ExtractConfig(
        backbone="birdnet",
        files=str(lst),
        out=str(tmp_path / "emb"),
        max_windows=2,
        progress=False,
        batch_size=8,
    )
    s = run_extract(cfg)
    keys, X = read_embeddings(s.dataset)
    assert s.files_done == 4 and X.shape[1] == 4096  # 2 chunks kept apart, each mean + max over time
    assert keys.groupby("file").size().between(1, 2).all()
    assert np.isfinite(X).all() and X.std(0).mean() > 0


def test_missing_package_stops_the_run_instead_of_failing_every_file(toy_split, tmp_path, monkeypatch):
    import embedkit.audio.stream

    def no_soxr(*a, **k):
        raise ImportError("No module named 'soxr'")
        yield  # pragma: no cover

    monkeypatch.setattr(embedkit.audio.stream, "iter_windows", no_soxr)
    with pytest.raises(ImportError, match="soxr"):
        run_extract(cfg_for(toy_split, tmp_path / "emb"))
    assert not shard_paths(tmp_path / "emb" / "toy" / "train_audio")
