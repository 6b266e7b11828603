"""Categories of an export: one per distinct expression text, one for everything, or a user's mapping.

A category's id is its 1-based position (COCO and YouTube-VIS ids, MOTS class ids); YOLO uses id - 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from glus_cli import __version__
from glus_cli.errors import InputError
from glus_cli.json_files import read_json_object
from glus_cli.run_folder import ExpressionRun


class Categories:
    """Maps every exported expression to a category.

    Build it with `Categories.by_text`, `Categories.single` or `Categories.from_file`.
    """

    def __init__(self, names: list[str], assignment: dict[tuple[str, str], int]) -> None:
        self.names = names
        """Category names; the id of ``names[i]`` is ``i + 1``."""
        self._assignment = assignment

    @classmethod
    def by_text(cls, expressions: Iterable[ExpressionRun]) -> Categories:
        """One category per distinct expression text, in order of first appearance."""
        ids: dict[str, int] = {}
        assignment = {}
        for expression in expressions:
            assignment[(expression.video, expression.exp_id)] = ids.setdefault(expression.text, len(ids) + 1)
        return cls(list(ids), assignment)

    @classmethod
    def single(cls, name: str, expressions: Iterable[ExpressionRun]) -> Categories:
        """Every expression under the one category `name`."""
        if not name.strip():
            raise InputError("--category must not be empty")
        return cls([name], {(e.video, e.exp_id): 1 for e in expressions})

    @classmethod
    def from_file(cls, path: Path, expressions: Iterable[ExpressionRun]) -> Categories:
        """Categories from a JSON object mapping ``"<video>/<exp_id>"`` (or a bare ``"<exp_id>"``, for
        every video) to a category name; category ids follow the order of first appearance in the file.

        Raises:
            InputError: the file is unreadable, a value is not a non-empty string, or an exported
                expression has no category.
        """
        mapping = read_json_object(path, what="categories file ")
        ids: dict[str, int] = {}
        for key, value in mapping.items():
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    f"categories file {path}: {key!r} must map to a category name, got {value!r}"
                )
            ids.setdefault(value, len(ids) + 1)
        assignment = {}
        for expression in expressions:
            name = mapping.get(f"{expression.video}/{expression.exp_id}", mapping.get(expression.exp_id))
            if name is None:
                raise InputError(
                    f"categories file {path} has no category for expression {expression.exp_id!r} of "
                    f'video {expression.video!r} (key "{expression.video}/{expression.exp_id}" or '
                    f'"{expression.exp_id}")'
                )
            assignment[(expression.video, expression.exp_id)] = ids[name]
        return cls(list(ids), assignment)

    def dataset_head(self) -> dict[str, Any]:
        """The keys a COCO or YouTube-VIS file opens with: ``info``, ``licenses`` and ``categories``."""
        return {
            "info": {"description": "glus export", "version": __version__},
            "licenses": [],
            "categories": [
                {"id": index + 1, "name": name, "supercategory": ""} for index, name in enumerate(self.names)
            ],
        }

    def id_of(self, expression: ExpressionRun) -> int:
        """The 1-based category id of `expression`."""
        return self._assignment[(expression.video, expression.exp_id)]
