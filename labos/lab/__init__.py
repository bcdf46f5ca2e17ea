"""The lab OS: lab configuration, sample tracking, task graphs, a time-aware scheduler with
furnace batching, crash-safe execution with a step journal, operator interventions and events.

Main entry points::

    from labos.lab import Lab, LabAPI, load_lab_config, SimLab

* :class:`Lab` — configuration + database + devices + clock; ``submit(experiment)``, ``run()``,
  ``on_outcome(cb)``, ``metrics()``; ``lab.api`` is a :class:`LabAPI`.
* :class:`LabAPI` — what the console uses from any process: samples (with history and lineage),
  devices, positions, inventory, tasks, furnace runs, interventions + ``answer``, pause/resume/
  stop, and the event stream (``events(after_id)``, ``follow``).
* :class:`SimLab` — the simulated lab (fast in-process fakes); see :mod:`labos.lab.wirelab` for
  real drivers over emulated wires.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> module; imported on first use so that ``labos.lab.records`` (loaded with every table)
# does not pull in SimPy, networkx and the drivers.
_EXPORTS = {
    "LabAPI": "labos.lab.api",
    "LabConfig": "labos.lab.config",
    "lab_config_from_dict": "labos.lab.config",
    "load_lab_config": "labos.lab.config",
    "sim_lab_config": "labos.lab.config",
    "TaskContext": "labos.lab.context",
    "Verdict": "labos.lab.context",
    "Engine": "labos.lab.engine",
    "SimulatedCrash": "labos.lab.engine",
    "Intervention": "labos.lab.interventions",
    "InterventionError": "labos.lab.interventions",
    "register_intervention": "labos.lab.interventions",
    "LabMetrics": "labos.lab.metrics",
    "Need": "labos.lab.resources",
    "Lab": "labos.lab.runtime",
    "SimLab": "labos.lab.simlab",
    "Store": "labos.lab.store",
    "TASK_TYPES": "labos.lab.tasks",
    "Task": "labos.lab.tasks",
    "register_task": "labos.lab.tasks",
    "WorkflowError": "labos.lab.workflow",
    "build_graph": "labos.lab.workflow",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from labos.lab.api import LabAPI  # noqa: F401
    from labos.lab.runtime import Lab  # noqa: F401
    from labos.lab.simlab import SimLab  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labos.lab' has no attribute {name!r}")
    return getattr(import_module(module), name)
