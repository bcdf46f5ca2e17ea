"""Where formation energies come from. Each source loads a list of :class:`ThermoEntry`.

Sources, in the order a :class:`~labos.models.thermo.db.ThermoDB` usually prefers them:
``exp`` (pymatgen's 2 135 experimental formation enthalpies at 298 K, embedded), ``mp`` (the
Materials Project summary GNoME publishes, MP2020-corrected DFT), GNoME summary/hull CSVs, ``calc``
(pymatgen's 423 embedded MP calculations; every compound in it is also in ``exp``, so the default
database leaves it out), CIF folders (structures → volumes; energies only through CHGNet), the
MP API and CHGNet (optional extras), and the composition model (estimates).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from labos.config import get_settings
from labos.errors import ConfigError, DataMissingError, LabosError, NotImplementedYet

from .entries import ThermoEntry

MP_SUMMARY = "thermo/mp_materials_summary.csv"


class SourceError(LabosError, ValueError):
    """A source file that cannot be read as the format it claims (missing columns, bad rows)."""


@runtime_checkable
class Source(Protocol):
    name: str

    def load(self) -> list[ThermoEntry]: ...


def compat_dir() -> Path:
    """pymatgen's compatibility data folder, found without importing that (slow) module."""
    import importlib.util

    spec = importlib.util.find_spec("pymatgen.analysis.compatibility")
    if spec is None or not spec.submodule_search_locations:
        raise DataMissingError("pymatgen's compatibility data (exp_compounds.json.gz) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached(key: str, build):
    """Pickle ``build()`` under the cache dir keyed by ``key`` (content checksums), rebuild if absent."""
    folder = get_settings().cache_dir / "thermo"
    path = folder / f"{key}.pkl"
    if path.exists():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception:  # a truncated or stale cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    value = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh)
        tmp.replace(path)
    except OSError:
        pass
    return value


@dataclass
class ExperimentalSource:
    """pymatgen's ``exp_compounds.json.gz``: experimental ΔH_f(298 K) per formula unit ± uncertainty.

    The table is the one pymatgen fits its MP2020 corrections to (Wang et al., Sci. Rep. 11, 15496,
    2021, from the NIST-JANAF and Kubaschewski tables)."""

    name: str = "exp"

    def load(self) -> list[ThermoEntry]:
        from pymatgen.core import Composition

        from .gibbs import is_gas

        rows = json.loads(gzip.open(compat_dir() / "exp_compounds.json.gz").read())
        out = []
        for row in rows:
            comp = Composition(row["formula"])
            if is_gas(comp.reduced_formula):
                continue
            n = comp.num_atoms
            out.append(
                ThermoEntry(
                    comp.reduced_formula,
                    float(row["exp energy"]) / n,
                    "exp",
                    entry_id=row.get("mpid"),
                    uncertainty_per_atom=float(row.get("uncertainty") or 0.0) / n,
                )
            )
        return out


@dataclass
class CalculatedSource:
    """pymatgen's ``calc_compounds.json.gz`` (MP GGA/GGA+U), MP2020-corrected (cached: ~10 s once)."""

    name: str = "calc"

    def load(self) -> list[ThermoEntry]:
        path = compat_dir() / "calc_compounds.json.gz"
        return _cached(f"calc-{file_sha256(path)[:16]}", lambda: self._build(path))

    @staticmethod
    def _build(path: Path) -> list[ThermoEntry]:
        from monty.json import MontyDecoder
        from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

        raw = json.loads(gzip.open(path).read())
        entries = [MontyDecoder().process_decoded(v) for v in raw.values()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entries = MaterialsProject2020Compatibility(check_potcar=False).process_entries(
                entries, verbose=False
            )
        return _formation_entries(
            [(e.composition, e.energy, e.entry_id) for e in entries], source="calc", require_refs=False
        )


def _formation_entries(rows, source: str, require_refs: bool = True, refs=None) -> list[ThermoEntry]:
    """(composition, total energy, id) rows → formation enthalpies against the elemental rows."""
    mu: dict[str, float] = dict(refs or {})
    for comp, energy, _ in rows:
        if comp.is_element:
            el = str(comp.elements[0])
            mu[el] = min(mu.get(el, math.inf), energy / comp.num_atoms)
    out = []
    missing: set[str] = set()
    for comp, energy, entry_id in rows:
        els = comp.get_el_amt_dict()
        if any(el not in mu for el in els):
            missing.update(el for el in els if el not in mu)
            continue
        n = comp.num_atoms
        ef = (energy - sum(amt * mu[el] for el, amt in els.items())) / n
        out.append(ThermoEntry(comp.reduced_formula, ef, source, entry_id=entry_id))
    if missing and (require_refs and not out):
        raise SourceError(
            f"{source}: no elemental reference energy for {', '.join(sorted(missing))}; "
            "the file must contain the elements' ground states (or pass references)"
        )
    if missing:
        SKIPPED[source] = sorted(missing)  # e.g. Xe compounds in the MP file: no solid Xe reference
    return out


# source name -> elements whose compounds were skipped for want of an elemental reference
SKIPPED: dict[str, list[str]] = {}


# Column names of the MP / GNoME summary files (google-deepmind/materials_discovery).
COL_COMPOSITION = "Composition"
COL_FORMULA = "Reduced Formula"
COL_ID = "MaterialId"
COL_NSITES = "NSites"
COL_ENERGY = "Corrected Energy"
COL_EFORM = "Formation Energy Per Atom"
COL_VOLUME = "Volume"
COL_DECOMP_MP = "Decomposition Energy Per Atom MP"
COL_DECOMP = "Decomposition Energy Per Atom"


def read_summary_table(path: Path):
    """Read a GNoME/MP summary CSV into a DataFrame, naming any missing column."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataMissingError(f"summary file {path} does not exist")
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise SourceError(f"{path} is not a readable CSV file: {exc}") from None
    if COL_COMPOSITION not in df.columns and COL_FORMULA not in df.columns:
        raise SourceError(
            f"{path}: missing column {COL_COMPOSITION!r} (or {COL_FORMULA!r}); "
            f"a GNoME/MP summary CSV has columns like {COL_COMPOSITION}, {COL_ID}, {COL_ENERGY}. "
            f"Found: {', '.join(map(str, df.columns[:12]))}"
        )
    return df


@dataclass
class SummarySource:
    """A GNoME/MP summary CSV (``mp_materials_summary.csv``, ``stable_materials_summary.csv``,
    ``stable_materials_hull.csv``): energies from ``Formation Energy Per Atom`` when given, else
    from ``Corrected Energy`` (eV per cell) against the file's elemental entries or ``references``
    (eV/atom; e.g. the MP summary's, whose MP2020 energies GNoME's files share)."""

    path: Path
    name: str = "mp"
    references: dict[str, float] | None = None
    # The files' "Corrected Energy" lacks the MP2020 anion and +U corrections (see corrections.py):
    # "mp2020" adds them from the composition; None takes the column as it is.
    corrections: str | None = "mp2020"

    def load(self) -> list[ThermoEntry]:
        path = Path(self.path)
        if not path.exists():
            raise DataMissingError(
                f"{self.name} summary {path} is not on this machine; run `labos data fetch` "
                "(or set LABOS_DATA_DIR to a folder holding thermo/mp_materials_summary.csv)"
            )
        refs = json.dumps([sorted((self.references or {}).items()), self.corrections]).encode()
        key = f"{self.name}-{file_sha256(path)[:16]}-{hashlib.sha256(refs).hexdigest()[:8]}"
        return _cached(key, lambda: self._build(path))

    def _build(self, path: Path) -> list[ThermoEntry]:
        from pymatgen.core import Composition

        df = read_summary_table(path)
        has_eform = COL_EFORM in df.columns
        if not has_eform and COL_ENERGY not in df.columns:
            raise SourceError(f"{path}: missing column {COL_ENERGY!r} (or {COL_EFORM!r}) with the energies")
        comp_col = COL_COMPOSITION if COL_COMPOSITION in df.columns else COL_FORMULA
        ids = df[COL_ID].astype(str).tolist() if COL_ID in df.columns else [None] * len(df)
        decomp_col = (
            COL_DECOMP_MP
            if COL_DECOMP_MP in df.columns
            else (COL_DECOMP if COL_DECOMP in df.columns else None)
        )
        comps = []
        for i, text in enumerate(df[comp_col].astype(str)):
            try:
                comps.append(Composition(text))
            except Exception:
                raise SourceError(f"{path}: row {i + 2}: composition {text!r} cannot be parsed") from None
        volumes = [None] * len(df)
        if COL_VOLUME in df.columns:
            vols = df[COL_VOLUME].to_numpy(dtype=float)
            volumes = [
                float(v) / c.num_atoms if math.isfinite(v) and v > 0 else None
                for v, c in zip(vols, comps, strict=True)
            ]
        if has_eform:
            values = df[COL_EFORM].to_numpy(dtype=float)
            out = [
                ThermoEntry(c.reduced_formula, float(v), self.name, entry_id=i)
                for c, v, i in zip(comps, values, ids, strict=True)
                if math.isfinite(v)
            ]
        else:
            energies = df[COL_ENERGY].to_numpy(dtype=float)
            if self.corrections == "mp2020":
                from .corrections import mp2020_correction

                energies = [
                    e + mp2020_correction(c.reduced_formula) * c.num_atoms / c.reduced_composition.num_atoms
                    for e, c in zip(energies, comps, strict=True)
                ]
            elif self.corrections is not None:
                raise ConfigError(f"unknown correction scheme {self.corrections!r} (use 'mp2020' or None)")
            out = _formation_entries(
                list(zip(comps, energies, ids, strict=True)), source=self.name, refs=self.references
            )
        by_id = {e.entry_id: e for e in out}
        decomp = df[decomp_col].to_numpy(dtype=float) if decomp_col else [None] * len(df)
        final = []
        for entry_id, vol, d in zip(ids, volumes, decomp, strict=True):
            e = by_id.get(entry_id)
            if e is None:
                continue
            data = {"decomposition_energy_file": float(d)} if d is not None and math.isfinite(d) else {}
            final.append(
                ThermoEntry(
                    e.formula, e.formation_enthalpy_per_atom, e.source, e.entry_id, None, vol, False, data
                )
            )
        return final


def mp_summary_path() -> Path:
    return get_settings().dataset(MP_SUMMARY)


def mp_reference_energies() -> dict[str, float]:
    """Elemental ground-state energies (eV/atom, MP2020) from the MP summary file."""
    import pandas as pd
    from pymatgen.core import Composition

    path = mp_summary_path()
    if not path.exists():
        raise DataMissingError(f"{path} is not on this machine; run `labos data fetch`")
    df = pd.read_csv(path, usecols=[COL_COMPOSITION, COL_ENERGY])
    refs: dict[str, float] = {}
    for text, energy in zip(df[COL_COMPOSITION], df[COL_ENERGY], strict=True):
        comp = Composition(text)
        if comp.is_element:
            el = str(comp.elements[0])
            refs[el] = min(refs.get(el, math.inf), float(energy) / comp.num_atoms)
    return refs


@dataclass
class StructureRecord:
    """A structure from a CIF file: its formula and volume per atom (and the structure itself)."""

    formula: str
    volume_per_atom: float
    path: Path
    structure: object = field(repr=False, default=None)


@dataclass
class CIFFolderSource:
    """A folder of CIFs: structures (volumes for G^δ; candidates for screening). No energies unless
    ``energies="chgnet"`` (optional extra)."""

    path: Path
    name: str = "cif"
    energies: str | None = None

    def structures(self) -> list[StructureRecord]:
        from pymatgen.core import Structure

        folder = Path(self.path)
        if not folder.is_dir():
            raise DataMissingError(f"CIF folder {folder} does not exist")
        files = sorted(folder.glob("*.cif"))
        if not files:
            raise SourceError(f"{folder} holds no .cif files")
        out = []
        for f in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = Structure.from_file(f)
            except Exception as exc:
                raise SourceError(f"{f}: not a readable CIF: {exc}") from None
            out.append(StructureRecord(s.composition.reduced_formula, s.volume / len(s), f, s))
        return out

    def load(self) -> list[ThermoEntry]:
        if self.energies is None:
            return []
        if self.energies == "chgnet":
            from .chgnet import chgnet_entries

            return chgnet_entries([r.structure for r in self.structures()])
        raise ConfigError(f"unknown energy method {self.energies!r} for a CIF folder (use 'chgnet' or none)")


@dataclass
class MPAPISource:
    """Entries of chemical systems from the Materials Project API (optional extra ``labos[mp]``)."""

    chemsys: list[str]
    api_key: str | None = None
    name: str = "mp-api"

    def load(self) -> list[ThermoEntry]:
        try:
            from mp_api.client import MPRester  # noqa: F401
        except ImportError:
            raise NotImplementedYet(
                "Materials Project API source not implemented without mp-api: `pip install labos[mp]`"
            ) from None
        import os

        key = self.api_key or os.environ.get("MP_API_KEY")
        if not key:
            raise ConfigError("the Materials Project API needs a key: set MP_API_KEY")
        from mp_api.client import MPRester

        rows = []
        with MPRester(key) as mpr:
            for cs in self.chemsys:
                for e in mpr.get_entries_in_chemsys(cs.split("-")):
                    rows.append((e.composition, e.energy, e.entry_id))
        return _formation_entries(rows, source=self.name)


def resolve_source(spec) -> object:
    """A source from a short name ("exp", "calc", "mp", "embedded"), a path, or a Source object."""
    if not isinstance(spec, (str, Path)):
        if hasattr(spec, "load"):
            return spec
        raise ConfigError(f"{spec!r} is not a thermodynamic source")
    text = str(spec)
    if text.startswith("chgnet:"):  # a CIF folder whose energies come from CHGNet
        return CIFFolderSource(Path(text.split(":", 1)[1]), name="chgnet", energies="chgnet")
    if text in ("exp", "embedded"):
        return ExperimentalSource()
    if text == "calc":
        return CalculatedSource()
    if text == "mp":
        return SummarySource(mp_summary_path(), name="mp")
    path = Path(text)
    if path.is_dir():
        return CIFFolderSource(path)
    if path.suffix.lower() == ".csv":
        name = "gnome" if "stable_materials" in path.name else "mp"
        refs = None
        if name == "gnome":
            import pandas as pd

            cols = pd.read_csv(path, nrows=0).columns
            if COL_EFORM not in cols:
                refs = mp_reference_energies()
        return SummarySource(path, name=name, references=refs)
    raise ConfigError(
        f"unknown thermodynamic source {text!r}: use exp, calc, mp, a summary .csv, a CIF folder "
        "or chgnet:FOLDER"
    )
