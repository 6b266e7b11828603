"""`glus eval` end to end: `glus batch` on a tiny MeViS-layout dataset, then J&F against its ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
from glus_dataset import BAD_VIDEO, Dataset, rle, shared_dataset
from typer.testing import CliRunner

from glus_cli.cli.app import app
from glus_cli.errors import OutputError
from tests.cli_helpers import run_glus


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return shared_dataset(tmp_path_factory)


def test_eval_after_batch(dataset: Dataset, tmp_path: Path) -> None:
    gt = tmp_path / "gt"
    shutil.copytree(dataset.split, gt, ignore=shutil.ignore_patterns("JPEGImages"))
    meta = json.loads((gt / "meta_expressions.json").read_text())
    del meta["videos"][BAD_VIDEO]
    (gt / "meta_expressions.json").write_text(json.dumps(meta))
    mask_dict = json.loads((gt / "mask_dict.json").read_text())
    anno_id = str(meta["videos"]["vidA"]["expressions"]["0"]["anno_id"][0])
    predicted = dataset.reference / "vidA" / "0"
    mask_dict[anno_id] = [
        rle(cv2.imread(str(predicted / f"{frame}.png"), cv2.IMREAD_GRAYSCALE) > 0)
        for frame in meta["videos"]["vidA"]["frames"]
    ]
    (gt / "mask_dict.json").write_text(json.dumps(mask_dict))

    out = tmp_path / "scores"
    result = CliRunner().invoke(app, ["eval", str(dataset.reference), str(gt), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "J&F" in result.output and "overall" in result.output
    rows = {
        (row["video"], row["exp_id"]): row
        for row in json.loads((out / "eval.json").read_text())["per_expression"]
    }
    assert rows["vidA", "0"]["J"] == 1.0 and rows["vidA", "0"]["F"] == 1.0
    assert set(rows) == {("vidA", "0"), ("vidA", "1"), ("vidB", "0")}
    csv_lines = (out / "eval.csv").read_text().splitlines()
    assert csv_lines[0] == "video,exp_id,expression,J,F,J&F,n_frames" and len(csv_lines) == 4


def test_eval_output_under_a_file_is_one_error_line(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    args = ["eval", str(dataset.reference), str(dataset.split), "-o", str(afile / "sub"), "--quiet"]
    code, output = run_glus(args, capsys)
    assert code == OutputError.exit_code
    assert "error: cannot write" in output and "afile" in output
    assert "internal error" not in output and "Traceback" not in output
