"""Thermodynamics for labos: formation energies from several sources, Gibbs energies at
temperature (kelvin), phase diagrams, reaction energies, pairwise reactions and target screening.

Quick use::

    from labos.models.thermo import ThermoDB
    db = ThermoDB.default()                      # embedded, offline
    db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], 1373.15).per_atom
"""

from .atmosphere import ATMOSPHERES, partial_pressures
from .db import GibbsEnergy, InterfaceReaction, ReactionEnergy, ThermoDB
from .entries import ThermoEntry
from .gibbs import TemperatureError
from .reactions import BalancedReaction, ReactionError, balance, parse_reaction
from .screening import Candidate, ScreenResult, read_targets, screen

__all__ = [
    "ATMOSPHERES",
    "BalancedReaction",
    "Candidate",
    "GibbsEnergy",
    "InterfaceReaction",
    "ReactionEnergy",
    "ReactionError",
    "ScreenResult",
    "TemperatureError",
    "ThermoDB",
    "ThermoEntry",
    "balance",
    "parse_reaction",
    "partial_pressures",
    "read_targets",
    "screen",
]
