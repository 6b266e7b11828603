"""Names read from files never place a write (or a read) outside their root, whatever command reads them.

Every hostile name goes through a real command (`glus batch` with each expressions-file form,
`--keyframes`, `glus keyframes`, `glus eval`, `glus batch --ray`) and through the Ray driver's planning
and the worker's `run_batch`; each must be refused with one `error:` line naming the file and the entry,
with exit code 2, and the file tree around the test (its tmp folder's parent) must be unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_helpers import run_glus

from glus_cli.batch import VideoTask, load_expressions, run_batch
from glus_cli.distributed.plan import longest_first
from glus_cli.errors import InputError
from glus_cli.ground_truth import read_meta
from glus_cli.keyframe_files import read_scores
from glus_cli.model.glus import GlusModel
from glus_cli.protocol import SegmentationOptions
from glus_cli.runner import Expression
from glus_cli.testing.checkpoint import SyntheticCheckpoint
from glus_cli.testing.videos import write_frame_folder

pytest_plugins = ["tests.fixtures"]

HOSTILE = ["../../../escaped", "1/../../x", "/tmp/glus-absolute", "C:evil", "..", ".", "", "a\\..\\..\\b"]
"""Each is refused; NUL is added where the file format can carry it (JSON)."""
JSON_HOSTILE = [*HOSTILE, "x\x00y"]
VIDEO = "vid"


def snapshot(root: Path) -> set[str]:
    """Every path under `root` (files and folders), relative to it."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder of one two-frame video, in a test folder whose parent is snapshotted."""
    write_frame_folder(tmp_path / "videos" / VIDEO, 2, size=(48, 64))
    return tmp_path


def refused(
    args: list[str], workspace: Path, capsys: pytest.CaptureFixture[str], *, file: Path, name: str
) -> None:
    """Run `glus ARGS` and check the one error line (exit 2) and that nothing was written anywhere."""
    around = workspace.parent
    before = snapshot(around)
    code, output = run_glus(args, capsys)
    assert code == InputError.exit_code, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert str(file) in lines[0] and repr(name) in lines[0], output
    assert "Traceback" not in output
    assert snapshot(around) == before


def batch_args(workspace: Path, expressions: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(workspace / "videos"),
        "-e",
        str(expressions),
        "-o",
        str(workspace / "out" / "preds"),
        "--model",
        str(checkpoint),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def meta_file(path: Path, video: str, exp_id: str, frames: list[str] | None = None) -> Path:
    """A MeViS-style ``meta_expressions.json`` with one expression."""
    entry = {"exp": "the red circle", "obj_id": [0], "anno_id": [0]}
    frames = frames if frames is not None else ["00000", "00001"]
    path.write_text(json.dumps({"videos": {video: {"expressions": {exp_id: entry}, "frames": frames}}}))
    return path


def expressions_file(workspace: Path, form: str, video: str, exp_id: str) -> Path:
    """An expressions file of `form` naming (video, exp_id)."""
    if form == "meta":
        return meta_file(workspace / "meta_expressions.json", video, exp_id)
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows([["video", "exp_id", "expression"], [video, exp_id, "the red circle"]])
        path = workspace / "expressions.csv"
        path.write_text(buffer.getvalue())
        return path
    data: object = (
        {video: {exp_id: "the red circle"}}
        if form == "dict"
        else [{"video": video, "exp_id": exp_id, "expression": "the red circle"}]
    )
    path = workspace / "expressions.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("form", ["meta", "dict", "list", "csv"])
@pytest.mark.parametrize("name", HOSTILE)
def test_batch_refuses_a_hostile_exp_id_in_every_file_form(
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_checkpoint: SyntheticCheckpoint,
    form: str,
    name: str,
) -> None:
    if form == "csv" and name == "":
        pytest.skip("an empty CSV exp_id means 'number them' (0, 1, ...)")
    path = expressions_file(workspace, form, VIDEO, name)
    refused(batch_args(workspace, path, tiny_checkpoint.path), workspace, capsys, file=path, name=name)


@pytest.mark.parametrize("name", JSON_HOSTILE)
def test_batch_refuses_a_hostile_video_name(
    workspace: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: SyntheticCheckpoint, name: str
) -> None:
    path = expressions_file(workspace, "meta", name, "0")
    refused(batch_args(workspace, path, tiny_checkpoint.path), workspace, capsys, file=path, name=name)


def test_batch_refuses_a_nul_in_an_exp_id(
    workspace: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: SyntheticCheckpoint
) -> None:
    name = "0\x00/../x"
    path = expressions_file(workspace, "dict", VIDEO, name)
    refused(batch_args(workspace, path, tiny_checkpoint.path), workspace, capsys, file=path, name=name)


@pytest.mark.parametrize("name", ["../../../escaped", "1/../../x"])
def test_batch_on_ray_refuses_before_any_cluster_starts(
    workspace: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: SyntheticCheckpoint, name: str
) -> None:
    path = expressions_file(workspace, "meta", VIDEO, name)
    args = batch_args(workspace, path, tiny_checkpoint.path, "--ray", "local", "--workers", "1")
    refused(args, workspace, capsys, file=path, name=name)


@pytest.mark.parametrize("name", ["../../../escaped_0", "/abs_0", "x/../../y"])
def test_a_keyframes_file_with_a_hostile_key_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: SyntheticCheckpoint, name: str
) -> None:
    expressions = expressions_file(workspace, "dict", VIDEO, "0")
    scores = workspace / "keyframes.json"
    scores.write_text(json.dumps({name: "00001"}))
    args = batch_args(workspace, expressions, tiny_checkpoint.path, "--keyframes", str(scores))
    refused(args, workspace, capsys, file=scores, name=name)


def test_a_keyframes_file_with_a_hostile_frame_is_refused(tmp_path: Path) -> None:
    scores = tmp_path / "keyframes.json"
    scores.write_text(json.dumps({"vid_0": "../00001"}))
    with pytest.raises(InputError, match=r"keyframes\.json: key 'vid_0': frame '\.\./00001'"):
        read_scores(scores)


@pytest.mark.parametrize("name", ["../../../escaped", "1/../../x", ".."])
def test_glus_keyframes_refuses_hostile_names(
    workspace: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: SyntheticCheckpoint, name: str
) -> None:
    path = expressions_file(workspace, "meta", VIDEO, name)
    refused(keyframes_args(workspace, tiny_checkpoint, path), workspace, capsys, file=path, name=name)


def keyframes_args(
    workspace: Path, checkpoint: SyntheticCheckpoint, expressions: Path, *extra: str
) -> list[str]:
    """`glus keyframes` over the workspace's videos with the `expressions` file, then `extra`."""
    out, model = str(workspace / "out" / "kf"), str(checkpoint.path)
    args = ["keyframes", str(workspace / "videos"), "-e", str(expressions), *extra]
    return [*args, "-o", out, "--model", model, "--device", "cpu", "--quiet"]


def ground_truth(workspace: Path, video: str, exp_id: str, frames: list[str] | None = None) -> Path:
    """A MeViS-layout ground-truth folder whose meta file names (video, exp_id) and `frames`."""
    gt = workspace / "gt"
    gt.mkdir()
    (gt / "mask_dict.json").write_text(json.dumps({"0": [None, None]}))
    return meta_file(gt / "meta_expressions.json", video, exp_id, frames)


@pytest.mark.parametrize(
    ("video", "exp_id", "frames", "name"),
    [
        (VIDEO, "../../../escaped", None, "../../../escaped"),
        ("../../videos", "0", None, "../../videos"),
        (VIDEO, "0", ["00000", "../../../../etc/passwd"], "../../../../etc/passwd"),
        (VIDEO, "0", ["00000", "/etc/passwd"], "/etc/passwd"),
    ],
)
def test_eval_refuses_hostile_names_in_the_ground_truth(
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    video: str,
    exp_id: str,
    frames: list[str] | None,
    name: str,
) -> None:
    meta = ground_truth(workspace, video, exp_id, frames)
    preds = workspace / "preds"
    (preds / VIDEO / "0").mkdir(parents=True)
    args = ["eval", str(preds), str(meta.parent), "-o", str(workspace / "scores"), "--quiet"]
    refused(args, workspace, capsys, file=meta, name=name)


def test_glus_keyframes_refuses_a_hostile_ground_truth(
    workspace: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: SyntheticCheckpoint
) -> None:
    expressions = expressions_file(workspace, "dict", VIDEO, "0")
    meta = ground_truth(workspace, VIDEO, "0", ["00000", "../../x"])
    args = keyframes_args(workspace, tiny_checkpoint, expressions, "--ground-truth", str(meta.parent))
    refused(args, workspace, capsys, file=meta, name="../../x")


def test_the_loaders_name_file_and_entry(tmp_path: Path) -> None:
    path = expressions_file(tmp_path, "meta", VIDEO, "1/../../x")
    with pytest.raises(InputError, match=r"video 'vid': exp_id '1/\.\./\.\./x' contains a path separator"):
        load_expressions(path)
    with pytest.raises(InputError, match=r"meta_expressions\.json: video 'vid': exp_id"):
        read_meta(path)


def test_the_ray_driver_refuses_a_task_that_did_not_come_from_the_loaders(tmp_path: Path) -> None:
    task = VideoTask("../../escaped", tmp_path, (Expression("0", "the red circle"),))
    with pytest.raises(InputError, match=r"'\.\./\.\./escaped' contains a path separator"):
        longest_first([task], tmp_path / "out")


def test_a_worker_refuses_a_hostile_task_before_writing(workspace: Path, tiny_model: GlusModel) -> None:
    around = workspace.parent
    before = snapshot(around)
    source = workspace / "videos" / VIDEO
    out = workspace / "videos"  # a root whose parent is writable: an escape would land in workspace
    for task in (
        VideoTask("../escaped", source, (Expression("0", "the red circle"),)),
        VideoTask(VIDEO, source, (Expression("../../escaped", "the red circle"),)),
    ):
        with pytest.raises(InputError, match="contains a path separator"):
            run_batch(tiny_model, [task], out, ["png"], SegmentationOptions())
    assert snapshot(around) == before
