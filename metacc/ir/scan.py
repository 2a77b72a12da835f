"""The layout of a scan equation, read in one place.

    operands   consts + carry + xs      (each xs stacked on axis 0, `length` rows)
    results    carry + ys               (each ys stacked on axis 0)
    body       consts + carry + one row of each xs  ->  carry + one row of each ys

The two counts are the eqn's params `n_consts` and `n_carry`. Every pass, rule
and backend slices through `ScanLayout` instead of by hand, and a pass that
changes a scan builds the new equation with `rebuilt`, so the counts always
agree with the lists they describe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from metacc.ir.core import Eqn, Func


@dataclass(frozen=True, slots=True)
class ScanLayout:
    n_consts: int
    n_carry: int

    @staticmethod
    def of(e: Eqn) -> ScanLayout:
        return ScanLayout(e.params["n_consts"], e.params["n_carry"])

    # -- inputs: the scan's operands and its body's inputs have the same layout

    def split_ins(self, ins: Sequence) -> tuple[tuple, tuple, tuple]:
        """(consts, carry, xs) of an input list."""
        nc, nk = self.n_consts, self.n_carry
        return tuple(ins[:nc]), tuple(ins[nc:nc + nk]), tuple(ins[nc + nk:])

    def consts(self, ins: Sequence) -> tuple:
        return tuple(ins[:self.n_consts])

    def carry(self, ins: Sequence) -> tuple:
        return tuple(ins[self.n_consts:self.n_consts + self.n_carry])

    def xs(self, ins: Sequence) -> tuple:
        return tuple(ins[self.n_consts + self.n_carry:])

    def carry_in(self, j: int) -> int:
        """The input position of carry j."""
        return self.n_consts + j

    def is_const(self, i: int) -> bool:
        return i < self.n_consts

    def is_carry(self, i: int) -> bool:
        return self.n_consts <= i < self.n_consts + self.n_carry

    def is_xs(self, i: int) -> bool:
        return i >= self.n_consts + self.n_carry

    # -- outputs: the scan's results and its body's outputs (ys stacked, or one row)

    def split_outs(self, outs: Sequence) -> tuple[tuple, tuple]:
        """(carry, ys) of an output list."""
        return tuple(outs[:self.n_carry]), tuple(outs[self.n_carry:])

    def is_ys(self, j: int) -> bool:
        """Whether output j is a stacked (per-iteration) output rather than a carry."""
        return j >= self.n_carry


def rebuilt(e: Eqn, ins: Sequence, outs: Sequence, body: Func, n_consts: int | None = None,
            n_carry: int | None = None, **params) -> Eqn:
    """The scan e with new operands, results and body (and counts, where they changed)."""
    layout = ScanLayout.of(e)
    counts = {"n_consts": layout.n_consts if n_consts is None else n_consts,
              "n_carry": layout.n_carry if n_carry is None else n_carry}
    return Eqn("scan", tuple(ins), tuple(outs), {**e.params, **params, "body": body, **counts}, e.span)
