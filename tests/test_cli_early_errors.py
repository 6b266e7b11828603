"""Errors that name the option and come before any model or video work.

Each case gives one `error:` line with the right exit code. "Before the video" is shown by a video path
that does not exist (its error would come first otherwise); "before the model" by a `load_glus` that
fails the test when called.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glus_cli import files
from glus_cli.cli.runs import EXIT_VIDEOS_FAILED
from glus_cli.errors import InputError, NetworkError, OutputError, ResourceError
from glus_cli.model import glus as glus_module
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus
from tests.test_cli_errors import assert_one_error

pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.usefixtures("cli_environment")

FAST = ["--context-frames", "1", "--query-frames", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", 2, size=(40, 56), fps=5.0)


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the weights start to load."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(glus_module, "load_glus", refuse)


# --- Ranges and choices, worded as Click does ---


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--stride", "0", "Invalid value for '--stride': 0 is not in the range x>=1."),
        ("--max-frames", "-1", "Invalid value for '--max-frames': -1 is not in the range x>=1."),
        ("--keyframe", "-1", "Invalid value for '--keyframe': -1 is not in the range x>=0."),
        ("--context-frames", "0", "Invalid value for '--context-frames': 0 is not in the range x>=1."),
    ],
)
def test_range_errors_name_the_option(
    capsys: pytest.CaptureFixture[str], video: Path, option: str, value: str, expected: str
) -> None:
    code, output = run_glus(["segment", str(video), "the dog", option, value], capsys)
    line = assert_one_error(code, output, 2, option)
    assert line == f"error: {expected}"


def test_choice_errors_have_no_pydantic_prefix(capsys: pytest.CaptureFixture[str], video: Path) -> None:
    code, output = run_glus(["segment", str(video), "the dog", "--dtype", "fp64"], capsys)
    line = assert_one_error(code, output, 2, "--dtype", "'fp64' is not one of")
    assert "Value error" not in line
    assert line.startswith("error: Invalid value for '--dtype' / '--precision': 'fp64' is not one of 'auto'")


# --- Checked before the video is opened and before the model loads ---


def test_unknown_device_before_the_video(
    capsys: pytest.CaptureFixture[str], cli_checkpoint: Path, no_model_load: None
) -> None:
    args = ["segment", "missing.mp4", "the dog", "--model", str(cli_checkpoint), "--device", "tpu", "-q"]
    code, output = run_glus(args, capsys)
    assert_one_error(code, output, InputError.exit_code, "tpu")
    assert not Path("runs").exists()


def test_unavailable_device_before_the_video(
    capsys: pytest.CaptureFixture[str], cli_checkpoint: Path, no_model_load: None
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["segment", "missing.mp4", "the dog", "--model", str(cli_checkpoint), "--device", "cuda", "-q"]
    code, output = run_glus(args, capsys)
    assert_one_error(code, output, ResourceError.exit_code, "cuda")


def test_output_folder_that_is_a_file_before_the_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, cli_checkpoint: Path, no_model_load: None
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("precious")
    args = ["segment", str(video), "the dog", "-o", str(afile), "--model", str(cli_checkpoint), *FAST]
    code, output = run_glus(args, capsys)
    assert_one_error(code, output, OutputError.exit_code, "afile")
    assert afile.read_text() == "precious"


def test_the_input_is_checked_before_the_output_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_checkpoint: Path, no_model_load: None
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("precious")
    args = ["segment", "missing.mp4", "the dog", "-o", str(afile), "--model", str(cli_checkpoint), *FAST]
    code, output = run_glus(args, capsys)
    assert_one_error(code, output, InputError.exit_code, "missing.mp4", "does not exist")


def test_readme_line_with_no_video_and_no_network_says_it_does_not_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_model_load: None
) -> None:
    """README line 2 as a new user types it, with no video.mp4, offline and nothing cached: the input's
    error (exit 2), not the model's network error (exit 4)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = run_glus(["segment", "video.mp4", "the dog that jumps first"], capsys)
    line = assert_one_error(code, output, InputError.exit_code, "video.mp4", "does not exist")
    assert "Hub" not in line and not Path("runs").exists()


def test_missing_batch_input_before_the_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_model_load: None
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "expressions.csv").write_text("video,expression\nclip,the dog\n")
    for command in ("batch", "keyframes"):
        code, output = run_glus([command, "missing", "-e", "expressions.csv", "-q"], capsys)
        assert_one_error(code, output, InputError.exit_code, "missing")


def test_missing_keyframes_file_before_the_model(
    capsys: pytest.CaptureFixture[str], video: Path, cli_checkpoint: Path, no_model_load: None
) -> None:
    args = [
        "segment",
        str(video),
        "the dog",
        "--keyframes",
        "scores.json",
        "--model",
        str(cli_checkpoint),
        *FAST,
    ]
    code, output = run_glus(args, capsys)
    assert_one_error(code, output, InputError.exit_code, "scores.json")


def test_keyframe_outside_the_video_before_the_model(
    capsys: pytest.CaptureFixture[str], video: Path, cli_checkpoint: Path, no_model_load: None
) -> None:
    args = ["segment", str(video), "the dog", "--keyframe", "7", "--model", str(cli_checkpoint), *FAST]
    code, output = run_glus(args, capsys)
    assert_one_error(code, output, InputError.exit_code, "--keyframe 7")
    assert not Path("runs").exists(), "a refused run leaves no runs/ folder"


LONG_EXPRESSION = "the small brown dog " * 120


def test_prompt_too_long_before_the_model(
    capsys: pytest.CaptureFixture[str], video: Path, cli_checkpoint: Path, no_model_load: None
) -> None:
    code, output = run_glus(
        ["segment", str(video), LONG_EXPRESSION, "--model", str(cli_checkpoint), "-q", "--device", "cpu"],
        capsys,
    )
    line = assert_one_error(code, output, InputError.exit_code, "tokens", "2,048")
    assert "the small brown dog" in line and len(line) < 400
    assert not Path("runs").exists()


@pytest.mark.parametrize("command", ["batch", "batch --ray local", "keyframes"])
def test_prompt_too_long_fails_that_expression_of_a_batch(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    video: Path,
    cli_checkpoint: Path,
    no_model_load: None,
    command: str,
) -> None:
    """`segment`'s line, as the failure of that expression (exit 8); with nothing else to run, the model
    is not loaded (with --ray: the driver refuses it, and no cluster is started)."""
    if "--ray" in command:
        pytest.importorskip("ray")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(video.read_bytes())
    (tmp_path / "expressions.csv").write_text(f"video,expression\nclip,{LONG_EXPRESSION}\n")
    source = [str(tmp_path / "videos"), "-e", str(tmp_path / "expressions.csv"), "-o", "out"]
    name, *ray = command.split()
    args = [name, *source, *ray, "--model", str(cli_checkpoint), "-q", "--device", "cpu"]
    code, output = run_glus(args, capsys)
    assert code == EXIT_VIDEOS_FAILED, output
    (line,) = [line for line in output.splitlines() if line.startswith("failed:")]
    assert line.startswith('failed: clip/0: the expression "the small brown dog')
    assert "tokens, more than the LLM's limit of 2,048" in line and "Traceback" not in output


def test_the_ray_drivers_length_check_needs_no_torch(tmp_path: Path, cli_checkpoint: Path) -> None:
    """The check `glus batch --ray` runs in the driver, in a fresh interpreter: the too-long expression
    is refused, the other kept, and torch was never imported."""
    script = f"""
import sys
from pathlib import Path
from glus_cli.batch import VideoTask
from glus_cli.cli.preamble import refuse_long_expressions, resolved_model
from glus_cli.model_spec import ModelSpec
from glus_cli.protocol import SegmentationOptions
from glus_cli.runner import Expression
task = VideoTask("clip", Path("clip.mp4"), (Expression("0", {LONG_EXPRESSION!r}), Expression("1", "the dog")))
resolved = resolved_model(ModelSpec({str(cli_checkpoint)!r}), on_ray=True)
kept, refused = refuse_long_expressions(resolved, [task], SegmentationOptions())
print([exp.exp_id for exp in kept[0].expressions], [failure.label for failure in refused])
print("torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["['1'] ['clip/0']", "False"], result.stderr


def test_offline_and_not_cached_leaves_no_runs_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, video: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = run_glus(["segment", str(video), "the dog", "--model", "Org/NotCached", "-q"], capsys)
    assert_one_error(code, output, NetworkError.exit_code, "Org/NotCached")
    assert not Path("runs").exists()


def test_failed_load_after_the_checks_leaves_no_runs_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, video: Path, cli_checkpoint: Path
) -> None:
    from glus_cli.errors import CheckpointError

    def broken(*args: object, **kwargs: object) -> None:
        raise CheckpointError("weight shard 2 is corrupt")

    monkeypatch.setattr(glus_module, "load_glus", broken)
    code, output = run_glus(["segment", str(video), "the dog", "--model", str(cli_checkpoint), *FAST], capsys)
    assert_one_error(code, output, CheckpointError.exit_code, "corrupt")
    assert not Path("runs").exists()


# --- Output folders that cannot be written ---


def test_unwritable_output_folder_before_the_model(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    video: Path,
    cli_checkpoint: Path,
    no_model_load: None,
) -> None:
    out = tmp_path / "readonly"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        files.os,
        "access",
        lambda path, mode: not (Path(path) == out and mode & os.W_OK) and real_access(path, mode),
    )
    code, output = run_glus(
        ["segment", str(video), "the dog", "-o", str(out), "--model", str(cli_checkpoint), *FAST], capsys
    )
    assert_one_error(code, output, OutputError.exit_code, "permission denied", "readonly")
    assert list(out.iterdir()) == []


def test_expression_folder_on_a_read_only_file_system(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    video: Path,
    cli_checkpoint: Path,
) -> None:
    """The per-expression folder that cannot be created is an exit-5 line, not an internal error (70)."""
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        if self.name.startswith("00-"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    out = tmp_path / "out"
    code, output = run_glus(
        ["segment", str(video), "the dog", "-o", str(out), "--model", str(cli_checkpoint), *FAST], capsys
    )
    assert_one_error(code, output, OutputError.exit_code, "read-only", "00-the-dog")


# --- Messages ---


@pytest.mark.parametrize(
    ("expression", "expected"),
    [(".", 'error: the expression "." has no words'), ("   ", 'error: the expression " " has no words')],
)
def test_empty_expression_is_quoted_as_typed(
    capsys: pytest.CaptureFixture[str], video: Path, expression: str, expected: str
) -> None:
    """Quoted as typed (white space shown as one space on the one-line error), lower-case start."""
    code, output = run_glus(["segment", str(video), expression], capsys)
    line = assert_one_error(code, output, InputError.exit_code)
    assert line.startswith(expected), line


def test_batch_help_shows_bracketed_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, output = run_glus(["batch", "--help"], capsys)
    assert code == 0, output
    assert "{video: [text]}" in output, output
