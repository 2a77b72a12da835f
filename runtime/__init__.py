"""The runtime: compiled modules, argument trees, kernel cache (installed as metacc.runtime).

What runs only: `metacc.compile` (metacc.compiler, the compile driver) builds the Module.
"""
from metacc.runtime.module import Module  # noqa: F401
# the outer loop: task samplers, few-shot episodes, optimizers on parameter groups, a training loop
# (image sets to draw episodes from: metacc.runtime.data, imported on use)
from metacc.runtime import episodes, optim, tasks, train  # noqa: F401,E402

# The public entry points filter metacc's own frames from the traceback of a MetaccError
# (metacc.errors.api_boundary; METACC_FULL_TRACEBACK=1 keeps them). Listed here, in one place.
from metacc.errors import api_boundary as _api, wrap_methods as _wrap  # noqa: E402
from metacc.runtime import module as _module  # noqa: E402

train.train = _api(train.train)
_wrap(_module.Module, ("__getattr__", "__getitem__"))
_wrap(_module.FunctionHandle, ("__call__", "value_and_grad", "grad", "hvp", "grad_and_hvp", "jvp", "vjp",
                               "source", "kernel"))
_wrap(_module.ParamGroupHandle, ("init",))
for _cls in (optim.SGD, optim.Adam):
    _wrap(_cls, ("__init__", "init", "update"))
_wrap(tasks.SinusoidFamily, ("__init__", "draw", "tasks_for", "sample"))
_wrap(tasks.TaskBatcher, ("__init__", "__next__"))
_wrap(episodes.Episodes, ("__init__", "draw", "tasks_for", "sample"))
_wrap(episodes.ClassBatches, ("__init__", "__next__"))
_wrap(episodes.ClassSplit, ("__init__",))
episodes.mean_ci95 = _api(episodes.mean_ci95)
episodes.ClassSplit.random = classmethod(_api(episodes.ClassSplit.random.__func__))
tasks.sinusoid_tasks = _api(tasks.sinusoid_tasks)
tasks.linear_regression_tasks = _api(tasks.linear_regression_tasks)
