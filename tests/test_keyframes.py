"""Key frames: score files to indices, IoU pseudo-labels with ground truth, confidence ranking without."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from glus_dataset import Dataset, shared_dataset, shared_model
from typer.testing import CliRunner

from glus_cli.batch import find_videos, plan_tasks
from glus_cli.cli.app import app
from glus_cli.confidence import CONFIDENCE_NAME, confidence
from glus_cli.errors import InputError
from glus_cli.keyframe_files import keyframe_for, read_scores
from glus_cli.keyframes import MASKS_DIR, ground_truth_scores, run_keyframes
from glus_cli.metrics import region_similarity
from glus_cli.model_spec import ModelSpec
from glus_cli.protocol import SegmentationOptions
from glus_cli.runner import Expression
from glus_cli.testing.videos import DEFAULT_SHAPES, synthetic_mask

YTVOS_FRAMES = ["00000", "00005", "00010"]


@pytest.mark.parametrize("value", ["00005", 5, "5"])
def test_score_value_maps_to_index_like_the_official_code(value: str | int) -> None:
    assert keyframe_for({"vid_2": value}, "vid", "2", YTVOS_FRAMES) == 1


def test_missing_key_means_no_key_frame() -> None:
    assert keyframe_for({"vid_1": "00005"}, "vid", "2", YTVOS_FRAMES) is None


def test_key_frame_outside_the_kept_frames_is_an_input_error() -> None:
    with pytest.raises(InputError):
        keyframe_for({"vid_2": "00007"}, "vid", "2", YTVOS_FRAMES)


def test_read_scores_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "kf.json"
    path.write_text('{"vid_0": [1]}')
    with pytest.raises(InputError):
        read_scores(path)


def test_confidence_is_zero_without_seg() -> None:
    assert confidence(None, None) == 0.0
    assert confidence(0.8, 0.0) == pytest.approx(0.4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return shared_dataset(tmp_path_factory)


def test_keyframes_with_ground_truth_then_confidence(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ModelSpec, "load", lambda _self, *_args: shared_model(dataset.checkpoint))
    expressions = tmp_path / "exps.json"
    expressions.write_text(json.dumps({"vidB": {"0": "the red circle"}}))
    out = tmp_path / "kf"
    common = ["keyframes", str(dataset.frames), "-e", str(expressions), "-o", str(out), "--quiet"]
    common += ["--model", str(dataset.checkpoint)]
    result = CliRunner().invoke(app, [*common, "--ground-truth", str(dataset.split)])
    assert result.exit_code == 0, result.output

    details = json.loads((out / "keyframe_scores.json").read_text())
    assert details["ranking"] == "ground_truth_iou"
    entry = details["expressions"]["vidB_0"]
    ious = [
        region_similarity(
            cv2.imread(str(out / "masks" / "vidB" / "0" / f"{frame}.png"), cv2.IMREAD_GRAYSCALE),
            synthetic_mask(i, (48, 64), DEFAULT_SHAPES[0]),
        )
        for i, frame in enumerate(entry["frames"])
    ]
    assert entry["scores"] == pytest.approx(ious)
    best = entry["frames"][int(np.argmax(ious))]
    assert json.loads((out / "keyframes.json").read_text()) == {"vidB_0": best}
    assert keyframe_for(read_scores(out / "keyframes.json"), "vidB", "0", entry["frames"]) == int(
        np.argmax(ious)
    )

    result = CliRunner().invoke(app, common)  # resumes: the masks and their confidence are reused
    assert result.exit_code == 0, result.output
    assert "model's own confidence" in result.output
    details = json.loads((out / "keyframe_scores.json").read_text())
    assert details["ranking"] == "model_confidence"
    assert "NOT the paper's pseudo-label" in details["ranking_description"]
    entry = details["expressions"]["vidB_0"]
    expected = [confidence(i, o) for i, o in zip(entry["predicted_iou"], entry["object_score"], strict=True)]
    assert entry["scores"] == pytest.approx(expected)
    assert json.loads((out / "keyframes.json").read_text()) == {"vidB_0": entry["key_frame"]}


def test_run_keyframes_from_python(dataset: Dataset, tmp_path: Path) -> None:
    tasks = plan_tasks(find_videos(dataset.frames), {"vidB": [Expression("0", "the red circle")]})
    scorer = ground_truth_scores(dataset.split)
    run = run_keyframes(
        shared_model(dataset.checkpoint), tasks, tmp_path, SegmentationOptions(), scorer=scorer
    )

    assert run.ranking == "ground_truth_iou"
    assert run.report.failures == [] and len(run.report.outcomes) == 1
    [record] = run.records
    assert (record.video, record.exp_id, record.expression) == ("vidB", "0", "the red circle")
    folder = tmp_path / MASKS_DIR / "vidB" / "0"
    assert record.frames == ["00000", "00001", "00002"]
    assert (folder / CONFIDENCE_NAME).is_file()
    assert record.scores == scorer.frame_ious(folder, "vidB", "0", record.frames)
    assert json.loads(run.score_path.read_text()) == {"vidB_0": record.key_frame}
    details = json.loads(run.details_path.read_text())
    assert details["expressions"]["vidB_0"]["scores"] == record.scores
    assert details["options"]["stride"] == 1 and details["failures"] == []


def test_run_keyframes_checks_the_ground_truth_before_running(dataset: Dataset, tmp_path: Path) -> None:
    tasks = plan_tasks(find_videos(dataset.frames), {"vidB": [Expression("7", "a cat")]})
    scorer = ground_truth_scores(dataset.split)
    with pytest.raises(InputError, match=r"1 expressions have no ground truth \(first: vidB/7\)"):
        run_keyframes(shared_model(dataset.checkpoint), tasks, tmp_path, SegmentationOptions(), scorer=scorer)
    assert list(tmp_path.iterdir()) == []
