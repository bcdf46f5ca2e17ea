"""Exceptions every part of labos raises; each names the problem in words a user can act on."""


class LabosError(Exception):
    """Base class: anything labos raises on purpose."""


class FormulaError(LabosError, ValueError):
    """A chemical formula that is empty, malformed or names an element that does not exist."""


class ConfigError(LabosError):
    """A configuration file or setting that cannot be used."""


class DataMissingError(LabosError, FileNotFoundError):
    """A dataset the command needs is not on this machine; the message says how to get it."""


class NotImplementedYet(LabosError, NotImplementedError):
    """A part of labos that is not built yet."""
