"""The fuzzer in CI: a bounded campaign (300 programs) must find no crash.

A crash is anything but acceptance or a MetaccError that says where
(tests/fuzz/oracle.py). The crash classes issue 9's front-end work fixed keep
their names (oracle.FRONT) so a listing says which class came back.
The long campaign: `python -m tests.fuzz.run --count 20000 --seed 0` (docs/fuzzing.md).
"""
from __future__ import annotations

import pytest

from metacc.errors import MetaccError, Source, Span
from tests.fuzz.campaign import Case, case, run_campaign
from tests.fuzz.oracle import _located, classify, evaluate

CI_COUNT = 300


@pytest.fixture(scope="module")
def campaign():
    return run_campaign(CI_COUNT, seed=0, jobs=2, timeout=10.0, kernel_rate=0.1)


def _listing(crashes) -> str:
    out = []
    for cls, c, res in crashes:
        out.append(f"--- {c.id} [{cls}] ({c.generator} {c.detail}) at {res.get('stage')}: {res.get('message')}\n"
                   + c.text[:1500])
    return "\n".join(out)


def test_bounded_campaign_finds_no_crash(campaign):
    assert campaign.count == CI_COUNT
    crashes = list(campaign.crashes)
    assert not crashes, f"{len(crashes)} crashing programs:\n{_listing(crashes)}"
    # the campaign reaches every stage: programs that check, errors, and built kernels
    assert campaign.outcomes.get("ok", 0) >= 20
    assert campaign.outcomes.get("error", 0) >= 100
    assert campaign.kernels_built >= 10
    assert set(campaign.by_generator) == {"grammar", "token", "semantic"}


def test_cases_are_a_function_of_the_seed():
    a, b = case(7, 123), case(7, 123)
    assert a.text == b.text and a.kernels == b.kernels
    assert case(7, 124).text != a.text
    assert {case(0, i).generator for i in range(3)} == {"grammar", "token", "semantic"}


def test_runner_survives_a_hang_and_a_dead_worker():
    ok = "params P { w: f32[2] }\nfn f(p: P) -> f32 { return sum(p.w) }\n"
    cases = [Case(0, 0, "grammar", ok, True), Case(0, 1, "grammar", ok, False, selftest="hang"),
             Case(0, 2, "grammar", ok, False, selftest="die"), Case(0, 3, "grammar", ok, True)]
    rep = run_campaign(0, cases=cases, timeout=1.0)
    assert rep.count == 4
    assert rep.outcomes == {"ok": 2, "crash": 2}
    (_, _, hang), (_, _, died) = [(cls, c, r) for cls, c, r in rep.crashes]
    assert hang["exc"] == "hang" and "tests/fuzz/worker.py" in hang["dump"]   # faulthandler said where
    assert died["exc"] == "worker died"


def test_oracle_wants_a_place_in_every_message():
    text = "fn f(x: f32) -> f32 { return x }\n"
    src = Source("fuzz.meta", text)
    assert _located(MetaccError("bad", Span(src, 1, 30)), text, set()) is None
    assert "no file:line:col" in _located(MetaccError("bad"), text, set())
    assert _located(MetaccError("cannot differentiate `f`"), text, {"f"}) is None
    assert "outside the program" in _located(MetaccError("bad", Span(src, 9, 1)), text, set())


def test_oracle_outcomes():
    assert evaluate("fn f(x: f32) -> f32 { return x * 2 }\n", True)["outcome"] == "ok"
    res = evaluate("fn f(x: f32) -> f32 { return y }\n", False)
    assert res["outcome"] == "error" and "y" in res["message"]
    res = evaluate("fn f(x: f32[3]) -> f32[3] { return x }\n", True)     # grad of a non-scalar fn
    assert res["outcome"] in ("ok", "crash")
    if res["outcome"] == "crash":
        assert classify(res, "") == "front:grad-nonscalar"
