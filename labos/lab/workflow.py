"""Experiments as task graphs (networkx DAGs).

The default graph follows the recipe: dose → mix → transfer to crucible → load furnace → heat →
unload → grind → XRD → analyze → report, with the sample stored after its last scan. Each node
carries ``kind`` (a registered task type), ``params`` and ``duration_min`` (the estimate the
scheduler plans with); each node's ``rank_min`` is the longest remaining path to the end, which
orders work so that long chains start first.
"""

from __future__ import annotations

import hashlib
import json

import networkx as nx

from labos.domain import DoseStep, Experiment, GrindStep, HeatStep, MixStep, XRDStep
from labos.errors import ConfigError, LabosError, NotImplementedYet
from labos.lab.config import LabConfig
from labos.lab.tasks import TASK_TYPES, task_type


class WorkflowError(LabosError):
    """A task graph the lab cannot run (a cycle, an unknown task kind, no furnace for a profile)."""


def profile_key(heat: HeatStep) -> str:
    """Heat steps with the same key can share one furnace run."""
    body = json.dumps(heat.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def sample_id_for(experiment_id: str) -> str:
    return f"smp-{experiment_id.removeprefix('exp-')}"


def build_graph(exp: Experiment, cfg: LabConfig) -> nx.DiGraph:
    """The default task graph of an experiment (see module docstring)."""
    g = nx.DiGraph()
    recipe = exp.recipe
    doses = recipe.doses
    if not doses:
        raise WorkflowError(
            f"experiment {exp.id}: the recipe doses nothing; give a custom task graph instead"
        )
    first_other = next(
        (i for i, s in enumerate(recipe.steps) if not isinstance(s, DoseStep)), len(recipe.steps)
    )
    if any(isinstance(s, DoseStep) for s in recipe.steps[first_other:]):
        raise NotImplementedYet("workflow not implemented: dosing after a mix, heat, grind or XRD step")

    def add(node: str, kind: str, params: dict, after: str | None) -> str:
        g.add_node(node, kind=kind, params=params)
        if after:
            g.add_edge(after, node)
        return node

    last = add("dose", "dose", {"doses": [d.model_dump(mode="json") for d in doses]}, None)
    in_crucible = False
    counts: dict[str, int] = {}
    last_analyze = None

    def name(base: str) -> str:
        counts[base] = counts.get(base, 0) + 1
        return base if counts[base] == 1 else f"{base}_{counts[base]}"

    for step in recipe.steps[first_other:]:
        if isinstance(step, MixStep):
            last = add(name("mix"), "mix", step.model_dump(mode="json"), last)
        elif isinstance(step, HeatStep):
            if not in_crucible:
                last = add(name("transfer"), "transfer", {}, last)
                in_crucible = True
            key = profile_key(step)
            heat = step.model_dump(mode="json")
            n = name("heat")
            suffix = n.removeprefix("heat")
            last = add(f"load{suffix}", "load", {"heat_node": n, "batch_key": key}, last)
            last = add(n, "heat", {"heat": heat, "batch_key": key}, last)
            last = add(f"unload{suffix}", "unload", {"heat_node": n}, last)
        elif isinstance(step, GrindStep):
            last = add(name("grind"), "grind", step.model_dump(mode="json"), last)
            in_crucible = False  # a reheat pours the ground powder back into a crucible (frees the grinder)
        elif isinstance(step, XRDStep):
            x = add(name("xrd"), "xrd", step.model_dump(mode="json"), last)
            last_analyze = add(name("analyze"), "analyze", {"xrd_node": x}, x)
            last = x
    add("store", "store", {}, last)
    if last_analyze:
        add("report", "report", {"analyze_node": last_analyze}, last_analyze)
    return g


def prepare_graph(g: nx.DiGraph, cfg: LabConfig, *, priority: float = 0.0) -> nx.DiGraph:
    """Check a (default or custom) graph and annotate durations, ranks and priorities."""
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise WorkflowError(f"task graph has a cycle: {cycle}")
    for node, attrs in g.nodes(data=True):
        kind = attrs.get("kind")
        if kind not in TASK_TYPES:
            raise WorkflowError(
                f"node {node!r}: unknown task kind {kind!r}; known: {', '.join(sorted(TASK_TYPES))}"
            )
        attrs.setdefault("params", {})
        if "duration_min" not in attrs:
            attrs["duration_min"] = float(task_type(kind).estimate_min(attrs["params"], cfg))
    for node in reversed(list(nx.topological_sort(g))):
        below = max((g.nodes[s]["rank_min"] for s in g.successors(node)), default=0.0)
        g.nodes[node]["rank_min"] = g.nodes[node]["duration_min"] + below
    for node in g.nodes:  # how much work stands between this task and the sample's first scan
        scans = [x for x in nx.descendants(g, node) | {node} if g.nodes[x]["kind"] == "xrd"]
        g.nodes[node]["lead_min"] = (
            g.nodes[node]["rank_min"] - max(g.nodes[x]["rank_min"] for x in scans) if scans else None
        )
    for _node, attrs in g.nodes(data=True):
        tier = task_type(attrs["kind"]).tier
        attrs["priority"] = priority * 1e7 + tier * 1e5 + min(attrs["rank_min"], 99_999.0)
    return g


def check_runnable(g: nx.DiGraph, cfg: LabConfig) -> None:
    """Every heat profile must fit at least one furnace (atmosphere and rating)."""
    for node, attrs in g.nodes(data=True):
        if attrs["kind"] != "heat":
            continue
        heat = HeatStep.model_validate(attrs["params"]["heat"])
        if not compatible_furnaces(heat, cfg):
            raise WorkflowError(
                f"node {node!r}: no furnace can run {heat.max_temperature_c:.0f} °C in {heat.atmosphere.value} "
                f"(furnaces: {', '.join(f'{f.name} ≤{f.lab.max_c} °C {f.lab.atmospheres}' for f in cfg.furnaces())})"
            )


def compatible_furnaces(heat: HeatStep, cfg: LabConfig) -> list[str]:
    out = []
    for f in cfg.furnaces():
        if heat.atmosphere.value not in f.lab.atmospheres:
            continue
        if f.lab.max_c is not None and heat.max_temperature_c > f.lab.max_c:
            continue
        if not f.lab.slots:
            continue
        out.append(f.name)
    return out


def graph_from_rows(rows) -> nx.DiGraph:
    """Rebuild an experiment's graph (with live status) from its task rows, for the console."""
    g = nx.DiGraph()
    for r in rows:
        g.add_node(
            r.node,
            id=r.id,
            kind=r.kind,
            status=r.status,
            params=r.params,
            duration_min=r.duration_min,
            rank_min=r.rank_min,
            started_s=r.started_s,
            finished_s=r.finished_s,
            run_id=r.run_id,
        )
    by_id = {r.id: r.node for r in rows}
    for r in rows:
        for s in r.successors or []:
            if s in by_id:
                g.add_edge(r.node, by_id[s])
    return g


__all__ = [
    "ConfigError",
    "WorkflowError",
    "build_graph",
    "check_runnable",
    "compatible_furnaces",
    "graph_from_rows",
    "prepare_graph",
    "profile_key",
    "sample_id_for",
]
