"""Reading the text-mined solid-state synthesis dataset (Kononova et al., Sci. Data 6, 203, 2019).

Each reaction becomes a :class:`SynthesisRecord`: target composition (variables such as ``x`` in
``La1-xSrxMnO3`` are replaced by their first reported value, element placeholders such as ``M`` by
their first element), the precursor set (reduced formulas, gases and solvents dropped), the firing
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
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from labos.models.literature.years import doi_year

from labos.config import get_settings
from labos.errors import DataMissingError

DATASET = "literature/solid-state_dataset_2019-12-03.json.xz"
# Not powders: gases and liquids that appear among "precursors".
DOPANT_SHARE = 0.01
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


def _variables(material: dict) -> dict[str, float]:
    out = {}
    for name, spec in (material.get("amounts_vars") or {}).items():
        values = [v for v in (spec or {}).get("values") or [] if v is not None]
        if values:
            out[name] = float(values[0])
        elif spec and spec.get("min_value") is not None:
            out[name] = float(spec["min_value"])
        else:
            out[name] = 0.1
    return out


def material_amounts(material: dict) -> dict[str, float] | None:
    """Element amounts of a dataset material, or None when they cannot be evaluated."""
    variables = _variables(material)
    subst = {k: v[0] for k, v in (material.get("elements_vars") or {}).items() if v}
    total: dict[str, float] = {}
    try:
        for comp in material.get("composition") or []:
            factor = _eval(str(comp.get("amount", "1")), variables)
            for el, amount in (comp.get("elements") or {}).items():
                el = subst.get(el, el)
                value = factor * _eval(str(amount), variables)
                total[el] = total.get(el, 0.0) + value
    except (ValueError, SyntaxError, ZeroDivisionError, TypeError):
        return None
    if not total or any(v < -1e-9 for v in total.values()):
        return None
    total = {el: v for el, v in total.items() if v > 1e-9}
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


def _dopants(material: dict) -> list[str]:
    from pymatgen.core import Element

    out = []
    for text in material.get("additives") or []:
        for symbol in re.findall(r"[A-Z][a-z]?", str(text)):
            if Element.is_valid_symbol(symbol) and symbol not in out:
                out.append(symbol)
    return out


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
    amounts = material_amounts(rx.get("target") or {})
    if amounts is None:
        return None
    total = sum(amounts.values())
    for el in _dopants(rx.get("target") or {}):
        # dopants ("Sr2P2O7:Eu2+") are real ingredients: 1 % of the atoms, so the recipe needs them
        amounts.setdefault(el, DOPANT_SHARE * total)
    total = sum(amounts.values())
    precursors = set()
    for p in rx.get("precursors") or []:
        pa = material_amounts(p)
        if pa is None:
            return None
        name = reduced_formula(pa)
        if name not in NON_PRECURSORS:
            precursors.add(name)
    if not precursors:
        return None
    temperature, dwell, atmosphere = _heating(rx.get("operations") or [])
    return SynthesisRecord(
        doi=rx.get("doi", ""),
        year=doi_year(rx.get("doi", "")),
        target=reduced_formula(amounts),
        elements={el: v / total for el, v in amounts.items()},
        precursors=tuple(sorted(precursors)),
        temperature_c=temperature,
        dwell_h=dwell,
        atmosphere=atmosphere,
    )


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
