"""Reading the text-mined solid-state synthesis dataset (Kononova et al., Sci. Data 6, 203, 2019).

Each reaction becomes a :class:`SynthesisRecord`: target composition (variables such as ``x`` in
``La1-xSrxMnO3`` are replaced by the first reported value that keeps every element of the formula
present — ``Ca(W1-xMox)O4`` reported for x = 0, 0.1, ... is the Mo-containing compound — and element
placeholders such as ``M`` by those of their elements the reaction's precursors supply, else the
first), its dopants (``Ca2SnO4:Eu3+``: the ``additives`` as elements, a separate field and part of the
target key ``Ca2SnO4:Eu``), the precursor set (reduced formulas of the compounds, ``CoO4/3`` as Co3O4 and
``FeC2O4.2H2O`` as the dihydrate; gases and solvents dropped), the firing
temperature (the highest heating temperature reported) and the dwell time at it, the atmosphere and
the publication year (from the DOI, see :mod:`.years`).
"""

from __future__ import annotations

import ast
import hashlib
import json
import lzma
import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from labos.models.literature.features import VOLATILE, amounts
from labos.models.literature.years import doi_year

from labos.config import get_settings
from labos.errors import DataMissingError, FormulaError

DATASET = "literature/solid-state_dataset_2019-12-03.json.xz"
# Nominal dopant amount per host atom (a typical 1 % doping level). Chosen on the 2015-2016
# validation split (train <= 2014): 0.01 vs 0.02 gave top-1 0.614 vs 0.610, top-5 0.787 vs 0.787.
DOPANT_SHARE = 0.01
# Not powders: gases and liquids that appear among "precursors".
NON_PRECURSORS = frozenset({"O2", "H2O", "CO2", "N2", "H2", "NH3", "Ar", "CO", "H2O2", "C2H5OH", "CH3OH"})
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass(frozen=True)
class SynthesisRecord:
    doi: str
    year: int | None
    target: str  # reduced formula
    elements: dict[str, float]  # element fractions of the target (sum 1)
    precursors: tuple[str, ...]  # reduced formulas, sorted
    temperature_c: float | None
    dwell_h: float | None
    atmosphere: str | None
    dopants: frozenset[str] = frozenset()  # elements of the "additives" the host formula lacks


def dataset_path() -> Path:
    path = get_settings().dataset(DATASET)
    if not path.is_file():
        raise DataMissingError(
            f"the text-mined synthesis dataset is not at {path}; run `labos data fetch` (or set LABOS_DATA_DIR)"
        )
    return path


def checksum(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _eval(expr: str, variables: dict[str, float]) -> float:
    """A number from an amount expression like ``5.5-x`` or ``1/3`` (no names other than variables)."""
    text = expr.strip().replace("−", "-").replace("×", "*")
    node = ast.parse(text, mode="eval").body

    def ev(n: ast.AST) -> float:
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float):
            return float(n.value)
        if isinstance(n, ast.Name) and n.id in variables:
            return variables[n.id]
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub | ast.UAdd):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else v
        raise ValueError(f"cannot evaluate {expr!r}")

    return ev(node)


def _variable_options(material: dict) -> list[dict[str, float]]:
    """Assignments of the amount variables to try, the first reported values first."""
    values: dict[str, list[float]] = {}
    for name, spec in (material.get("amounts_vars") or {}).items():
        listed = [float(v) for v in (spec or {}).get("values") or [] if v is not None]
        if listed:
            values[name] = listed
        elif spec and spec.get("min_value") is not None:
            values[name] = [float(spec["min_value"])]
        else:
            values[name] = [0.1]
    depth = max((len(v) for v in values.values()), default=1)
    options = [{k: v[min(i, len(v) - 1)] for k, v in values.items()} for i in range(depth)]
    options.append({k: v[len(v) // 2] for k, v in values.items()})
    return options


def _element_choice(material: dict, supplied: frozenset[str] | None) -> dict[str, dict[str, float]]:
    """Placeholder element → {element: share}: those the precursors supply (shared equally), else the first."""
    out = {}
    for name, choices in (material.get("elements_vars") or {}).items():
        if not choices:
            continue
        hits = [el for el in choices if supplied and el in supplied]
        chosen = list(dict.fromkeys(hits)) or [choices[0]]
        out[name] = {el: 1.0 / len(chosen) for el in chosen}
    return out


# "FeC2O4.2H2O": water of crystallisation after a full stop, which the dataset's parser read as
# FeC2O4.2 + H2O (Fe H2 C2 O5.2); 33 distinct precursor strings, about 80 mentions.
_DOT_HYDRATE = re.compile(r"^(?P<base>.*[A-Za-z)\]]\d*)\.(?P<n>\d+)\s*H2O$")


@lru_cache(maxsize=1000)
def _dot_hydrate(formula: str) -> dict[str, str] | None:
    """Element amounts of a ``Base.nH2O`` formula as strings, or None when it is not one."""
    m = _DOT_HYDRATE.match(formula.strip())
    if m is None:
        return None
    from pymatgen.core.composition import CompositionError

    try:
        out = {el: float(v) for el, v in amounts(m.group("base")).items()}
    except (CompositionError, ValueError, KeyError):
        return None
    n = float(m.group("n"))
    out["H"] = out.get("H", 0.0) + 2 * n
    out["O"] = out.get("O", 0.0) + n
    return {el: repr(v) for el, v in out.items()}


def _amounts_for(material: dict, variables: dict[str, float], subst) -> tuple[dict[str, float], bool] | None:
    total: dict[str, float] = {}
    try:
        for comp in material.get("composition") or []:
            factor = _eval(str(comp.get("amount", "1")), variables)
            elements = _dot_hydrate(str(comp.get("formula") or "")) or comp.get("elements") or {}
            for el, amount in elements.items():
                value = factor * _eval(str(amount), variables)
                for real, share in subst.get(el, {el: 1.0}).items():
                    total[real] = total.get(real, 0.0) + share * value
    except (ValueError, SyntaxError, ZeroDivisionError, TypeError):
        return None
    if not total or any(v < -1e-9 for v in total.values()):
        return None
    complete = all(v > 1e-9 for v in total.values())
    return {el: v for el, v in total.items() if v > 1e-9}, complete


def material_amounts(material: dict, supplied: frozenset[str] | None = None) -> dict[str, float] | None:
    """Element amounts of a dataset material, or None when they cannot be evaluated.

    ``supplied`` (the elements of the reaction's precursors) resolves element placeholders.
    """
    subst = _element_choice(material, supplied)
    first = None
    for variables in _variable_options(material):
        got = _amounts_for(material, variables, subst)
        if got is None:
            continue
        if got[1]:
            first = got[0]
            break
        first = first or got[0]
    total = first
    from pymatgen.core import Element

    if not total or not all(Element.is_valid_symbol(el) for el in total):
        return None
    return total


@lru_cache(maxsize=200_000)
def _reduced(items: tuple[tuple[str, float], ...]) -> str:
    from pymatgen.core import Composition

    return Composition(dict(items)).reduced_formula


def reduced_formula(amounts: dict[str, float]) -> str:
    return _reduced(tuple(sorted((el, round(v, 4)) for el, v in amounts.items())))


@lru_cache(maxsize=50_000)
def _integer(items: tuple[tuple[str, float], ...]) -> str:
    from pymatgen.core import Composition

    comp = Composition(dict(items))
    formula, factor = comp.get_integer_formula_and_factor(max_denominator=12)
    exact = Composition(formula) * factor
    if all(abs(exact[el] - n) <= 0.005 * n for el, n in comp.items()):
        return Composition(formula).reduced_formula
    return comp.reduced_formula


def compound_formula(amounts: dict[str, float]) -> str:
    """Reduced formula of a compound written with fractions: ``CoO4/3`` is Co3O4, ``5.7Fe2O3`` Fe2O3.

    A precursor is one compound however a paper scales it; amounts that no small integer formula
    reproduces within 0.5 % (``MnO1.839``) are kept as written.
    """
    return _integer(tuple(sorted((el, round(v, 4)) for el, v in amounts.items())))


def dopant_elements(texts: Iterable[str]) -> frozenset[str]:
    """Elements named in dopant notes: ``'Eu3+x'``, ``'xEu3+'``, ``'0.02Eu2+'``, ``'Eu0.01'``, ``'Eux'`` → Eu.

    Charges, amounts and variables are stripped; text that is no element is ignored; O, C, H, N are
    not counted (they come with the anions or the atmosphere).
    """
    from pymatgen.core import Element

    out = set()
    for text in texts:
        text = str(text)
        for i, ch in enumerate(text):
            if not ch.isupper():
                continue
            two = text[i : i + 2]
            if len(two) == 2 and two[1].islower() and Element.is_valid_symbol(two):
                out.add(two)
            elif Element.is_valid_symbol(ch):
                out.add(ch)
    return frozenset(out - VOLATILE)


def with_dopants(host: dict[str, float], dopants: Iterable[str]) -> dict[str, float]:
    """Host amounts plus each dopant at ``DOPANT_SHARE`` of the host's atoms (the nominal doping level)."""
    out = dict(host)
    total = sum(host.values())
    for el in sorted(dopants):
        out.setdefault(el, DOPANT_SHARE * total)
    return out


def target_key(host_formula: str, dopants: Iterable[str]) -> str:
    """``'SrAl2O4'`` or ``'SrAl2O4:Dy,Eu'``: a doped material is a target of its own."""
    dopants = sorted(dopants)
    return f"{host_formula}:{','.join(dopants)}" if dopants else host_formula


def split_target(target: str) -> tuple[str, frozenset[str]]:
    """``'SrAl2O4:Eu2+,Dy3+'`` → (``'SrAl2O4'``, {Eu, Dy}); raises FormulaError for an unreadable dopant."""
    host, _, doped = target.partition(":")
    dopants: set[str] = set()
    if doped.strip() or target.strip().endswith(":"):
        for token in re.split(r"[,;\s]+", doped.strip()):
            found = dopant_elements([token]) if token else frozenset()
            if not found:
                raise FormulaError(
                    f"dopant {token!r} of target {target!r} names no element (write e.g. 'SrAl2O4:Eu,Dy')"
                )
            dopants |= found
    return host.strip(), frozenset(dopants)


def target_fractions(target: str) -> dict[str, float]:
    """Element fractions (sum 1) of ``'Host'`` or ``'Host:Dopant,...'``, dopants at ``DOPANT_SHARE``."""
    host, dopants = split_target(target)
    try:
        host_amounts = amounts(host)
    except (ValueError, KeyError) as exc:
        raise FormulaError(f"cannot read the target formula {target!r}: {exc}") from None
    if not host_amounts:
        raise FormulaError(f"target {target!r} has no host formula")
    full = with_dopants(host_amounts, dopants - set(host_amounts))
    total = sum(full.values())
    return {el: v / total for el, v in full.items()}


def _heating(operations: list[dict]) -> tuple[float | None, float | None, str | None]:
    best_t, best_time, atmosphere = None, None, None
    for op in operations or []:
        if op.get("type") != "HeatingOperation" or not op.get("conditions"):
            continue
        cond = op["conditions"]
        temps = [
            v
            for t in cond.get("heating_temperature") or []
            for v in (t.get("values") or [t.get("max_value")])
            if v
        ]
        temps = [float(t) for t in temps if 100 <= float(t) <= 2500]
        if not temps:
            continue
        t = max(temps)
        times = [
            v for x in cond.get("heating_time") or [] for v in (x.get("values") or [x.get("max_value")]) if v
        ]
        times = [float(x) for x in times if 0 < float(x) <= 500]
        if best_t is None or t > best_t:
            best_t = t
            best_time = max(times) if times else None
            atm = cond.get("heating_atmosphere") or []
            atmosphere = atm[0] if atm else atmosphere
    return best_t, best_time, atmosphere


def parse_reaction(rx: dict) -> SynthesisRecord | None:
    """One dataset reaction as a record, or None when target or precursors cannot be read."""
    precursors = set()
    for p in rx.get("precursors") or []:
        pa = material_amounts(p)
        if pa is None:
            return None
        name = compound_formula(pa)
        if name not in NON_PRECURSORS:
            precursors.add(name)
    if not precursors:
        return None
    supplied = frozenset(el for p in precursors for el in _elements_of(p))
    target = rx.get("target") or {}
    host = material_amounts(target, supplied)
    if host is None:
        return None
    # dopants ("Sr2P2O7:Eu2+") are real ingredients: DOPANT_SHARE of the atoms, so the recipe needs them
    dopants = dopant_elements(target.get("additives") or []) - set(host)
    full = with_dopants(host, dopants)
    total = sum(full.values())
    temperature, dwell, atmosphere = _heating(rx.get("operations") or [])
    return SynthesisRecord(
        doi=rx.get("doi", ""),
        year=doi_year(rx.get("doi", "")),
        target=target_key(reduced_formula(host), dopants),
        elements={el: v / total for el, v in full.items()},
        precursors=tuple(sorted(precursors)),
        temperature_c=temperature,
        dwell_h=dwell,
        atmosphere=atmosphere,
        dopants=dopants,
    )


@lru_cache(maxsize=100_000)
def _elements_of(formula: str) -> frozenset[str]:
    from pymatgen.core import Composition

    return frozenset(el.symbol for el in Composition(formula).elements)


def iter_reactions(path: Path, limit: int | None = None) -> Iterator[dict]:
    """The raw reaction objects; ``limit`` decodes only the first ones (a stream, for quick subsets)."""
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if limit is None:
            data = json.load(fh)
            if not isinstance(data, dict) or "reactions" not in data:
                raise DataMissingError(
                    f"{path} has no 'reactions' list: not the text-mined synthesis dataset"
                )
            yield from data["reactions"]
            return
        decoder = json.JSONDecoder()
        buf, pos = "", 0
        while '"reactions"' not in buf:
            chunk = fh.read(1 << 16)
            if not chunk:
                raise DataMissingError(
                    f"{path} has no 'reactions' list: not the text-mined synthesis dataset"
                )
            buf += chunk
        pos = buf.index("[", buf.index('"reactions"')) + 1
        count = 0
        while count < limit:
            while pos < len(buf) and buf[pos] in " \n\r\t,":
                pos += 1
            if pos < len(buf) and buf[pos] == "]":
                return
            try:
                obj, pos = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                chunk = fh.read(1 << 20)
                if not chunk:
                    raise DataMissingError(
                        f"{path} ends in the middle of a reaction: the file is truncated"
                    ) from None
                buf, pos = buf[pos:] + chunk, 0
                continue
            yield obj
            count += 1


def load_records(path: Path | None = None, limit: int | None = None) -> list[SynthesisRecord]:
    """Every readable reaction of the dataset (seconds for all 30 031; ``limit`` for a quick subset)."""
    path = path or dataset_path()
    out = []
    for rx in iter_reactions(path, limit):
        rec = parse_reaction(rx)
        if rec is not None:
            out.append(rec)
    return out
