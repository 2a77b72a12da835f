"""What .meta expressions evaluate to while the checker lowers them to IR.

  Tensor    an IR atom (var or literal) of a definite type
  Number    a literal or compile-time number; it takes the dtype of whatever
            it meets (`0.5 * x` is a literal of x's dtype), so f32 code never
            picks up f64 constants
  DimValue  a dimension named in a signature (`n` of `x: f32[n, 1]`)
  Tree      a value of a parameter group: one Tensor per field
  Record    a task value, or one of its sub-records (`t.support`)
  Poison    a value whose computation already failed and was reported;
            whatever uses it is skipped without a second message

Every value remembers where it came from (`origin`) and how to name it in
messages (`desc`), so a shape error can point at both operands' sources.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from metacc.errors import Span
from metacc.ir.core import Atom
from metacc.ir.types import Dim, TensorType
from metacc.program import ParamGroup, TaskType


@dataclass(frozen=True, slots=True, eq=False)
class Tensor:
    atom: Atom
    origin: Span | None
    desc: str

    @property
    def type(self) -> TensorType:
        return self.atom.type


@dataclass(frozen=True, slots=True, eq=False)
class Number:
    value: int | float | bool
    origin: Span | None
    desc: str

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int) and not isinstance(self.value, bool)


@dataclass(frozen=True, slots=True, eq=False)
class DimValue:
    dim: Dim
    origin: Span | None
    desc: str


@dataclass(frozen=True, slots=True, eq=False)
class Tree:
    group: ParamGroup
    leaves: tuple[Tensor, ...]          # in the group's field order
    origin: Span | None
    desc: str

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.group.fields)

    def field(self, name: str) -> Tensor | None:
        return dict(zip(self.paths, self.leaves)).get(name)


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    task: TaskType
    prefix: str                          # '' for the whole task, 'support' for t.support
    leaves: tuple[Tensor, ...]           # every leaf under prefix, in the task's order
    origin: Span | None
    desc: str

    @property
    def paths(self) -> tuple[str, ...]:
        """Leaf paths relative to this record ('x', 'y' for t.support)."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return tuple(f.path[cut:] for f in self.task.fields if _under(f.path, self.prefix))

    def member(self, name: str) -> "Tensor | Record | None":
        paths = self.paths
        if name in paths:
            return self.leaves[paths.index(name)]
        sub = [(p, leaf) for p, leaf in zip(paths, self.leaves) if p.startswith(name + ".")]
        if not sub:
            return None
        prefix = f"{self.prefix}.{name}" if self.prefix else name
        return Record(self.task, prefix, tuple(leaf for _, leaf in sub), self.origin, f"{self.desc}.{name}")

    def members(self) -> list[str]:
        return list(dict.fromkeys(p.split(".", 1)[0] for p in self.paths))


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + ".")


@dataclass(frozen=True, slots=True, eq=False)
class Results:
    """The results of a function with a tuple result (`-> (loss: f32, acc: f32)`): what a call of
    it gives, to be destructured (`loss, acc = g(...)`), and what its `return a, b` gives."""
    values: tuple
    names: tuple[str, ...]
    origin: Span | None
    desc: str


class Poison:
    """The value of an expression whose error was already reported."""

    def __repr__(self) -> str:
        return "<poison>"


POISON = Poison()

Value = Tensor | Number | DimValue | Tree | Record | Results | Poison


def leaves(value) -> tuple[Tensor, ...]:
    """The tensors a structured value stands for (a Tensor is its own single leaf)."""
    if isinstance(value, Tensor):
        return (value,)
    if isinstance(value, (Tree, Record)):
        return value.leaves
    if isinstance(value, Results):
        return tuple(leaf for v in value.values for leaf in leaves(v))
    raise TypeError(value)


def leaf_paths(value) -> tuple[str, ...]:
    if isinstance(value, Tensor):
        return ("",)
    return value.paths


def rebuild(value, new_leaves, origin: Span | None = None, desc: str | None = None):
    """A value of the same structure as `value` with other leaves."""
    new_leaves = tuple(new_leaves)
    origin = origin if origin is not None else value.origin
    desc = desc if desc is not None else value.desc
    if isinstance(value, Tensor):
        (leaf,) = new_leaves
        return replace(leaf, origin=origin, desc=desc)
    return replace(value, leaves=new_leaves, origin=origin, desc=desc)


def kind_text(value) -> str:
    """How a value's type reads in messages."""
    if isinstance(value, Tensor):
        return str(value.type)
    if isinstance(value, Number):
        return "a bool literal" if isinstance(value.value, bool) else "a number"
    if isinstance(value, DimValue):
        return f"the dimension {value.dim}"
    if isinstance(value, Tree):
        return value.group.name
    if isinstance(value, Record):
        return f"task {value.task.name}" + (f" (.{value.prefix})" if value.prefix else "")
    if isinstance(value, Results):
        return f"{len(value.values)} results ({', '.join(value.names)})"
    return "an erroneous value"


def structure(value) -> tuple:
    """What must stay the same for a value carried around a loop."""
    if isinstance(value, Tensor):
        return ("tensor", value.type)
    if isinstance(value, Tree):
        return ("tree", value.group.name, tuple(t.type for t in value.leaves))
    if isinstance(value, Record):
        return ("record", value.task.name, value.prefix, tuple(t.type for t in value.leaves))
    return (type(value).__name__,)
