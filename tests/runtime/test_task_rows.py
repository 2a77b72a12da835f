"""runtime.task_rows: a batch's rows summed in task order, one native call for every output.

The expected values are plain Python loops over the tasks (float32 or float64 adds, one
task after another), so the sums must match them bit for bit, not just closely."""
import numpy as np
import pytest

from metacc.runtime.task_rows import sum_rows, task_reduce


def _in_order(rows: np.ndarray) -> np.ndarray:
    """rows[0] + rows[1] + ... added one task after another, in the rows' dtype."""
    acc = rows[0].copy()
    for r in rows[1:]:
        acc = (acc + r).astype(rows.dtype)
    return acc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_tasks", [1, 3, 25])
def test_every_output_summed_or_averaged_in_task_order(dtype, n_tasks):
    rng = np.random.default_rng(n_tasks)
    sizes = [1, 40, 7, 1600]
    means = [True, False, True, True]
    # magnitudes from 1e-3 to 1e3: adds in another order would round differently
    outs = [(rng.standard_normal((n_tasks, s)) * 10.0 ** rng.integers(-3, 4, (n_tasks, s))).astype(dtype)
            for s in sizes]
    rows = np.concatenate([o.ravel() for o in outs])       # output after output
    got = task_reduce(rows, n_tasks, np.array(sizes, np.int64), np.array(means))
    assert got.dtype == dtype and got.shape == (sum(sizes),)
    at = 0
    for o, s, m in zip(outs, sizes, means):
        want = _in_order(o)
        if m:
            want = want / dtype(n_tasks)
        np.testing.assert_array_equal(got[at:at + s], want)
        at += s


def test_sum_rows_is_the_entrys_sum_for_one_output():
    rows = np.random.default_rng(0).standard_normal((9, 4, 5)).astype(np.float32)
    got = sum_rows(rows)
    np.testing.assert_array_equal(got, _in_order(rows.reshape(9, -1)))
    np.testing.assert_array_equal(sum_rows(rows[:, 0, 0].copy()), _in_order(rows[:, 0, :1].copy()))


def test_batched_entry_means_match_the_per_task_rows(tmp_path):
    """The batched entry's means (one rows buffer, task_reduce) against its own per-task
    rows (ENTRY_ROWS), averaged here in task order: equal to the bit."""
    import metacc
    src = """
params P { w: f64[3, 2] = he_normal  b: f64[2] = zeros }
task T { support: (x: f64[k, 3], y: f64[k, 2]) }
fn loss(p: P, x: f64[n, 3], y: f64[n, 2]) -> f64 { return mean((x @ p.w + p.b - y) ^ 2) }
meta m(theta: P, t: T) -> (l: f64, s: f64) {
    return loss(theta, t.support.x, t.support.y), sum(theta.w)
}
"""
    mod = metacc.compile(src, cache_dir=tmp_path)
    rng = np.random.default_rng(1)
    theta = mod.P.init(seed=0)
    tasks = {"support": {"x": rng.standard_normal((11, 4, 3)), "y": rng.standard_normal((11, 4, 2))}}
    (l, s), g = mod.m.value_and_grad(theta, tasks)
    k = mod.m.kernel("grad", mod.m._wrt(None))
    flat, _ = mod.m._flatten(mod.m._bind((theta, tasks), {}))
    rows = k.module().ENTRY_ROWS(*flat)
    assert l == _in_order(rows[0][:, None])[0] / 11
    np.testing.assert_array_equal(g["w"], _in_order(rows[2].reshape(11, -1)).reshape(3, 2) / 11)
    np.testing.assert_array_equal(g["b"], _in_order(rows[3]) / 11)
