"""Generator (a): random programs built from grammar/meta.lark's constructs.

Expressions are generated *typed*: `expr(ty)` returns text whose type should be
`ty` (an element type and a shape of whole numbers and dim symbols), built from
the variables in scope, the builtins, operators, user functions, grad(...) and
argmin. So most programs check and reach the kernel stage; a per-program
`noise` level makes some choices ignore the types (wrong shapes, unknown
names, stray literals), so the checker's error paths are exercised too.
Everything is drawn from one `random.Random`, so a program is a function of
its seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

UNARY = ["exp", "log", "log1p", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus", "sin", "cos", "sign",
         "step", "stop_gradient", "detach"]
INITS_ANY = ["zeros", "ones", "normal(0.1)", "uniform(-1, 1)", "const(0.5)", "const(-2)", "normal(1e-3)"]
INITS_2D = ["he_normal", "glorot_normal"]


@dataclass(frozen=True)
class Ty:
    dtype: str
    shape: tuple = ()

    def text(self) -> str:
        return self.dtype + (f"[{', '.join(map(str, self.shape))}]" if self.shape else "")

    @property
    def is_float(self) -> bool:
        return self.dtype in ("f32", "f64")


@dataclass
class Group:
    name: str
    fields: dict[str, Ty]


@dataclass
class FnSig:
    name: str
    kind: str
    args: list              # (name, kind, Ty | Group | str)
    result: object          # Ty or Group


@dataclass
class Scope:
    vars: dict = field(default_factory=dict)     # name -> Ty | Group | 'key' | 'task:<path>'
    dims: list = field(default_factory=list)      # dim symbols usable here
    ints: list = field(default_factory=list)      # names of int constants


def literal(rng: random.Random, big: float = 0.05) -> str:
    """A number literal; now and then an extreme one (huge, tiny, overflowing, many digits)."""
    if rng.random() < big:
        return rng.choice(["1e30", "1e39", "1e308", "1e999", "123456789012345678901234567890", "1e-45",
                           "1e-400", "0.0", "0", ".5", "3.", "2.5E3", "340282366920938463463374607431768211456",
                           "99999999999999999999", "0.000000000000000000001"])
    return rng.choice(["0.5", "2", "1", "0.1", "3", "0.01", "1.5", "4", "0.25", "10", "1e-3", "2.0"])


class ProgramGen:
    def __init__(self, rng: random.Random, noise: float = 0.0, max_depth: int = 4):
        self.rng = rng
        self.noise = noise
        self.max_depth = max_depth
        self.dtype = "f64" if rng.random() < 0.15 else "f32"
        self.pool = sorted(rng.sample([1, 2, 3, 4, 5, 8, 16], 3))
        if rng.random() < 0.03:
            self.pool.append(rng.choice([0, 100000, 2 ** 31, 10 ** 8]))
        self.groups: dict[str, Group] = {}
        self.fns: list[FnSig] = []
        self.counter = 0

    # ---- helpers ------------------------------------------------------------------
    def fresh(self, base: str = "v") -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def dim(self, scope: Scope, symbolic: float = 0.4):
        if scope.dims and self.chance(symbolic):
            return self.rng.choice(scope.dims)
        return self.rng.choice(self.pool)

    def rand_ty(self, scope: Scope, dtype: str | None = None, max_rank: int = 2) -> Ty:
        rank = self.rng.choice(range(max_rank + 1))
        return Ty(dtype or self.dtype, tuple(self.dim(scope) for _ in range(rank)))

    def noisy(self) -> bool:
        return self.noise > 0 and self.chance(self.noise)

    def atoms(self, scope: Scope, ty: Ty) -> list[str]:
        out = []
        for name, t in scope.vars.items():
            if t == ty:
                out.append(name)
            elif isinstance(t, Group):
                out += [f"{name}.{f}" for f, ft in t.fields.items() if ft == ty]
            elif isinstance(t, tuple) and t[0] == "task":
                out += [f"{name}.{p}" for p, ft in t[1].items() if ft == ty]
        return out

    def shapes_in_scope(self, scope: Scope):
        for name, t in scope.vars.items():
            if isinstance(t, Ty):
                yield t
            elif isinstance(t, Group):
                yield from t.fields.values()
            elif isinstance(t, tuple) and t[0] == "task":
                yield from t[1].values()

    # ---- expressions -----------------------------------------------------------------
    def expr(self, scope: Scope, ty: Ty, depth: int = 0) -> str:
        if self.noisy():
            return self.wild(scope, depth)
        atoms = self.atoms(scope, ty)
        if depth >= self.max_depth or self.chance(0.25 + 0.1 * depth):
            if atoms and self.chance(0.85):
                return self.rng.choice(atoms)
            return self.leaf(scope, ty)
        options = [self.unary, self.binary, self.scalar_mix, self.power, self.select, self.reduce_to]
        if ty.shape:
            options += [self.bias, self.index_to]
        if len(ty.shape) == 2:
            options += [self.matmul, self.matmul, self.transposed, self.softmaxed, self.solved]
        if ty.shape and isinstance(ty.shape[0], int) and ty.shape[0] >= 2:
            options += [self.concat_to]
        if ty.shape and isinstance(ty.shape[0], int) and 1 <= ty.shape[0] <= 4:
            options += [self.stack_to]
        if ty.shape and isinstance(ty.shape[0], int):
            options += [self.slice_to]
        if len(ty.shape) == 2 and isinstance(ty.shape[1], int) and ty.is_float:
            options += [self.one_hot_to]
        if not ty.shape:
            options += [self.scalar_reduce, self.scalar_reduce, self.group_reduce, self.tensor_grad]
        if self.fns:
            options += [self.call_user]
        if any(t == "key" for t in scope.vars.values()):
            options += [self.random_draw]
        if all(isinstance(d, int) for d in ty.shape):
            options += [self.reshaped]
        return self.rng.choice(options)(scope, ty, depth + 1)

    def leaf(self, scope: Scope, ty: Ty) -> str:
        if not ty.shape and self.chance(0.6):
            return literal(self.rng)
        shape = "[" + ", ".join(map(str, ty.shape)) + "]"
        if len(ty.shape) == 1 and self.chance(0.3):
            shape = str(ty.shape[0])
        dt = f", {ty.dtype}" if ty.dtype != self.dtype or self.chance(0.2) else ""
        pick = self.rng.random()
        if pick < 0.4:
            return f"zeros({shape}{dt})"
        if pick < 0.7:
            return f"ones({shape}{dt})"
        if len(ty.shape) == 2 and ty.shape[0] == ty.shape[1] and self.chance(0.5):
            return f"eye({ty.shape[0]}{dt})"
        return f"full({shape}, {literal(self.rng)}{dt})"

    def wild(self, scope: Scope, depth: int) -> str:
        """A choice that ignores the type asked for."""
        pick = self.rng.random()
        if pick < 0.3:
            return self.expr(scope, self.rand_ty(scope), depth + 1) if depth < self.max_depth else literal(self.rng)
        if pick < 0.45:
            return self.rng.choice(["undefined_name", "true", "false", "key", "Net", "K", "n", "grad", "t"])
        if pick < 0.6:
            return literal(self.rng, big=0.5)
        if pick < 0.75 and scope.vars:
            return self.rng.choice(list(scope.vars))
        if pick < 0.9:
            return self.rng.choice(UNARY + ["sum", "mean", "softmax", "transpose", "one_hot"]) + "(" + ", ".join(
                self.wild(scope, depth + 1) if depth < self.max_depth else literal(self.rng)
                for _ in range(self.rng.randint(0, 3))) + ")"
        return "(" + literal(self.rng) + " ^ " + literal(self.rng) + ")"

    def unary(self, scope, ty, d):
        if not ty.is_float:
            return self.expr(scope, ty, d)
        f = self.rng.choice(UNARY)
        return f"{f}({self.expr(scope, ty, d)})"

    def binary(self, scope, ty, d):
        op = self.rng.choice(["+", "-", "*", "/"]) if ty.is_float else self.rng.choice(["+", "-", "*"])
        return f"({self.expr(scope, ty, d)} {op} {self.expr(scope, ty, d)})"

    def scalar_mix(self, scope, ty, d):
        s = self.expr(scope, Ty(ty.dtype), d)
        e = self.expr(scope, ty, d)
        return self.rng.choice([f"({s} * {e})", f"({e} / {s})", f"({e} - {s})", f"(-{e})"])

    def power(self, scope, ty, d):
        base = self.expr(scope, ty, d)
        if self.chance(0.7):
            k = self.rng.choice(["2", "3", "0", "1", "4", "-1", "2 ^ 2", "(2 ^ 3)"])
            return f"({base}) ^ {k}"
        return f"abs({base}) ^ {self.expr(scope, Ty(ty.dtype), d)}"

    def cond(self, scope, ty, d):
        op = self.rng.choice(["<", "<=", ">", ">=", "==", "!="])
        c = f"({self.expr(scope, ty, d)} {op} {self.expr(scope, ty, d)})"
        r = self.rng.random()
        if r < 0.15:
            return f"(not {c})"
        if r < 0.3:
            return f"({c} {self.rng.choice(['and', 'or'])} ({self.expr(scope, ty, d)} > 0))"
        return c

    def select(self, scope, ty, d):
        if not ty.is_float:
            return self.expr(scope, ty, d)
        pick = self.rng.random()
        if pick < 0.4:
            return f"where({self.cond(scope, ty, d)}, {self.expr(scope, ty, d)}, {self.expr(scope, ty, d)})"
        if pick < 0.7:
            return f"{self.rng.choice(['maximum', 'minimum'])}({self.expr(scope, ty, d)}, {self.expr(scope, ty, d)})"
        e = self.expr(scope, ty, d)
        return f"straight_through(step({e}), {self.rng.choice([e, f'sigmoid({e})'])})"

    def reduce_to(self, scope, ty, d):
        if not ty.is_float or len(ty.shape) >= 3:
            return self.expr(scope, ty, d)
        axis = self.rng.randint(0, len(ty.shape))
        extra = self.dim(scope)
        src = Ty(ty.dtype, ty.shape[:axis] + (extra,) + ty.shape[axis:])
        f = self.rng.choice(["sum", "mean", "max", "min", "logsumexp"])
        ax = axis if self.chance(0.6) else axis - len(src.shape)
        return f"{f}({self.expr(scope, src, d)}, axis={ax})"

    def bias(self, scope, ty, d):
        return f"({self.expr(scope, ty, d)} + {self.expr(scope, Ty(ty.dtype, ty.shape[1:]), d)})"

    def index_to(self, scope, ty, d):
        # x[:, j] from a matrix with one more (concrete) axis, or x[i] from a leading concrete axis
        c = self.rng.choice([c for c in self.pool if c >= 1] or [1])
        if len(ty.shape) < 2 and self.chance(0.5):
            src = Ty(ty.dtype, ty.shape + (c,))
            j = self.rng.randint(-c, c - 1)
            return f"({self.expr(scope, src, d)})[{', '.join([':'] * len(ty.shape) + [str(j)])}]"
        src = Ty(ty.dtype, (c,) + ty.shape)
        return f"({self.expr(scope, src, d)})[{self.rng.randint(-c, c - 1)}]"

    def slice_to(self, scope, ty, d):
        c = ty.shape[0]
        pick = self.rng.random()
        if pick < 0.35:
            src, sub = (2 * c,) + ty.shape[1:], "::2"
        elif pick < 0.7:
            src, sub = (c + 1,) + ty.shape[1:], "1:"
        else:
            src, sub = (c + 2,) + ty.shape[1:], f"1:{c + 1}"
        rest = "".join(", :" for _ in ty.shape[1:]) if self.chance(0.5) else ""
        return f"({self.expr(scope, Ty(ty.dtype, src), d)})[{sub}{rest}]"

    def one_hot_to(self, scope, ty, d):
        r, c = ty.shape
        labels = self.atoms(scope, Ty("i64", (r,)))
        keys = [n for n, t in scope.vars.items() if t == "key"]
        if labels and self.chance(0.6):
            lab = self.rng.choice(labels)
        elif keys and self.chance(0.5):
            lab = f"categorical({self.expr(scope, Ty(ty.dtype, (r, self.rng.choice(self.pool))), d)}, {keys[0]})"
        else:
            lab = f"argmax({self.expr(scope, Ty(ty.dtype, (r, self.rng.choice(self.pool))), d)}, axis=-1)"
        dt = f", {ty.dtype}" if self.chance(0.3) else ""
        return f"one_hot({lab}, {c}{dt})"

    def tensor_grad(self, scope, ty, d):
        """A gradient with respect to a tensor variable, used in a scalar."""
        names = [n for n, t in scope.vars.items() if isinstance(t, Ty) and t.is_float and t.dtype == ty.dtype]
        if not names:
            return self.scalar_reduce(scope, ty, d)
        v = self.rng.choice(names)
        inner = f"sum(tanh({v}) * {self.expr(scope, scope.vars[v], d)})"
        return self.rng.choice([f"sqnorm(grad({inner}, {v}))", f"dot(grad({inner}, {v}), {v})",
                                f"sum(grad(sqnorm(grad({inner}, {v})), {v}))"])

    def matmul(self, scope, ty, d):
        a, b = ty.shape
        inner = [t.shape[1] for t in self.shapes_in_scope(scope) if len(t.shape) == 2 and t.shape[0] == a]
        inner += [t.shape[0] for t in self.shapes_in_scope(scope) if len(t.shape) == 2 and t.shape[1] == b]
        c = self.rng.choice(inner) if inner and self.chance(0.8) else self.dim(scope)
        return f"({self.expr(scope, Ty(ty.dtype, (a, c)), d)} @ {self.expr(scope, Ty(ty.dtype, (c, b)), d)})"

    def transposed(self, scope, ty, d):
        a, b = ty.shape
        return f"transpose({self.expr(scope, Ty(ty.dtype, (b, a)), d)}{', [1, 0]' if self.chance(0.2) else ''})"

    def softmaxed(self, scope, ty, d):
        f = self.rng.choice(["softmax", "log_softmax"])
        axis = self.rng.choice(["", ", axis=0", ", axis=1", ", axis=-1", ", -2"])
        return f"{f}({self.expr(scope, ty, d)}{axis})"

    def solved(self, scope, ty, d):
        a, b = ty.shape
        m = self.expr(scope, Ty(ty.dtype, (a, a)), d)
        return f"solve({m} + eye({a}), {self.expr(scope, ty, d)})"

    def concat_to(self, scope, ty, d):
        n = ty.shape[0]
        cut = self.rng.randint(1, n - 1)
        parts = [Ty(ty.dtype, (cut,) + ty.shape[1:]), Ty(ty.dtype, (n - cut,) + ty.shape[1:])]
        return f"concat([{', '.join(self.expr(scope, p, d) for p in parts)}]{', axis=0' if self.chance(0.5) else ''})"

    def stack_to(self, scope, ty, d):
        inner = Ty(ty.dtype, ty.shape[1:])
        return f"stack([{', '.join(self.expr(scope, inner, d) for _ in range(ty.shape[0]))}], 0)"

    def reshaped(self, scope, ty, d):
        size = 1
        for x in ty.shape:
            size *= x
        src = Ty(ty.dtype, (size,)) if ty.shape else Ty(ty.dtype, (1,))
        shape = "[" + ", ".join(map(str, ty.shape)) + "]"
        if len(ty.shape) >= 2 and self.chance(0.4):
            shape = "[-1" + "".join(f", {x}" for x in ty.shape[1:]) + "]"
        return f"reshape({self.expr(scope, src, d)}, {shape})"

    def scalar_reduce(self, scope, ty, d):
        src = self.rand_ty(scope, ty.dtype)
        pick = self.rng.random()
        if pick < 0.45:
            f = self.rng.choice(["sum", "mean", "max", "min", "logsumexp", "sqnorm"])
            return f"{f}({self.expr(scope, src, d)})"
        if pick < 0.6:
            return f"dot({self.expr(scope, src, d)}, {self.expr(scope, src, d)})"
        r, c = self.dim(scope), self.rng.choice(self.pool)
        logits = self.expr(scope, Ty(ty.dtype, (r, c)), d)
        labels = self.atoms(scope, Ty("i64", (r,)))
        if labels and self.chance(0.5):
            return f"cross_entropy({logits}, {self.rng.choice(labels)})"
        if self.chance(0.4):
            return f"cross_entropy({logits}, argmax({self.expr(scope, Ty(ty.dtype, (r, c)), d)}))"
        if self.chance(0.5) and labels:
            return f"cross_entropy({logits}, one_hot({self.rng.choice(labels)}, {c}))"
        return f"cross_entropy({logits}, softmax({self.expr(scope, Ty(ty.dtype, (r, c)), d)}))"

    def group_reduce(self, scope, ty, d):
        groups = [n for n, t in scope.vars.items() if isinstance(t, Group)]
        if not groups:
            return self.scalar_reduce(scope, ty, d)
        g = self.rng.choice(groups)
        if scope.vars[g].fields and all(t.dtype == ty.dtype for t in scope.vars[g].fields.values()):
            return self.rng.choice([f"sqnorm({self.group_expr(scope, g, d)})",
                                    f"dot({g}, {self.group_expr(scope, g, d)})"])
        return self.scalar_reduce(scope, ty, d)

    def group_expr(self, scope: Scope, gname: str, d: int) -> str:
        """An expression of the group type of variable gname."""
        grp = scope.vars[gname]
        if d >= self.max_depth or self.chance(0.3):
            return gname
        pick = self.rng.random()
        s = self.expr(scope, Ty(self.dtype), d + 1)
        if pick < 0.3:
            loss = self.expr(scope, Ty(self.dtype), d + 1)
            g = f"grad({loss} + 1e-3 * sqnorm({gname}), {gname})" if self.chance(0.8) else f"zeros_like({gname})"
            return f"({gname} - {s} * {g})"
        if pick < 0.5:
            return f"{self.rng.choice(['exp', 'tanh', 'stop_gradient', 'step', '-'])}({self.group_expr(scope, gname, d + 1)})"
        if pick < 0.7:
            return f"({self.group_expr(scope, gname, d + 1)} {self.rng.choice(['+', '*', '-'])} {gname})"
        if pick < 0.8:
            return self.rng.choice([f"zeros_like({gname})", f"ones_like({gname})"])
        del grp
        return f"({s} * {gname})"

    def random_draw(self, scope, ty, d):
        keys = [n for n, t in scope.vars.items() if t == "key"]
        k = self.rng.choice(keys)
        if self.chance(0.4):
            k = f"fold_in({k}, {self.rng.choice(['1', '0', '7', '-3', '2 ^ 10'])})"
        if not ty.is_float:
            return self.expr(scope, ty, d)
        shape = "[" + ", ".join(map(str, ty.shape)) + "]"
        dt = f", {ty.dtype}" if self.chance(0.3) else ""
        return f"{self.rng.choice(['normal', 'uniform'])}({k}, {shape}{dt})"

    def call_user(self, scope, ty, d):
        cands = [f for f in self.fns if f.kind == "fn" and isinstance(f.result, Ty) and f.result.dtype == ty.dtype
                 and len(f.result.shape) == len(ty.shape)]
        for f in self.rng.sample(cands, len(cands)):
            sub = {}
            ok = True
            for r, t in zip(f.result.shape, ty.shape):
                if isinstance(r, int):
                    ok = ok and r == t
                elif sub.setdefault(r, t) != t:
                    ok = False
            if not ok:
                continue
            args = []
            for name, kind, aty in f.args:
                if kind == "group":
                    gs = [n for n, t in scope.vars.items() if isinstance(t, Group) and t.name == aty.name]
                    if not gs:
                        ok = False
                        break
                    args.append(self.rng.choice(gs))
                elif kind == "key":
                    ks = [n for n, t in scope.vars.items() if t == "key"]
                    if not ks:
                        ok = False
                        break
                    args.append(ks[0])
                elif kind == "int":
                    if self.chance(0.5):
                        args.append(f"{name}={self.rng.choice(['1', '2', '3'])}")
                else:
                    shape = tuple(sub.setdefault(x, self.dim(scope)) if isinstance(x, str) else x for x in aty.shape)
                    args.append(self.expr(scope, Ty(aty.dtype, shape), d))
            if ok:
                if self.chance(0.3) and args and "=" not in args[-1]:
                    # the last argument by name
                    args[-1] = f"{f.args[len(args) - 1][0]}={args[-1]}" if len(args) == len(f.args) else args[-1]
                return f"{f.name}({', '.join(args)})"
        return self.expr(scope, ty, d)

    # ---- statements ----------------------------------------------------------------------
    def statements(self, scope: Scope, n: int) -> list[str]:
        out = []
        for _ in range(n):
            pick = self.rng.random()
            if pick < 0.15 and self.max_depth > 1:
                out += self.loop(scope)
                continue
            ty = self.rand_ty(scope)
            name = self.fresh()
            old = [v for v, t in scope.vars.items() if isinstance(t, Ty)]
            if old and self.chance(0.2):
                name = self.rng.choice(old)          # rebinding keeps the type: it may be a carried value
                ty = scope.vars[name]
            elif self.chance(0.04):
                # shadowing a dim or a builtin's name: legal, and the dim is no longer a size here
                name = self.rng.choice(scope.dims + ["relu", "mean", "f32", "K"])
                if name in scope.dims:
                    scope.dims = [d for d in scope.dims if d != name]
            out.append(f"{name} = {self.expr(scope, ty)}")
            scope.vars[name] = ty
        return out

    def loop(self, scope: Scope, carried_group: str | None = None) -> list[str]:
        count = self.rng.choice(["1", "2", "3", "5"] + scope.ints)
        if self.chance(0.05):
            count = self.rng.choice(["0", "2147483647", "100000"])
        ann = self.annotations(scope)
        ty = self.rand_ty(scope)
        name = self.fresh("c")
        lines = [f"{name} = {self.expr(scope, ty)}", f"repeat {count}{ann} {{"]
        inner = Scope(dict(scope.vars), scope.dims, scope.ints)
        inner.vars[name] = ty
        body = self.statements(inner, self.rng.randint(0, 2))
        body.append(f"{name} = {self.expr(inner, ty)}")
        if carried_group:
            g = carried_group
            loss = self.expr(inner, Ty(self.dtype))
            body.append(f"{g} = {g} - {literal(self.rng)} * grad({loss} + 1e-3 * sqnorm({g}), {g})")
        lines += ["    " + b for b in body] + ["}"]
        scope.vars[name] = ty
        return lines

    def annotations(self, scope: Scope) -> str:
        out = []
        kinds = set()
        for _ in range(self.rng.choice([0, 0, 1, 1, 2])):
            pick = self.rng.random()
            kind = "order" if pick < 0.55 else "checkpoint"
            if kind in kinds and not self.noisy():
                continue
            kinds.add(kind)
            if pick < 0.3:
                out.append("@first_order")
            elif pick < 0.55:
                out.append(f"@truncate({self.rng.choice(['0', '1', '2', '3'] + scope.ints)})")
            elif pick < 0.8:
                out.append(f"@checkpoint(every={self.rng.choice(['1', '2', '3'] + scope.ints)})")
            elif pick < 0.97:
                out.append(f"@checkpoint(snapshots={self.rng.choice(['2', '3', '1'] + scope.ints)})")
            else:
                out.append(self.rng.choice(["@unroll", "@checkpoint", "@truncate(-1)", "@first_order(1)"]))
        return "".join(" " + a for a in out)

    # ---- declarations -------------------------------------------------------------------------
    def group(self, name: str, a: int, h: int, b: int) -> Group:
        fields = {"w1": Ty(self.dtype, (a, h)), "b1": Ty(self.dtype, (h,)), "w2": Ty(self.dtype, (h, b))}
        for _ in range(self.rng.randint(0, 2)):
            fields[self.fresh("e")] = Ty(self.dtype, tuple(self.rng.choice(self.pool)
                                                             for _ in range(self.rng.randint(0, 2))))
        if self.chance(0.3):
            fields["b2"] = Ty(self.dtype, (b,))
        g = Group(name, fields)
        self.groups[name] = g
        return g

    def group_text(self, g: Group, rates: bool = False) -> str:
        lines = [f"params {g.name} {{"]
        for f, t in g.fields.items():
            init = self.rng.choice(INITS_ANY + (INITS_2D * 2 if len(t.shape) >= 2 else []))
            if rates:
                init = "const(0.01)"
            sep = "," if self.chance(0.2) else ""
            lines.append(f"    {f}: {t.text()}" + (f" = {init}" if self.chance(0.85) else "") + sep)
        return "\n".join(lines + ["}"])

    def program(self) -> str:
        rng = self.rng
        a, h, b = (rng.choice(self.pool) for _ in range(3))
        net = self.group("Net", a, h, b)
        parts = [self.group_text(net)]
        rates = None
        if self.chance(0.3):
            scalar = self.chance(0.5)
            rates = Group("Rates", {f: (Ty(self.dtype) if scalar else t) for f, t in net.fields.items()})
            self.groups["Rates"] = rates
            parts.append(self.group_text(rates, rates=True))
        labels = self.chance(0.25)
        ydt = Ty("i64", ("k",)) if labels else Ty(self.dtype, ("k", b))
        qdt = Ty("i64", ("q",)) if labels else Ty(self.dtype, ("q", b))
        nested = self.chance(0.7)
        if nested:
            parts.append(f"task Data {{\n    support: (x: {Ty(self.dtype, ('k', a)).text()}, y: {ydt.text()})\n"
                         f"    query:   (x: {Ty(self.dtype, ('q', a)).text()}, y: {qdt.text()})\n}}")
            task_fields = {"support.x": Ty(self.dtype, ("k", a)), "support.y": ydt,
                           "query.x": Ty(self.dtype, ("q", a)), "query.y": qdt}
            sx, sy, qx, qy = "t.support.x", "t.support.y", "t.query.x", "t.query.y"
        else:
            ydt = Ty("i64", ("k",)) if labels else Ty(self.dtype, ("k", b))
            parts.append(f"task Data {{ x: {Ty(self.dtype, ('k', a)).text()}  y: {ydt.text()} }}")
            task_fields = {"x": Ty(self.dtype, ("k", a)), "y": ydt}
            sx, sy, qx, qy = "t.x", "t.y", "t.x", "t.y"

        # helpers: random typed fns usable from later bodies
        for _ in range(rng.randint(0, 2)):
            parts.append(self.helper_fn())

        # model: x -> [n, b]
        scope = Scope({"p": net, "x": Ty(self.dtype, ("n", a))}, ["n"])
        body = self.statements(scope, rng.randint(0, 3))
        hid = self.fresh("h")
        body.append(f"{hid} = {rng.choice(['relu', 'tanh', 'sigmoid', ''])}(x @ p.w1 + p.b1)")
        scope.vars[hid] = Ty(self.dtype, ("n", h))
        out = f"{hid} @ p.w2" + (" + p.b2" if "b2" in net.fields else "")
        if self.chance(0.4):
            out = f"({out}) + {self.expr(scope, Ty(self.dtype, ('n', b)), 2)}"
        body.append(f"return {out}")
        parts.append(self.fn_text("fn", "model", "p: Net, x: " + Ty(self.dtype, ("n", a)).text(),
                                  Ty(self.dtype, ("n", b)).text(), body))
        self.fns.append(FnSig("model", "fn", [("p", "group", net), ("x", "tensor", Ty(self.dtype, ("n", a)))],
                              Ty(self.dtype, ("n", b))))

        # loss: scalar
        yty = Ty("i64", ("n",)) if labels else Ty(self.dtype, ("n", b))
        scope = Scope({"p": net, "x": Ty(self.dtype, ("n", a)), "y": yty}, ["n"])
        body = [f"out = model(p, x)"]
        scope.vars["out"] = Ty(self.dtype, ("n", b))
        body += self.statements(scope, rng.randint(0, 2))
        if labels:
            ret = "cross_entropy(out, y)" if self.chance(0.8) else "cross_entropy(out, one_hot(y, %d))" % b
        else:
            ret = rng.choice(["mean((out - y) ^ 2)", "sum(abs(out - y))", "mean(softplus(out - y))"])
        if self.chance(0.4):
            ret = f"{ret} + {self.expr(scope, Ty(self.dtype), 2)}"
        if self.chance(0.85):
            # every field reaches the loss, so the meta-gradient check (`metacc check`) passes
            ret = f"{ret} + 1e-3 * sqnorm(p)"
        body.append(f"return {ret}")
        parts.append(self.fn_text("fn", "loss", f"p: Net, x: {Ty(self.dtype, ('n', a)).text()}, y: {yty.text()}",
                                  self.dtype, body))
        self.fns.append(FnSig("loss", "scalar", [], Ty(self.dtype)))

        parts.append(self.meta_fn(net, rates, task_fields, sx, sy, qx, qy))
        if self.chance(0.1):
            rng.shuffle(parts)
        return "\n\n".join(parts) + "\n"

    def fn_text(self, kind: str, name: str, args: str, result: str, body: list[str]) -> str:
        return f"{kind} {name}({args}) -> {result} {{\n" + "\n".join("    " + s for s in body) + "\n}"

    def helper_fn(self) -> str:
        name = self.fresh("helper")
        scope = Scope({}, [])
        args, sig = [], []
        sym = self.rng.choice(["d", "m"])
        scope.dims = [sym]
        for i in range(self.rng.randint(1, 3)):
            an = f"a{i}"
            ty = self.rand_ty(scope)
            args.append(f"{an}: {ty.text()}")
            sig.append((an, "tensor", ty))
            scope.vars[an] = ty
        if not any(sym in t.shape for _, _, t in sig):
            ty = Ty(self.dtype, (sym,))
            args.append(f"z: {ty.text()}")
            sig.append(("z", "tensor", ty))
            scope.vars["z"] = ty
        if self.chance(0.3):
            args.append(f"s: {self.dtype} = {literal(self.rng)}")
            sig.append(("s", "tensor", Ty(self.dtype)))
            scope.vars["s"] = Ty(self.dtype)
        if self.chance(0.3):
            args.append("key0: key")
            sig.append(("key0", "key", "key"))
            scope.vars["key0"] = "key"
        if self.chance(0.3):
            args.append("R: int = 2")
            sig.append(("R", "int", None))
            scope.ints.append("R")
        result = self.rand_ty(scope)
        body = self.statements(scope, self.rng.randint(0, 3))
        body.append(f"return {self.expr(scope, result)}")
        self.fns.append(FnSig(name, "fn", sig, result))
        return self.fn_text("fn", name, ", ".join(args), result.text(), body)

    def meta_fn(self, net: Group, rates, task_fields, sx, sy, qx, qy) -> str:
        rng = self.rng
        args = ["theta: Net"] + (["rates: Rates"] if rates else []) + ["t: Data"]
        scope = Scope({"theta": net, "t": ("task", task_fields)}, ["k", "q"] if "query.x" in task_fields else ["k"], [])
        if rates:
            scope.vars["rates"] = rates
        if self.chance(0.7):
            args.append(f"alpha: {self.dtype} = {literal(self.rng)}")
            scope.vars["alpha"] = Ty(self.dtype)
        if self.chance(0.7):
            args.append(f"K: int = {rng.choice(['1', '2', '3', '5'])}")
            scope.ints.append("K")
        if self.chance(0.2):
            args.append("rk: key")
            scope.vars["rk"] = "key"
        lr = "alpha" if "alpha" in scope.vars else literal(self.rng)
        if rates and self.chance(0.7):
            lr = "rates" if self.chance(0.5) else f"({lr} * rates)"
        body = ["p = theta"]
        scope.vars["p"] = net
        body += self.statements(scope, rng.randint(0, 2))
        style = rng.random()
        inner = f"grad(loss(p, {sx}, {sy}), p)"
        if style < 0.5:
            count = rng.choice(["K"] * 3 + ["1", "3", "10"]) if "K" in scope.ints else rng.choice(["1", "3"])
            ann = self.annotations(scope)
            body.append(f"repeat {count}{ann} {{")
            loop_scope = Scope(dict(scope.vars), scope.dims, scope.ints)
            body += ["    " + s for s in self.statements(loop_scope, rng.randint(0, 2))]
            body.append(f"    p = p - {lr} * {inner}")
            body.append("}")
        elif style < 0.65:
            body.append(f"p = argmin(w from theta: loss(w, {sx}, {sy}) + 0.5 * sqnorm(w - theta)) "
                        f"by sgd(lr={rng.choice(['0.1', '0.01', '1e-3'])}, steps={rng.choice(['5', '20', '1'])})"
                        + (f" implicit cg(iters={rng.choice(['3', '10'])}, tol=1e-6)" if self.chance(0.6) else ""))
        elif style < 0.8:
            body.append(f"g = {inner}")
            if self.chance(0.4):
                body.append("g = grad(sqnorm(g), p)" if self.chance(0.5) else "g = stop_gradient(g)")
            body.append(f"p = p - {lr} * g")
        elif style < 0.9:
            body += self.loop(scope, carried_group="p")
        else:
            body.append(f"p = {self.group_expr(scope, 'p', 1)}")
        ret = f"loss(p, {qx}, {qy})"
        if rates and "rates" not in "\n".join(body) or self.chance(0.05):
            ret += " + 1e-3 * sqnorm(rates)" if rates else " + 1e-3 * sqnorm(theta)"
        if self.chance(0.3):
            ret += f" + {self.expr(scope, Ty(self.dtype), 2)}"
        body.append(f"return {ret}")
        return self.fn_text("meta", rng.choice(["train", "maml", "objective"]), ", ".join(args), self.dtype, body)


def generate(rng: random.Random) -> str:
    noise = 0.0 if rng.random() < 0.6 else rng.choice([0.002, 0.005, 0.01, 0.03])
    return ProgramGen(rng, noise=noise, max_depth=rng.choice([2, 3, 3, 4])).program()
