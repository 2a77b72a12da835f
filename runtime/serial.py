"""A checked Program as JSON, for the on-disk cache (instead of pickle).

Unpickling a file from a cache directory runs whatever callables the file
names; this format can only build the plain data classes listed in
`_CLASSES` (the IR and the program's declarations), by allocating them and
setting their declared fields: reading a file never calls any code of its
choosing. Object identity is kept (IR variables are compared by identity), so
shared objects are written once and referred to by number.

A value is a JSON scalar (None, bool, int, float, str) or one tagged object:
    {"t": [...]} tuple   {"l": [...]} list   {"d": [[k, v], ...]} dict
    {"c": "Class", "i": n, "f": {field: value}} an instance (first time)
    {"r": n} the instance numbered n again
"""
from __future__ import annotations

import dataclasses
import json
import math

from metacc.errors import Source, Span
from metacc.ir.core import Eqn, Func, Lit, Var
from metacc.ir.types import TensorType
from metacc.program import Arg, Field, Function, Init, ParamGroup, Program, TaskType

_CLASSES = {c.__name__: c for c in (Source, Span, Eqn, Func, Lit, Var, TensorType, Arg, Field, Function,
                                     Init, ParamGroup, Program, TaskType)}


def _fields(cls) -> tuple[str, ...]:
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return tuple(s for c in cls.__mro__ for s in getattr(c, "__slots__", ()))


_FIELDS = {name: _fields(cls) for name, cls in _CLASSES.items()}


class FormatError(ValueError):
    """The text is not a program written by `dumps`."""


def dumps(obj) -> str:
    """JSON text for `obj`; TypeError when it holds something this format does not carry
    (the caller then simply does not cache it)."""
    ids: dict[int, int] = {}
    keep = []                      # holds encoded objects alive, so their ids stay unique

    def enc(x):
        if x is None or isinstance(x, (bool, str)):
            return x
        if type(x) is int:
            return x
        if type(x) is float:
            if not math.isfinite(x):
                return {"x": repr(x)}          # 'inf', '-inf', 'nan': not JSON numbers
            return x
        if type(x) is tuple:
            return {"t": [enc(v) for v in x]}
        if type(x) is list:
            return {"l": [enc(v) for v in x]}
        if type(x) is dict:
            return {"d": [[enc(k), enc(v)] for k, v in x.items()]}
        name = type(x).__name__
        if _CLASSES.get(name) is not type(x):
            raise TypeError(f"cannot write a {type(x).__module__}.{type(x).__qualname__}")
        if id(x) in ids:
            return {"r": ids[id(x)]}
        ids[id(x)] = n = len(ids)
        keep.append(x)
        return {"c": name, "i": n, "f": {f: enc(getattr(x, f)) for f in _FIELDS[name]}}

    return json.dumps(enc(obj), separators=(",", ":"), allow_nan=False)


def loads(text: str):
    """The object `dumps` wrote; FormatError for anything else (never runs code)."""
    try:
        tree = json.loads(text)
    except ValueError as err:
        raise FormatError(f"not JSON: {err}") from None
    objs: dict[int, object] = {}

    def dec(v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if not isinstance(v, dict) or len(v) not in (1, 3):
            raise FormatError(f"unexpected value {str(v)[:40]}")
        if "t" in v:
            return tuple(dec(x) for x in _list(v["t"]))
        if "l" in v:
            return [dec(x) for x in _list(v["l"])]
        if "d" in v:
            out = {}
            for kv in _list(v["d"]):
                if not isinstance(kv, list) or len(kv) != 2:
                    raise FormatError("a dict item is not a [key, value] pair")
                k = dec(kv[0])
                try:
                    out[k] = dec(kv[1])
                except TypeError:
                    raise FormatError("an unhashable dict key") from None
            return out
        if "x" in v:
            if v["x"] not in ("inf", "-inf", "nan"):
                raise FormatError(f"unexpected float {v['x']!r}")
            return float(v["x"])
        if "r" in v:
            if v["r"] not in objs:
                raise FormatError(f"a reference to object {v['r']!r} before it is defined")
            return objs[v["r"]]
        name, n, fields = v.get("c"), v.get("i"), v.get("f")
        cls = _CLASSES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise FormatError(f"unknown class {name!r}")
        if not isinstance(n, int) or n in objs or not isinstance(fields, dict) \
                or set(fields) != set(_FIELDS[name]):
            raise FormatError(f"a malformed {name}")
        obj = cls.__new__(cls)               # no __init__: set the declared fields only
        objs[n] = obj
        for f in _FIELDS[name]:
            object.__setattr__(obj, f, dec(fields[f]))
        return obj

    try:
        return dec(tree)
    except RecursionError:
        raise FormatError("nested too deeply") from None


def _list(v) -> list:
    if not isinstance(v, list):
        raise FormatError("expected a list")
    return v
