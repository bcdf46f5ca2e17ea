"""Structure → energy with the CHGNet universal potential (optional extra ``labos[chgnet]``).

CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031, 2023) ships its weights in its wheel and was
trained on MP energies that include the MP2020 corrections, so its predictions (eV/atom) are
compared with MP2020 elemental references: ΔH_f = E_pred − Σ x_i μ_i with μ_i from the MP summary.
Entries are flagged as estimates (source ``chgnet``).
"""

from __future__ import annotations

from labos.errors import NotImplementedYet

from .entries import ThermoEntry


def _model():
    try:
        from chgnet.model import CHGNet
    except ImportError:
        raise NotImplementedYet(
            "CHGNet energies not implemented without the optional extra: `pip install labos[chgnet]`"
        ) from None
    return CHGNet.load()


def chgnet_entries(structures) -> list[ThermoEntry]:
    """Formation energies of relaxed-enough structures predicted by CHGNet (static, no relaxation)."""
    model = _model()
    from .sources import mp_reference_energies

    refs = mp_reference_energies()
    out = []
    for s in structures:
        pred = model.predict_structure(s)
        e_pa = float(pred["e"])  # eV/atom, MP2020-compatible
        comp = s.composition
        mu = sum(comp.get_atomic_fraction(el) * refs[str(el)] for el in comp.elements)
        out.append(
            ThermoEntry(
                comp.reduced_formula, e_pa - mu, "chgnet", volume_per_atom=s.volume / len(s), is_estimate=True
            )
        )
    return out
