"""Fixtures shared by the XRD tests: the simulator's demo structures, built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def structures():
    from labos.simulator.demo_chemistry import demo_structures

    return demo_structures()


@pytest.fixture(scope="session")
def library(structures):
    from labos.models.xrd import PhaseLibrary

    return PhaseLibrary.from_structures(structures, source="demo")
