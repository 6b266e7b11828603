"""Host work on background threads (`SegmentationOptions.host_threads`): same bits, safe outputs, clean stops.

With the threads on, the next frames are decoded and preprocessed ahead (`glus_cli.frame_inputs`) and
masks are written by a writer thread (`glus_cli.runner`). Every schedule must give the same masks, SAM2
scores and files with the threads on and off; the writer must keep each expression's files in order
with `expression.json` last, and its errors must reach the caller as the same `GlusError`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from glus_cli import files as file_writes
from glus_cli import outputs
from glus_cli.confidence import CONFIDENCE_NAME
from glus_cli.errors import InputError, OutputError
from glus_cli.model.glus import GlusModel
from glus_cli.pipeline import segment_video
from glus_cli.protocol import ArraySource, FrameResult, SegmentationOptions
from glus_cli.resume import RECORD_NAME, is_complete
from glus_cli.runner import Expression, segment_to_outputs
from glus_cli.testing.videos import write_frame_folder
from glus_cli.video import open_video
from tests.fixtures import EXPRESSION, OTHER_EXPRESSION, file_digests, synthetic_video

pytest_plugins = ["tests.fixtures"]

JOBS = (Expression("0", EXPRESSION), Expression("1", OTHER_EXPRESSION, keyframe=1))
"""Two expressions, the second with key frame 1 (a forward and a backward pass)."""
FORMATS = ("png", "palette", "rle")
SCHEDULE_VARIANTS = {
    "reference": SegmentationOptions(schedule="reference"),
    "fast-exact": SegmentationOptions(schedule="fast-exact"),
    "fast-batched": SegmentationOptions(schedule="fast", llm_batch_size=2),
}


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_frame_folder(tmp_path_factory.mktemp("frames"), 4, size=(48, 64), ext="png")


def _write_outputs(
    model: GlusModel, frame_folder: Path, out: Path, options: SegmentationOptions
) -> list[FrameResult]:
    results: list[FrameResult] = []
    with open_video(frame_folder) as video:
        folders = [out / job.exp_id for job in JOBS]
        segment_to_outputs(model, video, JOBS, folders, FORMATS, options, on_result=results.append)
    return results


def _folder_contents(out: Path) -> dict[str, object]:
    """Every file's digest, and each expression.json without its timing."""
    contents: dict[str, object] = {}
    for job in JOBS:
        folder = out / job.exp_id
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        record.pop("seconds")
        record.pop("output_dir")
        contents[job.exp_id] = {
            "files": {name: digest for name, digest in file_digests(folder).items() if name != RECORD_NAME},
            "palette": file_digests(folder / outputs.PALETTE_DIRNAME),
            "record": record,
        }
    return contents


@pytest.mark.parametrize("variant", SCHEDULE_VARIANTS)
def test_threads_on_and_off_give_the_same_bits(
    tiny_model: GlusModel, frame_folder: Path, tmp_path: Path, variant: str
) -> None:
    options = SCHEDULE_VARIANTS[variant]
    on = _write_outputs(tiny_model, frame_folder, tmp_path / "on", replace(options, host_threads=True))
    off = _write_outputs(tiny_model, frame_folder, tmp_path / "off", replace(options, host_threads=False))
    assert len(on) == len(off) == 4 + 3 + 2
    for a, b in zip(on, off, strict=True):
        assert (a.expression_index, a.frame_index, a.direction, a.position) == (
            b.expression_index,
            b.frame_index,
            b.direction,
            b.position,
        )
        assert a.is_seg and np.array_equal(a.mask, b.mask)
        assert (a.iou, a.object_score) == (b.iou, b.object_score)
    assert _folder_contents(tmp_path / "on") == _folder_contents(tmp_path / "off")
    assert any(r.mask.any() for r in on)  # real masks, not a vacuous match


def test_threads_are_on_by_default_and_end_with_the_run(tiny_model: GlusModel) -> None:
    assert SegmentationOptions().host_threads
    seen: set[str] = set()

    class Source(ArraySource):
        def read(self, index: int) -> np.ndarray:
            seen.add(threading.current_thread().name)
            return super().read(index)

    results = list(segment_video(tiny_model, Source(synthetic_video(2)), [EXPRESSION]))
    assert len(results) == 2
    assert seen == {"glus-prefetch"}
    assert not [t for t in threading.enumerate() if t.name == "glus-prefetch"]


@pytest.mark.parametrize("schedule", ["reference", "fast"])
def test_closing_the_results_early_stops_the_prefetch_thread(tiny_model: GlusModel, schedule: str) -> None:
    reads: list[int] = []

    class Source(ArraySource):
        def read(self, index: int) -> np.ndarray:
            reads.append(index)
            return super().read(index)

    results = segment_video(
        tiny_model, Source(synthetic_video(30)), [EXPRESSION], SegmentationOptions(schedule=schedule)
    )
    first = next(results)
    results.close()
    assert first.frame_index == 0
    assert not [t for t in threading.enumerate() if t.name == "glus-prefetch"]
    assert len(reads) < 4 + 8  # the context frames and a few frames ahead, not the whole video


@pytest.mark.parametrize("host_threads", [True, False])
def test_a_frame_of_another_size_is_an_input_error(tiny_model: GlusModel, host_threads: bool) -> None:
    frames = synthetic_video(6)  # context frames 0, 2, 3, 5
    frames[4] = np.zeros((32, 32, 3), np.uint8)
    options = SegmentationOptions(host_threads=host_threads)
    with pytest.raises(InputError, match="frame 4 is 32×32, but earlier frames are 96×64"):
        list(segment_video(tiny_model, ArraySource(frames), [EXPRESSION], options))
    assert not [t for t in threading.enumerate() if t.name == "glus-prefetch"]


def test_writer_keeps_file_order_and_writes_each_record_last(
    tiny_model: GlusModel, frame_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, str]] = []  # (expression folder, file name), in the order they were written
    threads: set[str] = set()
    atomic_write_bytes = outputs.atomic_write_bytes

    def recording(path: Path, data: bytes) -> None:
        atomic_write_bytes(path, data)
        if path.parent.name in ("0", "1"):  # the png masks and the records, not palette/
            written.append((path.parent.name, path.name))
            if path.suffix == ".png":
                threads.add(threading.current_thread().name)

    monkeypatch.setattr(outputs, "atomic_write_bytes", recording)  # the masks
    monkeypatch.setattr(file_writes, "atomic_write_bytes", recording)  # the JSON files (RLE, the record)
    results = _write_outputs(tiny_model, frame_folder, tmp_path, SegmentationOptions(schedule="fast"))
    assert threads == {"glus-writer"}
    for exp_id, index in (("0", 0), ("1", 1)):
        files = [name for folder, name in written if folder == exp_id]
        expected = [f"{r.frame_index:05d}.png" for r in results if r.expression_index == index]
        assert files == [
            *expected,
            outputs.RLE_FILENAME,
            CONFIDENCE_NAME,
            RECORD_NAME,
        ]  # the RLE file at close, the per-frame confidence, then the record


@pytest.mark.parametrize("host_threads", [True, False])
def test_a_write_error_reaches_the_caller_and_leaves_no_record(
    tiny_model: GlusModel,
    frame_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    host_threads: bool,
) -> None:
    write = outputs.MaskWriterSet.write

    def failing(self: outputs.MaskWriterSet, index: int, mask: np.ndarray) -> None:
        if index == 2:
            raise OutputError(f"no space left on the disk to write {self.out_dir}/00002.png")
        write(self, index, mask)

    monkeypatch.setattr(outputs.MaskWriterSet, "write", failing)
    options = SegmentationOptions(host_threads=host_threads)
    with pytest.raises(OutputError, match="no space left"):
        _write_outputs(tiny_model, frame_folder, tmp_path, options)
    for job in JOBS:
        assert not is_complete(tmp_path / job.exp_id)
        assert not (tmp_path / job.exp_id / outputs.RLE_FILENAME).exists()
    assert not [t for t in threading.enumerate() if t.name in ("glus-writer", "glus-prefetch")]
