"""Ground-truth folders read from Python: layouts, meta discovery and the expressions they list."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

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


MASK = np.zeros((5, 7), bool)
MASK[1:4, 2:6] = True


def write_palette_indices(path: Path, indices: np.ndarray, palette: list[int]) -> None:
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(palette + [0] * (768 - len(palette)))
    image.save(path)


@pytest.mark.parametrize(
    ("name", "pixels"),
    [
        ("8-bit 0/255", MASK.astype(np.uint8) * 255),
        ("8-bit 0/1", MASK.astype(np.uint8)),
        ("16-bit 0/1", MASK.astype(np.uint16)),
        ("16-bit 0/65535", MASK.astype(np.uint16) * 65535),
        (
            "colour 0/1 in one channel",
            np.stack([np.zeros_like(MASK), MASK, np.zeros_like(MASK)], -1).astype(np.uint8),
        ),
        ("16-bit colour 0/1", np.stack([MASK] * 3, -1).astype(np.uint16)),
        (
            "colour with an opaque alpha",
            np.dstack([MASK * 255] * 3 + [np.full(MASK.shape, 255)]).astype(np.uint8),
        ),
    ],
)
def test_read_mask_any_nonzero_pixel_is_the_object(tmp_path: Path, name: str, pixels: np.ndarray) -> None:
    path = tmp_path / "mask.png"
    assert cv2.imwrite(str(path), pixels)
    mask = read_mask(path)
    assert mask.dtype == bool and np.array_equal(mask, MASK), name


def test_read_mask_16_bit_0_1_is_what_cv2_grayscale_misses(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    assert cv2.imwrite(str(path), MASK.astype(np.uint16))
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # really a 16-bit PNG
    assert not cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).any()  # the MeViS read: empty
    assert np.array_equal(read_mask(path), MASK)


def test_read_mask_palette_reads_the_index_not_the_colour(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    write_palette_indices(path, MASK, [255, 255, 255, 0, 0, 0])  # background white, the object black
    assert np.array_equal(read_mask(path), MASK)
    write_palette_indices(path, MASK * 2, [0, 0, 0, 9, 9, 9, 236, 95, 103])  # object id 2 (DAVIS style)
    assert np.array_equal(read_mask(path), MASK)


def test_read_mask_missing_or_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.png is missing or not a readable image"):
        read_mask(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(InputError, match=r"bad\.png is missing or not a readable image"):
        read_mask(tmp_path / "bad.png")


def test_mevis_truth_is_sized_where_the_object_is_absent(tmp_path: Path) -> None:
    encoded = coco_mask.encode(np.asfortranarray(MASK.astype(np.uint8)))
    rle = {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}
    meta = {
        "videos": {
            "v": {
                "frames": ["0", "1"],
                "expressions": {"0": {"exp": "a", "anno_id": [0]}, "1": {"anno_id": 1}},
            },
            "w": {"frames": ["0"], "expressions": {"0": {"exp": "never there", "anno_id": [2]}}},
        }
    }
    (tmp_path / "meta_expressions.json").write_text(json.dumps(meta))
    (tmp_path / "mask_dict.json").write_text(json.dumps({"0": [None, None], "1": [None, rle], "2": [None]}))
    _, tasks = load_ground_truth(tmp_path)
    v0, v1, w0 = (task.truth for task in tasks)
    # Expression 0's object never appears: the size comes from expression 1's object in the same video.
    assert v0.mask(0, "0").shape == MASK.shape and not v0.mask(0, "0").any()
    assert v1.mask(0, "0").shape == MASK.shape and np.array_equal(v1.mask(1, "1"), MASK)
    assert w0.mask(0, "0") is None  # no object of video w appears anywhere: the size is unknown
