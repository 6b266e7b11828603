"""User-facing errors.

Every problem a user can cause or meet (bad input, a wrong checkpoint, no network, a full disk) is raised
as a :class:`GlusError` subclass with a message that reads as one complete line. The CLI prints that line
and exits with the class's ``exit_code``; any other exception is a bug.
"""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its class name if it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


class GlusError(Exception):
    """Base class: a problem explained to the user in one line, never with a traceback."""

    exit_code = 1


class InputError(GlusError):
    """A video, frame folder, expression or option the user gave cannot be used."""

    exit_code = 2


class CheckpointError(GlusError):
    """A checkpoint (folder or Hub id) is missing, incomplete, or not in the GLUS layout."""

    exit_code = 3


class NetworkError(GlusError):
    """Something had to be downloaded but the network (or the Hub) is unavailable or offline mode is on."""

    exit_code = 4


class OutputError(GlusError):
    """Outputs cannot be written: the folder exists, the disk is full, permissions."""

    exit_code = 5


class ResourceError(GlusError):
    """The device ran out of memory or is unavailable."""

    exit_code = 6
