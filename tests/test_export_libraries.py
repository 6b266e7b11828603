"""`glus export` read back by the libraries that consume the formats, on the hand-made run with known masks
and on a real ``glus batch`` (and ``glus segment``) of the tiny checkpoint.

- pycocotools: ``COCO(file)`` loads our COCO, ``annToMask`` equals the run's PNG masks bit for bit;
- Datumaro (the format library CVAT uses): imports our COCO and MOTS with the same masks, track ids and
  categories. Its YOLO importer (PyPI datumaro 1.13) reads detection boxes only and rejects segmentation
  lines, so YOLO is checked with Ultralytics itself;
- Ultralytics: its dataset checker (``check_det_dataset``) reads our ``data.yaml`` and its training
  dataset (``YOLODataset``, task ``segment``) loads every label; its own rasteriser (``polygon2mask``)
  fills our polygons back to the masks. Ultralytics reads torchvision's version from the package metadata
  at import, and PyPI's torchvision does not load beside our CPU torch, while the dataset code never
  imports it; so the check runs in a subprocess that sees a metadata-only stand-in for torchvision.

The Datumaro and Ultralytics checks are skipped where those test-only packages (the ``test`` extra) are
not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from export_runs import MODEL_EXPRESSIONS, NO_SEG, known_masks, write_handmade_run, write_model_run
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from glus_cli.confidence import CONFIDENCE_NAME, FrameConfidence
from glus_cli.export import ExportOptions, export_run
from glus_cli.export.instances import Filters
from glus_cli.run_folder import read_run_folder


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_handmade_run(tmp_path_factory.mktemp("handmade"))


@pytest.fixture(scope="module")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_run(tmp_path_factory.mktemp("model-run"))


def run_masks(run: Path) -> dict[tuple[str, str, str], tuple[np.ndarray, float | None, bool]]:
    """(video, exp_id, frame) -> (mask, predicted IoU, [SEG]) of every frame, read from the run's files."""
    masks = {}
    for expression in read_run_folder(run).expressions():
        for answer, mask in expression.masks():
            masks[(expression.video, expression.exp_id, answer.name)] = (
                mask,
                answer.predicted_iou,
                answer.seg,
            )
    return masks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


# --- the model-made run ----------------------------------------------------------------------------


def test_the_model_run_has_one_frame_without_seg(model_run: Path) -> None:
    video, expression, frame = NO_SEG
    folder = model_run / video / str(expression)
    record = json.loads((folder / "expression.json").read_text())
    assert record["frames_without_seg"] == [f"{frame:05d}"]
    scores = FrameConfidence.read(folder / CONFIDENCE_NAME)
    assert scores.predicted_iou[frame] is None and scores.object_score[frame] is None
    assert all(isinstance(v, float) for i, v in enumerate(scores.predicted_iou) if i != frame)


def test_coco_of_the_model_run_equals_its_png_masks(model_run: Path, tmp_path: Path) -> None:
    export_run(model_run, tmp_path / "coco", ExportOptions("coco"))
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    images = {image["id"]: image for image in coco.loadImgs(coco.getImgIds())}
    categories = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(categories.values()) == sorted({t for texts in MODEL_EXPRESSIONS.values() for t in texts})
    masks = run_masks(model_run)
    seen = set()
    for annotation in coco.loadAnns(coco.getAnnIds()):
        image = images[annotation["image_id"]]
        exp_id = str(MODEL_EXPRESSIONS[image["video"]].index(categories[annotation["category_id"]]))
        mask, _, seg = masks[(image["video"], exp_id, image["frame"])]
        assert seg and np.array_equal(coco.annToMask(annotation).astype(bool), mask)
        seen.add((image["video"], exp_id, image["frame"]))
    no_seg = (NO_SEG[0], str(NO_SEG[1]), f"{NO_SEG[2]:05d}")
    assert seen == {key for key, (mask, _, seg) in masks.items() if seg and mask.any()}
    assert no_seg not in seen
    odd = next(image for image in images.values() if image["video"] == "odd")
    assert (odd["height"], odd["width"]) == (37, 53)


def test_a_segment_run_with_rle_masks(model_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from glus_cli.cli.app import app

    frames = model_run.parent / "frames" / "odd"
    checkpoint = model_run.parent / "ckpt" / "glus"
    segment = tmp_path / "segment"
    args = [
        "segment",
        str(frames),
        "the red circle",
        "-f",
        "rle",
        "-o",
        str(segment),
        "--model",
        str(checkpoint),
    ]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--quiet", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    export_run(segment, tmp_path / "coco", ExportOptions("coco"))
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    [folder] = [p for p in segment.iterdir() if p.is_dir()]
    document = json.loads((folder / "masks_rle.json").read_text())
    for image in coco.loadImgs(coco.getImgIds()):
        assert image["file_name"] == f"odd/{image['frame']}.jpg"
        [annotation] = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        rle = document[image["frame"]]
        expected = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(coco.annToMask(annotation), expected)


# --- Datumaro --------------------------------------------------------------------------------------


def datumaro_dataset(path: Path, fmt: str):  # type: ignore[no-untyped-def]
    pytest.importorskip("datumaro")
    from datumaro.components.dataset import Dataset

    return Dataset.import_from(str(path), fmt)


def datumaro_masks(dataset) -> tuple[list[str], dict[tuple[str, str, int], np.ndarray]]:  # type: ignore[no-untyped-def]
    """Category names, and (item id, label name, track id) -> mask of every mask annotation."""
    from datumaro.components.annotation import AnnotationType

    names = [category.name for category in dataset.categories()[AnnotationType.label]]
    masks = {}
    for item in dataset:
        for annotation in item.annotations:
            if annotation.type == AnnotationType.mask:
                key = (item.id, names[annotation.label], int(annotation.attributes["track_id"]))
                assert key not in masks
                masks[key] = annotation.image.astype(bool)
    return names, masks


@pytest.mark.parametrize("which", ["handmade", "model_run"])
def test_datumaro_imports_our_coco(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = request.getfixturevalue(which)
    export_run(run, tmp_path / "coco", ExportOptions("coco"))
    names, masks = datumaro_masks(datumaro_dataset(tmp_path / "coco", "coco_instances"))
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_default.json").read_text())
    assert names == [c["name"] for c in coco["categories"]]
    track_of = {}  # (video, exp_id) -> track id, from our file
    expected = {}
    texts = {(e.video, e.exp_id): e.text for e in read_run_folder(run).expressions()}
    for (video, exp_id, frame), (mask, _, seg) in run_masks(run).items():
        if seg and mask.any():
            expected[(f"{video}/{frame}", texts[(video, exp_id)], (video, exp_id))] = mask
    for annotation in coco["annotations"]:
        image = coco["images"][annotation["image_id"] - 1]
        exp_id = next(
            e
            for (v, e), t in texts.items()
            if v == image["video"] and t == names[annotation["category_id"] - 1]
        )
        track_of[(image["video"], exp_id)] = annotation["attributes"]["track_id"]
    assert len(set(track_of.values())) == len(track_of) == len(texts)
    assert {(i, n, track_of[t]): m for (i, n, t), m in expected.items()}.keys() == masks.keys()
    for (item, name, track), mask in expected.items():
        assert np.array_equal(masks[(item, name, track_of[track])], mask)


@pytest.mark.parametrize("which", ["handmade", "model_run"])
def test_datumaro_imports_our_mots(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = request.getfixturevalue(which)
    export_run(run, tmp_path / "mots", ExportOptions("mots"))
    names, masks = datumaro_masks(datumaro_dataset(tmp_path / "mots", "mots"))
    folder = read_run_folder(run)
    texts = {(e.video, e.exp_id): e.text for e in folder.expressions()}
    assert names == list(dict.fromkeys(texts.values()))
    # The overlap rule, from the run's own files: per frame, the highest predicted IoU claims its pixels.
    by_frame = defaultdict(list)
    for (video, exp_id, frame), (mask, predicted_iou, seg) in run_masks(run).items():
        if seg and mask.any():
            order = [e.exp_id for e in next(v for v in folder.videos if v.name == video).expressions].index(
                exp_id
            )
            by_frame[(video, frame)].append((-predicted_iou, order, exp_id, mask))
    expected = {}
    for (video, frame), instances in by_frame.items():
        claimed = np.zeros_like(instances[0][3])
        for _, order, exp_id, mask in sorted(instances, key=lambda item: item[:2]):
            if (mask & ~claimed).any():
                expected[(f"{video}/{frame}", texts[(video, exp_id)], order + 1)] = mask & ~claimed
            claimed |= mask
    assert expected.keys() == masks.keys()
    for key, mask in expected.items():
        assert np.array_equal(masks[key], mask)


# --- Ultralytics -----------------------------------------------------------------------------------

_ULTRALYTICS_READER = """
import json, sys
from pathlib import Path
import numpy as np
from pycocotools import mask as mask_utils
from ultralytics.data import YOLODataset
from ultralytics.data.utils import check_det_dataset, polygon2mask

data = check_det_dataset(sys.argv[1])
dataset = YOLODataset(
    img_path=data["train"], data=data, task="segment", augment=False, cache=False, rect=False
)
found = {"names": {int(k): v for k, v in data["names"].items()}, "frames": {}}
for label in dataset.labels:
    height, width = label["shape"]
    classes = {}
    for class_id, segment in zip(label["cls"].ravel(), label["segments"]):
        filled = polygon2mask((height, width), [segment * [width, height]], color=1, downsample_ratio=1)
        classes.setdefault(int(class_id), np.zeros((height, width), bool))
        classes[int(class_id)] |= filled.astype(bool)
    frame = {}
    for class_id, mask in classes.items():
        frame[class_id] = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))["counts"].decode()
    frame["size"] = [int(height), int(width)]
    found["frames"][Path(label["im_file"]).stem] = frame
print(json.dumps(found))
"""


def ultralytics_read(data_yaml: Path, scratch: Path) -> dict:
    """What Ultralytics' dataset checker and loader make of our YOLO tree (in a subprocess; see above)."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics is not installed (the test extra)")
    stand_in = scratch / "site" / "torchvision-0.0.0.dist-info"
    stand_in.mkdir(parents=True)
    (stand_in / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.0.0\n")
    config = scratch / "config"
    (config / "Ultralytics").mkdir(parents=True)
    (config / "Ultralytics" / "Arial.ttf").write_bytes(b"")  # the checker would download its font
    env = {
        **os.environ,
        "PYTHONPATH": str(scratch / "site"),
        "YOLO_CONFIG_DIR": str(config),
        "YOLO_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", _ULTRALYTICS_READER, str(data_yaml)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("which", ["handmade", "model_run"])
def test_ultralytics_reads_our_yolo(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run = request.getfixturevalue(which)
    export_run(run, tmp_path / "yolo", ExportOptions("yolo", filters=Filters()))
    found = ultralytics_read(tmp_path / "yolo" / "data.yaml", tmp_path / "scratch")
    folder = read_run_folder(run)
    texts = {(e.video, e.exp_id): e.text for e in folder.expressions()}
    names = list(dict.fromkeys(texts.values()))
    assert found["names"] == {str(i): name for i, name in enumerate(names)}  # JSON keys are strings
    expected: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for (video, exp_id, frame), (mask, _, seg) in run_masks(run).items():
        stem = f"{video}__{frame}"
        class_id = names.index(texts[(video, exp_id)])
        if seg and mask.any():
            expected[stem][class_id] = expected[stem].get(class_id, np.zeros_like(mask)) | mask
    frames = sum(len(v.expressions[0].frame_answers().answers) for v in folder.videos)
    assert len(found["frames"]) == frames  # every frame loaded, none corrupt
    # Polygons approximate masks: closely for the hand-made shapes; loosely for the tiny model's speckled
    # masks, whose one-pixel parts and holes polygons cannot follow.
    threshold = 0.95 if which == "handmade" else 0.6
    for stem, classes in found["frames"].items():
        size = classes.pop("size")
        assert {int(c) for c in classes} == set(expected.get(stem, {}))
        ours = filled_labels(tmp_path / "yolo" / "labels" / "train" / f"{stem}.txt", tuple(size))
        for class_id, counts in classes.items():
            mask = mask_utils.decode({"size": size, "counts": counts.encode()}).astype(bool)
            assert np.array_equal(mask, ours[int(class_id)])  # Ultralytics read the polygons we wrote
            assert iou(mask, expected[stem][int(class_id)]) > threshold


def filled_labels(path: Path, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Our label file's polygons filled per class as Ultralytics fills them (truncated, `cv2.fillPoly`)."""
    import cv2

    height, width = size
    filled: dict[int, np.ndarray] = {}
    for line in path.read_text().splitlines():
        values = line.split()
        points = (np.array(values[1:], np.float32).reshape(-1, 2) * [width, height]).astype(np.int32)
        canvas = np.zeros(size, np.uint8)
        cv2.fillPoly(canvas, [points], 1)
        filled[int(values[0])] = filled.get(int(values[0]), np.zeros(size, bool)) | canvas.astype(bool)
    return filled


def test_known_masks_cover_the_hole_and_parts() -> None:
    """The hand-made run holds what the checks above need: a hole, two parts, an overlap, no [SEG]."""
    import cv2

    masks = known_masks()
    ring = masks[0].mask
    assert not ring[20, 30] and ring[20, 30 + 10]
    parts, _ = cv2.findContours(masks[1].mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    assert len(parts) == 2
    assert (masks[2].mask & masks[3].mask).any()
    assert any(not m.seg for m in masks)
