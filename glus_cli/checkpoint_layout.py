"""The files of a checkpoint folder in transformers' layout: their names, and readers for the JSON ones.

Both the model loader and `glus download` (`glus_cli.hub`, which must not import torch) read these files,
so their names and the handling of a malformed file live here once: a broken file gives the same one-line
`CheckpointError` wherever it is met.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glus_cli import json_files
from glus_cli.errors import CheckpointError

CONFIG_NAME = "config.json"
# Weight formats in order of preference: a sharded index, else a single file.
WEIGHT_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_json_object(path: Path, what: str = "") -> dict[str, Any]:
    """The JSON object stored in `path`, read by the package's one reader (`glus_cli.json_files`).

    Args:
        path: the file.
        what: how to name the file in errors, e.g. "the weight index " (default: just its path).

    Raises:
        CheckpointError: the file is missing or unreadable, is not JSON, or holds something other than an
            object.
    """
    return json_files.read_json_object(path, what=what, error=CheckpointError)


def read_config_json(folder: Path) -> dict[str, Any]:
    """`<folder>/config.json` as a dict.

    Raises:
        CheckpointError: the folder has no config.json (it is not a checkpoint), or the file is malformed.
    """
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a GLUS checkpoint: it has no {CONFIG_NAME}")
    return read_json_object(path)


def index_shard_names(index: Path) -> list[str]:
    """The shard file names a weight index (`*.index.json`) maps the tensors to, sorted, each once.

    Raises:
        CheckpointError: the index is malformed or has no `weight_map` of tensor names to file names.
    """
    weight_map = read_json_object(index, what="the weight index ").get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(name, str) for name in weight_map.values()):
        raise CheckpointError(f"the weight index {index} has no weight_map of tensor names to shard files")
    return sorted(set(weight_map.values()))


# config.json keys naming the CLIP tower, in the official loader's order: GLUS.py copies `vision_tower`
# (its source of truth) into `mm_vision_tower` at load time.
VISION_TOWER_KEYS = ("vision_tower", "mm_vision_tower")


def vision_tower_name(config: dict[str, Any], origin: Path | str) -> str:
    """The CLIP vision tower (Hub id or folder) a checkpoint's `config.json` names.

    Args:
        config: the parsed `config.json`.
        origin: the file it came from, for the error message.

    Raises:
        CheckpointError: neither `vision_tower` nor `mm_vision_tower` names a tower.
    """
    for key in VISION_TOWER_KEYS:
        name = config.get(key)
        if isinstance(name, str) and name:
            return name
    raise CheckpointError(f"{origin} names no vision tower (neither vision_tower nor mm_vision_tower)")
