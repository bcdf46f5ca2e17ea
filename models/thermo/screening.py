"""A-Lab-style target screening: energy above hull under a threshold, stable in air (no reaction
with O2, CO2 or H2O at room temperature), every element obtainable from the precursor inventory,
no excluded element (radioactive, or the lab's hazard list). Every rejection says why."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from labos.domain import parse_formula
from labos.errors import DataMissingError, LabosError

from .entries import ThermoEntry

# Elements without a stable isotope (Tc, Pm, and Z >= 84).
RADIOACTIVE = frozenset("Tc Pm Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr".split())
AIR_GASES = ("O2", "CO2", "H2O")
ROOM_TEMPERATURE_K = 300.0  # lowest temperature of the Gibbs tables (≈ 27 °C)
FROM_ATMOSPHERE = frozenset({"O"})  # elements a furnace in air can supply


class ScreenResult(BaseModel):
    """Verdict on one candidate target. ``reasons`` is empty exactly when ``accepted``."""

    formula: str
    accepted: bool
    reasons: list[str] = Field(default_factory=list)
    e_above_hull: float | None = None  # eV/atom; negative: below the hull of the other phases
    decomposition: dict[str, float] = Field(default_factory=dict)
    air_reactions: dict[str, float] = Field(default_factory=dict)  # gas -> ΔG eV/atom at room T
    missing_elements: list[str] = Field(default_factory=list)
    source: str | None = None
    source_id: str | None = None
    is_estimate: bool = False


@dataclass
class Candidate:
    """A target to screen: formula, optional own formation energy (eV/atom), provenance."""

    formula: str
    formation_energy_per_atom: float | None = None
    source: str = "user"
    source_id: str | None = None
    volume_per_atom: float | None = None


def _as_candidate(item) -> Candidate:
    if isinstance(item, Candidate):
        return item
    if isinstance(item, ThermoEntry):
        return Candidate(
            item.formula, item.formation_enthalpy_per_atom, item.source, item.entry_id, item.volume_per_atom
        )
    if isinstance(item, str):
        return Candidate(parse_formula(item))
    formula = getattr(item, "formula", None)
    if formula is not None:  # labos.domain.Target
        return Candidate(
            parse_formula(formula), None, getattr(item, "source", "user"), getattr(item, "source_id", None)
        )
    raise LabosError(f"cannot screen {item!r}: give a formula, a Target or a ThermoEntry")


def _inventory_elements(inventory) -> set[str] | None:
    if inventory is None:
        return None
    from pymatgen.core import Composition

    out: set[str] = set()
    for p in inventory:
        formula = p if isinstance(p, str) else getattr(p, "formula", None)
        if formula is None:
            raise LabosError(f"inventory item {p!r} is neither a formula nor a Precursor")
        out |= {str(e) for e in Composition(parse_formula(formula)).elements}
    return out


def screen(
    targets: Iterable,
    inventory: Iterable | None = None,
    *,
    db=None,
    air_db=None,
    max_ehull: float = 0.05,
    hazardous: Iterable[str] = (),
    check_air: bool = True,
    air_tolerance: float = 0.1,
) -> list[ScreenResult]:
    """Screen targets.

    ``db`` (energy above hull) defaults to the DFT-consistent MP-first database when the MP
    summary is present (GNoME/MP targets carry MP2020 energies), else the embedded one.
    ``air_db`` (reactions with O2, CO2, H2O at room temperature) defaults to the experiment-first
    database (``ThermoDB.combined()``): MP2020 over-binds carbonates and hydrates, which would
    flag nearly every alkaline-earth oxide as carbonating. ``air_tolerance``: a reaction counts
    when ΔG < −air_tolerance eV/atom (0.1: above the combined DFT/G^δ error, and the size of the
    kinetically irrelevant carbonation of dense titanates such as BaTiO3 + CO2, −0.06)."""
    from .db import ThermoDB

    if db is None:
        try:
            db = ThermoDB.with_mp()
        except DataMissingError:
            db = ThermoDB.default()
    if not math.isfinite(max_ehull) or max_ehull < 0:
        raise LabosError(f"max energy above hull must be a non-negative number of eV/atom, got {max_ehull}")
    have = _inventory_elements(inventory)
    excluded = RADIOACTIVE | {str(h).strip() for h in hazardous}
    cands = [_as_candidate(t) for t in targets]
    results = [_screen_one(c, db, have, excluded, max_ehull) for c in cands]
    if check_air:
        air_db = air_db if air_db is not None else ThermoDB.combined()
        extra = []
        for c, r in zip(cands, results, strict=True):
            if r.e_above_hull is None or air_db.has(r.formula):
                continue
            energy = c.formation_energy_per_atom
            if energy is None:
                energy = db.entry(r.formula).formation_enthalpy_per_atom
            extra.append(ThermoEntry(r.formula, energy, c.source, c.source_id, None, c.volume_per_atom))
        air_db = air_db.overlay(extra) if extra else air_db
        for r in results:
            if r.e_above_hull is not None and not (set(r.missing_elements) or _excluded(r.formula, excluded)):
                _check_air(r, air_db, air_tolerance)
    for r in results:
        r.accepted = not r.reasons
    return results


def _excluded(formula: str, excluded) -> bool:
    from pymatgen.core import Composition

    return any(str(e) in excluded for e in Composition(formula).elements)


def _check_air(res: ScreenResult, db, air_tolerance: float) -> None:
    for gas in AIR_GASES:
        try:
            rx = db.interface_reactions(res.formula, gas, ROOM_TEMPERATURE_K, "air")
        except DataMissingError as exc:
            res.reasons.append(f"air stability against {gas} unknown: {exc}")
            continue
        inner = [r for r in rx if 0 < r.x < 1]  # a reaction with the gas, not a decomposition
        worst = inner[0] if inner else None
        res.air_reactions[gas] = worst.energy_per_atom if worst else 0.0
        if worst is not None and worst.energy_per_atom < -air_tolerance:
            res.reasons.append(
                f"reacts with {gas} in air at room temperature "
                f"(ΔG = {worst.energy_per_atom:.3f} eV/atom: {worst.equation})"
            )


def _screen_one(cand: Candidate, db, have, excluded, max_ehull) -> ScreenResult:
    from pymatgen.core import Composition

    f = parse_formula(cand.formula)
    res = ScreenResult(formula=f, accepted=False, source=cand.source, source_id=cand.source_id)
    elements = {str(e) for e in Composition(f).elements}
    bad = sorted(elements & excluded)
    if bad:
        res.reasons.append(f"contains excluded element(s) {', '.join(bad)}")
    if have is not None:
        missing = sorted(elements - have - FROM_ATMOSPHERE)
        res.missing_elements = missing
        if missing:
            res.reasons.append(f"no precursor in the inventory supplies {', '.join(missing)}")
    energy = cand.formation_energy_per_atom
    try:
        stored = db.entry(f) if db.has(f) else None
        if (
            energy is not None
            and stored is not None
            and abs(stored.formation_enthalpy_per_atom - energy) < 1e-6
        ):
            energy = None  # the database already holds this very phase: use its diagram directly
        if stored is not None and cand.source == "user":
            res.source, res.source_id = stored.source, stored.entry_id
        if energy is None and stored is None:
            entry = db.entry(f)  # may be a flagged model estimate; DataMissingError otherwise
            res.is_estimate = entry.is_estimate
            res.source = entry.source if cand.source == "user" else cand.source
        stab = db.stability(f, formation_energy_per_atom=energy)
        res.e_above_hull = stab["e_above_hull"]
        res.decomposition = stab["decomposition"]
        res.is_estimate = res.is_estimate or stab["is_estimate"]
        if res.e_above_hull > max_ehull:
            res.reasons.append(
                f"energy above hull {res.e_above_hull:.3f} eV/atom exceeds {max_ehull:.3f} "
                f"(decomposes to {', '.join(sorted(res.decomposition))})"
            )
    except DataMissingError as exc:
        res.reasons.append(f"no formation energy: {exc}")
    except LabosError as exc:
        res.reasons.append(str(exc))
    return res


# ---------------------------------------------------------------- reading target files


def read_targets(path: str | Path, *, energies: str | None = None) -> list[Candidate]:
    """Targets from a GNoME/MP summary CSV, a folder of CIFs, or a text file of formulas.
    ``energies="chgnet"`` gives CIF targets CHGNet energies (optional extra)."""
    from labos.errors import FormulaError

    path = Path(path)
    if not path.exists():
        raise DataMissingError(f"target file {path} does not exist")
    if path.is_dir():
        from .sources import CIFFolderSource

        records = CIFFolderSource(path).structures()
        values: list[float | None] = [None] * len(records)
        source = "cif"
        if energies == "chgnet":
            from .chgnet import chgnet_entries

            values = [e.formation_enthalpy_per_atom for e in chgnet_entries([r.structure for r in records])]
            source = "chgnet"
        elif energies is not None:
            raise LabosError(f"unknown energy method {energies!r} for CIF targets (use 'chgnet')")
        return [
            Candidate(r.formula, v, source, r.path.name, r.volume_per_atom)
            for r, v in zip(records, values, strict=True)
        ]
    if path.suffix.lower() == ".csv":
        from .sources import SummarySource, read_summary_table, resolve_source

        read_summary_table(path)  # names missing columns early
        src = resolve_source(path)
        assert isinstance(src, SummarySource)
        return [
            Candidate(e.formula, e.formation_enthalpy_per_atom, e.source, e.entry_id, e.volume_per_atom)
            for e in src.load()
        ]
    out = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(Candidate(parse_formula(text), None, "list", f"{path.name}:{i}"))
        except FormulaError as exc:
            raise FormulaError(f"{path}:{i}: {exc}") from None
    if not out:
        raise LabosError(f"{path} lists no formulas")
    return out
