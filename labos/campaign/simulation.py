"""The world a campaign runs in: thermodynamic data, the hidden chemistry, the precursor shelf, and the
simulated lab (the lab OS over in-process device fakes on a virtual clock) with its diffractometer
files and analyzer (:mod:`labos.campaign.measure`) — or, when the lab configuration names real
device kinds, the hardware lab (:mod:`labos.lab.hardware`) and no hidden world at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labos.campaign.config import CampaignConfig, LabSpec
from labos.domain import Precursor
from labos.errors import ConfigError
from labos.lab.analysis import xrd_analyzer

STOCK_MG = 1_000_000.0  # 1 kg of every precursor on the simulated shelf


@dataclass
class Chemistry:
    """Thermodynamics, the hidden world and the shelf of one campaign."""

    thermo: Any
    world: Any
    inventory: list[Precursor]
    structures: dict[str, Any] | None  # phase name -> Structure, for simulated XRD patterns
    demo: bool = False  # the built-in demo chemistry (its structures can be built on demand)

    def xrd_structures(self) -> dict[str, Any] | None:
        if self.structures is None and self.demo:
            from labos.simulator.demo_chemistry import demo_structures

            self.structures = demo_structures()
        return self.structures


def default_thermo():
    from labos.models.thermo import ThermoDB

    return ThermoDB.default()


def build_chemistry(
    cfg: CampaignConfig, thermo=None, world=None, inventory: list[Precursor] | None = None
) -> Chemistry:
    """The demo chemistry (offline, with crystal structures) or the whole thermodynamic database."""
    from labos.simulator.world import World

    thermo = thermo if thermo is not None else default_thermo()
    if hardware_settings(cfg.lab) is not None:  # a real lab: no hidden world on the campaign side
        if cfg.chemistry == "demo":
            from labos.simulator.demo_chemistry import demo_inventory

            inv = inventory if inventory is not None else demo_inventory()
            return Chemistry(thermo, None, inv, None, demo=True)
        from labos.simulator.targets import benchmark_inventory

        inv = inventory if inventory is not None else benchmark_inventory(thermo)
        return Chemistry(thermo, None, inv, None)
    if cfg.chemistry == "demo":
        from labos.simulator.demo_chemistry import demo_inventory

        world = world if world is not None else World.demo(cfg.hidden_seed, thermo=thermo)
        inv = inventory if inventory is not None else demo_inventory()
        return Chemistry(
            thermo, world, inv, dict(getattr(world, "structures", None) or {}) or None, demo=True
        )
    from labos.simulator.targets import benchmark_inventory

    world = world if world is not None else World(cfg.hidden_seed, thermo=thermo)
    inv = inventory if inventory is not None else benchmark_inventory(thermo)
    return Chemistry(thermo, world, inv, dict(world.structures) or None)


def hardware_settings(spec: LabSpec):
    """The ``[hardware]`` settings when ``spec`` names a lab of real devices (any kind but ``sim_*``),
    else None (the simulated lab)."""
    if not spec.config_path:
        return None
    from labos.lab.hardware import is_hardware, load_lab_file

    cfg, settings = load_lab_file(spec.config_path)
    return settings if is_hardware(cfg) else None


def lab_config(spec: LabSpec, inventory: list[Precursor]):
    """The lab configuration: the TOML file given, else the simulated layout stocked with the shelf.

    A file naming real device kinds is a hardware lab (:mod:`labos.lab.hardware`): its devices are
    checked here (known kinds, addresses) and opened when the lab is built."""
    from labos.lab.config import sim_lab_config

    if spec.config_path:
        from labos.lab.hardware import check_hardware_config, is_hardware, load_lab_file

        cfg, _settings = load_lab_file(spec.config_path)
        if is_hardware(cfg):
            check_hardware_config(cfg, where=spec.config_path)
            if spec.xrd != "pattern":
                raise ConfigError(
                    f"{spec.config_path} is a lab of real devices: outcomes come from analysing the "
                    "diffractometer's files (xrd='pattern'), not from a simulator's truth"
                )
        cfg.check_workflow()
        if not cfg.inventory:
            stocked = sim_lab_config(inventory={p.formula: STOCK_MG for p in inventory})
            cfg = cfg.model_copy(update={"inventory": stocked.inventory})
        return cfg
    cfg = sim_lab_config(
        furnaces=spec.furnaces,
        furnace_slots=spec.furnace_slots,
        inventory={p.formula: STOCK_MG for p in inventory},
    )
    cfg.check_workflow()
    return cfg


def shelf_from_lab(cfg, inventory: list[Precursor]) -> list[Precursor]:
    """What the planner may use: the shelf precursors the lab stocks, with the stock on hand."""
    from labos.domain import parse_formula

    stock: dict[str, float] = {}
    for lot in cfg.inventory:
        key = parse_formula(lot.formula)
        stock[key] = stock.get(key, 0.0) + lot.stock_mg
    out = []
    for p in inventory:
        key = parse_formula(p.formula)
        if key in stock:
            out.append(p.model_copy(update={"available_mg": stock[key]}))
    if not out:
        raise ConfigError(
            "the lab stocks none of the campaign's precursors: add [[inventory]] lots to the lab config"
        )
    return out


def build_simlab(
    spec: LabSpec,
    chem: Chemistry,
    lab_cfg,
    store,
    *,
    threshold: float,
    seed: int,
    state_path: Path | None,
):
    """The simulated lab on ``store``, its diffractometer writing files for the chosen XRD mode; or,
    for a configuration of real devices, the hardware lab (drivers opened, outcomes from the
    diffractometer's files only)."""
    settings = hardware_settings(spec)
    if settings is not None:
        from labos.lab.hardware import HardwareLab

        return HardwareLab.build(lab_cfg, store, settings=settings, threshold=threshold)
    from labos.campaign import measure
    from labos.lab.fakes import FakeDiffractometer
    from labos.lab.simlab import SimLab

    if spec.xrd == "pattern":
        structures = chem.xrd_structures()
        if not structures:
            raise ConfigError(
                "xrd='pattern' needs crystal structures for every phase the world can form; this chemistry has "
                "none (use the demo chemistry, or xrd='truth')"
            )
        library = measure.phase_library(structures)
        analyzer = xrd_analyzer(library, threshold=threshold)
        writer = measure.pattern_writer(library, seed)
    else:
        analyzer = measure.truth_analyzer(threshold, spec.measurement_sigma, spec.detection_limit, seed)
        writer = None  # the fakes' default: the true phases as JSON
    sim = SimLab.build(
        store, cfg=lab_cfg, world=chem.world, xrd="truth", analyzer=analyzer, seed=seed, state_path=state_path
    )
    if writer is not None:
        for dev in sim.lab.engine.devices.values():
            if isinstance(dev, FakeDiffractometer):
                dev.writer = writer
    return sim
