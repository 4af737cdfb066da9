"""Property tests (hypothesis): window arithmetic and row ids, multi-hot targets, the shard round trip."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from embedkit.audio import Windowing, iter_windows, row_id, window_spans
from embedkit.birdclef import build_targets, parse_secondary
from embedkit.store import ShardWriter, read_embeddings

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- windows and row ids -------------------------------------------------------------------------------------

seconds = st.floats(min_value=0.0, max_value=4000.0, allow_nan=False)
lengths = st.sampled_from([0.5, 1.0, 2.5, 3.0, 5.0, 10.0]) | st.floats(0.05, 20.0)
windowings = st.builds(
    Windowing,
    window_s=lengths,
    hop_s=lengths,
    min_tail_s=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    max_windows=st.none() | st.integers(1, 50),
)


def brute_force_count(n: int, win: int, hop: int, tail: int, max_windows: int | None) -> int:
    """Windows of a file of ``n`` samples, counted one start at a time (the README's rule)."""
    if n <= 0:
        return 0
    count, start = 0, 0
    while start + win <= n:  # full windows
        count, start = count + 1, start + hop
    last_end = (count - 1) * hop + win if count else 0
    new_audio = n - max(last_end, count * hop)  # what a padded window at the next start would add
    if count == 0 or new_audio >= max(tail, 1):  # shorter than a window, or a long enough tail
        count += 1
    return min(count, max_windows) if max_windows else count


@SETTINGS
@given(duration=seconds, w=windowings, sr=st.sampled_from([8000, 16000, 32000, 48000]))
@example(duration=1.0, w=Windowing(0.5, 1.0, 0.0), sr=8000)  # regression: a tail window after the audio
def test_window_spans_follow_the_rule(duration, w, sr):
    spans = window_spans(duration, w, sample_rate=sr)
    n = int(round(duration * sr))
    win, hop, tail = (int(round(x * sr)) for x in (w.window_s, w.hop_s, w.min_tail_s))
    assert len(spans) == brute_force_count(n, win, hop, tail, w.max_windows)
    if len(spans):
        np.testing.assert_allclose(spans[:, 0], np.arange(len(spans)) * hop / sr)
        np.testing.assert_allclose(spans[:, 1] - spans[:, 0], w.window_s)
        assert spans[0, 0] == 0 and np.all(np.diff(spans[:, 0]) > 0)
        assert spans[-1, 0] * sr < max(n, 1)  # every window starts inside the audio
    if n > 0 and w.max_windows is None:  # the end is covered, but for a short tail (and a hop's gap)
        assert spans[-1, 1] * sr >= n - hop - max(tail, 1)


@SETTINGS
@given(
    stem=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=30
    ),
    duration=seconds,
    w=windowings,
)
@example(stem="s", duration=999.0, w=Windowing(0.5, 1.375, 0.0))  # regression: "_1000.12" for 1000.125
def test_row_ids_are_unique_and_end_with_the_window_end(stem, duration, w):
    ends = window_spans(duration, w)[:, 1]
    ids = [row_id(stem, e) for e in ends]
    assert len(set(ids)) == len(ids)
    for rid, e in zip(ids, ends, strict=True):
        head, tail = rid.rsplit("_", 1)
        assert head == stem and math.isclose(float(tail), e, abs_tol=1e-6)
        assert tail == str(int(round(e))) or not float(tail).is_integer()  # "_60", never "_60.0"


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 8 * 8000),
    w=st.builds(
        Windowing,
        window_s=st.sampled_from([0.5, 1.0, 2.0]),
        hop_s=st.sampled_from([0.25, 0.5, 1.0, 3.0]),
        min_tail_s=st.sampled_from([0.0, 0.2, 1.0]),
        max_windows=st.none() | st.integers(1, 6),
    ),
    block_s=st.sampled_from([0.1, 0.7, 3.0]),
)
@example(n=40000, w=Windowing(0.5, 3.0, 0.0), block_s=0.1)  # regression: hop > window misaligned windows
def test_streamed_windows_are_the_windows_of_the_whole_signal(n, w, block_s):
    sr = 8000
    x = (np.random.default_rng(n).uniform(-0.9, 0.9, n)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.wav"
        sf.write(str(path), x, sr, subtype="FLOAT")
        pieces = list(iter_windows(path, sr, w, block_s=block_s))
    got = np.concatenate([p for _, p in pieces]) if pieces else np.zeros((0, int(w.window_s * sr)))
    assert [f for f, _ in pieces] == sorted(f for f, _ in pieces)
    spans = window_spans(n / sr, w, sample_rate=sr)
    assert len(got) == len(spans)
    win = int(round(w.window_s * sr))
    for k, (start, _) in enumerate(spans):
        s = int(round(start * sr))
        expect = np.zeros(win, np.float32)
        expect[: len(x[s : s + win])] = x[s : s + win]
        np.testing.assert_array_equal(got[k], expect)


# -- multi-hot targets ---------------------------------------------------------------------------------------

codes = st.text("abcdefghij0123456789", min_size=1, max_size=6)


@st.composite
def label_problem(draw):
    labels = draw(st.lists(codes, min_size=1, max_size=12, unique=True))
    unknown = draw(st.lists(codes.filter(lambda c: c not in labels), max_size=3, unique=True))
    rows = []
    for i in range(draw(st.integers(0, 15))):
        prim = draw(st.sampled_from(labels))
        sec = draw(st.lists(st.sampled_from(labels + unknown), max_size=4))
        cell = draw(st.sampled_from(["list", "malformed", "empty"]))
        text = {"list": repr(sec), "malformed": "['" + "', '".join(sec) + "'", "empty": ""}[cell]
        rows.append((prim, text, f"f{i}.ogg", sec if cell == "list" else None))
    weight = draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]))
    extra = draw(st.lists(st.sampled_from(["x.ogg", "y.ogg"]), max_size=3))  # shard files not in train.csv
    return labels, rows, weight, extra


@SETTINGS
@given(problem=label_problem(), windows=st.integers(1, 3))
def test_multi_hot_targets(problem, windows):
    labels, rows, weight, extra = problem
    train = pd.DataFrame(
        [(p, t, f) for p, t, f, _ in rows], columns=["primary_label", "secondary_labels", "filename"]
    )
    files = [f for _, _, f, _ in rows] + extra
    keys = pd.DataFrame({"file": [f for f in files for _ in range(windows)]})
    Y, keep, rep = build_targets(keys, train, labels, weight)
    assert Y.dtype == np.float32 and Y.shape == (len(rows) * windows, len(labels))
    assert keep.tolist() == [f.startswith("f") for f in keys["file"]]
    assert set(np.unique(Y).tolist()) <= {0.0, float(np.float32(weight)), 1.0}
    n_malformed = n_unknown = 0
    for r, (prim, text, _, _) in enumerate(rows):
        parsed = parse_secondary(text)
        n_malformed += parsed is None
        expect = np.zeros(len(labels), np.float32)
        for c in parsed or []:
            if c in labels:
                expect[labels.index(c)] = weight
            else:
                n_unknown += weight > 0
        expect[labels.index(prim)] = 1.0  # the primary label wins over a secondary of the same code
        for k in range(windows):
            np.testing.assert_array_equal(Y[r * windows + k], expect)
    assert rep.malformed_secondary == n_malformed and rep.unknown_secondary == n_unknown
    assert rep.shard_files_not_in_train == len(set(extra)) and rep.windows == len(Y)


@SETTINGS
@given(st.lists(st.text(max_size=8), max_size=6))
def test_secondary_labels_round_trip_through_their_text_form(codes_):
    assert parse_secondary(repr(codes_)) == [c for c in codes_ if c]
    assert parse_secondary(str(codes_)) == [c for c in codes_ if c]


# -- the shard round trip ------------------------------------------------------------------------------------

file_names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=20)


@st.composite
def shard_content(draw):
    dim = draw(st.integers(1, 64))
    dtype = draw(st.sampled_from(["float16", "float32"]))
    files = draw(st.lists(file_names, max_size=5, unique=True))
    counts = [draw(st.integers(0, 6)) for _ in files]
    n = sum(counts)
    X = draw(arrays(np.float32, (n, dim), elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
    return dim, dtype, files, counts, X


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # float16 storage of huge values: inf
@SETTINGS
@given(content=shard_content(), shards=st.integers(1, 3))
def test_store_round_trip_any_dim_dtype_and_row_count(content, shards):
    dim, dtype, files, counts, X = content
    rows = [
        (f, k, 5.0 * k, 5.0 * k + 5, row_id(Path(f).stem or "x", 5 * k + 5))
        for f, c in zip(files, counts, strict=True)
        for k in range(c)
    ]
    keys = pd.DataFrame(rows, columns=["file", "window", "start_s", "end_s", "row_id"])
    keys = keys.astype({"window": np.int64, "start_s": np.float64, "end_s": np.float64})
    prov = {"backbone": "prop", "dim": dim, "window_s": 5.0, "hop_s": 5.0}
    with tempfile.TemporaryDirectory() as d:
        writer = ShardWriter(Path(d), prov, dtype=dtype)
        parts = np.array_split(np.arange(len(keys)), shards)
        for idx in parts:  # whole files or not: the reader sorts and merges
            writer.write(keys.iloc[idx].reset_index(drop=True), X[idx])
        got_keys, got_X = read_embeddings(Path(d))
    order = np.lexsort((keys["window"].to_numpy(), keys["file"].to_numpy()))
    with np.errstate(over="ignore"):
        expect = X[order].astype(dtype).astype(np.float32)
    assert got_X.dtype == np.float32 and got_X.shape == (len(keys), dim)
    np.testing.assert_array_equal(
        got_X, expect
    )  # float32 exact; float16 = the float16 rounding, inf and NaN kept
    exp_keys = keys.iloc[order].reset_index(drop=True)
    assert got_keys["file"].tolist() == exp_keys["file"].tolist()
    assert got_keys["window"].tolist() == exp_keys["window"].tolist()
    assert got_keys["row_id"].tolist() == exp_keys["row_id"].tolist()
    np.testing.assert_array_equal(got_keys["end_s"].to_numpy(), exp_keys["end_s"].to_numpy())
