"""Names from files become paths only as single components inside their root."""

from __future__ import annotations

from pathlib import Path

import pytest

from glus_cli.errors import InputError
from glus_cli.safe_names import checked_name, child_path

HOSTILE = ["", ".", "..", "...", "../../escaped", "1/../../x", "/etc/passwd", "a\\b", "C:evil", "x\x00y"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_naming_the_file_and_entry(name: str) -> None:
    with pytest.raises(InputError, match=r"meta\.json: expression id"):
        checked_name(name, source="meta.json", entry="expression id")


@pytest.mark.parametrize("name", ["0", "dog_walk", "a b", "café", ".hidden", "x..y", 12])
def test_plain_names_pass_unchanged(name: object) -> None:
    assert checked_name(name, source="f", entry="e") == str(name)


def test_child_path_joins_checked_names(tmp_path: Path) -> None:
    assert child_path(tmp_path, "video", 3, source="f", entry="e") == tmp_path / "video" / "3"
    with pytest.raises(InputError, match="path separator"):
        child_path(tmp_path, "video", "../../x", source="f", entry="e")
