"""Physical properties of precursors with literature sources (data/melting_points.csv)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from labos.domain import parse_formula

DATA = Path(__file__).parent / "data" / "melting_points.csv"


@dataclass(frozen=True)
class MeltingPoint:
    formula: str
    temperature_k: float
    kind: str  # "melts" | "decomposes"
    source: str
    note: str = ""


@lru_cache(maxsize=1)
def _table() -> dict[str, MeltingPoint]:
    out: dict[str, MeltingPoint] = {}
    with open(DATA) as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            f = parse_formula(row["formula"])
            out.setdefault(
                f,
                MeltingPoint(
                    f, float(row["temperature_c"]) + 273.15, row["kind"], row["source"], row["note"] or ""
                ),
            )
    return out


def melting_info(formula: str) -> MeltingPoint | None:
    """The tabulated record (with its source), or None."""
    return _table().get(parse_formula(formula))


@lru_cache(maxsize=4096)
def melting_point_k(formula: str) -> float | None:
    """Melting point in K, or the decomposition temperature for a solid that decomposes first
    (carbonates, hydroxides: ``melting_info(...).kind`` says which); None if not tabulated."""
    info = melting_info(formula)
    return info.temperature_k if info else None


def known_formulas() -> list[str]:
    return sorted(_table())
