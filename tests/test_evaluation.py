"""End-to-end `glus eval` scoring on tiny synthetic datasets in the three ground-truth layouts.

Every frame is small enough that the boundary tolerance is 1 pixel (``ceil(0.008 · diagonal)`` with a
diagonal under 125), and the per-frame J and F used below are the hand-worked cases of
``test_metrics.py``: a box against itself (1, 1), against nothing (0, 0), nothing against nothing
(1, 1), and the 4x4 box against its left half (J = 1/2, F = 11/14).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from rich.console import Console

from glus_cli.cli.evaluate import render_table
from glus_cli.errors import InputError, OutputError
from glus_cli.evaluation import COLUMNS, EvaluationResult, evaluate
from glus_cli.ground_truth import Layout, detect_layout


def box(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """A uint8 mask with ones on rows ``rows[0]..rows[1]`` and columns ``cols[0]..cols[1]`` (inclusive)."""
    mask = np.zeros(shape, np.uint8)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1
    return mask


def write_png(path: Path, mask: np.ndarray, value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), (mask > 0).astype(np.uint8) * value)


def rle(mask: np.ndarray) -> dict[str, object]:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}


def write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def set_masks(gt: Path, anno_id: str, masks: list[object]) -> None:
    """Replace the per-frame masks of one anno_id in a MeViS ``mask_dict.json``."""
    mask_dict = json.loads((gt / "mask_dict.json").read_text())
    mask_dict[anno_id] = masks
    write_json(gt / "mask_dict.json", mask_dict)


# MeViS: video A (8x10, frames 00000..00002) with expressions 0 (anno 0) and 1 (annos 1 and 2), video B
# (6x6, frames 00000..00001) with expression 0 (anno 3), which has no predictions at all.
A = (8, 10)
B = (6, 6)
A_BOX = box(A, (2, 5), (2, 5))
A_HALF = box(A, (2, 5), (2, 3))
A_ANNO1 = box(A, (1, 4), (1, 4))
A_ANNO2 = box(A, (3, 6), (3, 7))  # overlaps anno 1: the ground truth is their union


@pytest.fixture
def mevis(tmp_path: Path) -> tuple[Path, Path]:
    """(ground-truth split folder, prediction folder) of the MeViS-layout dataset."""
    gt = tmp_path / "valid_u"
    frames_a = ["00000", "00001", "00002"]
    write_json(
        gt / "meta_expressions.json",
        {
            "videos": {
                "vidA": {
                    "frames": frames_a,
                    "expressions": {
                        "0": {"exp": "the cat on the left", "obj_id": [0], "anno_id": [0]},
                        "1": {"exp": "two birds [red]", "obj_id": [1, 2], "anno_id": [1, 2]},
                    },
                },
                "vidB": {
                    "frames": ["00000", "00001"],
                    "expressions": {"0": {"exp": "a dog", "obj_id": [0], "anno_id": [3]}},
                },
            }
        },
    )
    write_json(
        gt / "mask_dict.json",
        {
            "0": [rle(A_BOX), None, rle(A_BOX)],
            "1": [rle(A_ANNO1), rle(A_BOX), None],
            "2": [rle(A_ANNO2), None, None],
            "3": [rle(box(B, (1, 2), (1, 2))), rle(box(B, (1, 2), (1, 2)))],
        },
    )
    pred = tmp_path / "pred"
    # Expression 0: exact (1, 1); absent object, empty prediction (1, 1); 00002.png missing against the box
    # (scored as empty: 0, 0). J = F = 2/3.
    write_png(pred / "vidA/0/00000.png", A_BOX)
    write_png(pred / "vidA/0/00001.png", np.zeros(A))
    # Expression 1: the union of annos 1 and 2, written as 1 instead of 255 (1, 1); the left half of the
    # box (1/2, 11/14); empty against empty (1, 1). J = 5/6, F = (2 + 11/14)/3 = 13/14.
    write_png(pred / "vidA/1/00000.png", A_ANNO1 | A_ANNO2, value=1)
    write_png(pred / "vidA/1/00001.png", A_HALF)
    write_png(pred / "vidA/1/00002.png", np.zeros(A))
    return gt, pred


def test_mevis_layout_scores(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    result = evaluate(pred, gt)

    assert result.layout == Layout.MEVIS
    rows = [(s.video, s.exp_id, s.expression, s.n_frames) for s in result.per_expression]
    assert rows == [
        ("vidA", "0", "the cat on the left", 3),
        ("vidA", "1", "two birds [red]", 3),
        ("vidB", "0", "a dog", 2),
    ]
    first, second, missing_video = result.per_expression
    assert (first.j, first.f) == pytest.approx((2 / 3, 2 / 3))
    assert (second.j, second.f) == pytest.approx((5 / 6, 13 / 14))
    assert second.jf == pytest.approx((5 / 6 + 13 / 14) / 2)
    assert (missing_video.j, missing_video.f) == (0.0, 0.0)

    # Overall: J = (2/3 + 5/6 + 0)/3 = 1/2, F = (2/3 + 13/14 + 0)/3 = 67/126.
    assert result.overall.n_expressions == 3
    assert result.overall.j == pytest.approx(1 / 2)
    assert result.overall.f == pytest.approx(67 / 126)
    assert result.overall.jf == pytest.approx(65 / 126)

    assert result.warnings == [
        "vidB: no prediction folder, its 1 expressions score J = F = 0",
        "vidA/0: 1 of 3 frame PNGs missing, scored as empty masks (first: 00002.png)",
    ]


def test_uncompressed_rle_is_accepted(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    compressed = evaluate(pred, gt)
    column_major = A_BOX.flatten(order="F")
    edges = np.flatnonzero(np.diff(column_major)) + 1
    counts = np.diff(np.concatenate([[0], edges, [column_major.size]])).tolist()  # starts with a zero run
    set_masks(gt, "0", [{"size": list(A), "counts": counts}, None, rle(A_BOX)])
    assert evaluate(pred, gt) == compressed


def test_parallel_scoring_matches_serial(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    calls: list[tuple[int, int]] = []
    parallel = evaluate(pred, gt, workers=2, progress=lambda done, total: calls.append((done, total)))
    assert parallel == evaluate(pred, gt)
    assert calls == [(1, 2), (2, 2)]


def test_missing_expression_folder_is_scored_as_empty(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    for path in (pred / "vidA/1").iterdir():
        path.unlink()
    (pred / "vidA/1").rmdir()
    result = evaluate(pred, gt)
    # Empty predictions against the union (0, 0), the box (0, 0), and an empty frame (1, 1).
    second = result.per_expression[1]
    assert (second.j, second.f) == pytest.approx((1 / 3, 1 / 3))
    assert "vidA/1: no prediction folder, its 3 frames were scored as empty masks" in result.warnings


def test_csv_and_json_outputs(mevis: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = mevis
    result = evaluate(pred, gt)
    csv_path = tmp_path / "out" / "scores.csv"
    json_path = tmp_path / "out" / "scores.json"
    result.write_csv(csv_path)
    result.write_json(json_path)
    result.write_json(json_path)  # replacing an existing file
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["scores.csv", "scores.json"]  # no temp files

    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        table = list(reader)
    assert [(row["video"], row["exp_id"], row["expression"], row["n_frames"]) for row in table] == [
        ("vidA", "0", "the cat on the left", "3"),
        ("vidA", "1", "two birds [red]", "3"),
        ("vidB", "0", "a dog", "2"),
    ]
    assert float(table[1]["J"]) == pytest.approx(5 / 6)
    assert float(table[1]["F"]) == pytest.approx(13 / 14)
    assert float(table[1]["J&F"]) == pytest.approx((5 / 6 + 13 / 14) / 2)

    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert document["layout"] == "mevis"
    assert document["overall"] == pytest.approx(
        {"J": 1 / 2, "F": 67 / 126, "J&F": 65 / 126, "n_expressions": 3}
    )
    assert document["per_expression"][2] == {
        "video": "vidB",
        "exp_id": "0",
        "expression": "a dog",
        "J": 0.0,
        "F": 0.0,
        "J&F": 0.0,
        "n_frames": 2,
    }
    assert document["warnings"] == result.warnings


def test_write_fails_with_output_error(mevis: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = mevis
    result = evaluate(pred, gt)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="cannot write"):
        result.write_json(tmp_path / "taken")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".taken")] == []


def test_score_files_create_their_folder(mevis: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = mevis
    result = evaluate(pred, gt)
    result.write_csv(tmp_path / "new" / "eval.csv")
    result.write_json(tmp_path / "new" / "eval.json")
    assert json.loads((tmp_path / "new" / "eval.json").read_text())["overall"]["n_expressions"] == 3
    assert (
        (tmp_path / "new" / "eval.csv")
        .read_bytes()
        .startswith(b"video,exp_id,expression,J,F,J&F,n_frames\r\n")
    )
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["eval.csv", "eval.json"]


def test_render_table(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    result = evaluate(pred, gt)
    table = render_table(result)
    assert table.row_count == 4
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "two birds [red]" in text
    assert "overall" in text
    assert "51.6" in text  # J&F = 65/126
    assert render_table(result, per_expression=False).row_count == 1


# Ref-YouTube-VOS: palette annotations (pixel value = object id), meta in meta_expressions/<split>/.
P = (12, 16)
OBJ1 = box(P, (1, 4), (1, 4))  # 4x4: boundary outline 16 px
OBJ2 = box(P, (8, 9), (9, 12))  # 2x4, far from OBJ1: boundary outline of a 3x5 box, 12 px


def write_palette(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 236, 95, 103, 249, 145, 87] + [0] * (256 * 3 - 9))
    image.save(path)


@pytest.fixture
def ytvos(tmp_path: Path) -> tuple[Path, Path]:
    """(ground-truth split folder, prediction folder) of the Ref-YouTube-VOS-layout dataset."""
    root = tmp_path / "Refer-YouTube-VOS"
    gt = root / "train"
    write_json(
        root / "meta_expressions/train/meta_expressions.json",
        {
            "videos": {
                "v1": {
                    "frames": ["00000", "00005"],
                    "expressions": {
                        "0": {"exp": "a red car", "obj_id": "1"},
                        "1": {"exp": "a person", "obj_id": "2"},
                        "2": {"exp": "everything", "obj_id": ["1", "2"]},
                    },
                }
            }
        },
    )
    write_palette(gt / "Annotations/v1/00000.png", OBJ1 + 2 * OBJ2)
    write_palette(gt / "Annotations/v1/00005.png", OBJ1)  # object 2 has left the frame
    pred = tmp_path / "pred"
    for frame in ("00000", "00005"):
        write_png(pred / f"v1/0/{frame}.png", OBJ1)  # exact: (1, 1) twice
        write_png(pred / f"v1/1/{frame}.png", np.zeros(P))  # (0, 0) then empty vs empty (1, 1)
        write_png(pred / f"v1/2/{frame}.png", OBJ1)
    return gt, pred


def test_palette_layout_scores(ytvos: tuple[Path, Path]) -> None:
    gt, pred = ytvos
    result = evaluate(pred, gt)
    assert result.layout == Layout.PALETTE
    assert result.warnings == []
    scores = [(s.exp_id, s.expression, s.j, s.f) for s in result.per_expression]
    # Expression 2 at 00000: OBJ1 against OBJ1 ∪ OBJ2: J = 16/24; every predicted boundary pixel is on the
    # ground truth's (precision 1) which has 16 + 12 pixels (recall 16/28 = 4/7): F = 8/11. At 00005 (1, 1).
    assert scores == [
        ("0", "a red car", 1.0, 1.0),
        ("1", "a person", pytest.approx(1 / 2), pytest.approx(1 / 2)),
        ("2", "everything", pytest.approx((2 / 3 + 1) / 2), pytest.approx((8 / 11 + 1) / 2)),
    ]
    assert result.overall.j == pytest.approx(7 / 9)
    assert result.overall.f == pytest.approx(26 / 33)


def test_palette_annotation_must_hold_object_ids(ytvos: tuple[Path, Path]) -> None:
    gt, pred = ytvos
    Image.new("RGB", (P[1], P[0])).save(gt / "Annotations/v1/00005.png")
    with pytest.raises(InputError, match="is a RGB image, not a palette or grayscale PNG"):
        evaluate(pred, gt)


def test_mask_tree_layout(tmp_path: Path) -> None:
    gt = tmp_path / "gt"
    pred = tmp_path / "pred"
    shape = (8, 10)
    for frame in ("00000", "00001"):
        write_png(gt / f"v/2/{frame}.png", A_BOX)
        write_png(gt / f"v/10/{frame}.png", A_BOX)
        write_png(pred / f"v/10/{frame}.png", A_BOX)
    write_png(pred / "v/2/00000.png", np.zeros(shape))
    write_json(
        gt / "meta_expressions.json",
        {"videos": {"v": {"frames": ["00000"], "expressions": {"2": {"exp": "x"}}}}},
    )
    result = evaluate(pred, gt)
    assert result.layout == Layout.MASKS
    # Numeric order of expression folders; frames are the ground-truth PNGs; texts from the optional meta.
    assert [(s.exp_id, s.expression, s.n_frames, s.j, s.f) for s in result.per_expression] == [
        ("2", "x", 2, 0.0, 0.0),
        ("10", "", 2, 1.0, 1.0),
    ]
    assert result.warnings == ["v/2: 1 of 2 frame PNGs missing, scored as empty masks (first: 00001.png)"]


def test_detect_layout(mevis: tuple[Path, Path], ytvos: tuple[Path, Path], tmp_path: Path) -> None:
    assert detect_layout(mevis[0]) == Layout.MEVIS
    assert detect_layout(ytvos[0]) == Layout.PALETTE
    assert detect_layout(mevis[1]) == Layout.MASKS
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="cannot tell the layout"):
        detect_layout(tmp_path / "empty")


def test_explicit_layout_and_meta_path(ytvos: tuple[Path, Path]) -> None:
    gt, pred = ytvos
    meta = gt.parent / "meta_expressions/train/meta_expressions.json"
    moved = gt / "custom.json"
    meta.rename(moved)
    with pytest.raises(InputError, match=r"no meta_expressions\.json"):
        evaluate(pred, gt)
    result = evaluate(pred, gt, layout="palette", meta_path=moved)
    assert isinstance(result, EvaluationResult)
    assert result.overall.j == pytest.approx(7 / 9)


def test_size_mismatch_names_the_file(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    write_png(pred / "vidA/1/00001.png", np.ones((5, 5)))
    with pytest.raises(InputError, match=r"vidA/1/00001\.png is 5x5 but its ground truth is 10x8"):
        evaluate(pred, gt)


def test_size_is_checked_where_the_ground_truth_is_empty(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    write_png(pred / "vidA/0/00001.png", np.zeros((5, 5)))  # anno 0 is absent at 00001: an empty truth
    with pytest.raises(InputError, match=r"vidA/0/00001\.png is 5x5 but its ground truth is 10x8"):
        evaluate(pred, gt)


def test_size_without_any_ground_truth_size_is_the_first_predictions(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    set_masks(gt, "3", [None, None])  # no object of vidB appears anywhere: MeViS stores no size for it
    write_png(pred / "vidB/0/00000.png", np.zeros(B))
    write_png(pred / "vidB/0/00001.png", np.zeros(B))
    assert evaluate(pred, gt).per_expression[2].j == 1.0
    write_png(pred / "vidB/0/00001.png", np.zeros((5, 5)))
    with pytest.raises(InputError, match=r"vidB/0/00001\.png is 5x5 but .*vidB/0/00000\.png is 6x6"):
        evaluate(pred, gt)


@pytest.mark.parametrize("value", [1, 65535])
def test_16_bit_predictions_score_as_8_bit(mevis: tuple[Path, Path], value: int) -> None:
    gt, pred = mevis
    expected = evaluate(pred, gt)
    for path in sorted((pred / "vidA").rglob("*.png")):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert cv2.imwrite(str(path), (mask > 0).astype(np.uint16) * value)
    result = evaluate(pred, gt)
    assert result.per_expression == expected.per_expression
    assert result.per_expression[1].j == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda gt, pred: (gt / "meta_expressions.json").write_text("{not json"), "is not valid JSON"),
        (lambda gt, pred: write_json(gt / "meta_expressions.json", {"video": {}}), 'no "videos" object'),
        (lambda gt, pred: set_masks(gt, "0", []), "no mask list for anno_id 0"),
        (lambda gt, pred: (gt / "meta_expressions.json").unlink(), "no meta_expressions.json"),
        (
            lambda gt, pred: set_masks(gt, "0", ["rle?"] * 3),
            "the mask of anno_id 0 at frame 00000 is not a COCO RLE",
        ),
    ],
)
def test_malformed_ground_truth(
    mevis: tuple[Path, Path], break_it: Callable[[Path, Path], object], message: str
) -> None:
    gt, pred = mevis
    break_it(gt, pred)
    with pytest.raises(InputError, match=message):
        evaluate(pred, gt)


def test_bad_arguments(mevis: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = mevis
    with pytest.raises(InputError, match=r"prediction folder .* does not exist"):
        evaluate(tmp_path / "nope", gt)
    with pytest.raises(InputError, match=r"ground-truth folder .* does not exist"):
        evaluate(pred, tmp_path / "nope")
    with pytest.raises(InputError, match="unknown ground-truth layout 'davis'"):
        evaluate(pred, gt, layout="davis")
    with pytest.raises(InputError, match="workers must be at least 1"):
        evaluate(pred, gt, workers=0)
    (tmp_path / "sub" / "Annotations").mkdir(parents=True)
    with pytest.raises(InputError, match=r"holds none of the 2 ground-truth videos.*did you mean"):
        evaluate(tmp_path / "sub", gt)


def test_unreadable_prediction(mevis: tuple[Path, Path]) -> None:
    gt, pred = mevis
    (pred / "vidA/0/00000.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"00000\.png is missing or not a readable image"):
        evaluate(pred, gt)
