"""``labos bench thermo``: speed and accuracy of the thermodynamics layer, as one JSON document.

Speed figures come with a baseline measured in the same run (a phase diagram built by scanning
every entry instead of the chemical-system index)."""

from __future__ import annotations

import random
import statistics
import time
from itertools import combinations

from labos.errors import DataMissingError

SYSTEMS = {
    2: [["Li", "O"], ["Ba", "O"], ["Fe", "O"], ["Mn", "O"], ["Ti", "O"]],
    3: [["Li", "Mn", "O"], ["Ba", "Ti", "O"], ["Li", "Fe", "O"], ["Na", "Mn", "O"], ["Sr", "Ti", "O"]],
    4: [
        ["Li", "Mn", "Ti", "O"],
        ["Li", "Fe", "P", "O"],
        ["Ba", "Sr", "Ti", "O"],
        ["Na", "Mn", "Ni", "O"],
        ["K", "Mn", "Cu", "O"],
    ],
    5: [
        ["Li", "Mn", "Ti", "O", "F"],
        ["Ba", "Sr", "Ti", "Zr", "O"],
        ["Li", "Fe", "Mn", "P", "O"],
        ["Li", "Ni", "Mn", "Co", "O"],
        ["Na", "K", "Nb", "Ta", "O"],
    ],
}


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_phase_diagrams(db, repeats: int = 5) -> dict:
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

    all_entries = db.entries
    out = {}
    for n, systems in SYSTEMS.items():
        idx_times, scan_times, sizes = [], [], []
        for els in systems:
            key = frozenset(els)
            for _ in range(repeats):
                pd, dt = _timed(lambda key=key: db._build_pd(key, None, "air"))
                idx_times.append(dt)

                def scan(key=key):  # baseline: filter all entries, no index
                    chosen = [e for e in all_entries if e.elements <= key]
                    chosen += [
                        PDEntry(el, 0.0, name=el) for el in key if el not in {e.formula for e in chosen}
                    ]
                    return PhaseDiagram(
                        [
                            PDEntry(e.composition, e.formation_enthalpy, name=e.formula)
                            if not isinstance(e, PDEntry)
                            else e
                            for e in chosen
                        ]
                    )

                _, dt = _timed(scan)
                scan_times.append(dt)
            sizes.append(len(pd.all_entries))
        med, base = statistics.median(idx_times), statistics.median(scan_times)
        out[f"{n}_elements"] = {
            "systems": ["-".join(s) for s in systems],
            "entries_per_diagram": sizes,
            "median_build_s": med,
            "max_build_s": max(idx_times),
            "baseline_full_scan_median_s": base,
            "ratio_to_baseline": med / base,
        }
    return out


def bench_ehull_agreement(db, limit: int | None = None, seed: int = 0) -> dict:
    """Our energy above hull vs the file's 'Decomposition Energy Per Atom MP' (0 for hull entries).

    Each entry is evaluated in the diagram of the largest chemical system containing it (a hull
    restricted to a face is that face's hull), so each maximal system is built once."""
    from pymatgen.analysis.phase_diagram import PhaseDiagram

    from .db import _names

    entries = [e for e in db.entries if e.source == "mp" and "decomposition_energy_file" in e.data]
    if not entries:
        raise DataMissingError("no MP summary entries with a decomposition-energy column in this database")
    if limit and limit < len(entries):
        entries = random.Random(seed).sample(entries, limit)
    t0 = time.perf_counter()
    cover: dict = {}
    built = 0
    diffs = []
    worst = (0.0, None)
    by_system: dict = {}
    for e in entries:
        by_system.setdefault(e.elements, []).append(e)
    for system in sorted(by_system, key=len, reverse=True):
        pd = cover.get(system)
        if pd is None:
            pd = PhaseDiagram(db._pd_entries(system, None, "air"))
            built += 1
            els = sorted(system)
            for k in range(1, len(els) + 1):
                for sub in combinations(els, k):
                    cover.setdefault(frozenset(sub), pd)
        names = _names(pd)
        for e in by_system[system]:
            ours = pd.get_e_above_hull(names[e.formula])
            d = abs(ours - e.data["decomposition_energy_file"])
            diffs.append(d)
            if d > worst[0]:
                worst = (d, e.formula)
    elapsed = time.perf_counter() - t0
    return {
        "entries_checked": len(diffs),
        "diagrams_built": built,
        "max_abs_diff_eV_per_atom": max(diffs),
        "mean_abs_diff_eV_per_atom": statistics.fmean(diffs),
        "fraction_within_1meV": sum(d <= 1e-3 for d in diffs) / len(diffs),
        "fraction_within_1e-6": sum(d <= 1e-6 for d in diffs) / len(diffs),
        "worst_formula": worst[1],
        "seconds": elapsed,
    }


def bench_exp_vs_calc() -> dict:
    """MAE of pymatgen's embedded MP2020-corrected calculations against its experimental table."""
    from .sources import CalculatedSource, ExperimentalSource

    exp = {e.formula: e.formation_enthalpy_per_atom for e in ExperimentalSource().load()}
    calc = {
        e.formula: e.formation_enthalpy_per_atom for e in CalculatedSource().load() if len(e.elements) > 1
    }
    common = sorted(exp.keys() & calc.keys())
    errs = [abs(exp[f] - calc[f]) for f in common]
    return {"compounds": len(common), "mae_eV_per_atom": statistics.fmean(errs), "max_eV_per_atom": max(errs)}


def bench_volume_estimate() -> dict:
    """Error of the composition-only volume estimate against the shared CIF structures."""
    import math
    import warnings

    from pymatgen.core import Structure

    from labos.config import get_settings

    from .volume import estimate_volume_per_atom

    files = sorted(get_settings().dataset("xrd/cifs").glob("*.cif"))
    files += sorted(get_settings().dataset("xrd/autoanalyzer_example/references").glob("*.cif"))
    if not files:
        return {"skipped": "no CIFs under the datasets folder (xrd/cifs)"}
    errs = []
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = Structure.from_file(f)
        except Exception:
            continue
        est = estimate_volume_per_atom(s.composition.reduced_formula)
        errs.append(abs(math.log(est / (s.volume / len(s)))))
    errs.sort()
    return {
        "structures": len(errs),
        "median_rel_error": errs[len(errs) // 2],
        "mean_rel_error": statistics.fmean(errs),
        "p90_rel_error": errs[int(0.9 * len(errs))],
    }


def bench_model(seed: int = 0) -> dict:
    from .composition_model import ModelConfig, evaluate, training_data

    formulas, energies, source = training_data()
    cfg = ModelConfig(n_models=2)
    t = time.perf_counter()
    res = evaluate(formulas, energies, cfg, seed=seed)
    res["training_source"] = source
    res["config"] = cfg.__dict__
    res["seconds_for_both_splits"] = time.perf_counter() - t
    return res


def bench_hand_cases(db) -> dict:
    """Temperature where BaCO3 + TiO2 -> BaTiO3 + CO2 turns favourable in air (K)."""
    crossing = None
    prev = None
    for t in range(300, 2001, 10):
        e = db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], t).per_atom
        if prev is not None and prev > 0 >= e:
            crossing = t
            break
        prev = e
    return {
        "BaCO3+TiO2_favourable_above_K": crossing,
        "Li2O+CO2_dG_300K_eV_per_atom": db.reaction_energy(["Li2O", "CO2"], ["Li2CO3"], 300).per_atom,
        "FeO_e_above_hull_eV_per_atom": db.e_above_hull("FeO"),
    }


def run_bench(limit: int | None = None, model: bool = True, repeats: int = 5) -> dict:
    from .db import ThermoDB
    from .sources import SummarySource, mp_summary_path

    result: dict = {"benchmark": "thermo"}
    _, t_exp = _timed(lambda: ThermoDB.from_sources(["exp"]))
    result["load_seconds"] = {"embedded_exp": t_exp}
    emb = ThermoDB.default()
    result["hand_cases"] = bench_hand_cases(emb)
    result["exp_vs_mp2020_calc"] = bench_exp_vs_calc()
    result["volume_estimate"] = bench_volume_estimate()
    path = mp_summary_path()
    if not path.exists():
        result["mp"] = {"skipped": f"{path} missing; run `labos data fetch`"}
        return result
    _, t_parse = _timed(lambda: SummarySource(path, name="mp")._build(path))
    mp, t_mp = _timed(lambda: ThermoDB.from_sources(["mp"]))
    result["load_seconds"].update(
        {"mp_summary_parse": t_parse, "mp_db_from_cache": t_mp, "mp_entries": len(mp)}
    )
    result["phase_diagram_build"] = bench_phase_diagrams(mp, repeats=repeats)
    result["e_above_hull_vs_file"] = bench_ehull_agreement(mp, limit=limit)
    if model:
        result["composition_model"] = bench_model()
    return result
