"""The one JSON reader: the value or object in a file, or one line naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from glus_cli.errors import CheckpointError, InputError
from glus_cli.json_files import read_json, read_json_object, read_text


def test_reads_objects_and_other_values(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"vid_0": "00005", "ünïcode": [1, 2.5]}', encoding="utf-8")
    assert read_json_object(path) == {"vid_0": "00005", "ünïcode": [1, 2.5]}
    path.write_text("[1, 2]")
    assert read_json(path) == [1, 2]


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"v": ["the cat"]}')
    assert read_json_object(path) == {"v": ["the cat"]}
    assert read_text(path) == '{"v": ["the cat"]}'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"expressions file .*nope\.json does not exist"),
        (b"{not json", r"expressions file .*nope\.json is not valid JSON \(Expecting"),
        (b'["a list"]', r"expressions file .*nope\.json holds a JSON list, not an object"),
        (b"\xff\xfe{}", r"cannot read expressions file .*nope\.json: it is not UTF-8 text"),
    ],
)
def test_errors_name_the_file_and_the_problem(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "nope.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_json_object(path, what="expressions file ")


def test_the_caller_chooses_the_error_class(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{")
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        read_json_object(path, error=CheckpointError)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(CheckpointError, match="does not exist"):
        read_json(tmp_path / "folder.json", error=CheckpointError)
