"""The CUDA target's edges: what it refuses (unsupported primitives, device arrays
on the CPU target, unknown targets), the device module's names, readable source."""
from __future__ import annotations

import numpy as np
import pytest

import metacc
from metacc.backend.cuda.source import DEVICE_NAMES
from metacc.errors import MetaccError
from tests.cuda.programs import ROOT, need_simulator, p1_text

cuda = need_simulator()

SOLVE = """
fn fit(a: f64[n, n], b: f64[n, 1]) -> f64 {
    return sum(solve(a, b))
}
"""


def test_an_unsupported_primitive_names_itself_and_the_target():
    mod = metacc.compile(SOLVE, target="cuda")
    a = np.eye(3) * 2.0
    with pytest.raises(MetaccError, match="cuda target does not support the primitive 'solve'") as err:
        mod.fit(a, np.ones((3, 1)))
    assert "target='cpu'" in str(err.value)


def test_device_arrays_on_the_cpu_target_are_refused():
    mod = metacc.compile(SOLVE)
    with pytest.raises(MetaccError, match="device array was passed to a CPU module"):
        mod.fit(cuda.to_device(np.eye(3)), np.ones((3, 1)))


def test_unknown_target():
    with pytest.raises(MetaccError, match="unknown target 'tpu'"):
        metacc.compile(SOLVE, target="tpu")


def test_the_device_module_has_every_name_generated_code_imports():
    from metacc.backend.cuda import device
    assert [n for n in DEVICE_NAMES if not hasattr(device, n)] == []


def test_cuda_source_is_readable():
    mod = metacc.compile(p1_text(), dtype="f64", target="cuda")
    src = mod.maml.source("grad")
    assert "@cuda.jit(device=True)" in src and "def maml_grad_tasks(" in src and "cuda.grid(1)" in src
    assert "njit" not in src and "link(" not in src
    assert max(len(line) for line in src.splitlines()) <= 120
    compile(src, "<cuda source>", "exec")


def test_show_stage_cuda(capsys):
    from metacc.cli import main
    path = str(ROOT / "examples" / "sinusoid_maml.meta")
    assert main(["show", path, "--fn", "maml", "--kernel", "meta_grad", "--stage", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "def maml_grad_tasks(" in out and "def maml_grad_batched(" in out and "launch.reduce(" in out
    assert "# adjoint of: " in out                      # the task body keeps the CPU stage's comments
    assert max(len(line) for line in out.splitlines()) <= 120
    assert main(["show", path, "--fn", "mse", "--stage", "cuda"]) == 0
    assert "def mse_one(" in capsys.readouterr().out


def test_float32_kernels_stay_float32():
    from tests.cuda.programs import interp_mean, leaves, sinusoid_batch
    mod = metacc.compile(p1_text(), target="cuda")          # the program's own f32
    rng = np.random.default_rng(6)
    theta = mod.Net.init(seed=3)
    t = sinusoid_batch(rng, 2, 3, 2)
    t = {s: {f: a.astype(np.float32) for f, a in part.items()} for s, part in t.items()}
    loss, g = mod.maml.value_and_grad(theta, t)
    assert isinstance(loss, np.float32) and all(g[n].dtype == np.float32 for n in g)
    want = interp_mean(mod.program.functions["maml"].ir, "meta_grad", list(range(6)), leaves(theta),
                       leaves(t), [np.float32(0.01)], 2)
    np.testing.assert_allclose(loss, want[0], rtol=1e-5)
    for n, w in zip(theta, want[1:]):
        np.testing.assert_allclose(g[n], w, rtol=1e-4, atol=1e-6)


ACCURACY = """
fn accuracy(x: f64[n, 3], y: f64[n, 3]) -> f64 {
    return mean(where(argmax(x, axis=1) == argmax(y, axis=1), 1.0, 0.0))
}
"""


def test_argmax_matches_the_interpreter():
    from metacc.interp import evaluate
    from metacc.pipeline import kernel_ir
    mod = metacc.compile(ACCURACY, target="cuda")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(9, 3))
    y[:4] = x[:4]                                       # some rows agree
    want = evaluate(kernel_ir(mod.program.functions["accuracy"].ir, "forward"), [x, y])[0]
    assert 4 / 9 <= want < 1
    assert mod.accuracy(x, y) == want


def test_the_docs_example_runs():
    import re
    text = (ROOT / "docs" / "cuda.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    scope: dict = {}
    exec(compile(code.replace('"examples/', f'"{ROOT}/examples/'), "docs/cuda.md", "exec"), scope)
    assert not isinstance(scope["theta"]["w1"], np.ndarray) and scope["theta"]["w1"].shape == (1, 40)


def test_cpu_and_cuda_kernels_are_cached_apart():
    text = p1_text()
    cpu, gpu = metacc.compile(text, dtype="f64"), metacc.compile(text, dtype="f64", target="cuda")
    assert cpu.maml.kernel("forward").source_key != gpu.maml.kernel("forward").source_key
    assert "numba-cuda" in gpu.maml.kernel("forward").module().__doc__      # loaded: the CUDA module
    assert "@njit" in cpu.maml.source() and "@cuda.jit" in gpu.maml.source()
