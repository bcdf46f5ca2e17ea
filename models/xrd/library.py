"""Reference phases for XRD analysis: from CIF folders (a user's ICSD/COD/MP export), from pymatgen
structures (e.g. the simulator's demo structures), with an optional thermodynamic stability prior.

Candidates for a pattern are the phases made only of the elements present (the precursors' and the
target's chemical system), most stable first when energies above the hull are known.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from labos.models.xrd.crystal import CrystalPhase, StructureError

from labos.errors import LabosError


class CIFError(LabosError, ValueError):
    """A CIF file that cannot be read as a crystal structure."""


def _element_set(elements: Iterable[str] | str | None) -> frozenset[str] | None:
    if elements is None:
        return None
    from pymatgen.core import Element

    if isinstance(elements, str):
        elements = [e for e in elements.replace(" ", ",").split(",") if e]
    out = set()
    for e in elements:
        sym = e.strip()
        try:
            Element(sym)
        except ValueError:
            raise LabosError(f"{sym!r} is not a chemical element") from None
        out.add(sym)
    return frozenset(out)


def read_cif(path: str | Path):
    """One structure from a CIF, with a clear error when it does not parse."""
    from pymatgen.io.cif import CifParser

    path = Path(path)
    if not path.is_file():
        raise CIFError(f"{path}: no such CIF file")
    text = path.read_text(errors="replace")
    if not text.strip():
        raise CIFError(f"{path}: CIF file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser.from_str(text, occupancy_tolerance=1.05).parse_structures(primitive=False)
    except Exception as exc:  # pymatgen raises ValueError, KeyError, IndexError... on bad CIFs
        raise CIFError(f"{path}: not a readable crystal structure ({type(exc).__name__}: {exc})") from None
    if not structures:
        raise CIFError(f"{path}: CIF holds no structure")
    return structures[0]


class PhaseLibrary:
    """An ordered, named set of :class:`CrystalPhase` references."""

    def __init__(self, phases: Iterable[CrystalPhase] = (), problems: Iterable[str] = ()):
        self._phases: dict[str, CrystalPhase] = {}
        self.problems: list[str] = list(problems)  # files that were skipped, and why
        for p in phases:
            self.add(p)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_cif_dir(
        cls, folder: str | Path, *, strict: bool = False, recursive: bool = False
    ) -> PhaseLibrary:
        """Every ``*.cif`` in ``folder`` (phase name = file stem). A CIF that does not parse is skipped
        and listed in ``problems`` (or raises :class:`CIFError` when ``strict``)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CIFError(f"{folder}: not a folder of CIF files")
        files = sorted(folder.rglob("*.cif") if recursive else folder.glob("*.cif"))
        if not files:
            raise CIFError(f"{folder}: holds no .cif files")
        lib = cls()
        for f in files:
            try:
                structure = read_cif(f)
                lib.add(CrystalPhase.from_structure(structure, f.stem, source=str(f)))
            except (CIFError, StructureError) as exc:
                if strict:
                    raise CIFError(str(exc)) from None
                lib.problems.append(str(exc))
        if not len(lib):
            raise CIFError(f"{folder}: none of its {len(files)} CIF files could be read: {lib.problems[0]}")
        return lib

    @classmethod
    def from_structures(
        cls,
        structures: Mapping[str, object],
        *,
        source: str = "structures",
        e_above_hull: Mapping[str, float] | None = None,
    ) -> PhaseLibrary:
        """From pymatgen structures by name (e.g. ``demo_structures()``)."""
        e_above_hull = e_above_hull or {}
        lib = cls()
        for name, structure in structures.items():
            lib.add(
                CrystalPhase.from_structure(
                    structure, name, source=source, e_above_hull=e_above_hull.get(name)
                )
            )
        return lib

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> PhaseLibrary:
        lib = cls()
        for p in paths:
            p = Path(p)
            lib.add(CrystalPhase.from_structure(read_cif(p), p.stem, source=str(p)))
        return lib

    def add(self, phase: CrystalPhase) -> None:
        name = phase.name
        i = 2
        while name in self._phases:
            name = f"{phase.name}#{i}"
            i += 1
        phase.name = name
        self._phases[name] = phase

    def merged(self, other: PhaseLibrary) -> PhaseLibrary:
        out = PhaseLibrary(list(self), self.problems + other.problems)
        for p in other:
            out.add(p)
        return out

    def with_stability(self, thermo) -> PhaseLibrary:
        """Set each phase's energy above the hull from a thermodynamic database (``db.e_above_hull``)."""
        for p in self:
            if p.e_above_hull is None:
                try:
                    p.e_above_hull = float(thermo.e_above_hull(p.formula))
                except Exception:  # a formula the database does not know keeps no prior
                    continue
        return self

    # ---------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._phases)

    def __iter__(self) -> Iterator[CrystalPhase]:
        return iter(self._phases.values())

    def __getitem__(self, name: str) -> CrystalPhase:
        return self._phases[name]

    def names(self) -> list[str]:
        return list(self._phases)

    def find(self, key: str) -> CrystalPhase | None:
        """A phase by name, else the most stable phase with this formula."""
        if key in self._phases:
            return self._phases[key]
        from labos.domain import parse_formula

        try:
            reduced = parse_formula(key)
        except LabosError:
            return None
        same = [p for p in self if p.formula == reduced]
        if not same:
            return None
        return sorted(same, key=lambda p: p.e_above_hull if p.e_above_hull is not None else 0.0)[0]

    def candidates(
        self, elements: Iterable[str] | str | None = None, *, max_e_above_hull: float | None = None
    ) -> list[CrystalPhase]:
        """Phases made only of ``elements`` (all phases when None), most stable first.

        ``max_e_above_hull`` (eV/atom) drops phases known to be far above the hull; phases with no
        known energy are kept.
        """
        allowed = _element_set(elements)
        out = []
        for p in self:
            if allowed is not None and not p.elements <= allowed:
                continue
            if (
                max_e_above_hull is not None
                and p.e_above_hull is not None
                and p.e_above_hull > max_e_above_hull
            ):
                continue
            out.append(p)
        return sorted(out, key=lambda p: p.e_above_hull if p.e_above_hull is not None else 0.0)


def reference_structures() -> dict[str, object]:
    """Structures labos writes down itself (with literature sources) for common precursors that
    open CIF collections lack, e.g. MnCO3 and monoclinic α-Bi2O3 (models/xrd/data)."""
    import json
    from importlib import resources

    from pymatgen.core import Lattice, Structure

    raw = json.loads(
        resources.files("labos.models.xrd").joinpath("data/reference_structures.json").read_text()
    )
    out = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        lat = entry["lattice"]
        lattice = Lattice.from_parameters(
            lat["a"], lat["b"], lat["c"], lat["alpha"], lat["beta"], lat["gamma"]
        )
        species = [s["species"] for s in entry["sites"]]
        coords = [s["xyz"] for s in entry["sites"]]
        out[name] = Structure.from_spacegroup(entry["number"], lattice, species, coords)
    return out


def reference_library() -> PhaseLibrary:
    """:func:`reference_structures` as a library (source: the literature reference of each entry)."""
    return PhaseLibrary.from_structures(reference_structures(), source="labos reference_structures.json")
