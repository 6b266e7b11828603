"""Names read from files (dataset JSON, CSV, key-frame files, run records) that become paths.

Every path glus-cli builds from file content goes through `child_path`, so that a hostile or broken
dataset file (an expression id ``"../../x"``, an absolute path, a NUL) cannot place a write or a read
outside the folder it belongs to. Torch-free, so the Ray driver and `glus export` can use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from glus_cli.errors import InputError

# A drive letter (`C:`) or a Windows device path start makes a name absolute on some system.
_DRIVE = re.compile(r"^[A-Za-z]:")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be one folder or file name inside a root, or None when it can."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL character"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if set(name) == {"."}:
        return "is only dots"
    return None


def checked_name(name: object, *, source: str | Path, entry: str) -> str:
    """`name` as a string, if it is one plain path component.

    Args:
        name: the value read from the file (ids may be numbers in JSON).
        source: the file it was read from, named in the error.
        entry: what the name is (``"expression id"``, ``"video"``), named in the error.

    Raises:
        InputError: the name is empty, only dots, or holds a path separator, a NUL or a drive letter.
    """
    text = str(name)
    problem = "is missing" if name is None else name_problem(text)
    if problem is not None:
        raise InputError(f"{source}: {entry} {text!r} {problem}; it cannot name a folder or file")
    return text


def child_path(root: Path, *names: object, source: str | Path, entry: str) -> Path:
    """``root / name1 / name2 ...`` after checking each name with `checked_name`.

    Each name being one component that is not ``.`` or ``..``, the path stays lexically inside `root`.
    Symbolic links the user placed inside `root` (a dataset's video folders linked from elsewhere) are
    the user's choice and are followed.
    """
    path = root
    for name in names:
        path = path / checked_name(name, source=source, entry=entry)
    return path
