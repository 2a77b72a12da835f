"""What the front end hands to everything after it: a checked, typed program.

A `Program` holds the parameter groups, task types and functions of one .meta
source. Each `Function` has its IR (`Func`, a closed SSA function over flat
tensors) and a signature saying how the flat IR inputs and outputs group into
the user's trees: a parameter group argument `theta: Net` becomes the IR inputs
`theta.w1, theta.b1, ...` in the group's field order; a task `t: Sinusoid`
becomes `t.support.x, t.support.y, t.query.x, t.query.y`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from metacc.errors import Source, Span
from metacc.ir.core import Func
from metacc.ir.types import TensorType


@dataclass(frozen=True, slots=True)
class Init:
    """A parameter initialiser: kind in he_normal, glorot_normal, normal, uniform, zeros, ones, const."""
    kind: str
    args: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Field:
    path: str               # 'w1', or 'support.x' for tasks
    type: TensorType
    init: Init | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class ParamGroup:
    name: str
    fields: tuple[Field, ...]
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class TaskType:
    name: str
    fields: tuple[Field, ...]      # flattened: 'support.x', 'support.y', 'query.x', ...
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Arg:
    """One user-level argument (or result) and the flat IR values it stands for.

    kind: 'params' (a parameter group, differentiated by default), 'task',
    'tensor' (any typed array or scalar) or 'key' (a random key).
    """
    name: str
    kind: str
    type_name: str                  # 'Net', 'Sinusoid', 'f32[n, 1]', 'key'
    leaves: tuple[Field, ...]       # for a tensor: one leaf with path ''
    default: float | None = None
    span: Span | None = None

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    kind: str                       # 'fn' or 'meta'
    args: tuple[Arg, ...]
    result: Arg                     # the (first) result: name '' (or its declared name in a tuple result)
    ir: Func
    span: Span | None = None
    # the other results of `-> (loss: f32, acc: f32)`, after `result`: their leaves are the IR's
    # last outputs (ir.n_aux of them), computed beside the value and never differentiated
    aux: tuple[Arg, ...] = ()

    @property
    def results(self) -> tuple[Arg, ...]:
        return (self.result,) + self.aux

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)

    def leaf_slices(self) -> dict[str, slice]:
        """Which IR inputs belong to each argument."""
        out, k = {}, 0
        for a in self.args:
            out[a.name] = slice(k, k + a.n_leaves)
            k += a.n_leaves
        return out


@dataclass
class Program:
    source: Source
    groups: dict[str, ParamGroup] = field(default_factory=dict)
    tasks: dict[str, TaskType] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
