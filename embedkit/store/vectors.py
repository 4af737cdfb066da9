"""Stored vector columns → float32 arrays: the one cast-copy shared by :mod:`.read` and :mod:`.scan`."""

from __future__ import annotations

import numpy as np

from embedkit.store.provenance import StoreError


def vectors(arr, dtype: np.dtype) -> np.ndarray:
    """One chunk of an ``emb``/``logits`` column → a [n, D] array view (fixed binary) or copy (old LIST)."""
    import pyarrow as pa

    if pa.types.is_fixed_size_binary(arr.type):
        width = arr.type.byte_width
        if width % dtype.itemsize:
            raise StoreError(f"embedding values of {width} bytes are not {dtype.name} vectors")
        d = width // dtype.itemsize
        v = np.frombuffer(arr.buffers()[1], dtype, count=len(arr) * d, offset=arr.offset * width)
        return v.reshape(-1, d)
    if pa.types.is_fixed_size_list(arr.type):  # shards written by embedkit <= 0.1.0
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, arr.type.list_size)
    raise StoreError(f"unexpected embedding column type {arr.type}")


def gather_float32(chunks: list, dtype: np.dtype, dest: np.ndarray, n_out: int) -> np.ndarray:
    """Cast stored chunks (of ``dtype`` vectors) to one float32 [n_out, D] array, input row i → ``dest[i]``.

    Rows with ``dest < 0`` are dropped. float16 is cast by torch where it is installed (threaded, ~10x
    numpy's float16 → float32 cast) straight into the output, so the embeddings are copied once.
    """
    vecs = [vectors(arr, dtype) for arr in chunks]
    widths = {v.shape[1] for v in vecs}
    if len(widths) > 1:
        raise StoreError(f"shards hold vectors of different lengths {sorted(widths)}; not one dataset")
    out = np.empty((n_out, widths.pop() if widths else 0), np.float32)
    copy = torch_copy(out)
    r = 0
    for v in vecs:
        d = dest[r : r + len(v)]
        r += len(v)
        if not len(v):
            continue
        lo = int(d[0])
        if lo >= 0 and d[-1] - lo == len(d) - 1 and (np.diff(d) == 1).all():
            copy(slice(lo, lo + len(d)), v)  # a run of consecutive rows: one cast-copy
        else:
            keep = d >= 0
            copy(d[keep], v[keep])
    return out


def torch_copy(out: np.ndarray):
    """``copy(rows, src)``: ``out[rows] = src`` cast to float32, by torch when it is importable."""
    try:
        import torch
    except ImportError:
        torch = None

    if torch is None:

        def copy(rows, src: np.ndarray) -> None:
            out[rows] = src

        return copy
    import warnings

    t_out = torch.from_numpy(out)

    def copy(rows, src: np.ndarray) -> None:
        with warnings.catch_warnings():  # arrow buffers are read-only; torch only reads them here
            warnings.simplefilter("ignore", UserWarning)
            t_src = torch.from_numpy(src)
        if isinstance(rows, slice):
            t_out[rows].copy_(t_src)
        else:
            t_out.index_copy_(0, torch.from_numpy(rows), t_src.float())

    return copy
