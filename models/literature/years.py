"""Publication year from a DOI, for the publication-year split of the literature benchmark.

The text-mined dataset stores only DOIs. Most publishers encode the year: Elsevier
(``j.jssc.2009.04.013``, ``S0022-3093(00)...``), Springer (``s10854-017-...``), Wiley
(``j.1551-2916.2009...``, ``aenm.201100149``), RSC (``c7tc...``: 2017), ACS (``acs.chemmater.6b...``;
older ``cm049831k``), ECS (``2.0781714jes``: 2017), APS (volume → year), Nature (``s41598-017-...``).
DOIs without a year give None and are left out of the split.
"""

from __future__ import annotations

import re

_PATTERNS = [
    re.compile(r"\.((?:19|20)\d\d)\.\d"),  # Elsevier j.x.2009.04.013, Wiley j.1551-2916.2009.03297.x
    re.compile(r"\(((?:\d\d))\)"),  # Elsevier S0022-3093(00)00007-7
    re.compile(r"^s\d{5}-(0\d\d)-"),  # Springer s10854-017-8299-y
    re.compile(r"^[a-z]+\.((?:19|20)\d\d)\d{4,}"),  # Wiley aenm.201100149, anie.200603699
    re.compile(r"^s41\d{3}-(0\d\d)-"),  # Nature family s41598-017-16711-9
]


def _two_digit(yy: int) -> int:
    return 2000 + yy if yy <= 30 else 1900 + yy


def doi_year(doi: str) -> int | None:
    """The publication year encoded in ``doi``, or None when it cannot be read."""
    if not doi or "/" not in doi:
        return None
    prefix, _, suffix = doi.strip().partition("/")
    s = suffix.lower()
    if prefix == "10.1016":
        m = re.search(r"\.((?:19|20)\d\d)\.\d", s) or re.search(r"\((\d\d)\)", s)
        if m:
            v = int(m.group(1))
            return v if v > 1900 else _two_digit(v)
        return None
    if prefix in ("10.1007", "10.1617"):
        m = re.match(r"^s\d{5}-(\d{3})-", s)
        return 2000 + int(m.group(1)) if m else None
    if prefix in ("10.1111", "10.1002"):
        m = re.search(r"\.((?:19|20)\d\d)\.\d", s) or re.match(r"^[a-z]+\.((?:19|20)\d\d)\d{4,}", s)
        return int(m.group(1)) if m else None
    if prefix == "10.1039":
        m = re.match(r"^([abcd])(\d)", s)
        if not m:
            return None
        return {"a": 1990, "b": 2000, "c": 2010, "d": 2020}[m.group(1)] + int(m.group(2))
    if prefix == "10.1021":
        m = re.match(r"^acs\.[a-z]+\.(\d)b", s)
        if m:
            return 2010 + int(m.group(1))
        m = re.match(r"^[a-z]{2}(\d+)", s)
        if not m:
            return None
        d = m.group(1)
        if d[0] in "09" and len(d) >= 6:
            return _two_digit(int(d[:2]))
        return 2000 + int(d[0]) if d[0] in "78" else 2010 + int(d[0])
    if prefix == "10.1149":
        m = re.match(r"^2\.(\d+)", s)
        if m:
            d = m.group(1)
            if len(d) == 6:
                return 2010 + int(d[3])
            if len(d) in (7, 8):
                return 2000 + int(d[-4:-2])
        return None
    if prefix == "10.1103":
        m = re.match(r"^physrev([a-z]*)\.(\d+)\.", s)
        if not m:
            return None
        journal, vol = m.group(1), int(m.group(2))
        if journal == "b" and vol >= 41:
            return 1990 + (vol - 41) // 2
        if journal == "lett" and vol >= 80:
            return 1998 + (vol - 80) // 2
        if journal == "materials":
            return 2016 + vol
        if journal == "applied":
            return 2013 + vol
        return None
    if prefix == "10.1038":
        m = re.match(r"^s41\d{3}-(\d{3})-", s)
        if m:
            return 2000 + int(m.group(1))
        m = re.search(r"\.((?:19|20)\d\d)\.\d", s)
        return int(m.group(1)) if m else None
    m = re.search(r"((?:19|20)\d\d)", s)
    return int(m.group(1)) if m else None
