"""ONNX nodes of the fitted heads, built with the ``onnx`` helper API (no converter package).

Each head becomes the same arithmetic its ``predict_proba`` does, on a float32 input ``[B, D]``:

* ``logreg``: ``sigmoid(x @ (W / scale).T + b - (W / scale) @ mean)``; untrained classes their constant.
* ``mlp`` / ``mil``: ``sigmoid(Linear2(relu(Linear1((x - mean) / scale))))`` (dropout is off at inference);
  untrained classes 0.
* ``proto``: ``sigmoid(scale * max over chunks and prototypes of cos((x - mean) / scale, p) + bias)``;
  untrained classes 0.
* ``lgbm``: one ``ai.onnx.ml.TreeEnsembleRegressor`` holding every tree of the merged booster (tree ``t``
  adds to the raw score of class ``t mod K``), then ``sigmoid``; untrained classes their constant.
  LightGBM compares a float32 feature ``x`` with a float64 threshold ``t``; the graph's float32 threshold is
  the largest float32 ``<= t``, which gives the same decision for every float32 ``x``. A split whose missing
  type is ``Zero`` first sends ``x == 0`` the default way (``BRANCH_EQ``), as LightGBM does.
"""

from __future__ import annotations

import numpy as np

OPSET, ML_OPSET = 17, 3


class Graph:
    """Nodes and constants of one ONNX graph under construction; names are made unique with a counter."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, stem: str) -> str:
        """A fresh tensor name ``stem_<n>``."""
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value, stem: str = "c") -> str:
        """A constant tensor (numpy array, dtype kept) and its name."""
        from onnx import numpy_helper

        n = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(self, op_type: str, inputs: list[str], stem: str | None = None, out: str | None = None,
           domain: str = "", **attrs) -> str:  # fmt: skip
        """Append one node with one output; returns the output's name (``out`` when given)."""
        from onnx import helper

        out = out or self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), domain=domain,
                                           **attrs))  # fmt: skip
        return out


def head_nodes(g: Graph, head, x: str) -> str:
    """Nodes computing ``head.predict_proba`` of the float32 tensor ``x`` [B, D]; returns the [B, C] output.

    Raises:
        ValueError: a head this module cannot express (the message names the supported ones).
    """
    name = getattr(head, "name", type(head).__name__)
    if name == "logreg":
        p = _logreg(g, head, x)
    elif name in ("mlp", "mil"):
        p = _mlp(g, head, x)
    elif name == "lgbm":
        p = _lgbm(g, head, x)
    elif name == "proto":
        p = _proto(g, head, x)
    else:
        raise ValueError(f"no ONNX form for head {name!r} (exportable: logreg, mlp, mil, lgbm, proto)")
    return g.op("Clip", [p, g.const(np.float32(0)), g.const(np.float32(1))], "head_p")


def _untrained(g: Graph, head, p: str) -> str:
    """Untrained classes get their constant (``constant_``; 0 when the head has none)."""
    trained = np.asarray(head.trained_, bool)
    if trained.all():
        return p
    const = np.asarray(getattr(head, "constant_", np.zeros(len(trained))), np.float32)
    return g.op("Where", [g.const(trained), p, g.const(np.where(trained, 0, const).astype(np.float32))])


def _logreg(g: Graph, head, x: str) -> str:
    W = head.coef_.astype(np.float64) / head.scale_.astype(np.float64)  # as LogRegHead._predict
    b = (head.intercept_ - W @ head.mean_.astype(np.float64)).astype(np.float32)
    z = g.op("Add", [g.op("MatMul", [x, g.const(W.T.astype(np.float32), "W")]), g.const(b, "b")])
    return _untrained(g, head, g.op("Sigmoid", [z]))


def _mlp(g: Graph, head, x: str) -> str:
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in head.model_.state_dict().items()}
    xs = g.op("Div", [g.op("Sub", [x, g.const(head.mean_.astype(np.float32))]),
                      g.const(head.scale_.astype(np.float32))])  # fmt: skip
    h = g.op("Relu", [g.op("Gemm", [xs, g.const(sd["0.weight"]), g.const(sd["0.bias"])], transB=1)])
    z = g.op("Gemm", [h, g.const(sd["3.weight"]), g.const(sd["3.bias"])], transB=1)
    p = g.op("Sigmoid", [z])
    trained = np.asarray(head.trained_, bool)
    return p if trained.all() else g.op("Mul", [p, g.const(trained.astype(np.float32))])


def _proto(g: Graph, head, x: str) -> str:
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in head.model_.state_dict().items()}
    m, (CK, d) = int(head.chunks), sd["protos"].shape
    C = len(sd["scale"])
    P = sd["protos"] / np.maximum(np.linalg.norm(sd["protos"], axis=1, keepdims=True), 1e-12)
    xs = g.op("Div", [g.op("Sub", [x, g.const(head.mean_.astype(np.float32))]),
                      g.const(head.scale_.astype(np.float32))])  # fmt: skip
    xc = g.op("Reshape", [xs, g.const(np.array([0, m, d], np.int64))])  # [B, m, d]
    norm = g.op("Max", [g.op("ReduceL2", [xc], axes=[2], keepdims=1), g.const(np.float32(1e-12))])
    sim = g.op("MatMul", [g.op("Div", [xc, norm]), g.const(P.T.copy(), "P")])  # [B, m, C * K]
    sim = g.op("Reshape", [sim, g.const(np.array([0, m, C, CK // C], np.int64))])
    best = g.op("ReduceMax", [sim], axes=[1, 3], keepdims=0)  # [B, C]
    z = g.op("Add", [g.op("Mul", [best, g.const(sd["scale"])]), g.const(sd["bias"])])
    p = g.op("Sigmoid", [z])
    trained = np.asarray(head.trained_, bool)
    return p if trained.all() else g.op("Mul", [p, g.const(trained.astype(np.float32))])


def _floor32(t: float) -> float:
    """The largest float32 not above ``t`` (``x <= t`` iff ``x <=`` it, for every float32 ``x``)."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


class _Trees:
    """The attribute lists of a ``TreeEnsembleRegressor`` filled tree by tree."""

    def __init__(self):
        self.n = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes", "true", "false")}
        self.t = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
        self.next_id = 0
        self._index: dict[int, int] = {}  # node id of the current tree → position in the lists

    def start_tree(self) -> None:
        """Node ids restart at 0 in every tree."""
        self.next_id, self._index = 0, {}

    def node(self, tree: int, mode: str, feature: int = 0, value: float = 0.0) -> int:
        nid, self.next_id = self.next_id, self.next_id + 1
        for k, v in zip(("treeids", "nodeids", "featureids", "values", "modes", "true", "false"),
                        (tree, nid, feature, value, mode, 0, 0), strict=True):  # fmt: skip
            self.n[k].append(v)
        self._index[nid] = len(self.n["nodeids"]) - 1
        return nid

    def link(self, nid: int, true: int, false: int) -> None:
        idx = self._index[nid]
        self.n["true"][idx], self.n["false"][idx] = true, false

    def add(self, tree: int, node: dict, target: int) -> int:
        """Emit ``node`` (LightGBM ``dump_model`` JSON) and its subtree; returns its node id."""
        if "leaf_value" in node:
            nid = self.node(tree, "LEAF")
            for k, v in zip(("treeids", "nodeids", "ids", "weights"),
                            (tree, nid, target, float(node["leaf_value"])), strict=True):  # fmt: skip
                self.t[k].append(v)
            return nid
        if node.get("decision_type", "<=") != "<=":
            raise ValueError(
                f"LightGBM split {node.get('decision_type')!r} (categorical) has no ONNX form here"
            )
        f, t = int(node["split_feature"]), float(node["threshold"])
        zero_left = 0.0 <= t
        if node.get("missing_type") == "Zero" and bool(node["default_left"]) != zero_left:
            eq = self.node(tree, "BRANCH_EQ", f, 0.0)  # x == 0 goes the default way, as in LightGBM
            default = self.add(tree, node["left_child" if node["default_left"] else "right_child"], target)
            self.link(eq, default, self._split(tree, node, f, t, target))
            return eq
        return self._split(tree, node, f, t, target)

    def _split(self, tree: int, node: dict, f: int, t: float, target: int) -> int:
        nid = self.node(tree, "BRANCH_LEQ", f, _floor32(t))
        self.link(
            nid, self.add(tree, node["left_child"], target), self.add(tree, node["right_child"], target)
        )
        return nid


def _lgbm(g: Graph, head, x: str) -> str:
    trained = np.asarray(head.trained_, bool)
    C = len(trained)
    if head.booster_ is None:
        raw = g.op("Mul", [g.op("ReduceSum", [x, g.const(np.array([1], np.int64))], keepdims=1),
                           g.const(np.zeros(C, np.float32))])  # fmt: skip  # [B, C] of zeros
    else:
        dump = head.booster_.dump_model()
        cls = np.flatnonzero(trained)
        K = int(dump["num_tree_per_iteration"])
        if K != len(cls):
            raise ValueError(
                f"the booster has {K} trees per iteration but the head trained {len(cls)} classes"
            )
        trees = _Trees()
        for info in dump["tree_info"]:
            trees.start_tree()
            tid = int(info["tree_index"])
            trees.add(tid, info["tree_structure"], int(cls[tid % K]))
        raw = g.op(
            "TreeEnsembleRegressor", [x], "raw", domain="ai.onnx.ml", n_targets=C, aggregate_function="SUM",
            post_transform="NONE", nodes_treeids=trees.n["treeids"], nodes_nodeids=trees.n["nodeids"],
            nodes_featureids=trees.n["featureids"], nodes_values=trees.n["values"],
            nodes_modes=trees.n["modes"], nodes_truenodeids=trees.n["true"],
            nodes_falsenodeids=trees.n["false"], nodes_missing_value_tracks_true=[0] * len(trees.n["modes"]),
            target_treeids=trees.t["treeids"], target_nodeids=trees.t["nodeids"], target_ids=trees.t["ids"],
            target_weights=trees.t["weights"],
        )  # fmt: skip
    return _untrained(g, head, g.op("Sigmoid", [raw]))


__all__ = ["ML_OPSET", "OPSET", "Graph", "head_nodes"]
