"""The generated Numba source reads like code a person wrote: the adjoint of each
statement opens with a comment quoting it, outputs are named after what they are,
the workspace layout is one compact table, and no line is over 120 characters.
What the code computes is checked by every other backend and e2e test; here, that
the layout gives each buffer the offset it had and that folding lines changes
nothing Python compiles."""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

from metacc.cli import main

EX = Path(__file__).resolve().parents[2] / "examples"
MAML = str(EX / "sinusoid_maml.meta")


def _numba(capsys, path, fn, kernel) -> str:
    assert main(["show", str(path), "--fn", fn, "--kernel", kernel, "--stage", "numba"]) == 0
    return capsys.readouterr().out


def test_adjoint_comments_in_the_numba_source(capsys):
    for fn, kernel in (("mse", "grad"), ("maml", "meta_grad")):
        out = _numba(capsys, MAML, fn, kernel)
        for text, line in (("h = relu(x @ p.w1 + p.b1)", 20), ("h = relu(h @ p.w2 + p.b2)", 21),
                           ("return h @ p.w3 + p.b3", 22), ("return mean((mlp(p, x) - y) ^ 2)", 26)):
            assert f"# adjoint of: {text}   sinusoid_maml.meta:{line}\n" in out, (fn, line)
        if fn == "mse":     # the forward sweep comes first, with plain line comments
            assert out.index("# sinusoid_maml.meta:20") < out.index("# adjoint of:")


def test_outputs_are_named_after_what_they_are(capsys):
    grad = _numba(capsys, MAML, "mse", "grad")
    assert "def mse_grad(p_w1, p_b1, p_w2, p_b2, p_w3, p_b3, x, y, g_p_w1, g_p_b1, g_p_w2, g_p_b2," in grad
    meta = _numba(capsys, MAML, "maml", "meta_grad")
    head = meta[meta.index("def maml_grad("):meta.index("):", meta.index("def maml_grad("))]
    names = [a.strip() for a in head[len("def maml_grad("):].split(",")]
    assert names[names.index("alpha") + 1:names.index("alpha") + 8] == [
        "g_theta_w1", "g_theta_b1", "g_theta_w2", "g_theta_b2", "g_theta_w3", "g_theta_b3", "loss"]
    for src in (grad, meta):
        assert not re.search(r"\b(out|per_task)\d+\b", src)


def test_no_generated_line_is_over_120_characters(capsys):
    kernels = [(MAML, "mse", "grad"), (MAML, "maml", "meta_grad"),
               (EX / "imaml.meta", "imaml", "meta_grad"),               # DIAGNOSTICS with long advice
               (EX / "per_layer_rates.meta", "per_layer", "meta_grad")]  # a rotation of many carries
    for path, fn, kernel in kernels:
        for line in _numba(capsys, path, fn, kernel).splitlines():
            assert len(line) <= 120, (fn, line)


def _grad_ir():
    from metacc.frontend import load
    from metacc.kinds import default_wrt
    from metacc.pipeline import kernel_ir
    maml = load(MAML).functions["maml"]
    return kernel_ir(maml.ir, "meta_grad", default_wrt(maml))


def test_the_layout_table_gives_each_buffer_its_offset():
    """Buffers lie end to end per dtype, those of a fixed size first (at literal offsets),
    then the others, each group in the order planned: offsets computed here from the
    planned sizes must be those the table's code assigns."""
    from metacc.passes.inline import inline_calls
    from metacc.backend.lower import KernelWriter
    from metacc.backend.writer import Writer
    kw = KernelWriter(inline_calls(_grad_ir()))
    src, _, _ = kw.task("k", None)
    table = Writer(1)
    kw._layout(table)
    assert "\n".join(table.lines) in src
    layout = [line.strip() for line in table.lines if not line.strip().startswith("#")]
    assert 3 <= len(layout) < len(kw.slots.items) // 2          # a table, not a line per buffer
    dims = {"k": 7, "q": 11}
    scope = dict(dims)
    exec("\n".join(layout), {}, scope)
    end: dict[str, int] = {}
    fixed = [s for s in kw.slots.items if all(isinstance(d, int) for d in s.type.shape)]
    assert fixed and len(fixed) < len(kw.slots.items)
    for s in fixed + [s for s in kw.slots.items if s not in fixed]:
        size = math.prod(d if isinstance(d, int) else dims[d] for d in s.type.shape)
        assert scope[s.name] == end.get(s.type.dtype, 0), s.name
        end[s.type.dtype] = scope[s.name] + size
        if s in fixed:
            assert re.search(rf"(^|;\s+){s.name} = {scope[s.name]}(;|$)", "\n".join(layout), re.M), s.name
    sizes = kw.ws_sizes()
    for dt, total in end.items():
        assert eval(sizes[dt], {}, dict(dims)) == total


def test_folding_long_lines_changes_no_statement(monkeypatch):
    import metacc.backend.generate as generate
    folded = generate.lower(_grad_ir(), [False] * 6 + [True] * 4 + [False]).source
    monkeypatch.setattr(generate, "wrap_source", lambda text: text)
    flat = generate.lower(_grad_ir(), [False] * 6 + [True] * 4 + [False]).source
    assert max(map(len, flat.splitlines())) > 120 >= max(map(len, folded.splitlines()))
    assert ast.dump(ast.parse(folded)) == ast.dump(ast.parse(flat))


def test_folding_keeps_strings_and_brackets_whole():
    from metacc.backend.wrap import literal, wrap_line
    line = "    f(" + ", ".join([repr("a\\"), repr("it's, so"), "x" * 30, "y" * 30, "(z + 1) * " + "z" * 30,
                                 repr("b, c"), "w" * 20]) + ")"
    folded = wrap_line(line)
    assert len(folded) > 1 and all(len(piece) <= 120 for piece in folded)
    assert ast.dump(ast.parse("\n".join(folded).strip())) == ast.dump(ast.parse(line.strip()))
    advice = {"advice": "word " * 60, "tol": 1e-8}
    text = "\n".join(wrap_line(f"DIAGNOSTICS = [{literal(advice)}]"))
    assert max(map(len, text.splitlines())) <= 120
    namespace: dict = {}
    exec(text, namespace)
    assert namespace["DIAGNOSTICS"] == [advice]
