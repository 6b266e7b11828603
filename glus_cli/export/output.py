"""Where an export goes: a new folder, built beside its final place and renamed there when complete.

Nothing is half-written: the whole output tree is written into a hidden ``.<OUT>.<random>.tmp`` folder next
to ``OUT`` and renamed to ``OUT`` at the end (with ``--force``, an existing ``OUT`` is moved aside first and
deleted once the new one is in place). An error or an interruption removes the temporary folder.

Also here: the JSON array written piece by piece to a file (`JsonArrayWriter`), so that the annotations of
a whole batch never sit in memory, and the frame images that YOLO and MOTS trees carry (`place_image`).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import cv2

from glus_cli.errors import OutputError
from glus_cli.video import VideoSource

logger = logging.getLogger(__name__)

JPEG_QUALITY = 95
"""Quality of frames decoded from a video file and written as JPEG."""


def check_output(out: Path, *, force: bool) -> None:
    """Refuse an existing `out` unless `force` (checked before any work).

    Raises:
        OutputError: `out` exists and `force` is off, or it is a file, or its parent is a file.
    """
    if out.exists() and not force:
        raise OutputError(f"{out} exists; choose another -o or pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write {out}: {parent} is a file, not a folder")
            break


@contextmanager
def staged_output(out: Path, *, force: bool) -> Iterator[Path]:
    """A fresh temporary folder beside `out`, renamed to `out` when the block ends without an error.

    Raises:
        OutputError: `out` cannot be written (see `check_output`), or an OS error while renaming.
    """
    check_output(out, force=force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
        staging.mkdir()
    except OSError as error:
        raise OutputError(f"cannot write {out}: {error.strerror or error}") from error
    try:
        yield staging
        _replace(staging, out, force=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(staging: Path, out: Path, *, force: bool) -> None:
    """Rename `staging` to `out`; an existing `out` (only with `force`) is moved aside, then deleted."""
    try:
        if out.exists():
            check_output(out, force=force)  # it may have appeared while the export ran
            old = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except OSError as error:
        raise OutputError(f"cannot write {out}: {error.strerror or error}") from error


class JsonArrayWriter:
    """A JSON array written one item at a time to `path`; `copy_to` appends the finished array to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._file.write("[")

    def add(self, item: Any) -> None:
        """Append one JSON-ready item."""
        self._file.write(",\n" if self.count else "\n")
        self._file.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        self.count += 1

    def close(self) -> None:
        """Close the array; the file is then complete JSON."""
        if not self._file.closed:
            self._file.write("\n]" if self.count else "]")
            self._file.close()

    def copy_to(self, target: IO[str]) -> None:
        """Close, then append the array's text to `target`."""
        self.close()
        with self.path.open(encoding="utf-8") as source:
            shutil.copyfileobj(source, target)

    def __enter__(self) -> JsonArrayWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_streamed_document(path: Path, head: dict[str, Any], key: str, items: JsonArrayWriter) -> None:
    """`path`: the JSON object `head` with one more key, `key`, last, holding `items`' array.

    The array is copied from its part file, which is then removed, so its items are never all in memory
    (COCO's annotations, YouTube-VIS's tracks).
    """
    with path.open("w", encoding="utf-8") as file:
        text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
        file.write(text[:-1] + ("," if head else "") + json.dumps(key) + ":")
        items.copy_to(file)
        file.write("}\n")
    items.path.unlink()


def write_json(path: Path, value: Any) -> None:
    """An indented JSON file (inside the staging folder, which is the atomic unit)."""
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def place_image(
    frames: VideoSource, index: int, image_file: Path | None, target_stem: Path, *, copy: bool
) -> str:
    """Put frame `index` at `target_stem` plus an image suffix; return the file's name.

    An image file is linked or, with `copy`, copied, keeping its suffix. The link is a hard link where the
    file system allows (tools that refuse paths leading out of their folder, as Datumaro does, accept it),
    else an absolute symbolic link. A frame decoded from a video file is written as JPEG.
    """
    target_stem.parent.mkdir(parents=True, exist_ok=True)
    if image_file is None:
        target = target_stem.with_name(target_stem.name + ".jpg")
        bgr = cv2.cvtColor(frames.read(index), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OutputError(f"cannot encode frame {index} of {frames.name} as JPEG")
        target.write_bytes(data.tobytes())
    else:
        target = target_stem.with_name(target_stem.name + image_file.suffix.lower())
        if copy:
            shutil.copyfile(image_file, target)
        else:
            try:
                target.hardlink_to(image_file)
            except OSError:  # another file system, or one without hard links
                target.symlink_to(image_file.resolve())
    return target.name
