"""Mask writers (png, palette, rle, overlay), atomic writes, disk-full mapping, run and output folders."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from glus_cli import files
from glus_cli.errors import InputError, OutputError
from glus_cli.files import atomic_write_bytes, new_run_dir, prepare_output_dir, write_json_atomic
from glus_cli.outputs import DAVIS_PALETTE, FORMATS, open_writers, validate_formats
from glus_cli.testing.videos import synthetic_mask, write_frame_folder, write_synthetic_video
from glus_cli.video import VideoSource, open_video

ODD_SIZE = (97, 131)
NUM_FRAMES = 6


@pytest.fixture
def frames(tmp_path: Path) -> Iterator[VideoSource]:
    """An odd-sized PNG frame folder, so pixels read back exactly."""
    with open_video(write_frame_folder(tmp_path / "bear", NUM_FRAMES, ODD_SIZE, ext="png")) as source:
        yield source


def _mask(index: int) -> np.ndarray:
    return synthetic_mask(index, ODD_SIZE)


def _write_all(source: VideoSource, out: Path, formats: tuple[str, ...] = FORMATS) -> None:
    with open_writers(formats, out, source) as writers:
        for index in range(source.num_frames):
            writers.write(index, _mask(index))


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_png_masks(frames: VideoSource, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_all(frames, out, ("png",))
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(NUM_FRAMES)]
    for index in range(NUM_FRAMES):
        with Image.open(out / f"{index:05d}.png") as image:
            assert image.mode == "L"
            values = np.asarray(image)
        assert set(np.unique(values)) == {0, 255}
        np.testing.assert_array_equal(values == 255, _mask(index))


def test_palette_masks(frames: VideoSource, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_all(frames, out, ("palette",))
    with Image.open(out / "palette" / "00002.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        values = np.asarray(image)
    assert set(np.unique(values)) == {0, 1}
    np.testing.assert_array_equal(values == 1, _mask(2))


def test_davis_palette() -> None:
    colors = np.frombuffer(DAVIS_PALETTE, np.uint8).reshape(256, 3)
    assert colors[:8].tolist() == [
        [0, 0, 0],
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [0, 0, 128],
        [128, 0, 128],
        [0, 128, 128],
        [128, 128, 128],
    ]
    assert colors[8].tolist() == [64, 0, 0]
    assert colors[255].tolist() == [224, 224, 192]


def test_rle_matches_png(frames: VideoSource, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_all(frames, out, ("png", "rle"))
    document = json.loads((out / "masks_rle.json").read_text())
    assert list(document) == frames.frame_names
    for name, rle in document.items():
        assert rle["size"] == list(ODD_SIZE)
        assert isinstance(rle["counts"], str)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        with Image.open(out / f"{name}.png") as image:
            np.testing.assert_array_equal(decoded.astype(bool), np.asarray(image) == 255)


def test_overlay_video(tmp_path: Path) -> None:
    size = (64, 90)
    with open_video(write_synthetic_video(tmp_path / "clip.mp4", 9, size, fps=29.97)) as source:
        mask = np.zeros(size, bool)
        mask[10:40, 20:60] = True
        with open_writers(["overlay"], tmp_path / "out", source) as writers:
            for index in (4, 5, 6, 7, 8, 4, 3, 2, 1):  # frame 0 never gets a mask
                writers.write(index, mask)
        original, unmasked = source.read(5), source.read(0)
        capture = cv2.VideoCapture(str(tmp_path / "out" / "overlay.mp4"))
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == source.num_frames
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(source.fps, abs=1e-3)
        written = []
        while (frame := capture.read())[0]:
            written.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB).astype(int))
        capture.release()
    assert len(written) == source.num_frames
    assert written[5].shape == (*size, 3)
    tinted = original * 0.5 + np.array([255, 0, 0]) * 0.5
    change = np.linalg.norm(tinted - original, axis=-1)
    change[~mask] = 0
    change[:12], change[38:], change[:, :22], change[:, 58:] = 0, 0, 0, 0  # away from the contour
    inside = np.unravel_index(np.argmax(change), size)
    assert change[inside] > 60
    assert np.abs(written[5][inside] - tinted[inside]).max() < 25  # tinted red (up to mp4v loss)
    outside = (55, 80)
    assert np.abs(written[5][outside] - original[outside]).max() < 25  # untouched
    assert np.abs(written[0][inside] - unmasked[inside]).max() < 25  # no mask: untinted


def test_overlay_pads_odd_sizes(frames: VideoSource, tmp_path: Path) -> None:
    _write_all(frames, tmp_path / "out", ("overlay",))
    capture = cv2.VideoCapture(str(tmp_path / "out" / "overlay.mp4"))
    ok, frame = capture.read()
    assert ok
    assert frame.shape == (98, 132, 3)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == NUM_FRAMES
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(frames.fps, abs=1e-3)
    capture.release()


def test_key_frame_order_last_write_wins(frames: VideoSource, tmp_path: Path) -> None:
    key = 3
    first_pass = np.zeros(ODD_SIZE, bool)
    first_pass[:10] = True
    out = tmp_path / "out"
    with open_writers(["png", "palette", "rle"], out, frames) as writers:
        writers.write(key, first_pass)
        for index in range(key + 1, NUM_FRAMES):
            writers.write(index, _mask(index))
        for index in range(key, -1, -1):  # the backward pass writes the key frame again
            writers.write(index, _mask(index))
    rle = json.loads((out / "masks_rle.json").read_text())
    assert list(rle) == frames.frame_names  # in frame order whatever the write order
    for index, name in enumerate(frames.frame_names):
        expected = _mask(index)
        with Image.open(out / f"{name}.png") as image:
            np.testing.assert_array_equal(np.asarray(image) == 255, expected)
        with Image.open(out / "palette" / f"{name}.png") as image:
            np.testing.assert_array_equal(np.asarray(image) == 1, expected)
        decoded = mask_utils.decode({"size": rle[name]["size"], "counts": rle[name]["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), expected)


def test_rle_lists_only_frames_with_masks(frames: VideoSource, tmp_path: Path) -> None:
    with open_writers(["rle"], tmp_path, frames) as writers:
        writers.write(4, _mask(4))
    assert list(json.loads((tmp_path / "masks_rle.json").read_text())) == ["00004"]


def test_write_checks_index_and_shape(frames: VideoSource, tmp_path: Path) -> None:
    with open_writers(["png"], tmp_path, frames) as writers:
        with pytest.raises(IndexError):
            writers.write(NUM_FRAMES, _mask(0))
        with pytest.raises(ValueError, match="expected"):
            writers.write(0, np.zeros((10, 10), bool))


def test_format_validation(frames: VideoSource, tmp_path: Path) -> None:
    assert validate_formats(["png,RLE", "png", " overlay "]) == ("png", "rle", "overlay")
    assert validate_formats("palette") == ("palette",)
    with pytest.raises(InputError, match="unknown output format 'gif'"):
        open_writers(["png", "gif"], tmp_path, frames)
    with pytest.raises(InputError, match="at least one"):
        validate_formats([])


def test_failure_mid_run_leaves_only_complete_files(frames: VideoSource, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="model crashed"), open_writers(FORMATS, out, frames) as writers:
        writers.write(0, _mask(0))
        writers.write(1, _mask(1))
        raise RuntimeError("model crashed")
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "palette"]
    assert not _leftovers(out)


def test_failure_while_writing_overlay(
    frames: VideoSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_iter_frames(indices: object) -> Iterator[tuple[int, np.ndarray]]:
        yield 0, frames.read(0)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(frames, "iter_frames", broken_iter_frames)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"overlay\.mp4"):
        _write_all(frames, out, ("rle", "overlay"))
    assert (out / "masks_rle.json").exists()  # finished before the overlay started
    assert not (out / "overlay.mp4").exists()
    assert not _leftovers(out)


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd: int, data: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "summary.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_on_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 4:
            return real_write(fd, data[:4])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", half_then_full)
    target = tmp_path / "summary.json"
    with pytest.raises(OutputError, match="no space left") as excinfo:
        write_json_atomic(target, {"a": "b" * 100})
    assert str(target) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_on_replace_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "00000.png"
    atomic_write_bytes(target, b"complete")

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(OutputError, match="no space left"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"complete"
    assert list(tmp_path.iterdir()) == [target]


def test_permission_denied(frames: VideoSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files.os, "open", denied)
    with pytest.raises(OutputError, match=r"permission denied writing .*00000\.png"):
        _write_all(frames, tmp_path / "out", ("png",))


def test_write_json_atomic_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"expression": "the dog that jumps first", "ünïcode": [1, 2.5]})
    assert json.loads(target.read_text(encoding="utf-8"))["ünïcode"] == [1, 2.5]
    write_json_atomic(target, {"second": True})
    assert json.loads(target.read_text()) == {"second": True}
    assert list(tmp_path.iterdir()) == [target]


def test_new_run_dir_numbers(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert new_run_dir(root) == root / "0001"
    assert new_run_dir(root) == root / "0002"
    (root / "0007").mkdir()
    (root / "notes").mkdir()
    assert new_run_dir(root) == root / "0008"


def test_new_run_dir_skips_a_folder_taken_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = Path.mkdir

    def racing_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "0001" and not self.exists():
            real_mkdir(self)  # another run takes 0001 between the listing and our mkdir
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    assert new_run_dir(tmp_path) == tmp_path / "0002"


def test_prepare_output_dir(tmp_path: Path) -> None:
    assert prepare_output_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert (tmp_path / "new" / "deep").is_dir()
    assert prepare_output_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"  # empty: fine
    (tmp_path / "new" / "deep" / "00000.png").write_bytes(b"finished")
    with pytest.raises(OutputError, match="exists and is not empty; choose another --output-dir"):
        prepare_output_dir(tmp_path / "new" / "deep")
    with pytest.raises(OutputError, match="is not a folder"):
        prepare_output_dir(tmp_path / "new" / "deep" / "00000.png")
    assert (tmp_path / "new" / "deep" / "00000.png").read_bytes() == b"finished"
