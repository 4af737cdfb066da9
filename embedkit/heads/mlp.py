"""One-hidden-layer MLP head in torch: BCE-with-logits on (soft) multi-hot targets, AdamW, early stopping.

``Linear(D, hidden) -> ReLU -> Dropout -> Linear(hidden, C)`` on standardised embeddings. A seeded part of the
training rows (``val_fraction``) is held out; training stops when its loss has not improved for ``patience``
epochs and the best weights are restored. Soft targets are used directly in the loss. Runs on CPU or GPU
(``device="auto"`` picks CUDA when available) and is deterministic for a given seed on a given device:
weight init, dropout and shuffling use the seed, and the caller's global torch RNG state is left untouched.

A class whose targets are all 0 predicts 0.
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path

import numpy as np

from embedkit.heads import register
from embedkit.heads.base import Head


def _resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def epochs_within(epochs: int, budget_rows: int | None, n_rows: int) -> int:
    """``epochs`` capped at ``ceil(budget_rows / n_rows)`` (at least 1); ``budget_rows`` None/0: no cap."""
    if not budget_rows:
        return int(epochs)
    return max(1, min(int(epochs), math.ceil(budget_rows / max(n_rows, 1))))


def _build(n_in: int, hidden: int, dropout: float, n_out: int):
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


@register("mlp")
class MLPHead(Head):
    """One-hidden-layer multi-label MLP.

    Args:
        hidden: hidden units.
        dropout: dropout after the hidden layer.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        epochs: maximum epochs.
        batch_size: rows per step.
        patience: epochs without validation improvement before stopping (0 = never stop early).
        val_fraction: part of the training rows held out for early stopping (0 = train all ``epochs`` on
            everything and keep the last weights).
        seed: seed for the split, initialisation, dropout and shuffling.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        n_jobs: torch CPU threads during fit/predict (None = torch's current setting; restored afterwards).
            On a machine whose cores are busy with other work, 1 is much faster: OpenMP threads waiting for a
            descheduled sibling stall every op (measured 5x slower per epoch with 2 threads on 2 busy cores).
        budget_rows: scale-aware epochs: at most ``ceil(budget_rows / N)`` epochs (at least 1), so a fit
            passes about this many rows through the model whatever N is: the cap leaves ``epochs`` alone up
            to N = 2.5M / 60 = 41k training rows (every size ``benchmarks/bench_heads.py`` uses) and keeps
            450k to 6 epochs (``benchmarks/bench_scale.py``).
            None or 0 = no cap.

    Learned attributes: ``model_`` (torch module, on CPU, eval mode), ``trained_`` bool [C], ``n_epochs_``
    (epochs run), ``best_epoch_``, ``history_`` (list of ``(train_loss, val_loss)`` per epoch), plus
    ``mean_``, ``scale_``, ``n_features_in_``, ``n_classes_``.
    """

    def __init__(
        self,
        hidden=512,
        dropout=0.3,
        lr=1e-3,
        weight_decay=1e-2,
        epochs=60,
        batch_size=256,
        patience=6,
        val_fraction=0.1,
        seed=0,
        device="auto",
        n_jobs=None,
        budget_rows=2_500_000,
    ):
        self.hidden = hidden
        self.dropout = dropout
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

    @contextlib.contextmanager
    def _threads(self):
        import torch

        old = torch.get_num_threads()
        if self.n_jobs:
            torch.set_num_threads(int(self.n_jobs))
        try:
            yield
        finally:
            torch.set_num_threads(old)

    standardize_inside = True  # each batch is standardised as it is used: no standardised copy of X

    def _standardise(self, xb):
        """``(xb - mean_) / scale_`` for a torch batch ``[B, D]`` (float32, on its device)."""
        import torch

        mu = torch.from_numpy(self.mean_).to(xb.device)
        return (xb - mu) / torch.from_numpy(self.scale_).to(xb.device)

    def _fit(self, X, Y, sample_weight):
        with self._threads():
            self._fit_torch(X, Y, sample_weight)

    def _fit_torch(self, X, Y, sample_weight):
        import torch

        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        device = torch.device(_resolve_device(self.device))
        N, D = X.shape
        perm = np.random.default_rng(self.seed).permutation(N)
        n_val = int(round(self.val_fraction * N))
        if n_val < 1 or N - n_val < 1:
            n_val = 0
        tr, va = perm[n_val:], perm[:n_val]
        sw = np.ones(N, np.float32) if sample_weight is None else sample_weight
        Xt, Yt, Wt = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (X, Y, sw))
        self.trained_ = (Y > 0).any(axis=0)
        fork_devices = []
        if device.type == "cuda":
            fork_devices = [torch.cuda.current_device() if device.index is None else device.index]
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(self.seed)
            model = self._new_model(D, Y.shape[1], X, Y).to(device)
            gen = torch.Generator().manual_seed(self.seed)
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            history, best, best_state, best_epoch, bad = [], np.inf, None, 0, 0
            tr_idx = torch.from_numpy(tr).to(device)
            for epoch in range(epochs_within(self.epochs, self.budget_rows, len(tr))):
                model.train()
                order = tr_idx[torch.randperm(len(tr), generator=gen).to(device)]
                total, seen = 0.0, 0
                for start in range(0, len(order), self.batch_size):
                    b = order[start : start + self.batch_size]
                    loss = self._loss(model(self._standardise(Xt[b])), Yt[b], Wt[b])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(b)
                    seen += len(b)
                val = self._evaluate(model, Xt, Yt, Wt, va) if n_val else float("nan")
                history.append((total / max(seen, 1), val))
                if n_val and val < best - 1e-7:
                    best, best_epoch, bad = val, epoch + 1, 0
                    best_state = copy.deepcopy(model.state_dict())
                elif n_val:
                    bad += 1
                    if self.patience and bad >= self.patience:
                        break
            if best_state is not None:
                model.load_state_dict(best_state)
        self.model_ = model.cpu().eval()
        self.n_epochs_ = len(history)
        self.best_epoch_ = best_epoch if n_val else len(history)
        self.history_ = history

    def _new_model(self, n_in: int, n_out: int, X=None, Y=None):
        """The torch module to train (``X`` [N, D] raw, ``Y`` [N, C] given when fitting, for an init)."""
        return _build(n_in, self.hidden, self.dropout, n_out)

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape of every saved weight, checked on load."""
        D, H, C = self.n_features_in_, self.hidden, self.n_classes_
        return {"0.weight": (H, D), "0.bias": (H,), "3.weight": (C, H), "3.bias": (C,)}

    @staticmethod
    def _loss(logits, y, w):
        import torch.nn.functional as F

        per_row = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1)
        return (per_row * w).mean()

    def _evaluate(self, model, X, Y, W, rows) -> float:
        import torch

        model.eval()
        idx = torch.from_numpy(rows).to(X.device)
        total, wsum = 0.0, 0.0
        with torch.no_grad():
            for start in range(0, len(idx), 8192):
                b = idx[start : start + 8192]
                total += float(self._loss(model(self._standardise(X[b])), Y[b], W[b])) * len(b)
                wsum += float(W[b].sum())
        return total / max(wsum, 1e-12)

    def _predict(self, X):
        with self._threads():
            return self._predict_torch(X)

    def _predict_torch(self, X):
        import torch

        device = torch.device(_resolve_device(self.device))
        model = self.model_.to(device).eval()
        out = np.empty((X.shape[0], self.n_classes_), np.float32)
        with torch.no_grad():
            for start in range(0, X.shape[0], 8192):
                xb = self._standardise(torch.from_numpy(X[start : start + 8192]).to(device))
                out[start : start + 8192] = torch.sigmoid(model(xb)).float().cpu().numpy()
        self.model_ = model.cpu()
        out[:, ~self.trained_] = 0.0
        return out

    def _save_state(self, folder: Path) -> dict:
        from safetensors.torch import save_file

        state = self._learned()
        weights = {k: v.detach().cpu().contiguous() for k, v in state.pop("model_").state_dict().items()}
        save_file(weights, str(folder / "model.safetensors"))
        return state

    def _load_state(self, folder: Path, state: dict, legacy: bool = False) -> None:
        super()._load_state(folder, state, legacy)
        model = self._new_model(self.n_features_in_, self.n_classes_)
        if legacy:  # embedkit 0.1: torch.save, read with torch's restricted unpickler (the caller trusts it)
            import torch

            weights = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        else:
            from safetensors.torch import load_file

            weights = load_file(str(folder / "model.safetensors"))
            from embedkit.schemas import check_arrays

            arrays = {k: v.numpy() for k, v in weights.items()}
            dims = (self.n_features_in_, self.n_classes_)
            check_arrays(arrays, dims, str(folder / "model.safetensors"), self._shapes())
        model.load_state_dict(weights)
        self.model_ = model.eval()
