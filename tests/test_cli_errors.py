"""`glus segment` on bad input: one `error:` line naming the problem, a non-zero exit, never a traceback.

The tests call `glus_cli.cli.app.main`, the console-script entry point users run, so the error edge is the
real one. Outputs must stay atomic: an interrupted or failing run leaves no temporary and no file under a
final name that is not complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glus_cli import files, outputs, pipeline, resume
from glus_cli.cli.app import EXIT_INTERNAL, EXIT_INTERRUPTED, main
from glus_cli.errors import CheckpointError, InputError, NetworkError, OutputError
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus

FAST = ["--context-frames", "1", "--query-frames", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny official-layout GLUS checkpoint folder (its CLIP tower beside it)."""
    return build_checkpoint(tmp_path_factory.mktemp("ckpt")).path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", 2, size=(40, 56), fps=7.5)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GLUS_DEBUG", raising=False)
    monkeypatch.setenv("GLUS_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)


def assert_one_error(
    code: int, output: str, expected_code: int, *needles: str, prefix: str = "error:"
) -> str:
    """Exactly one line starts with `prefix`, it names every needle, no traceback; return the line."""
    assert code == expected_code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith(("error:", "internal error:"))]
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith(prefix), output
    for needle in needles:
        assert needle.lower() in line.lower(), output
    return line


def leftovers(folder: Path) -> list[Path]:
    """Temporaries (hidden `.name.xxxx.tmp` files) anywhere under `folder`."""
    return [path for path in folder.rglob("*") if ".tmp" in path.name]


# --- Sources ---


def test_missing_file(capsys: pytest.CaptureFixture[str], checkpoint: Path) -> None:
    code, output = run_glus(["segment", "nowhere.mp4", "the dog", "--model", str(checkpoint)], capsys)
    assert_one_error(code, output, InputError.exit_code, "nowhere.mp4", "does not exist")


def test_unreadable_video(capsys: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    code, output = run_glus(["segment", str(fake), "the dog", "--model", str(checkpoint)], capsys)
    assert_one_error(code, output, InputError.exit_code, "notes.mp4")


def test_video_with_no_frames(capsys: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path) -> None:
    empty = write_synthetic_video(tmp_path / "empty.mp4", 0, size=(40, 56))
    code, output = run_glus(["segment", str(empty), "the dog", "--model", str(checkpoint)], capsys)
    assert_one_error(code, output, InputError.exit_code, "empty.mp4")


def test_truncated_video(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path
) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[:200])
    code, output = run_glus(["segment", str(truncated), "the dog", "--model", str(checkpoint)], capsys)
    assert_one_error(code, output, InputError.exit_code, "truncated.mp4")


def test_folder_with_no_images(capsys: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "readme.txt").write_text("no frames here")
    code, output = run_glus(["segment", str(folder), "the dog", "--model", str(checkpoint)], capsys)
    assert_one_error(code, output, InputError.exit_code, "frames", "no images")


def test_glob_matching_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path) -> None:
    code, output = run_glus(
        ["segment", str(tmp_path / "*.png"), "the dog", "--model", str(checkpoint)], capsys
    )
    assert_one_error(code, output, InputError.exit_code, "*.png")


# --- Expressions and options ---


@pytest.mark.parametrize("expression", ["", ".", "   "])
def test_empty_expression(
    capsys: pytest.CaptureFixture[str], video: Path, checkpoint: Path, expression: str
) -> None:
    code, output = run_glus(["segment", str(video), expression, "--model", str(checkpoint)], capsys)
    assert_one_error(code, output, InputError.exit_code, "expression")
    assert not Path("runs").exists(), "nothing may be created before the input is checked"


def test_unknown_format(capsys: pytest.CaptureFixture[str], video: Path, checkpoint: Path) -> None:
    code, output = run_glus(
        ["segment", str(video), "the dog", "-f", "gif", "--model", str(checkpoint)], capsys
    )
    assert_one_error(code, output, InputError.exit_code, "gif")


def test_keyframe_outside_the_video(
    capsys: pytest.CaptureFixture[str], video: Path, checkpoint: Path
) -> None:
    code, output = run_glus(
        ["segment", str(video), "the dog", "--keyframe", "5", "--model", str(checkpoint)], capsys
    )
    assert_one_error(code, output, InputError.exit_code, "--keyframe 5")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], video: Path) -> None:
    code, output = run_glus(["segment", str(video)], capsys)
    assert_one_error(code, output, 2, "missing", "expressions")
    code, output = run_glus(["segment", str(video), "the dog", "--bogus"], capsys)
    assert_one_error(code, output, 2, "--bogus")


# --- Checkpoints and the network ---


def _copy_checkpoint(checkpoint: Path, target: Path) -> Path:
    """A copy of `checkpoint` whose weight shards are links (cheap), so files can be changed or removed."""
    target.mkdir()
    for item in checkpoint.iterdir():
        if item.name.endswith(".bin"):
            (target / item.name).symlink_to(item)
        else:
            shutil.copy2(item, target / item.name)
    return target


def test_checkpoint_of_another_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path
) -> None:
    other = _copy_checkpoint(checkpoint, tmp_path / "bert")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(
        json.dumps({"model_type": "bert", "hidden_size": config["hidden_size"]})
    )
    code, output = run_glus(["segment", str(video), "the dog", "--model", str(other), *FAST], capsys)
    assert_one_error(code, output, CheckpointError.exit_code, "bert")


def test_checkpoint_without_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path
) -> None:
    folder = tmp_path / "some-folder"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    code, output = run_glus(["segment", str(video), "the dog", "--model", str(folder), *FAST], capsys)
    assert_one_error(code, output, CheckpointError.exit_code, "some-folder", "config.json")


def test_missing_tokenizer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path
) -> None:
    folder = _copy_checkpoint(checkpoint, tmp_path / "no-tokenizer")
    (folder / "tokenizer.model").unlink()
    code, output = run_glus(["segment", str(video), "the dog", "--model", str(folder), *FAST], capsys)
    assert_one_error(code, output, CheckpointError.exit_code, "tokenizer.model")


def test_offline_and_not_cached(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, video: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = run_glus(["segment", str(video), "the dog", "--model", "Org/NotCached", *FAST], capsys)
    assert_one_error(code, output, NetworkError.exit_code, "Org/NotCached", "offline")


def test_cuda_on_a_machine_without_it(
    capsys: pytest.CaptureFixture[str], video: Path, checkpoint: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["segment", str(video), "the dog", "--model", str(checkpoint), "--quiet", "--device", "cuda"]
    code, output = run_glus(args, capsys)
    assert code != 0
    assert_one_error(code, output, code, "cuda")


# --- Outputs ---


def test_output_folder_not_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, output = run_glus(
        ["segment", str(video), "the dog", "-o", str(out), "--model", str(checkpoint)], capsys
    )
    assert_one_error(code, output, OutputError.exit_code, "out", "not empty")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def test_output_folder_is_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path
) -> None:
    out = tmp_path / "out.txt"
    out.write_text("precious")
    code, output = run_glus(
        ["segment", str(video), "the dog", "-o", str(out), "--model", str(checkpoint)], capsys
    )
    assert_one_error(code, output, OutputError.exit_code, "out.txt")
    assert out.read_text() == "precious"


@pytest.mark.parametrize("command", ["segment", "batch", "keyframes"])
def test_output_folder_below_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path, checkpoint: Path, command: str
) -> None:
    """`-o afile/sub` where `afile` is a plain file: the same clean error line from every command."""
    afile = tmp_path / "afile"
    afile.write_text("precious")
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(video, videos / "clip.mp4")
    expressions = tmp_path / "expressions.json"
    expressions.write_text(json.dumps({"clip": ["the dog"]}))
    source = [str(video), "the dog"] if command == "segment" else [str(videos), "-e", str(expressions)]
    code, output = run_glus(
        [command, *source, "-o", str(afile / "sub"), "--model", str(checkpoint), *FAST], capsys
    )
    assert_one_error(code, output, OutputError.exit_code, "afile", "is a file")
    assert afile.read_text() == "precious"


def test_disk_full(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    video: Path,
    checkpoint: Path,
) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "out"
    monkeypatch.setattr(files.os, "write", full)
    code, output = run_glus(
        ["segment", str(video), "the dog", "-o", str(out), "--model", str(checkpoint), *FAST], capsys
    )
    monkeypatch.undo()
    assert_one_error(code, output, OutputError.exit_code, "space")
    assert out.is_dir()
    assert leftovers(out) == []
    assert [p for p in out.rglob("*") if p.is_file()] == [], "no file may appear under a final name"


def test_interrupted_run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    video: Path,
    checkpoint: Path,
) -> None:
    real = pipeline.segment_video

    def interrupted(*args: object, **kwargs: object):
        for count, result in enumerate(real(*args, **kwargs)):
            if count == 1:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(pipeline, "segment_video", interrupted)
    out = tmp_path / "out"
    args = ["segment", str(video), "the dog", "-o", str(out), "-f", "png", "-f", "rle", "-f", "overlay"]
    code, output = run_glus([*args, "--model", str(checkpoint), *FAST], capsys)
    assert_one_error(code, output, EXIT_INTERRUPTED, "interrupted")
    assert leftovers(out) == []
    expression_dir = out / "00-the-dog"
    assert not (expression_dir / resume.RECORD_NAME).exists()
    assert not (expression_dir / outputs.RLE_FILENAME).exists()
    assert not (expression_dir / outputs.OVERLAY_FILENAME).exists()
    assert not (out / "summary.json").exists()
    for png in expression_dir.glob("*.png"):  # masks finished before the interrupt are whole
        assert np.asarray(Image.open(png)).shape == (40, 56)


def test_internal_error_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    video: Path,
    checkpoint: Path,
) -> None:
    def broken(image: object) -> bytes:
        raise RuntimeError("the PNG encoder\nexploded")

    monkeypatch.setattr(outputs, "_png_bytes", broken)
    args = ["segment", str(video), "the dog", "-o", str(tmp_path / "out"), "--model", str(checkpoint), *FAST]
    code, output = run_glus(args, capsys)
    line = assert_one_error(code, output, EXIT_INTERNAL, "RuntimeError", "exploded", prefix="internal error:")
    assert "--debug" in line
    assert leftovers(tmp_path / "out") == []


def test_no_native_decoder_chatter(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path
) -> None:
    """OpenCV/FFmpeg warnings on file descriptor 2 would precede the error line: they are silenced."""
    fake = tmp_path / "junk.mp4"
    fake.write_bytes(b"\0junk" * 40)
    capfd.readouterr()
    old_argv = sys.argv
    sys.argv = ["glus", "segment", str(fake), "the dog", "--model", str(checkpoint)]
    try:
        with pytest.raises(SystemExit):
            main()
    finally:
        sys.argv = old_argv
    captured = capfd.readouterr()
    assert [line for line in captured.err.splitlines() if line.strip()] == [
        f"error: cannot decode video {fake}: the file is corrupt or in a format OpenCV cannot read"
    ]


def test_failed_model_load_leaves_no_empty_run_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, video: Path
) -> None:
    code, output = run_glus(["segment", str(video), "the dog", "--model", "Org/NotCached", "-q"], capsys)
    assert_one_error(code, output, NetworkError.exit_code, "Org/NotCached")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
