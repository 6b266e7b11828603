"""A tiny MeViS-layout dataset, a tiny checkpoint and one reference `glus batch` run, shared by the
batch, key-frame and eval tests (built once per session: the model runs are the slow part)."""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from typer.testing import CliRunner

from glus_cli.cli.app import app
from glus_cli.model.glus import GlusModel, load_glus
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import DEFAULT_SHAPES, synthetic_mask, write_frame_folder

SIZE = (48, 64)
NUM_FRAMES = 3
GOOD_VIDEOS = ("vidA", "vidB")
BAD_VIDEO = "vidBad"
EXPRESSIONS = {"vidA": ("the red circle", "the green square"), "vidB": ("the red circle",), BAD_VIDEO: ("x",)}


@dataclass(frozen=True)
class Dataset:
    """Paths of the shared fixtures."""

    checkpoint: Path
    split: Path  # MeViS split folder: JPEGImages/, meta_expressions.json, mask_dict.json
    reference: Path  # output of `glus batch` over the whole split
    reference_exit_code: int

    @property
    def frames(self) -> Path:
        return self.split / "JPEGImages"

    @property
    def meta(self) -> Path:
        return self.split / "meta_expressions.json"


def rle(mask: np.ndarray) -> dict:
    """COCO RLE with str counts, as in MeViS's mask_dict.json."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}


def write_split(split: Path) -> None:
    """JPEGImages (two good videos, one with a corrupt frame), meta_expressions.json, mask_dict.json."""
    for video in (*GOOD_VIDEOS, BAD_VIDEO):
        write_frame_folder(split / "JPEGImages" / video, NUM_FRAMES, size=SIZE)
    (split / "JPEGImages" / BAD_VIDEO / "00001.jpg").write_bytes(b"this is not a jpeg")
    videos: dict = {}
    mask_dict: dict = {}
    anno_id = 0
    for video, texts in EXPRESSIONS.items():
        frames = [f"{i:05d}" for i in range(NUM_FRAMES)]
        expressions = {}
        for exp_id, text in enumerate(texts):
            shape = DEFAULT_SHAPES[0] if "circle" in text else DEFAULT_SHAPES[1]
            mask_dict[str(anno_id)] = [rle(synthetic_mask(i, SIZE, shape)) for i in range(NUM_FRAMES)]
            expressions[str(exp_id)] = {"exp": text, "obj_id": [exp_id], "anno_id": [anno_id]}
            anno_id += 1
        videos[video] = {"expressions": expressions, "frames": frames}
    (split / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (split / "mask_dict.json").write_text(json.dumps(mask_dict))


def batch_args(dataset: Dataset, out: Path, *extra: str) -> list[str]:
    """`glus batch` arguments over the dataset with the tiny checkpoint on the CPU."""
    return [
        "batch",
        str(dataset.frames),
        "-e",
        str(dataset.meta),
        "-o",
        str(out),
        "--model",
        str(dataset.checkpoint),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


_DATASETS: dict[int, Dataset] = {}


def shared_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The session's dataset (built on first use; the factory is one object per session)."""
    key = id(tmp_path_factory)
    if key not in _DATASETS:
        _DATASETS[key] = _build_dataset(tmp_path_factory.mktemp("glus-dataset"))
    return _DATASETS[key]


def _build_dataset(root: Path) -> Dataset:
    """Build the checkpoint and the split, and run `glus batch` once over it (the reference output)."""
    checkpoint = build_checkpoint(root / "ckpt").path
    split = root / "mevis" / "train"
    write_split(split)
    dataset = Dataset(checkpoint, split, root / "reference", 0)
    result = CliRunner().invoke(app, batch_args(dataset, dataset.reference))
    return Dataset(checkpoint, split, dataset.reference, result.exit_code)


@functools.cache
def shared_model(checkpoint: Path) -> GlusModel:
    """The tiny model, loaded once for the tests that call the library or stub the CLI's loading."""
    return load_glus(checkpoint, device="cpu")


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of an output tree (file times preserved)."""
    shutil.copytree(source, target)
    return target


def tree_bytes(root: Path, pattern: str = "*.png") -> dict[str, bytes]:
    """Relative path -> content of the files matching `pattern` under `root`."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob(pattern))}
