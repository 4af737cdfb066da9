"""Prototype head: K learned prototypes per class, a window scored by its best cosine similarity.

A class is a few call types, not one direction: each class c has K prototypes ``p_c1..p_cK`` in the
standardised embedding space and scores a window x by the prototype it is closest to::

    logit_c(x) = scale_c * max_k cos(x, p_ck) + bias_c

(as in prototypical probing of bioacoustic embeddings and AudioProtoPNet). Prototypes start at the K
centres of a seeded spherical k-means of the class's own training windows (random directions for a class
without positives), ``scale`` at ``init_scale``, ``bias`` at ``-init_scale / 2``. Trained like
:class:`~embedkit.heads.mlp.MLPHead` (BCE on soft targets, AdamW, a seeded held-out part for early
stopping) and saved as safetensors.
"""

from __future__ import annotations

import numpy as np

from embedkit.heads import register
from embedkit.heads.mlp import MLPHead


def _module(n_in: int, n_out: int, k: int, init=None, init_scale: float = 10.0, chunks: int = 1):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Prototypes(nn.Module):
        """x [B, D] → logits [B, C]: ``scale * max_{k, chunk} cos(x_chunk, prototypes[c, k]) + bias``."""

        def __init__(self):
            super().__init__()
            d = n_in // chunks
            protos = torch.randn(n_out * k, d) if init is None else torch.as_tensor(init)
            self.protos = nn.Parameter(protos.float())
            self.scale = nn.Parameter(torch.full((n_out,), float(init_scale)))
            self.bias = nn.Parameter(torch.full((n_out,), -float(init_scale) / 2))

        def forward(self, x):
            xs = F.normalize(x.view(x.shape[0], chunks, -1), dim=2)  # [B, chunks, d]
            sim = xs @ F.normalize(self.protos, dim=1).T  # [B, chunks, C * K]
            best = sim.view(x.shape[0], chunks * n_out, k).amax(dim=2).view(x.shape[0], chunks, n_out)
            best = best.amax(dim=1)
            return best * self.scale + self.bias

    return Prototypes()


def _kmeans(X: np.ndarray, k: int, rng, iters: int = 10) -> np.ndarray:
    """K unit centres [k, D] of the rows of X [n, D] by spherical k-means from a seeded draw of rows."""
    U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    centres = U[rng.choice(len(U), k, replace=len(U) < k)].copy()
    for _ in range(iters):
        near = (U @ centres.T).argmax(1)
        for j in range(k):
            if (near == j).any():
                m = U[near == j].mean(0)
                centres[j] = m / max(float(np.linalg.norm(m)), 1e-12)
    return centres


@register("proto")
class ProtoHead(MLPHead):
    """Prototype head; see the module docstring.

    Args:
        prototypes: prototypes per class (K).
        init_scale: starting similarity scale of every class.
        chunks: the input is this many equal parts (BirdNET ``pool = "concat"``: [B, chunks * 1024]); a
            window scores by its best part, so a call in one 3 s chunk is not diluted by the other.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        epochs: maximum epochs.
        batch_size: rows per step.
        patience: epochs without validation improvement before stopping (0 = never stop early).
        val_fraction: part of the training rows held out for early stopping.
        seed: seed for the split, the prototypes' starting windows and shuffling.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` ...
        n_jobs: torch CPU threads during fit/predict (None = torch's current setting).
        budget_rows: at most ``ceil(budget_rows / N)`` epochs (see :class:`~embedkit.heads.mlp.MLPHead`).

    Learned attributes: as :class:`~embedkit.heads.mlp.MLPHead`; ``model_`` holds ``protos`` [C * K, D],
    ``scale`` [C] and ``bias`` [C].
    """

    def __init__(
        self,
        prototypes=4,
        init_scale=10.0,
        chunks=1,
        lr=1e-3,
        weight_decay=1e-2,
        epochs=60,
        batch_size=256,
        patience=6,
        val_fraction=0.1,
        seed=0,
        device="auto",
        n_jobs=1,
        budget_rows=2_500_000,
    ):
        self.prototypes = prototypes
        self.init_scale = init_scale
        self.chunks = chunks
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device
        self.n_jobs = n_jobs
        self.budget_rows = budget_rows

    def _fit(self, X, Y, sample_weight):
        m = int(self.chunks)
        if m > 1 and X.shape[1] % m == 0:  # one standardisation shared by the chunks: order-invariant
            mu = self.mean_.reshape(m, -1)
            second = (self.scale_.reshape(m, -1).astype(np.float64) ** 2 + mu.astype(np.float64) ** 2).mean(0)
            mean = mu.mean(0)
            std = np.sqrt(np.maximum(second - mean.astype(np.float64) ** 2, 0.0))
            std[std == 0] = 1.0
            self.mean_ = np.tile(mean, m).astype(np.float32)
            self.scale_ = np.tile(std, m).astype(np.float32)
        super()._fit(X, Y, sample_weight)

    def _new_model(self, n_in: int, n_out: int, X=None, Y=None):
        k, m = int(self.prototypes), int(self.chunks)
        if n_in % m:
            raise ValueError(f"proto: {n_in} input features do not split into chunks={m} equal parts")
        init = None
        if X is not None:  # k-means centres of each class's own windows (standardised chunks), seeded
            rng = np.random.default_rng(self.seed)
            init = rng.standard_normal((n_out * k, n_in // m)).astype(np.float32)
            for c in range(n_out):
                pos = np.flatnonzero(Y[:, c] >= 0.5)
                if len(pos):
                    parts = ((X[pos] - self.mean_) / self.scale_).reshape(len(pos) * m, -1)
                    init[c * k : (c + 1) * k] = _kmeans(parts, k, rng)
        return _module(n_in, n_out, k, init, self.init_scale, m)

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        D, C, K = self.n_features_in_, self.n_classes_, int(self.prototypes)
        return {"protos": (C * K, D // int(self.chunks)), "scale": (C,), "bias": (C,)}
