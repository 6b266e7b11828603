"""`glus segment` end to end: the real entry point, synthetic videos and the tiny official-layout checkpoint.

Each run costs seconds on a CPU, so a few module-scoped runs are shared by the tests that read their
outputs: every format on a video at an odd fps with two expressions; a frame folder of odd size with
--stride, --max-frames, --keyframe and --quiet; a glob and a one-frame video into the default runs/ folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from glus_cli import __version__
from glus_cli.cli.app import main
from glus_cli.fidelity import compare_masks, fidelity_bound
from glus_cli.testing.checkpoint import build_checkpoint
from glus_cli.testing.videos import write_frame_folder, write_synthetic_video

pytest_plugins = ["tests.precision_probe"]

FAST = ["--context-frames", "1", "--query-frames", "1", "--device", "cpu"]
VIDEO_SIZE = (40, 56)
VIDEO_FPS = 7.5
FOLDER_SIZE = (41, 57)
EXPRESSIONS = ("the red circle", "the green square")


@dataclass(frozen=True)
class Run:
    """One `glus` invocation: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def run_glus(*args: str) -> Run:
    """Run `glus ARGS` through `main()`, the console-script entry point, capturing both streams."""
    stdout, stderr = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["glus", *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else 1
            else:
                code = 0
    finally:
        sys.argv = old_argv
    return Run(code, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module", autouse=True)
def _environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.delenv("GLUS_DEBUG", raising=False)
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("GLUS_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights")))
    patch.setenv("COLUMNS", "200")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("ckpt")).path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", 3, VIDEO_SIZE, fps=VIDEO_FPS)


@pytest.fixture(scope="module")
def all_formats(
    tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, video: Path, default_plan: str
) -> tuple[Run, Path]:
    """Every format, two expressions, a video at 7.5 fps, with the default plan of a CPU without native
    bf16 (float32), then of one with it (bfloat16)."""
    out = tmp_path_factory.mktemp("all") / "out"
    formats = ["-f", "png", "-f", "palette,rle", "-f", "overlay"]
    run = run_glus(
        "segment", str(video), *EXPRESSIONS, "--model", str(checkpoint), "-o", str(out), *formats, *FAST
    )
    assert run.code == 0, run.out + run.err
    return run, out


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> tuple[Run, Path]:
    """A 5-frame folder of odd size, every 2nd frame, at most 2, key frame 1, quiet."""
    root = tmp_path_factory.mktemp("folder")
    frames = write_frame_folder(root / "frames", 5, FOLDER_SIZE, ext="png")
    out = root / "out"
    options = ["--stride", "2", "--max-frames", "2", "--keyframe", "1", "--quiet", "-f", "png", "-f", "rle"]
    run = run_glus(
        "segment", str(frames), "the red circle", "--model", str(checkpoint), "-o", str(out), *options, *FAST
    )
    assert run.code == 0, run.out + run.err
    return run, out


@pytest.fixture(scope="module")
def default_dir_runs(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> tuple[Path, Run, Run]:
    """A 1-frame glob, then a 1-frame video, both without --output-dir, from the same working directory."""
    cwd = tmp_path_factory.mktemp("cwd")
    write_frame_folder(cwd / "frames", 1, (37, 45), ext="jpg")
    (cwd / "frames" / "notes.txt").write_text("not a frame")
    one_frame = write_synthetic_video(cwd / "one.mp4", 1, VIDEO_SIZE, fps=VIDEO_FPS)
    with working_directory(cwd):
        first = run_glus("segment", "frames/*.jpg", "the red circle", "--model", str(checkpoint), "-q", *FAST)
        second = run_glus(
            "segment", str(one_frame), "the red circle", "--model", str(checkpoint), "-q", *FAST
        )
    return cwd, first, second


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def expression_dirs(out: Path) -> list[Path]:
    return sorted(path for path in out.iterdir() if path.is_dir())


# --- Every format ---


def test_png_masks_are_0_or_255(all_formats: tuple[Run, Path]) -> None:
    _, out = all_formats
    for folder in expression_dirs(out):
        names = sorted(path.name for path in folder.glob("*.png"))
        assert names == ["00000.png", "00001.png", "00002.png"]
        for name in names:
            mask = read_png(folder / name)
            assert mask.shape == VIDEO_SIZE and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}


def test_rle_decodes_to_the_pngs(all_formats: tuple[Run, Path]) -> None:
    _, out = all_formats
    for folder in expression_dirs(out):
        rles = json.loads((folder / "masks_rle.json").read_text())
        assert list(rles) == ["00000", "00001", "00002"]
        for name, rle in rles.items():
            assert rle["size"] == list(VIDEO_SIZE)
            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
            np.testing.assert_array_equal(decoded.astype(bool), read_png(folder / f"{name}.png") > 0)


def test_palette_pngs_are_indexed_0_1(all_formats: tuple[Run, Path]) -> None:
    _, out = all_formats
    for folder in expression_dirs(out):
        for png in sorted(folder.glob("*.png")):
            image = Image.open(folder / "palette" / png.name)
            assert image.mode == "P"
            assert image.getpalette()[:6] == [0, 0, 0, 128, 0, 0]  # DAVIS: 0 black, 1 dark red
            indices = np.asarray(image)
            assert set(np.unique(indices)) <= {0, 1}
            np.testing.assert_array_equal(indices == 1, read_png(png) > 0)


def test_overlay_has_the_source_frame_count_and_fps(all_formats: tuple[Run, Path], video: Path) -> None:
    _, out = all_formats
    for folder in expression_dirs(out):
        capture = cv2.VideoCapture(str(folder / "overlay.mp4"))
        try:
            assert capture.isOpened()
            fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
            assert fourcc == "h264"  # what browsers play
            assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(VIDEO_FPS, abs=1e-3)
            frames = 0
            while capture.read()[0]:
                frames += 1
            assert frames == 3
            assert int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == VIDEO_SIZE[0]
        finally:
            capture.release()


def test_the_record_names_the_overlay_codec(
    all_formats: tuple[Run, Path], folder_run: tuple[Run, Path]
) -> None:
    _, out = all_formats
    h264 = {"file": "overlay.mp4", "codec": "h264", "container": "mp4"}
    for folder in expression_dirs(out):
        assert json.loads((folder / "expression.json").read_text())["overlay"] == h264
    summary = json.loads((out / "summary.json").read_text())
    assert [expression["overlay"] for expression in summary["expressions"]] == [h264, h264]
    _, no_overlay = folder_run
    (folder,) = expression_dirs(no_overlay)
    assert json.loads((folder / "expression.json").read_text())["overlay"] is None


@pytest.mark.usefixtures("default_plan")  # all_formats, looked up by name, runs for each default plan
@pytest.mark.parametrize("run", ["all_formats", "folder_run"])
def test_every_expression_has_a_preview(request: pytest.FixtureRequest, run: str) -> None:
    """Whatever the formats: a contact sheet of 6 tiles at most, 3 a row, 320 pixels wide each."""
    _, out = request.getfixturevalue(run)
    height, width = VIDEO_SIZE if run == "all_formats" else FOLDER_SIZE
    tiles = 3 if run == "all_formats" else 2  # every frame of a short video
    expected = (tiles * 320, round(320 * height / width) + 20 + 64)
    for folder in expression_dirs(out):
        with Image.open(folder / "preview.jpg") as preview:
            assert preview.format == "JPEG"
            assert preview.size == expected
        record_time = (folder / "expression.json").stat().st_mtime_ns
        assert (folder / "preview.jpg").stat().st_mtime_ns <= record_time  # the record is written last


def test_no_temporaries_are_left(all_formats: tuple[Run, Path]) -> None:
    _, out = all_formats
    assert [path for path in out.rglob("*") if ".tmp" in path.name or path.name.startswith(".")] == []


# --- Several expressions, summary.json ---


def test_each_expression_has_its_folder_and_record(all_formats: tuple[Run, Path]) -> None:
    _, out = all_formats
    assert [path.name for path in expression_dirs(out)] == ["00-the-red-circle", "01-the-green-square"]
    for index, folder in enumerate(expression_dirs(out)):
        record = json.loads((folder / "expression.json").read_text())
        assert record["text"] == EXPRESSIONS[index]
        assert record["num_frames"] == 3
        assert Path(record["output_dir"]) == folder


def test_masks_differ_between_expressions(all_formats: tuple[Run, Path]) -> None:
    _, out = all_formats
    first, second = expression_dirs(out)
    stacks = [
        np.stack([read_png(path) for path in sorted(folder.glob("*.png"))]) for folder in (first, second)
    ]
    assert not np.array_equal(*stacks)


def test_summary(all_formats: tuple[Run, Path], video: Path, checkpoint: Path) -> None:
    run, out = all_formats
    summary = json.loads((out / "summary.json").read_text())
    assert summary["glus_cli_version"] == __version__
    assert summary["command"] == "segment"
    assert summary["source"] == str(video)
    assert summary["video"]["frames"] == 3
    assert summary["video"]["fps"] == pytest.approx(VIDEO_FPS)
    assert summary["video"]["frame_size"] == list(VIDEO_SIZE)
    assert [e["text"] for e in summary["expressions"]] == list(EXPRESSIONS)
    assert summary["model"]["source"] == str(checkpoint)
    assert summary["model"]["device"] == "cpu"
    options = summary["options"]
    assert options["num_context_frames"] == 1 and options["num_query_frames"] == 1
    assert options["formats"] == ["png", "palette", "rle", "overlay"]
    assert options["keyframe"] is None
    assert options["schedule"] == "fast" and options["llm_batch_size"] is None
    assert set(summary["timings_seconds"]) >= {"load_model", "segment"}
    assert summary["memory"]["peak_rss_mib"] > 0
    # Without --quiet: the progress bars (stderr) and the summary table (stdout).
    assert "3/3" in run.err
    assert "the green square" in run.out and f"wrote {out}" in run.out.replace("\n", "")


# --- Frame folders, --stride/--max-frames, --keyframe, --quiet ---


def test_stride_and_max_frames_keep_the_original_frame_names(folder_run: tuple[Run, Path]) -> None:
    _, out = folder_run
    (folder,) = expression_dirs(out)
    assert sorted(path.name for path in folder.glob("*.png")) == ["00000.png", "00002.png"]
    assert list(json.loads((folder / "masks_rle.json").read_text())) == ["00000", "00002"]
    for png in folder.glob("*.png"):
        assert read_png(png).shape == FOLDER_SIZE


def test_keyframe_and_subsampling_are_recorded(folder_run: tuple[Run, Path]) -> None:
    _, out = folder_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["video"]["frames"] == 2
    assert summary["options"]["stride"] == 2 and summary["options"]["max_frames"] == 2
    assert summary["options"]["keyframe"] == 1
    assert summary["expressions"][0]["keyframe"] == 1


def test_quiet_prints_no_progress(folder_run: tuple[Run, Path]) -> None:
    run, out = folder_run
    assert run.err.strip() == "", run.err
    assert "━" not in run.out and "frames w/o" not in run.out
    assert run.out.strip().replace("\n", "") == f"wrote {out}"


# --- Globs, one-frame videos, the default runs/ folder ---


def test_glob_into_the_default_runs_folder(default_dir_runs: tuple[Path, Run, Run]) -> None:
    cwd, first, _ = default_dir_runs
    assert first.code == 0, first.out + first.err
    folder = cwd / "runs" / "0001" / "00-the-red-circle"
    assert [path.name for path in folder.glob("*.png")] == ["00000.png"]
    assert read_png(folder / "00000.png").shape == (37, 45)


def test_one_frame_video_gets_the_next_run_number(default_dir_runs: tuple[Path, Run, Run]) -> None:
    cwd, _, second = default_dir_runs
    assert second.code == 0, second.out + second.err
    assert sorted(path.name for path in (cwd / "runs").iterdir()) == ["0001", "0002"]
    summary = json.loads((cwd / "runs" / "0002" / "summary.json").read_text())
    assert summary["video"]["frames"] == 1
    assert (cwd / "runs" / "0002" / "00-the-red-circle" / "00000.png").is_file()


def test_keyframes_file_anchors_each_expression(tmp_path: Path, checkpoint: Path) -> None:
    """`--keyframes FILE` maps each expression (ids 0, 1, ... in argument order) to its key frame by name."""
    frames = write_frame_folder(tmp_path / "clip", 3, size=FOLDER_SIZE, ext="png")
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"clip_0": "00001", "clip_1": 2}), encoding="utf-8")
    out = tmp_path / "out"

    run = run_glus(
        "segment",
        str(frames),
        *EXPRESSIONS,
        "--model",
        str(checkpoint),
        *FAST,
        "--keyframes",
        str(scores),
        "-o",
        str(out),
        "-q",
    )

    assert run.code == 0, run.err
    records = [json.loads((folder / "expression.json").read_text()) for folder in expression_dirs(out)]
    assert [record["keyframe"] for record in records] == [1, 2]
    assert all(
        sorted(p.name for p in folder.glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
        for folder in expression_dirs(out)
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["keyframes_file"] == str(scores)


def test_keyframe_and_keyframes_are_exclusive(tmp_path: Path, checkpoint: Path) -> None:
    frames = write_frame_folder(tmp_path / "clip", 2, size=FOLDER_SIZE, ext="png")
    scores = tmp_path / "scores.json"
    scores.write_text("{}", encoding="utf-8")

    run = run_glus(
        "segment",
        str(frames),
        "the circle",
        "--model",
        str(checkpoint),
        "--keyframe",
        "1",
        "--keyframes",
        str(scores),
    )

    assert run.code == 2
    assert "either --keyframe or --keyframes" in run.err


# --- --schedule ---


@pytest.mark.parametrize("schedule", ["reference", "fast-exact"])
def test_schedules_agree_with_the_default(
    tmp_path: Path,
    checkpoint: Path,
    video: Path,
    all_formats: tuple[Run, Path],
    default_plan: str,
    schedule: str,
) -> None:
    """`reference` and `fast-exact` write what the default `fast` run wrote, within the fidelity contract
    of the default plan's dtype (`glus_cli.fidelity`): the same [SEG] decisions, masks to its IoU."""
    _, fast_out = all_formats
    out = tmp_path / "out"
    run = run_glus(
        "segment", str(video), *EXPRESSIONS, "--model", str(checkpoint), "-o", str(out), "-q", "-f", "png",
        "--schedule", schedule, "--llm-batch-size", "2", *FAST,
    )  # fmt: skip

    assert run.code == 0, run.err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["options"]["schedule"], summary["options"]["llm_batch_size"]) == (schedule, 2)
    assert summary["model"]["dtype"] == default_plan
    bound = fidelity_bound(default_plan)
    for ours, fast in zip(expression_dirs(out), expression_dirs(fast_out), strict=True):
        pngs = sorted(path.name for path in ours.glob("*.png"))
        assert pngs == sorted(path.name for path in fast.glob("*.png")) and len(pngs) == 3
        decisions = [
            json.loads((folder / "expression.json").read_text())["frames_without_seg"]
            for folder in (ours, fast)
        ]
        agreement = compare_masks(
            [read_png(ours / name) for name in pngs],
            [read_png(fast / name) for name in pngs],
            same_decisions=decisions[0] == decisions[1],
        )
        assert bound.holds(agreement), agreement


def test_unknown_schedule_is_one_line(checkpoint: Path, video: Path) -> None:
    run = run_glus("segment", str(video), "the dog", "--model", str(checkpoint), "--schedule", "quick")
    assert run.code == 2
    assert "quick" in run.err and "Traceback" not in run.err
