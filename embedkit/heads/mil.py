"""Multiple-instance MLP: a focal recording's label must be explained by its best windows.

Every window of a training recording carries the recording's label, though many windows hold no call. This
head is the MLP of :mod:`embedkit.heads.mlp` trained on bags (one bag per recording, ``groups`` in ``fit``)
with a mix of two losses::

    (1 - bag_weight) * BCE(window logits, window targets) + bag_weight * BCE(pool(bag logits), bag targets)

``pool`` is log-sum-exp pooling ``(logsumexp(r * z) - log n) / r`` over the n windows of a bag (``pool_r``
r: large → max, small → mean), and the bag target is the largest target of its windows. A bag whose label
is explained by a few confident windows costs little, so quiet windows are not forced up. Without
``groups`` every window is its own bag (the plain MLP loss). Trains ``epochs`` epochs (capped by
``budget_rows``) over the bags (no early stopping, as the held-out part would have to be whole bags) with
AdamW, deterministic per seed.
"""

from __future__ import annotations

import numpy as np

from embedkit.heads import register
from embedkit.heads.mlp import MLPHead, _build, _resolve_device, epochs_within


@register("mil")
class MILHead(MLPHead):
    """MLP trained with a bag (recording) loss; see the module docstring.

    Args:
        hidden: hidden units.
        dropout: dropout after the hidden layer.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        epochs: epochs over the bags.
        bags_per_step: bags per optimiser step.
        bag_weight: share of the bag loss in [0, 1] (0 = plain window loss).
        pool_r: sharpness r of the log-sum-exp pooling.
        seed: seed for initialisation, dropout and shuffling.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` ...
        n_jobs: torch CPU threads during fit/predict (None = torch's current setting). Default 1: a step works
            on one batch of bags (a few hundred windows), too small for threads to pay; measured 4-10x faster
            than 2 threads on 2 busy cores.
        budget_rows: scale-aware epochs: at most ``ceil(budget_rows / N)`` epochs over N windows, so the
            number of optimiser steps stops growing with N: ``epochs`` is unchanged up to 62k windows, 500k
            windows get 5 (issue 16: 40 epochs took 1312 s at 100k). None or 0 = no cap.

    Learned attributes: as :class:`~embedkit.heads.mlp.MLPHead` (``history_`` holds the training loss).
    """

    def __init__(
        self,
        hidden=256,
        dropout=0.5,
        lr=1e-3,
        weight_decay=0.1,
        epochs=40,
        bags_per_step=16,
        bag_weight=0.5,
        pool_r=5.0,
        seed=0,
        device="auto",
        n_jobs=1,
        budget_rows=2_500_000,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.bags_per_step = bags_per_step
        self.bag_weight = bag_weight
        self.pool_r = pool_r
        self.seed = seed
        self.device = device
        self.n_jobs = n_jobs
        self.budget_rows = budget_rows

    def fit(self, X, Y, sample_weight=None, groups=None) -> MILHead:
        """Fit on windows X [N, D], targets Y [N, C], row weights [N] and recording ids ``groups`` [N]."""
        if groups is not None and len(groups) != len(np.asarray(X)):
            raise ValueError(
                f"groups must have one entry per row of X ({len(np.asarray(X))}), got {len(groups)}"
            )
        self._groups = None if groups is None else np.asarray(groups)
        try:
            return super().fit(X, Y, sample_weight)
        finally:
            del self._groups

    def _fit_torch(self, X, Y, sample_weight):
        import torch
        import torch.nn.functional as F

        if not 0 <= self.bag_weight <= 1:
            raise ValueError(f"bag_weight must be in [0, 1], got {self.bag_weight!r}")
        device = torch.device(_resolve_device(self.device))
        N, D = X.shape
        groups = self._groups if self._groups is not None else np.arange(N)
        _, bag_of = np.unique(groups, return_inverse=True)
        order = np.argsort(bag_of, kind="stable")
        bounds = np.flatnonzero(np.diff(np.r_[-1, bag_of[order], bag_of.max() + 1]))
        bags = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        sw = np.ones(N, np.float32) if sample_weight is None else sample_weight
        Xt, Yt, Wt = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (X, Y, sw))
        self.trained_ = (Y > 0).any(axis=0)
        r = float(self.pool_r)
        fork = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(self.seed)
            model = _build(D, self.hidden, self.dropout, Y.shape[1]).to(device)
            gen = torch.Generator().manual_seed(self.seed)
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            history = []
            for _ in range(epochs_within(self.epochs, self.budget_rows, N)):
                model.train()
                perm = torch.randperm(len(bags), generator=gen).numpy()
                total = 0.0
                for s in range(0, len(perm), self.bags_per_step):
                    chosen = [bags[i] for i in perm[s : s + self.bags_per_step]]
                    idx = torch.from_numpy(np.concatenate(chosen)).to(device)
                    seg = torch.from_numpy(np.repeat(np.arange(len(chosen)), [len(b) for b in chosen])).to(
                        device
                    )
                    z, y, w = model(self._standardise(Xt[idx])), Yt[idx], Wt[idx]
                    inst = (F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(1) * w).mean()
                    loss = (1 - self.bag_weight) * inst
                    if self.bag_weight > 0:
                        k, c = len(chosen), z.shape[1]
                        seg2 = seg[:, None].expand_as(z)
                        top = torch.full((k, c), -torch.inf, device=device).scatter_reduce(
                            0, seg2, r * z, "amax"
                        )
                        ex = torch.zeros((k, c), device=device).index_add(0, seg, torch.exp(r * z - top[seg]))
                        n = torch.bincount(seg, minlength=k).to(z.dtype)[:, None]
                        pooled = (top + torch.log(ex) - torch.log(n)) / r
                        yb = torch.zeros((k, c), device=device).scatter_reduce(0, seg2, y, "amax")
                        wb = torch.zeros(k, device=device).index_add(0, seg, w) / n[:, 0]
                        bag = (
                            F.binary_cross_entropy_with_logits(pooled, yb, reduction="none").mean(1) * wb
                        ).mean()
                        loss = loss + self.bag_weight * bag
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(chosen)
                history.append((total / max(len(bags), 1), float("nan")))
        self.model_ = model.cpu().eval()
        self.n_epochs_ = len(history)
        self.best_epoch_ = len(history)
        self.history_ = history


__all__ = ["MILHead"]
