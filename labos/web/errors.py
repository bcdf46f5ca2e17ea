"""Errors the console raises; the app maps each class to one HTTP status, the CLI to a clean message."""

from labos.errors import LabosError


class ConsoleError(LabosError):
    """Base class for console errors (HTTP 400 unless a subclass says otherwise)."""

    status_code = 400


class NotFound(ConsoleError, KeyError):
    """The campaign, experiment, sample, user ... named in the request does not exist."""

    status_code = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


class AccountError(ConsoleError):
    """A user name, password or role that cannot be used."""


class Conflict(ConsoleError):
    """The request clashes with the current state (a user that already exists, an answered intervention)."""

    status_code = 409


class AuthenticationFailed(ConsoleError):
    """Wrong user name or password, or an expired / revoked session."""

    status_code = 401


class LoginThrottled(ConsoleError):
    """Too many failed logins for one user name in a short time."""

    status_code = 429


class PermissionDenied(ConsoleError):
    """The signed-in user's role does not allow this action."""

    status_code = 403
