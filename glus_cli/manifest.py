"""The known GLUS checkpoints and CLIP vision towers: ``weights/manifest.json``, read once.

glus-cli ships the manifest as package data (``glus_cli/data/manifest.json``, a copy of
``weights/manifest.json``). It names the released checkpoints with their download size and reported
accuracy, the CLIP towers they need, and the default model, which every command that loads a model uses
when the user names none (`default_model`). This module imports neither torch nor huggingface-hub, so the
command line can read the default at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from glus_cli.errors import CheckpointError, one_line

_MANIFEST_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelEntry:
    """A released GLUS checkpoint on the Hub, as listed in ``weights/manifest.json``."""

    repo_id: str
    revision: str
    size_bytes: int  # approximate download size; see weights/README.md for how it was derived
    vision_tower: str  # Hub id of the CLIP tower its config.json names
    jf_mevis: float  # J&F reported by the authors on MeViS
    jf_refytvos: float  # J&F reported by the authors on Ref-YouTube-VOS
    description: str
    default: bool
    training_data: tuple[str, ...]


@dataclass(frozen=True)
class VisionTowerEntry:
    """A CLIP vision tower that checkpoints need, and the files glus-cli fetches from it."""

    repo_id: str
    revision: str
    size_bytes: int  # approximate size of `files`
    files: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Manifest:
    """The known checkpoints and vision towers."""

    models: tuple[ModelEntry, ...]
    vision_towers: tuple[VisionTowerEntry, ...]

    @property
    def default(self) -> ModelEntry:
        """The checkpoint used when the user names none."""
        return next(entry for entry in self.models if entry.default)

    def model(self, repo_id: str) -> ModelEntry | None:
        """The checkpoint entry for ``repo_id``, if listed."""
        return next((entry for entry in self.models if entry.repo_id == repo_id), None)

    def vision_tower(self, repo_id: str) -> VisionTowerEntry | None:
        """The vision-tower entry for ``repo_id``, if listed."""
        return next((entry for entry in self.vision_towers if entry.repo_id == repo_id), None)


def load_manifest(path: Path | None = None) -> Manifest:
    """Read the model manifest: ``path``, or the one shipped with glus-cli (``weights/manifest.json``).

    Raises:
        CheckpointError: the file is missing or malformed.
    """
    source = path if path is not None else resources.files("glus_cli").joinpath("data", "manifest.json")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        manifest = _parse_manifest(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"invalid model manifest {source}: {one_line(error, with_type=True, limit=160)}"
        ) from error
    return manifest


def _parse_manifest(data: dict[str, Any]) -> Manifest:
    if data.get("format_version") != _MANIFEST_FORMAT_VERSION:
        raise ValueError(f"format_version must be {_MANIFEST_FORMAT_VERSION}")
    models = tuple(
        ModelEntry(
            repo_id=str(item["repo_id"]),
            revision=str(item["revision"]),
            size_bytes=int(item["size_bytes"]),
            vision_tower=str(item["vision_tower"]),
            jf_mevis=float(item["jf_mevis"]),
            jf_refytvos=float(item["jf_refytvos"]),
            description=str(item["description"]),
            default=bool(item["default"]),
            training_data=tuple(str(name) for name in item["training_data"]),
        )
        for item in data["models"]
    )
    towers = tuple(
        VisionTowerEntry(
            repo_id=str(item["repo_id"]),
            revision=str(item["revision"]),
            size_bytes=int(item["size_bytes"]),
            files=tuple(str(name) for name in item["files"]),
            description=str(item["description"]),
        )
        for item in data["vision_towers"]
    )
    defaults = [entry.repo_id for entry in models if entry.default]
    if len(defaults) != 1:
        raise ValueError(f"exactly one model must be the default, found {len(defaults)}")
    tower_ids = {tower.repo_id for tower in towers}
    for entry in models:
        if entry.vision_tower not in tower_ids:
            raise ValueError(f"{entry.repo_id} needs vision tower {entry.vision_tower}, which is not listed")
    return Manifest(models=models, vision_towers=towers)


@cache
def default_model() -> str:
    """Hub id of the checkpoint used when the user names none (the manifest's default)."""
    return load_manifest().default.repo_id
