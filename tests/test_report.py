"""`report.html` without a browser: what the page embeds, partial runs, atomic writes, `glus report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from glus_cli.evaluation import evaluate
from glus_cli.report import REPORT_NAME, GroundTruth, write_report
from glus_cli.report.gather import REPORT_FILES_DIR
from glus_cli.report.page import render
from glus_cli.testing.runs import write_batch_run, write_truth_tree
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus

pytest_plugins = ["tests.cli_fixtures"]

EXPRESSIONS = {"vidA": ["the red circle", "the circle on the left"], "vidB": ["the ball"]}


def page_data(path: Path) -> dict:
    """The JSON blob a report page embeds."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r'<script id="glus-data" type="application/json">(.*?)</script>', text, re.S)
    assert match is not None
    return json.loads(match.group(1))


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of every file but the report's own."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != REPORT_NAME and REPORT_FILES_DIR not in path.parts
    }


@pytest.fixture
def scored_run(tmp_path: Path) -> tuple[Path, Path]:
    """A batch run folder with the eval.json `glus eval` writes, and its ground truth."""
    run = write_batch_run(tmp_path / "run", EXPRESSIONS)
    truth = write_truth_tree(tmp_path / "truth", EXPRESSIONS)
    evaluate(run, truth).write_json(run / "eval.json")
    return run, truth


def test_the_page_embeds_the_means_of_eval_json_to_the_last_digit(scored_run: tuple[Path, Path]) -> None:
    run, _ = scored_run
    data = page_data(write_report(run))
    overall = json.loads((run / "eval.json").read_text())["overall"]
    shown = data["evaluation"]["overall"]
    assert (shown["J"], shown["F"], shown["JF"]) == (overall["J"], overall["F"], overall["J&F"])
    assert shown["text"]["JF"] == f"{100 * overall['J&F']:.2f}"
    rows = {(row["video"], row["exp_id"]): row for row in data["expressions"]}
    assert set(rows) == {("vidA", "0"), ("vidA", "1"), ("vidB", "0")}
    for row in json.loads((run / "eval.json").read_text())["per_expression"]:
        assert rows[row["video"], row["exp_id"]]["scores"]["JF"] == row["J&F"]
    assert data["partial"] == [] and data["layout"] == "batch"


def test_each_expression_has_its_media_chart_and_no_seg_frames(scored_run: tuple[Path, Path]) -> None:
    run, _ = scored_run
    row = next(row for row in page_data(write_report(run))["expressions"] if row["video"] == "vidA")
    record = json.loads((run / "vidA" / "0" / "expression.json").read_text())
    assert row["dir"] == "vidA/0/" and row["record"] == "vidA/0/expression.json"
    assert row["preview"] == "vidA/0/preview.jpg" and row["overlay"] is None
    assert row["no_seg"] == record["frames_without_seg"] and row["no_seg"]
    series = row["series"]
    assert len(series["frames"]) == len(series["iou"]) == len(series["seg"]) == 8
    for name, seg, iou in zip(series["frames"], series["seg"], series["iou"], strict=True):
        assert seg == (name not in record["frames_without_seg"])
        assert (iou is None) == (not seg)


def test_a_ground_truth_draws_the_worst_frames_once(scored_run: tuple[Path, Path]) -> None:
    run, truth = scored_run
    before = snapshot(run)
    data = page_data(write_report(run, ground_truth=GroundTruth(truth)))
    worst = next(row for row in data["expressions"] if row["video"] == "vidA")["worst"]
    assert 1 <= len(worst) <= 3 and worst == sorted(worst, key=lambda item: item["J"])
    first = run / worst[0]["file"]
    assert first.is_file() and first.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    made = first.stat().st_mtime_ns
    again = page_data(write_report(run))  # rebuilt without the ground truth: the same thumbnails
    assert next(row for row in again["expressions"] if row["video"] == "vidA")["worst"] == worst
    write_report(run, ground_truth=GroundTruth(truth))
    assert first.stat().st_mtime_ns == made  # not drawn again
    assert snapshot(run) == before  # no mask or record changed
    assert evaluate(run, truth).warnings == []  # report_files/ is no prediction folder to warn about


def test_an_unfinished_run_is_marked_partial(tmp_path: Path) -> None:
    run = write_batch_run(tmp_path / "run", EXPRESSIONS, summary=False)
    (run / "vidB" / "0" / "expression.json").unlink()
    data = page_data(write_report(run))
    assert any("unfinished" in reason for reason in data["partial"])
    assert any("summary.json" in reason for reason in data["partial"])
    row = next(row for row in data["expressions"] if row["video"] == "vidB")
    assert row["done"] is False and row["record"] is None


def test_an_interrupted_write_keeps_the_previous_page(
    scored_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = scored_run
    previous = write_report(run).read_bytes()
    (run / "vidA" / "0" / "expression.json").unlink()  # the next page would differ

    def interrupted(self: Path, target: Path) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(run)
    assert (run / REPORT_NAME).read_bytes() == previous
    assert not [path for path in run.iterdir() if path.name.startswith(f".{REPORT_NAME}")]


def test_no_text_of_the_data_can_end_the_script_element() -> None:
    data = {"title": "t", "generator": "g", "expressions": [{"text": "</script><script>alert(1)</script>"}]}
    page = render(data)
    assert page.count("</script>") == 2  # the data's and the code's own
    assert page_data_from_text(page)["expressions"][0]["text"] == "</script><script>alert(1)</script>"


def page_data_from_text(text: str) -> dict:
    match = re.search(r'<script id="glus-data" type="application/json">(.*?)</script>', text, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_glus_report_rebuilds_the_page_and_scores_against_a_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_batch_run(tmp_path / "run", EXPRESSIONS)
    truth = write_truth_tree(tmp_path / "truth", EXPRESSIONS)
    code, output = run_glus(["report", str(run), "--ground-truth", str(truth), "--quiet"], capsys)
    assert code == 0, output
    assert "report.html" in output
    data = page_data(run / REPORT_NAME)
    expected = evaluate(run, truth).overall
    assert data["evaluation"]["overall"]["JF"] == expected.jf
    assert all(row["scores"] is not None for row in data["expressions"])
    assert not (run / "eval.json").exists()  # the report writes no record


def test_glus_report_on_a_missing_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_glus(["report", str(tmp_path / "nowhere")], capsys)
    assert code != 0
    assert "error:" in output and "nowhere" in output and "Traceback" not in output


def test_a_bare_mask_tree_and_a_keyframes_folder_are_reported(tmp_path: Path) -> None:
    tree = write_truth_tree(tmp_path / "tree", EXPRESSIONS)  # predictions of another tool: PNGs only
    truth = write_truth_tree(tmp_path / "truth", EXPRESSIONS)
    data = page_data(write_report(tree, ground_truth=GroundTruth(truth)))
    assert data["layout"] == "masks" and data["partial"] == []
    assert all(row["done"] and row["record"] is None for row in data["expressions"])
    assert data["evaluation"]["overall"]["JF"] == 1.0

    keyframes = tmp_path / "kf"
    write_batch_run(keyframes / "masks", EXPRESSIONS, summary=False)
    (keyframes / "keyframes.json").write_text("{}")
    data = page_data(write_report(keyframes))
    assert data["layout"] == "keyframes" and data["partial"] == []
    assert data["expressions"][0]["dir"] == "masks/vidA/0/"
    data = page_data(write_report(keyframes, ground_truth=GroundTruth(truth)))  # scores masks/
    assert data["evaluation"]["n_expressions"] == 3
    assert data["expressions"][0]["worst"][0]["src"].startswith("report_files/worst/vidA/0/")


def test_no_report_leaves_no_page(
    cli_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    video = write_synthetic_video(tmp_path / "clip.mp4", 4, size=(48, 64))
    common = ["--model", str(cli_checkpoint), "--device", "cpu", "--quiet"]
    code, output = run_glus(
        ["segment", str(video), "the dog", "-o", "without", "--no-report", *common], capsys
    )
    assert code == 0, output
    assert (tmp_path / "without" / "00-the-dog" / "expression.json").is_file()
    assert not (tmp_path / "without" / REPORT_NAME).exists()
    code, output = run_glus(["segment", str(video), "the dog", "-o", "with", *common], capsys)
    assert code == 0, output
    data = page_data(tmp_path / "with" / REPORT_NAME)
    assert data["layout"] == "segment" and data["partial"] == []
    assert [row["text"] for row in data["expressions"]] == ["the dog"]
    assert data["expressions"][0]["series"]["frames"] == ["00000", "00001", "00002", "00003"]


def test_a_record_with_odd_values_still_gives_a_page(tmp_path: Path) -> None:
    run = write_batch_run(tmp_path / "run", EXPRESSIONS)
    path = run / "vidA" / "0" / "expression.json"
    record = json.loads(path.read_text())
    record.update(mean_predicted_iou=float("nan"), seconds="slow")
    path.write_text(json.dumps(record))  # Python writes NaN, which JSON has not
    (run / "vidB" / "0" / "confidence.json").write_text("{not json")
    data = page_data(write_report(run))
    rows = {(row["video"], row["exp_id"]): row for row in data["expressions"]}
    assert rows["vidA", "0"]["iou"] is None and rows["vidA", "0"]["seconds"] is None
    assert rows["vidB", "0"]["series"] is None and rows["vidB", "0"]["done"]
