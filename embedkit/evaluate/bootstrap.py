"""Paired bootstrap intervals over soundscapes for the differences ``embedkit evaluate`` reports.

A difference between two rows is only worth a sentence when it is larger than what the choice of soundscapes
alone moves. :class:`Bootstrap` draws, per (kind, seed) test set, ``n`` resamples of its soundscapes with
replacement (seeded), and scores every row on the *same* resamples (paired): each soundscape's windows count
as many times as it was drawn (weighted ROC-AUC, ties counted half, as scikit-learn's). A row's score on a
resample is the macro AUC over the labels with a positive and a negative in it, per fold and seed, averaged
as the table is (:meth:`~embedkit.evaluate.testsets.TestSets.scored`); the interval of a difference is the
2.5 and 97.5 percentiles of ``score_A - score_B``.
"""

from __future__ import annotations

import warnings

import numpy as np

#: resamples and seed of the intervals
N_BOOT = 1000
BOOT_SEED = 0


def weighted_auc(y: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray:
    """ROC-AUC of one label under B row weightings.

    Args:
        y: bool [M] truth.
        s: scores [M].
        W: weights [B, M] (counts of each row in each resample).

    Returns:
        float64 [B]; NaN where a resample has no positive or no negative weight.
    """
    o = np.argsort(s, kind="mergesort")
    so, yo, Wo = s[o], y[o], W[:, o]
    neg = np.where(yo, 0.0, Wo)
    cn = np.concatenate([np.zeros((len(W), 1)), np.cumsum(neg, axis=1)], axis=1)  # [B, M + 1]
    pi = np.flatnonzero(yo)
    lo = np.searchsorted(so, so[pi], "left")
    hi = np.searchsorted(so, so[pi], "right")
    below, tied = cn[:, lo], cn[:, hi] - cn[:, lo]
    num = (Wo[:, pi] * (below + 0.5 * tied)).sum(1)
    npos, nneg = Wo[:, pi].sum(1), cn[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((npos > 0) & (nneg > 0), num / (npos * nneg), np.nan)


class Bootstrap:
    """Seeded soundscape resamples of the ``kind`` sets of a :class:`~embedkit.evaluate.testsets.TestSets`.

    Args:
        tests: the test sets; kind: ``"field"`` (real backgrounds) or ``"synthetic"``.
        n: resamples; seed: their seed.
    """

    def __init__(self, tests, kind: str = "field", n: int = N_BOOT, seed: int = BOOT_SEED):
        rng = np.random.default_rng(seed)
        self.tests, self.n = tests, n
        self.sets = []  # (mask [M], weights [n, rows of mask])
        for _, _, mask in tests.scored(kind):  # per (seed, fold), as the table scores
            _, sid = np.unique(tests.scapes.files[mask], return_inverse=True)
            S = int(sid.max()) + 1
            draw = rng.integers(0, S, size=(n, S))
            counts = np.zeros((n, S))
            np.add.at(counts, (np.arange(n)[:, None], draw), 1.0)
            self.sets.append((mask, counts[:, sid]))

    def scores(self, P: np.ndarray, cols: np.ndarray, rows=None) -> np.ndarray:
        """Macro AUC [n] of probabilities P [M, C] over labels ``cols`` (bool [C]) per resample.

        ``rows`` (bool [M], or a function mask → bool [M]) restricts each set's windows (the second test).
        """
        out = []
        for mask, W in self.sets:
            use = mask if rows is None else (rows(mask) if callable(rows) else mask & rows)
            keep = use[mask]
            truth, p, w = self.tests.scapes.truth[use], P[use], W[:, keep]
            per = [weighted_auc(truth[:, c], p[:, c].astype(np.float64), w) for c in np.flatnonzero(cols)]
            with warnings.catch_warnings():  # a resample may leave a label without positives
                warnings.simplefilter("ignore", RuntimeWarning)
                out.append(np.nanmean(np.stack(per), axis=0) if per else np.full(self.n, np.nan))
        return np.mean(out, axis=0)


def interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of the paired difference ``a - b`` (both [n] from the same resamples)."""
    d = np.asarray(a) - np.asarray(b)
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan"), float("nan")
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))


def fmt_delta(delta: float, ci: tuple[float, float]) -> str:
    """``+0.006 [−0.003, +0.015]``, bold when the interval excludes 0; ``—`` for NaN."""
    if delta != delta or ci[0] != ci[0]:
        return "—"
    text = f"{delta:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]".replace("-", "−")
    return f"**{text}**" if ci[0] > 0 or ci[1] < 0 else text


def compare_rows(rows, tests, mapped: np.ndarray, best: str | None, default: str | None,
                 n: int = N_BOOT, seed: int = BOOT_SEED) -> dict:  # fmt: skip
    """Paired real-background differences of every row against the best zero-shot row and the default.

    Args:
        rows: ``(name, result)`` pairs (``test``: post-processed probabilities [M, C]; ``head_test``: the head
            alone; ``zero_shot``: a zero-shot row).
        tests: the test sets (with field sets).
        mapped: bool [C], the labels the backbone knows.
        best: name of the best zero-shot row.
        default: name of the default row.
        n: resamples per seed and fold.
        seed: resampling seed.

    Returns:
        ``{row name: {column: (difference, (lo, hi))}}``, columns of
        :data:`embedkit.evaluate.tables.INTERVAL_COLS` (those that apply to the row).
    """
    if "field" not in tests.kinds:
        return {}
    bs = Bootstrap(tests, "field", n, seed)
    strong = tests.strong if tests.strong is not None else np.zeros(len(mapped), bool)
    res = dict(rows)
    memo: dict = {}

    def boot(name, what):
        if (name, what) not in memo:
            r = res[name]
            P = r["head_test"] if what == "ho22" else r["test"]
            cols = {"m": mapped, "ho22": mapped, "a": np.ones(len(mapped), bool), "st": strong}[what]
            memo[(name, what)] = bs.scores(P, cols, tests.strong_rows if what == "st" else None)
        return memo[(name, what)]

    point = {"m": "fd_mapped", "a": "fd", "st": "st", "ho22": "ho_mapped"}
    zs = [nm for nm, r in rows if r.get("zero_shot")]
    best_st = max(zs, key=lambda nm: np.nan_to_num(res[nm].get("st", np.nan), nan=-1.0)) if zs else None

    def diff(a, wa, b, wb):
        return (res[a][point[wa]] - res[b][point[wb]], interval(boot(a, wa), boot(b, wb)))

    out: dict = {}
    for name, r in rows:
        d = {}
        if best and name != best:
            d["vs_best22"] = diff(name, "m", best, "m")
        if default and name != default and default in res:
            d["vs_def22"] = diff(name, "m", default, "m")
            if not r.get("zero_shot"):
                d["vs_def26"] = diff(name, "a", default, "a")
        if best_st and name != best_st and strong.any():
            d["st_vs_best"] = diff(name, "st", best_st, "st")
        if best and r.get("head_test") is not None:
            d["ho22_vs_best"] = diff(name, "ho22", best, "m")
        out[name] = d
    return out


__all__ = ["BOOT_SEED", "N_BOOT", "Bootstrap", "compare_rows", "fmt_delta", "interval", "weighted_auc"]
