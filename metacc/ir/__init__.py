"""The IR: types, functions of equations, the primitives, builder, printer, verifier (the
reference interpreter, a client of AD too, is metacc.interp).

The printer is imported here so that str(func) prints the program whichever part of the IR
was imported first (metacc.ir.core cannot import the printer, which reads its classes)."""
from metacc.ir import printer  # noqa: F401
