"""KFS training labels: `glus keyframes --ground-truth` writes the IoU lists the official trainer reads."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from glus_dataset import BAD_VIDEO, Dataset, shared_dataset, shared_model
from pycocotools import mask as coco_mask

from glus_cli.cli.runs import EXIT_VIDEOS_FAILED
from glus_cli.errors import OutputError
from glus_cli.keyframe_files import KeyframeRecord
from glus_cli.kfs_labels import LABELS_DIR, frame_labels, label_path, write_labels
from glus_cli.metrics import region_similarity
from glus_cli.model_spec import ModelSpec
from tests.cli_helpers import run_glus


def test_labels_follow_the_ground_truth_frame_order() -> None:
    assert frame_labels(["00000", "00005", "00010"], ["00010", "00000", "00005"], [0.3, 0.1, 0.2]) == [
        0.1,
        0.2,
        0.3,
    ]


def test_a_frame_not_segmented_means_no_labels() -> None:
    assert frame_labels(["00000", "00001", "00002"], ["00000", "00002"], [1.0, 0.5]) is None


def record(video: str, exp_id: str, frames: list[str], scores: list[float]) -> KeyframeRecord:
    return KeyframeRecord(video, exp_id, "x", frames, scores, [None] * len(frames), [None] * len(frames))


def test_write_labels_writes_and_removes(tmp_path: Path) -> None:
    root = tmp_path / "labels"
    truth = {("v", "0"): ["a", "b"], ("v", "1"): ["a", "b"]}
    full = [record("v", "0", ["a", "b"], [0.25, 1.0]), record("v", "1", ["a", "b"], [0.0, 0.5])]
    report = write_labels(root, full, lambda video, exp_id: truth[video, exp_id])
    assert (report.written, report.unlabelled) == (["v/0", "v/1"], [])
    assert json.loads(label_path(root, "v", "1").read_text()) == [0.0, 0.5]

    # A rerun where expression 1 lost a frame: its old label file goes, expression 0's is rewritten.
    partial = [full[0], record("v", "1", ["a"], [0.0])]
    report = write_labels(root, partial, lambda video, exp_id: truth[video, exp_id])
    assert (report.written, report.unlabelled) == (["v/0"], ["v/1"])
    assert sorted(path.name for path in (root / "v").iterdir()) == ["0.json"]  # no temporaries either


def test_write_labels_under_a_file_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        write_labels(tmp_path / "afile", [record("v", "0", ["a"], [1.0])], lambda video, exp_id: ["a"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return shared_dataset(tmp_path_factory)


def truth_masks(split: Path, video: str, exp_id: str) -> list[np.ndarray]:
    """The expression's ground truth per frame, decoded straight from mask_dict.json (union of anno_ids)."""
    meta = json.loads((split / "meta_expressions.json").read_text())["videos"][video]
    mask_dict = json.loads((split / "mask_dict.json").read_text())
    anno_ids = meta["expressions"][exp_id]["anno_id"]
    return [
        np.any([coco_mask.decode(mask_dict[str(a)][index]) for a in anno_ids], axis=0)
        for index in range(len(meta["frames"]))
    ]


def test_keyframes_writes_labels_the_trainer_reads(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ModelSpec, "load", lambda _self, *_args: shared_model(dataset.checkpoint))
    out = tmp_path / "kf"
    common = ["keyframes", str(dataset.frames), "-e", str(dataset.meta), "-o", str(out), "--quiet"]
    common += ["--model", str(dataset.checkpoint)]

    code, _ = run_glus(common, capsys)  # without ground truth: no IoU, so no labels
    assert code == EXIT_VIDEOS_FAILED  # the corrupt video fails; the others are done
    assert not (out / LABELS_DIR).exists()
    masks_before = {path: path.stat().st_mtime_ns for path in (out / "masks").rglob("*.png")}

    code, output = run_glus([*common, "--ground-truth", str(dataset.split)], capsys)
    assert code == EXIT_VIDEOS_FAILED
    assert "wrote 3 KFS training labels" in output
    # Resumed: the labels come from the masks of the first run, which were not redone.
    assert {path: path.stat().st_mtime_ns for path in (out / "masks").rglob("*.png")} == masks_before

    # Read them as the official trainer (kfs/utils/rvos_dataset.py) does: for each expression of the meta
    # file that has a file <root>/<vid>/<int(exp_id)>.json, scores[frame_index] over the video's frames.
    root = out / LABELS_DIR
    meta = json.loads(dataset.meta.read_text())["videos"]
    labelled = []
    for video, entry in meta.items():
        for exp_id in entry["expressions"]:
            path = root / video / f"{int(exp_id)}.json"
            if not path.exists():
                continue
            labelled.append((video, exp_id))
            with path.open() as handle:
                scores = json.load(handle)
            truth = truth_masks(dataset.split, video, exp_id)
            for frame_index, frame in enumerate(entry["frames"]):
                mask = cv2.imread(str(out / "masks" / video / exp_id / f"{frame}.png"), cv2.IMREAD_GRAYSCALE)
                assert scores[frame_index] == region_similarity(mask, truth[frame_index])
            assert len(scores) == len(entry["frames"])
    assert labelled == [("vidA", "0"), ("vidA", "1"), ("vidB", "0")]  # the failed video has none
    assert not (root / BAD_VIDEO).exists()
    details = json.loads((out / "keyframe_scores.json").read_text())
    assert details["kfs_labels"] == {"root": str(root), "written": 3, "unlabelled": []}
    assert json.loads((root / "vidB" / "0.json").read_text()) == details["expressions"]["vidB_0"]["scores"]


def test_subsampled_frames_get_no_labels(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ModelSpec, "load", lambda _self, *_args: shared_model(dataset.checkpoint))
    expressions = tmp_path / "exps.json"
    expressions.write_text(json.dumps({"vidB": {"0": "the red circle"}}))
    out = tmp_path / "kf"
    args = ["keyframes", str(dataset.frames), "-e", str(expressions), "-o", str(out), "--quiet"]
    args += ["--model", str(dataset.checkpoint)]
    code, output = run_glus([*args, "--ground-truth", str(dataset.split), "--stride", "2"], capsys)
    assert code == 0, output
    assert "KFS training labels need every frame" in output
    assert "1 expressions have no KFS training label" in output and "(first: vidB/0)" in output
    assert not label_path(out / LABELS_DIR, "vidB", "0").exists()
    details = json.loads((out / "keyframe_scores.json").read_text())
    assert details["expressions"]["vidB_0"]["frames"] == ["00000", "00002"]  # key frames still ranked
    assert details["kfs_labels"]["unlabelled"] == ["vidB/0"]
