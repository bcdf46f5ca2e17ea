"""XRD: read patterns, model them from crystal structures, identify and quantify phases.

``analyze(pattern, candidates, *, elements=None) -> AnalysisResult`` is the entry point;
``io.read_pattern`` / ``io.write_xrdml`` read and write files; ``library.PhaseLibrary`` holds the
reference structures; ``physics`` is the pattern model shared with the simulator.
"""

from labos.models.xrd.analysis import AnalysisOptions, AnalysisResult, XRDAnalysisError, analyze
from labos.models.xrd.io import PatternFormatError, read_pattern, write_xrdml
from labos.models.xrd.library import CIFError, PhaseLibrary

__all__ = [
    "AnalysisOptions",
    "AnalysisResult",
    "CIFError",
    "PatternFormatError",
    "PhaseLibrary",
    "XRDAnalysisError",
    "analyze",
    "read_pattern",
    "write_xrdml",
]
