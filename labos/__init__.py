"""labos: an autonomous lab for solid-state synthesis.

Import map (the repository's top-level folders become sub-packages of one namespace):
planners/ -> labos.planners, drivers/ -> labos.drivers, models/ -> labos.models,
simulator/ -> labos.simulator.
"""

__version__ = "0.1.0"
