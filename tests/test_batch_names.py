"""Forgiving, checked expressions files: names with or without the extension, headers in any case, every
name resolved before the model loads, a "did you mean" for unknown names, and `--skip-missing`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_glus

from glus_cli.batch import Expression, load_expressions, missing_videos, plan_tasks, resolve_video_name
from glus_cli.errors import InputError
from glus_cli.testing.videos import write_frame_folder, write_synthetic_video

pytest_plugins = ["tests.cli_fixtures"]


@pytest.fixture
def videos(tmp_path: Path) -> dict[str, Path]:
    """A video file `dog_walk.mp4` and a frame folder `cat_jump`, as `find_videos` names them."""
    write_synthetic_video(tmp_path / "dog_walk.mp4", 3, size=(32, 48))
    write_frame_folder(tmp_path / "cat_jump", 3, size=(32, 48))
    return {"dog_walk": tmp_path / "dog_walk.mp4", "cat_jump": tmp_path / "cat_jump"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dog_walk", "dog_walk"),
        ("dog_walk.mp4", "dog_walk"),
        ("dog_walk.MP4", "dog_walk"),
        ("dog_walk.avi", None),  # another file's name
        ("cat_jump", "cat_jump"),
        ("cat_jump.mp4", "cat_jump"),  # a list made from the videos names the folder so
        ("cat_jump.txt", None),
        ("dgo_walk", None),
    ],
)
def test_names_with_or_without_the_extension(
    videos: dict[str, Path], name: str, expected: str | None
) -> None:
    assert resolve_video_name(name, videos) == expected


def test_csv_headers_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text('\ufeffVideo, EXP_ID ,Expression\ndog_walk.mp4,7,"the dog, left"\n', encoding="utf-8")
    assert load_expressions(path) == {"dog_walk.mp4": [Expression("7", "the dog, left")]}


def test_plan_merges_two_spellings_and_names_outputs_by_the_video(videos: dict[str, Path]) -> None:
    listed = {"dog_walk.mp4": [Expression("0", "the dog")], "dog_walk": [Expression("1", "the leash")]}
    tasks = plan_tasks(videos, listed)
    assert [(task.name, task.source, [e.exp_id for e in task.expressions]) for task in tasks] == [
        ("dog_walk", videos["dog_walk"], ["0", "1"])
    ]
    with pytest.raises(InputError, match="exp_id '0'"):
        plan_tasks(videos, {"dog_walk.mp4": [Expression("0", "a")], "dog_walk": [Expression("0", "b")]})


def test_unknown_names_are_refused_with_the_closest_name(videos: dict[str, Path]) -> None:
    listed = {"dgo_walk.mp4": [Expression("0", "x")], "zebra": [Expression("0", "y")]}
    with pytest.raises(InputError) as refused:
        plan_tasks(videos, listed)
    message = str(refused.value)
    assert "2 videos" in message and "--skip-missing" in message
    assert "'dgo_walk.mp4' (did you mean 'dog_walk'?)" in message
    assert "'zebra'," not in message and message.count("did you mean") == 1
    assert missing_videos(videos, listed) == ["dgo_walk.mp4", "zebra"]


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with `dog_walk.mp4` and an expressions CSV naming it, and one video that is not there."""
    root = tmp_path / "videos"
    root.mkdir()
    write_synthetic_video(root / "dog_walk.mp4", 3, size=(32, 48))
    csv = tmp_path / "expressions.csv"
    csv.write_text("Video,Expression\ndog_walk.mp4,the dog\ndog_wlak,the cat\n", encoding="utf-8")
    return root, csv


@pytest.mark.usefixtures("cli_environment")
@pytest.mark.parametrize("command", ["batch", "keyframes"])
def test_an_unknown_name_is_refused_before_the_model(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    root, csv = dataset
    # The model is not even looked up: a Hub id with no cache and no network would fail with exit 4.
    code, output = run_glus(
        [command, str(root), "-e", str(csv), "-o", "out", "--model", "no/such-model"], capsys
    )
    assert code == InputError.exit_code, output
    assert "'dog_wlak' (did you mean 'dog_walk'?)" in output, output
    assert not Path("out").exists()


@pytest.mark.usefixtures("cli_environment")
def test_batch_skip_missing_runs_the_others_and_lists_them(
    dataset: tuple[Path, Path], cli_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, csv = dataset
    args = [
        "batch",
        str(root),
        "-e",
        str(csv),
        "-o",
        "out",
        "--model",
        str(cli_checkpoint),
        "--device",
        "cpu",
    ]
    code, output = run_glus([*args, "--skip-missing", "-q"], capsys)
    assert code == 0, output
    summary = json.loads(Path("out/summary.json").read_text())
    assert summary["missing_videos"] == ["dog_wlak"]
    assert summary["expressions_done"] == 1
    assert sorted(p.name for p in Path("out/dog_walk/0").glob("*.png")) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
