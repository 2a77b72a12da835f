"""The few-shot classification demo (examples/fewshot_demo.py).

Checked: the program the demo compiles (its filter count and the baseline's width
rewritten, and nothing else), the flags, the test-time adaptation rule against NumPy on a
tiny linear stand-in for the network, and a tiny end-to-end run (2 meta-iterations, 3 test
episodes) that writes every file. That run compiles the demo's conv kernels (second-order
MAML through four conv blocks among them) at the demo's default filter count, so that a
cache warmed by `python3 examples/fewshot_demo.py` serves it; cold, about a minute here.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from metacc.frontend import load_source
from tests.e2e.test_drivers import load_driver


@pytest.fixture(scope="module")
def demo():
    return load_driver("fewshot_demo")


def _shape(program, group, field):
    return tuple(next(f for f in program.groups[group].fields if f.path == field).type.shape)


def test_program_rewrites_only_the_filter_count_and_the_classifier_width(demo):
    original = demo.PROGRAM.read_text()
    code = "\n".join(line.split("#")[0] for line in original.splitlines())     # declarations, not comments
    # every filter-count literal is a channel dim: in a Body/Head/Classifier shape or the features' result
    for line in code.splitlines():
        if re.search(rf"\b{demo.PROGRAM_FILTERS}\b", line):
            assert re.search(r"(w\d|g\d|b\d|w): f32\[|-> f32\[n, \d+\]|f: f32\[n, \d+\]", line), line
    text = demo.program_text(4, 7)
    assert not re.search(rf"\b({demo.PROGRAM_FILTERS}|{demo.PROGRAM_CLASSES})\b",
                         "\n".join(line.split("#")[0] for line in text.splitlines()))
    program = load_source(text, "conv4.meta")
    assert _shape(program, "Body", "w1") == (3, 3, 1, 4) and _shape(program, "Body", "w4") == (3, 3, 4, 4)
    assert _shape(program, "Body", "g2") == (4,)
    assert _shape(program, "Head", "w") == (4, 5) and _shape(program, "Classifier", "w") == (4, 7)
    assert set(program.functions) >= {"maml", "fomaml", "anil", "r2d2", "pretrain_ce", "ce",
                                                   "head_ce", "features"}
    # the same text otherwise: 28x28 images and 5 ways untouched
    assert text.count("28, 28, 1") == original.count("28, 28, 1")
    assert text.count("one_hot(t.support.y, 5)") == 1


def test_flags(demo):
    args = demo.parse([])
    assert args.test_episodes == 600 and args.methods == list(demo.METHODS)
    assert args.pretrain_iterations == 8 * args.iterations
    assert demo.parse(["--methods", "ANIL, R2-D2"]).methods == ["ANIL", "R2-D2"]
    with pytest.raises(SystemExit):
        demo.parse(["--methods", "MAML,protonets"])


class _LinearModule:
    """features(p, x) = flattened x @ p["w"]: the demo's adaptation code run on a network whose
    gradients NumPy can write down, so the rule can be checked without compiling conv kernels."""

    def __init__(self, d):
        self.d = d

    def features(self, p, x):
        return x.reshape(len(x), -1) @ p["w"]

    class _Grad:
        def __init__(self, fn):
            self.grad = fn

    @property
    def ce(self):
        def grad(p, h, x, y):
            fx = x.reshape(len(x), -1)
            z = self.features(p, x) @ h["w"] + h["b"]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            dz = (e / e.sum(axis=1, keepdims=True) - np.eye(z.shape[1])[y]) / len(y)
            return {"w": fx.T @ (dz @ h["w"].T)}, {"w": self.features(p, x).T @ dz, "b": dz.sum(0)}
        return self._Grad(grad)

    @property
    def head_ce(self):
        def grad(h, f, y):
            z = f @ h["w"] + h["b"]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            dz = (e / e.sum(axis=1, keepdims=True) - np.eye(z.shape[1])[y]) / len(y)
            return {"w": f.T @ dz, "b": dz.sum(0)}
        return self._Grad(grad)


def _loss(p, h, x, y):
    z = x.reshape(len(x), -1) @ p["w"] @ h["w"] + h["b"]
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def test_adaptation_lowers_the_support_loss_and_predicts_from_the_adapted_weights(demo):
    rng = np.random.default_rng(0)
    sx, qx = rng.normal(size=(5, 3, 3, 1)), rng.normal(size=(10, 3, 3, 1))
    sy = np.arange(5)
    p, h = {"w": rng.normal(size=(9, 6))}, {"w": rng.normal(size=(6, 5)) * 0.1, "b": np.zeros(5)}
    mod = _LinearModule(9)
    zero = {"w": np.zeros((6, 5)), "b": np.zeros(5)}
    maml = demo.Learner("MAML", "all", (p, h))
    pred = demo.adapt(mod, maml, zero, sx, sy, qx, 0.5, at=(0, 1, 3))
    assert set(pred) == {0, 1, 3}
    np.testing.assert_array_equal(pred[0], np.argmax(mod.features(p, qx) @ h["w"] + h["b"], axis=1))
    # three SGD steps by hand on the whole network
    q, g = dict(p), dict(h)
    losses = [_loss(q, g, sx, sy)]
    for _ in range(3):
        dq, dg = mod.ce.grad(q, g, sx, sy)
        q = {k: q[k] - 0.5 * dq[k] for k in q}
        g = {k: g[k] - 0.5 * dg[k] for k in g}
        losses.append(_loss(q, g, sx, sy))
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(pred[3], np.argmax(mod.features(q, qx) @ g["w"] + g["b"], axis=1))
    # ANIL moves only the head; the baseline starts from the zero head: chance (all label 0) before
    anil = demo.adapt(mod, demo.Learner("ANIL", "head", (p, h)), zero, sx, sy, qx, 0.5, at=(2,))[2]
    g = dict(h)
    for _ in range(2):
        dg = mod.head_ce.grad(g, mod.features(p, sx), sy)
        g = {k: g[k] - 0.5 * dg[k] for k in g}
    np.testing.assert_array_equal(anil, np.argmax(mod.features(p, qx) @ g["w"] + g["b"], axis=1))
    base = demo.adapt(mod, demo.Learner("pretrained", "all", (p, {"w": None})), zero, sx, sy, qx, 0.5, at=(0, 1))
    assert (base[0] == 0).all()
    # R2-D2: the ridge solution W = Fs^T (Fs Fs^T + lam I)^-1 Y fits 1-shot support labels exactly
    ridge = demo.Learner("R2-D2", "ridge", (p, {"lam": 1e-6, "scale": 1.0, "shift": 0.0}))
    out = demo.adapt(mod, ridge, zero, sx, sy, sx, 0.5, at=(0, 10))
    np.testing.assert_array_equal(out[0], sy)
    np.testing.assert_array_equal(out[10], sy)


def test_tiny_run_writes_its_files(demo, tmp_path, capsys):
    results = demo.main(["--iterations", "2", "--meta-batch", "2", "--pretrain-batch", "8",
                         "--test-episodes", "3", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["data"] == "hershey-omniglot-standin" and saved["stand_in"] is True
    assert "not Omniglot" in out
    assert set(saved["accuracy"]) == set(demo.METHODS)
    for rows in saved["accuracy"].values():
        assert set(rows) == {"1-shot", "5-shot"}
        for row in rows.values():
            assert row["steps"] == list(demo.EVAL_AT) and len(row["mean"]) == len(row["ci95"]) == len(demo.EVAL_AT)
            assert all(0 <= m <= 1 for m in row["mean"]) and all(h >= 0 for h in row["ci95"])
            assert row["after 1 steps"][0] == row["mean"][1] and row["after 10 steps"][0] == row["mean"][-1]
    assert saved["config"]["test_episodes"] == 3 and saved["config"]["network"].startswith("Conv4, 16 filters")
    assert results["accuracy"] == saved["accuracy"]
    for name in ("results.json", "accuracy_vs_steps_1shot.png", "accuracy_vs_steps_5shot.png", "episodes.png"):
        assert f"wrote {tmp_path / name}" in out
    for png in ("accuracy_vs_steps_1shot.png", "accuracy_vs_steps_5shot.png", "episodes.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_dir_goes_to_the_omniglot_loader(demo, monkeypatch, tmp_path):
    seen = []

    class Stop(Exception):
        pass

    def fake(data_dir):
        seen.append(data_dir)
        raise Stop
    monkeypatch.setattr(demo, "fewshot_data", fake)
    with pytest.raises(Stop):
        demo.main(["--data", str(tmp_path), "--no-progress"])
    with pytest.raises(Stop):
        demo.main(["--no-progress"])
    assert seen == [tmp_path, None]      # a folder: Omniglot (metacc.runtime.data.fewshot_data); none: the stand-in
