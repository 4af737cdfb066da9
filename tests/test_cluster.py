"""``--part auto``: the part from Slurm array / Kubernetes Indexed Job variables; clear errors without."""

import pytest
from test_extract import cfg_for

from embedkit.cli import main
from embedkit.errors import UsageError
from embedkit.extract import run_extract
from embedkit.extract.parts import part_from_env
from embedkit.store import read_embeddings

SCHEDULER_VARS = [
    "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX", "EMBEDKIT_PART_INDEX", "EMBEDKIT_PART_COUNT",
]


@pytest.mark.parametrize(
    ("env", "part"),
    [
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, (0, 4)),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
        ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}, (7, 8)),
        ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2",
          "SLURM_ARRAY_TASK_COUNT": "5"}, (2, 5)),
        ({"JOB_COMPLETION_INDEX": "2", "EMBEDKIT_PART_COUNT": "3"}, (2, 3)),
        ({"EMBEDKIT_PART_INDEX": "0", "EMBEDKIT_PART_COUNT": "1"}, (0, 1)),
    ],
)
def test_part_from_scheduler_variables(env, part):
    assert part_from_env(env)[:2] == part


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({}, "Slurm job array"),
        ({"SLURM_ARRAY_TASK_ID": "2"}, "SLURM_ARRAY_TASK_COUNT not"),
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"}, "0 <= i < N"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"}, "grid"),
        ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"}, "not an integer"),
        ({"JOB_COMPLETION_INDEX": "1"}, "EMBEDKIT_PART_COUNT"),
        ({"JOB_COMPLETION_INDEX": "-1", "EMBEDKIT_PART_COUNT": "2"}, "0 <= i < N"),
    ],
)
def test_part_auto_errors_are_one_line(env, match):
    with pytest.raises(UsageError, match=match) as e:
        part_from_env(env)
    assert "\n" not in str(e.value)


def test_extract_part_auto_from_slurm_and_k8s_covers_every_file_once(toy_split, tmp_path, monkeypatch):
    for var in SCHEDULER_VARS:
        monkeypatch.delenv(var, raising=False)
    got = []
    for i in range(3):  # a Slurm array --array=1-2 for the first two parts, a k8s pod for the last
        if i < 2:
            monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(i + 1))
            monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
            monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
        else:
            for var in SCHEDULER_VARS:
                monkeypatch.delenv(var, raising=False)
            monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
            monkeypatch.setenv("EMBEDKIT_PART_COUNT", "3")
        auto = run_extract(cfg_for(toy_split, tmp_path / f"auto{i}", part="auto"))
        fixed = run_extract(cfg_for(toy_split, tmp_path / f"fixed{i}", part=f"{i}/3"))
        files = set(read_embeddings(auto.dataset)[0]["file"])
        assert files == set(read_embeddings(fixed.dataset)[0]["file"])
        got.append(files)
    assert sum(len(f) for f in got) == len(set().union(*got)) == 9


def test_cli_part_auto_without_scheduler_is_exit_2(toy_split, tmp_path, monkeypatch, capsys):
    for var in SCHEDULER_VARS:
        monkeypatch.delenv(var, raising=False)
    rc = main(["extract", "--backbone", "toy", "--data", str(toy_split), "--out", str(tmp_path / "e"),
               "--part", "auto", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--part auto needs a Slurm job array" in err and len(err.strip().splitlines()) == 1
