"""`glus export` on a hand-made run folder with known masks: each format read back with pycocotools,
OpenCV and PIL; the confidence filter, the MOTS overlap rule, categories, and the error lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from export_runs import CATS_SIZE, TEXTS, KnownMask, known_masks, write_handmade_run
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from glus_cli.confidence import CONFIDENCE_NAME, FrameConfidence, confidence
from glus_cli.export import ExportOptions, export_run
from glus_cli.export.instances import Filters
from tests.cli_helpers import run_glus

pytest_plugins = ["tests.cli_fixtures"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_handmade_run(tmp_path_factory.mktemp("handmade"))


def export(run: Path, out: Path, fmt: str, **options: object) -> dict:
    """Export and return ``export.json``."""
    export_run(run, out, ExportOptions(format=fmt, **options))  # type: ignore[arg-type]
    return json.loads((out / "export.json").read_text())


def kept(masks: list[KnownMask]) -> list[KnownMask]:
    """The masks the default filter keeps (a [SEG] answer and some pixels)."""
    return [m for m in masks if m.seg and m.mask.any()]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# --- torch-free ------------------------------------------------------------------------------------


def test_export_never_imports_torch(run: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from glus_cli.cli.app import app\n"
        f'app(["export", {str(run)!r}, "--to", "coco", "-o", {str(tmp_path / "out")!r}, "-q"],'
        " standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('no torch')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "no torch" in done.stdout
    assert (tmp_path / "out" / "annotations" / "instances_default.json").is_file()


# --- COCO ------------------------------------------------------------------------------------------


def test_coco_masks_equal_the_known_masks_bit_for_bit(run: Path, tmp_path: Path) -> None:
    record = export(run, tmp_path / "coco", "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["the ring", "two blobs"]
    images = {(image["video"], image["frame"]): image for image in coco.loadImgs(coco.getImgIds())}
    assert len(images) == 5
    assert images[("dogs", "00001")]["file_name"] == "dogs/00001.jpg"
    assert (images[("dogs", "00001")]["height"], images[("dogs", "00001")]["width"]) == (37, 53)
    assert (tmp_path / "coco" / "images" / "dogs" / "00001.jpg").is_file()
    expected = kept(known_masks())
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) == len(expected)
    track_ids = {}
    for known in expected:
        image = images[(known.video, known.frame)]
        category = coco.getCatIds(catNms=[TEXTS[(known.video, known.exp_id)]])[0]
        [annotation] = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]], catIds=[category]))
        assert np.array_equal(coco.annToMask(annotation).astype(bool), known.mask)
        assert annotation["iscrowd"] == 0 and annotation["area"] == known.mask.sum()
        ys, xs = np.nonzero(known.mask)
        assert annotation["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert annotation["predicted_iou"] == known.predicted_iou
        track_ids.setdefault((known.video, known.exp_id), set()).add(annotation["attributes"]["track_id"])
    assert all(len(ids) == 1 for ids in track_ids.values())
    assert len({ids.pop() for ids in track_ids.values()}) == 3
    assert record["counts"]["dropped_no_seg"] == 1 and record["counts"]["instances"] == len(expected)
    results = coco.loadRes(annotations)  # pycocotools takes our annotations as results
    assert len(results.getAnnIds()) == len(expected)


def test_coco_polygons_keep_parts_and_holes(run: Path, tmp_path: Path) -> None:
    export(run, tmp_path / "coco", "coco", polygons=True)
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    images = {(image["video"], image["frame"]): image["id"] for image in coco.loadImgs(coco.getImgIds())}
    for known in kept(known_masks()):
        category = coco.getCatIds(catNms=[TEXTS[(known.video, known.exp_id)]])[0]
        ids = coco.getAnnIds(imgIds=[images[(known.video, known.frame)]], catIds=[category])
        [annotation] = coco.loadAnns(ids)
        mask = coco.annToMask(annotation).astype(bool)
        assert iou(mask, known.mask) > 0.8  # polygons through pixel centres lose half a border pixel
        if known.exp_id == "1":
            assert len(annotation["segmentation"]) == 2  # two parts, two polygons
        if (known.video, known.exp_id) == ("cats", "0"):
            assert not mask[20, 30]  # the ring's hole stays empty


# --- YouTube-VIS -----------------------------------------------------------------------------------


def test_ytvis_tracks_have_one_entry_per_frame(run: Path, tmp_path: Path) -> None:
    export(run, tmp_path / "ytvis", "ytvis", filters=Filters(min_iou=0.5))
    document = json.loads((tmp_path / "ytvis" / "instances.json").read_text())
    videos = {video["name"]: video for video in document["videos"]}
    assert videos["cats"]["length"] == 3 and videos["cats"]["file_names"][2] == "cats/00002.png"
    assert (videos["dogs"]["height"], videos["dogs"]["width"]) == (37, 53)
    masks = {(m.video, m.exp_id, m.frame): m for m in known_masks()}
    assert len(document["annotations"]) == 3
    for track in document["annotations"]:
        video = next(v for v in document["videos"] if v["id"] == track["video_id"])
        assert len(track["segmentations"]) == video["length"] == len(track["bboxes"]) == len(track["areas"])
        for index, rle in enumerate(track["segmentations"]):
            known = masks[(video["name"], track["exp_id"], f"{index:05d}")]
            if not known.seg or known.predicted_iou < 0.5:  # no [SEG], or dropped by --min-iou
                assert rle is None and track["areas"][index] is None
                continue
            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            assert np.array_equal(decoded.astype(bool), known.mask)


def test_ytvis_results_score_is_the_mean_confidence(run: Path, tmp_path: Path) -> None:
    export(run, tmp_path / "results", "ytvis", results=True)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert isinstance(results, list) and len(results) == 3
    dogs = [m for m in known_masks() if m.video == "dogs"]
    expected = np.mean([confidence(m.predicted_iou, m.object_score) for m in dogs])
    assert any(abs(r["score"] - expected) < 1e-9 for r in results)
    for result in results:
        assert set(result) == {"video_id", "category_id", "segmentations", "score"}


# --- YOLO ------------------------------------------------------------------------------------------


def test_yolo_polygons_fill_back_to_the_masks(run: Path, tmp_path: Path) -> None:
    record = export(run, tmp_path / "yolo", "yolo")
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["names"] == {0: "the ring", 1: "two blobs"}
    assert data["train"] == data["val"] == "images/train"
    labels = tmp_path / "yolo" / "labels" / "train"
    assert sorted(p.name for p in labels.iterdir()) == [
        "cats__00000.txt",
        "cats__00001.txt",
        "cats__00002.txt",
        "dogs__00000.txt",
        "dogs__00001.txt",
    ]
    image = tmp_path / "yolo" / "images" / "train" / "cats__00000.png"
    assert image.samefile(run.parent / "frames" / "cats" / "00000.png")  # linked, not copied
    height, width = CATS_SIZE
    lines = (labels / "cats__00000.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "1"]  # the ring, then the blobs' two parts
    for class_id in (0, 1):
        filled = np.zeros(CATS_SIZE, np.uint8)
        for line in lines:
            values = line.split()
            if int(values[0]) == class_id:
                points = np.array(values[1:], float).reshape(-1, 2) * [width, height]
                cv2.fillPoly(filled, [points.astype(np.int32)], 1)  # as Ultralytics does
        known = next(
            m for m in known_masks() if (m.video, m.frame, m.exp_id) == ("cats", "00000", str(class_id))
        )
        assert iou(filled.astype(bool), known.mask) > 0.95
    ring_fill = np.zeros(CATS_SIZE, np.uint8)
    ring_points = np.array(lines[0].split()[1:], float).reshape(-1, 2) * [width, height]
    cv2.fillPoly(ring_fill, [ring_points.astype(np.int32)], 1)
    assert not ring_fill[20, 30]  # the hole, bridged in, stays empty
    assert (labels / "cats__00002.txt").read_text().count("\n") == 1  # the blobs gave no [SEG] there
    assert record["counts"]["dropped_no_seg"] == 1


def test_yolo_copy(run: Path, tmp_path: Path) -> None:
    export(run, tmp_path / "yolo", "yolo", copy=True)
    image = tmp_path / "yolo" / "images" / "train" / "dogs__00000.jpg"
    original = run.parent / "frames" / "dogs" / "00000.jpg"
    assert image.read_bytes() == original.read_bytes() and not image.samefile(original)


# --- MOTS ------------------------------------------------------------------------------------------


def test_mots_ids_and_the_overlap_rule(run: Path, tmp_path: Path) -> None:
    record = export(run, tmp_path / "mots", "mots")
    assert (tmp_path / "mots" / "instances" / "labels.txt").read_text() == "the ring\ntwo blobs\n"
    with Image.open(tmp_path / "mots" / "instances" / "cats" / "00001.png") as image:
        assert image.mode == "I;16"
        ids = np.asarray(image)
    masks = {(m.exp_id, m.frame): m.mask for m in known_masks() if m.video == "cats"}
    ring, blobs = masks[("0", "00001")], masks[("1", "00001")]
    assert (ring & blobs).any()
    assert set(np.unique(ids)) == {0, 1001, 2002}  # class * 1000 + track
    assert np.array_equal(ids == 2002, blobs)  # predicted IoU 0.95 beats 0.9 where they overlap
    assert np.array_equal(ids == 1001, ring & ~blobs)
    expected_overlap = sum(int((masks[("0", f)] & masks[("1", f)]).sum()) for f in ("00000", "00001"))
    assert record["counts"]["overlap_pixels"] == expected_overlap > 0
    with Image.open(tmp_path / "mots" / "instances" / "dogs" / "00000.png") as image:
        assert np.array_equal(np.asarray(image) == 1001, known_masks()[-2].mask)
    assert (tmp_path / "mots" / "images" / "dogs" / "00001.jpg").is_file()


# --- filters and categories ------------------------------------------------------------------------


def test_filters_are_counted(run: Path, tmp_path: Path) -> None:
    counts = export(run, tmp_path / "a", "coco", filters=Filters(min_iou=0.85))["counts"]
    assert (counts["dropped_no_seg"], counts["dropped_low_iou"], counts["instances"]) == (1, 2, 5)
    counts = export(run, tmp_path / "b", "coco", filters=Filters(min_object_score=0.0))["counts"]
    assert (counts["dropped_low_object_score"], counts["instances"]) == (1, 6)
    counts = export(run, tmp_path / "c", "coco", filters=Filters(require_seg=False))["counts"]
    assert (counts["dropped_no_seg"], counts["empty_masks"], counts["instances"], counts["frames"]) == (
        0,
        1,
        7,
        8,
    )


def test_one_category_or_a_file(run: Path, tmp_path: Path) -> None:
    assert export(run, tmp_path / "a", "coco", category="object")["categories"] == ["object"]
    mapping = tmp_path / "categories.json"
    mapping.write_text(json.dumps({"cats/1": "blob", "0": "ring", "dogs/7": "ring"}))
    record = export(run, tmp_path / "b", "yolo", categories_file=mapping)
    assert record["categories"] == ["blob", "ring"]
    assert yaml.safe_load((tmp_path / "b" / "data.yaml").read_text())["names"] == {0: "blob", 1: "ring"}


# --- other run layouts -----------------------------------------------------------------------------


def test_keyframes_layout_needs_the_frames_folder(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyframes = tmp_path / "kf"
    shutil.copytree(run, keyframes / "masks", ignore=shutil.ignore_patterns("summary.json"))
    (keyframes / "keyframe_scores.json").write_text(
        json.dumps({"options": {"stride": 1, "max_frames": None}})
    )
    code, output = run_glus(["export", str(keyframes), "--to", "coco", "-o", str(tmp_path / "a")], capsys)
    assert code == 2 and "pass --frames" in output
    frames = run.parent / "frames"
    code, output = run_glus(
        ["export", str(keyframes), "--to", "coco", "-o", str(tmp_path / "b"), "--frames", str(frames)], capsys
    )
    assert code == 0, output
    coco = COCO(str(tmp_path / "b" / "annotations" / "instances_default.json"))
    assert len(coco.getAnnIds()) == len(kept(known_masks()))


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cli_environment")
def test_error_lines(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    code, output = run_glus(["export", str(tmp_path), "--to", "coco", "-o", out], capsys)
    assert code == 2 and "error:" in output and "is not a glus run folder" in output
    code, output = run_glus(["export", str(run), "--to", "pascal", "-o", out], capsys)
    assert code == 2 and "unknown export format 'pascal'" in output
    code, output = run_glus(["export", str(run), "--to", "coco", "-o", out], capsys)
    assert code == 0, output
    code, output = run_glus(["export", str(run), "--to", "mots", "-o", out], capsys)
    assert code == 5 and "exists" in output and "--force" in output
    code, output = run_glus(["export", str(run), "--to", "mots", "-o", out, "--force"], capsys)
    assert code == 0 and (tmp_path / "out" / "instances").is_dir()
    assert not (tmp_path / "out" / "annotations").exists()
    assert "Traceback" not in output


@pytest.mark.usefixtures("cli_environment")
def test_unfinished_expressions_are_skipped_or_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "cats" / "5").mkdir()
    (copy / "cats" / "5" / "00000.png").write_bytes(b"partial")
    code, output = run_glus(["export", str(copy), "--to", "coco", "-o", str(tmp_path / "a")], capsys)
    assert code == 0 and "unfinished" in output
    record = json.loads((tmp_path / "a" / "export.json").read_text())
    assert record["counts"]["unfinished_expressions"] == ["cats/5"]
    code, output = run_glus(
        ["export", str(copy), "--to", "coco", "-o", str(tmp_path / "b"), "--strict"], capsys
    )
    assert code == 2 and "unfinished" in output and not (tmp_path / "b").exists()


@pytest.mark.usefixtures("cli_environment")
def test_a_mask_of_another_size_is_refused_and_nothing_is_left(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(copy / "cats" / "1" / "00001.png")
    code, output = run_glus(["export", str(copy), "--to", "yolo", "-o", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "the mask of frame '00001' is 12x10 but the frame cats/00001.png is 60x40" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no output, no temporary folder


@pytest.mark.usefixtures("cli_environment")
def test_hostile_frame_names_are_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    confidence_path = copy / "cats" / "0" / CONFIDENCE_NAME
    record = json.loads(confidence_path.read_text())
    record["frames"][0] = "../../escape"
    confidence_path.write_text(json.dumps(record))
    code, output = run_glus(["export", str(copy), "--to", "mots", "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and "contains a path separator" in output


def test_a_segment_run_of_a_video_file(tmp_path: Path) -> None:
    """A `glus segment` layout (run.json, NN-<slug>/) whose source is a video file: frames become JPEGs."""
    from glus_cli.testing.videos import write_synthetic_video

    source = write_synthetic_video(tmp_path / "clip.mp4", 4, (48, 64))
    run = tmp_path / "run"
    folder = run / "00-the-dog"
    folder.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps({"command": "segment", "source": str(source), "protocol": {"stride": 2}})
    )
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5:30] = True
    for frame in ("00000", "00002"):
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{frame}.png")
    record = {"exp_id": "0", "text": "the dog", "frames_without_seg": []}
    (folder / "expression.json").write_text(json.dumps(record))
    FrameConfidence(["00000", "00002"], [0.9, 0.8], [1.0, 1.0]).write(folder / CONFIDENCE_NAME)
    export(run, tmp_path / "coco", "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_default.json"))
    images = coco.loadImgs(coco.getImgIds())
    assert [image["file_name"] for image in images] == ["clip/00000.jpg", "clip/00002.jpg"]
    assert all((tmp_path / "coco" / "images" / image["file_name"]).is_file() for image in images)
    for annotation in coco.loadAnns(coco.getAnnIds()):
        assert np.array_equal(coco.annToMask(annotation).astype(bool), mask)
    export(run, tmp_path / "yolo", "yolo")
    decoded = cv2.imread(str(tmp_path / "yolo" / "images" / "train" / "clip__00002.jpg"))
    assert decoded.shape == (48, 64, 3)


@pytest.mark.usefixtures("cli_environment")
def test_records_without_per_frame_scores(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs written before per-frame scores were recorded export; the score filters say why they cannot."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for path in copy.rglob(CONFIDENCE_NAME):
        path.unlink()
    record = export(copy, tmp_path / "coco", "coco")
    assert record["counts"]["instances"] == len(kept(known_masks()))
    assert record["counts"]["dropped_no_seg"] == 1  # from frames_without_seg
    code, output = run_glus(
        ["export", str(copy), "--to", "coco", "-o", str(tmp_path / "b"), "--min-iou", "0.5"], capsys
    )
    assert code == 2 and "confidence.json with per-frame SAM2 scores" in output
