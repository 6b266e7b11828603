"""`glus batch`: expressions files, the submission layout, resume, crash safety, isolation, shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from glus_dataset import (
    BAD_VIDEO,
    EXPRESSIONS,
    GOOD_VIDEOS,
    NUM_FRAMES,
    Dataset,
    copy_tree,
    shared_dataset,
    shared_model,
    tree_bytes,
)
from typer.testing import CliRunner

import glus_cli.batch as batch_module
from glus_cli.batch import (
    BatchHooks,
    Expression,
    VideoTask,
    find_videos,
    load_expressions,
    parse_shard,
    plan_tasks,
    run_batch,
    select_shard,
)
from glus_cli.cli.app import app
from glus_cli.cli.runs import EXIT_VIDEOS_FAILED
from glus_cli.confidence import CONFIDENCE_NAME
from glus_cli.errors import InputError
from glus_cli.preview import PREVIEW_FILENAME
from glus_cli.protocol import SegmentationOptions
from glus_cli.resume import RECORD_NAME, is_complete
from glus_cli.testing.videos import write_synthetic_video


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return shared_dataset(tmp_path_factory)


def test_meta_expressions_json(tmp_path: Path) -> None:
    meta = {
        "videos": {
            "v1": {
                "expressions": {"0": {"exp": "a cat", "obj_id": [1]}, "3": {"exp": "a dog"}},
                "frames": [],
            },
            "v0": {"expressions": {"1": {"exp": "a bird"}}, "frames": ["00000"]},
        }
    }
    path = tmp_path / "meta_expressions.json"
    path.write_text(json.dumps(meta))
    assert load_expressions(path) == {
        "v1": [Expression("0", "a cat"), Expression("3", "a dog")],
        "v0": [Expression("1", "a bird")],
    }


@pytest.mark.parametrize(
    "document",
    [
        {"v": {"a": "the cat", "b": "the dog"}},
        [
            {"video": "v", "exp_id": "a", "expression": "the cat"},
            {"video": "v", "exp_id": "b", "expression": "the dog"},
        ],
    ],
)
def test_json_forms(tmp_path: Path, document: object) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(document))
    assert load_expressions(path) == {"v": [Expression("a", "the cat"), Expression("b", "the dog")]}


def test_json_list_of_texts_numbers_expressions(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"v": ["the cat", "the dog"]}))
    assert load_expressions(path) == {"v": [Expression("0", "the cat"), Expression("1", "the dog")]}


def test_csv_with_and_without_exp_id(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text('video,exp_id,expression\nv,7,"the cat, left"\nw,,the dog\nw,,a bird\n')
    assert load_expressions(path) == {
        "v": [Expression("7", "the cat, left")],
        "w": [Expression("0", "the dog"), Expression("1", "a bird")],
    }


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("e.csv", "video,text\nv,the cat\n"),
        ("e.json", '{"v": {"0": "a", "0": "b"}, "w": 3}'),
        ("e.json", "[1, 2]"),
        ("e.json", '{"v": ["  "]}'),
        ("e.json", "{}"),
        ("e.json", "{not json"),
    ],
)
def test_bad_expression_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError):
        load_expressions(path)


def test_find_videos_takes_frame_folders_and_video_files(tmp_path: Path) -> None:
    (tmp_path / "clip2").mkdir()
    (tmp_path / "clip2" / "00000.jpg").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    write_synthetic_video(tmp_path / "clip10.mp4", 2, size=(16, 16))
    (tmp_path / "notes.txt").write_text("")
    assert find_videos(tmp_path) == {"clip2": tmp_path / "clip2", "clip10": tmp_path / "clip10.mp4"}
    with pytest.raises(InputError):
        find_videos(tmp_path / "empty")


def test_plan_refuses_or_skips_missing_videos() -> None:
    videos = {"a": Path("a"), "unused": Path("u")}
    expressions = {"b": [Expression("0", "x")], "a": []}
    with pytest.raises(InputError, match="'b'"):
        plan_tasks(videos, expressions)
    tasks = plan_tasks(videos, expressions, skip_missing=True)
    assert [(task.name, task.source) for task in tasks] == [("a", Path("a"))]


@pytest.mark.parametrize("text", ["1", "2/2", "-1/2", "a/b", "0/0"])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_shard(text)


def test_shards_are_disjoint_and_cover_every_video() -> None:
    tasks = [VideoTask(f"v{i}", None, ()) for i in (3, 1, 10, 2, 7, 5, 4)]
    shards = [[task.name for task in select_shard(tasks, *parse_shard(f"{i}/3"))] for i in range(3)]
    names = [name for shard in shards for name in shard]
    assert sorted(names) == sorted(task.name for task in tasks)
    assert len(names) == len(set(names))
    assert shards[0] == ["v1", "v4", "v10"]


def test_shard_option_is_validated() -> None:
    result = CliRunner().invoke(app, ["batch", ".", "-e", "x.json", "--shard", "3/3"])
    assert isinstance(result.exception, InputError)
    assert "0 <= i < n" in str(result.exception)


def test_batch_writes_submission_layout_and_isolates_a_bad_video(dataset: Dataset) -> None:
    assert dataset.reference_exit_code == EXIT_VIDEOS_FAILED
    for video in GOOD_VIDEOS:
        for exp_id in range(len(EXPRESSIONS[video])):
            folder = dataset.reference / video / str(exp_id)
            assert is_complete(folder)
            assert sorted(p.name for p in folder.glob("*.png")) == [f"{i:05d}.png" for i in range(NUM_FRAMES)]
    assert not is_complete(dataset.reference / BAD_VIDEO / "0")
    summary = json.loads((dataset.reference / "summary.json").read_text())
    assert [failure["video"] for failure in summary["failures"]] == [BAD_VIDEO]
    assert summary["expressions_done"] == 3
    assert summary["expressions"] == 4


def test_resume_skips_complete_and_redoes_incomplete(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = copy_tree(dataset.reference, tmp_path / "out")
    (out / "vidA" / "1" / RECORD_NAME).unlink()
    (out / "vidA" / "1" / "00001.png").unlink()
    (out / "vidA" / "1" / "stale.png").write_bytes(b"left by an earlier run")
    untouched = (out / "vidB" / "0" / "00000.png").stat().st_mtime_ns
    calls: list[tuple[str, list[str]]] = []
    real = batch_module.segment_to_outputs

    def spy(model, video, jobs, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((video.name, [job.exp_id for job in jobs]))
        return real(model, video, jobs, *args, **kwargs)

    monkeypatch.setattr(batch_module, "segment_to_outputs", spy)
    tasks = [task for task in _tasks(dataset) if task.name != BAD_VIDEO]
    report = run_batch(shared_model(dataset.checkpoint), tasks, out, ["png"], SegmentationOptions())
    assert calls == [("vidA", ["1"])]
    assert report.skipped == ["vidA/0", "vidB/0"] and not report.failures
    assert (out / "vidB" / "0" / "00000.png").stat().st_mtime_ns == untouched
    good = lambda root: {k: v for k, v in tree_bytes(root).items() if not k.startswith(BAD_VIDEO)}  # noqa: E731
    assert good(out) == good(dataset.reference)


def test_interrupted_run_then_rerun_equals_uninterrupted(dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tasks = [task for task in _tasks(dataset) if task.name == "vidB"]
    seen = []

    def crash(*_args: object) -> None:
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    model = shared_model(dataset.checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_batch(model, tasks, out, ["png"], SegmentationOptions(), hooks=BatchHooks(on_result=crash))
    assert not is_complete(out / "vidB" / "0")
    report = run_batch(model, tasks, out, ["png"], SegmentationOptions())
    assert len(report.outcomes) == 1
    expected = {k: v for k, v in tree_bytes(dataset.reference).items() if k.startswith("vidB")}
    assert tree_bytes(out) == expected
    assert sorted(p.name for p in (out / "vidB" / "0").iterdir()) == [
        *(f"{i:05d}.png" for i in range(NUM_FRAMES)),
        CONFIDENCE_NAME,
        RECORD_NAME,
        PREVIEW_FILENAME,
    ]


def _tasks(dataset: Dataset) -> list[VideoTask]:
    return plan_tasks(find_videos(dataset.frames), load_expressions(dataset.meta))
