"""Ground-truth folders read from Python: layouts, meta discovery and the expressions they list."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from glus_cli.errors import InputError
from glus_cli.ground_truth import (
    Layout,
    MaskTreeTruth,
    PaletteTruth,
    find_meta,
    load_ground_truth,
    parse_layout,
    read_mask,
)


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8) * 255)


def test_mask_tree_in_natural_order(tmp_path: Path) -> None:
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    for video, exp_id in (("v10", "0"), ("v2", "10"), ("v2", "2")):
        for frame in ("10", "9"):
            write_mask(tmp_path / video / exp_id / f"{frame}.png", mask)
    layout, tasks = load_ground_truth(tmp_path)
    assert layout == Layout.MASKS
    # Videos, expressions and frames in the order `glus batch` and the frame readers use: 2 before 10.
    assert [(t.video, t.exp_id, t.frames) for t in tasks] == [
        ("v2", "2", ("9", "10")),
        ("v2", "10", ("9", "10")),
        ("v10", "0", ("9", "10")),
    ]
    assert tasks[0].truth == MaskTreeTruth(tmp_path / "v2" / "2")
    assert np.array_equal(tasks[0].truth.mask(1, "10") > 0, mask)
    assert np.array_equal(read_mask(tmp_path / "v2" / "2" / "9.png") > 0, mask)


def test_palette_layout_with_the_ref_youtube_vos_meta_place(tmp_path: Path) -> None:
    split = tmp_path / "train"
    (split / "Annotations" / "v1").mkdir(parents=True)
    meta = tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    entry = {"frames": ["00000"], "expressions": {"0": {"exp": "a car", "obj_id": ["1", 2]}}}
    meta.write_text(json.dumps({"videos": {"v1": entry}}))
    assert find_meta(split, None, required=True) == meta
    layout, tasks = load_ground_truth(split, layout="palette")
    assert layout == Layout.PALETTE
    [task] = tasks
    assert (task.video, task.exp_id, task.text, task.frames) == ("v1", "0", "a car", ("00000",))
    assert task.truth == PaletteTruth(split / "Annotations" / "v1", (1, 2))


def test_bad_layouts_and_missing_meta(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown ground-truth layout 'davis'; expected one of mevis"):
        parse_layout("davis")
    assert find_meta(tmp_path, None, required=False) is None
    with pytest.raises(InputError, match=r"no meta_expressions\.json at"):
        find_meta(tmp_path, None, required=True)
    with pytest.raises(InputError, match=r"meta file .*other\.json does not exist"):
        find_meta(tmp_path, tmp_path / "other.json", required=False)
