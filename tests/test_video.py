"""Frame sources: video files, frame folders, globs; subsampling, exact counts and seeks, input errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from glus_cli import video as video_module
from glus_cli.errors import InputError
from glus_cli.testing.videos import (
    synthetic_frame,
    write_frame_folder,
    write_synthetic_video,
    write_variable_rate_video,
)
from glus_cli.video import DEFAULT_FPS, ImageSequenceSource, VideoFileSource, natural_key, open_video

SIZE = (98, 130)
ODD_SIZE = (97, 131)
NUM_FRAMES = 40


def _decode_all(path: Path) -> list[np.ndarray]:
    """Reference: every frame of a plain sequential OpenCV decode, RGB."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", NUM_FRAMES, SIZE, fps=29.97)


@pytest.fixture(scope="module")
def reference(clip: Path) -> list[np.ndarray]:
    frames = _decode_all(clip)
    assert len(frames) == NUM_FRAMES
    return frames


def test_video_file_properties(clip: Path) -> None:
    with open_video(clip) as source:
        assert isinstance(source, VideoFileSource)
        assert source.name == "clip"
        assert source.num_frames == NUM_FRAMES
        assert source.frame_size == SIZE
        assert source.fps == pytest.approx(29.97, abs=1e-3)
        assert source.frame_names[:3] == ["00000", "00001", "00002"]
        assert source.source_indices == list(range(NUM_FRAMES))
        frame = source.read(0)
        assert frame.dtype == np.uint8
        assert frame.shape == (*SIZE, 3)


@pytest.mark.parametrize("fps", [7.5, 29.97, 30000 / 1001])
def test_odd_fps_reads_back(tmp_path: Path, fps: float) -> None:
    path = write_synthetic_video(tmp_path / "rate.mp4", 3, (64, 90), fps=fps)
    with open_video(path) as source:
        assert source.fps == pytest.approx(fps, abs=1e-3)
        assert source.frame_size == (64, 90)


def test_frames_are_rgb(clip: Path) -> None:
    expected = synthetic_frame(5, SIZE).astype(int)
    with open_video(clip) as source:
        frame = source.read(5).astype(int)
    assert np.abs(frame - expected).mean() < 8
    assert np.abs(frame - expected).mean() < np.abs(frame[..., ::-1] - expected).mean()


def test_seeks_are_exact(clip: Path, reference: list[np.ndarray]) -> None:
    order = [39, 3, 20, 21, 22, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 38, 37, 30, 0]
    with open_video(clip, cache_frames=4) as source:
        assert source._native_seek  # mp4v seeks natively and exactly; the open-time probes confirm it
        for index in order:
            np.testing.assert_array_equal(source.read(index), reference[index], err_msg=f"frame {index}")


def test_inexact_native_seek_is_detected(
    clip: Path, reference: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    def off_by_one(self: VideoFileSource, target: int) -> bool:
        return bool(self._live_capture().set(cv2.CAP_PROP_POS_FRAMES, target + 1))

    monkeypatch.setattr(VideoFileSource, "_native_seek_to", off_by_one)
    with open_video(clip, cache_frames=3) as source:
        assert not source._native_seek  # the open-time probes caught it: seeks decode forward instead
        for index in [25, 2, *range(NUM_FRAMES - 1, -1, -1)]:
            np.testing.assert_array_equal(source.read(index), reference[index], err_msg=f"frame {index}")


def test_iter_frames_in_requested_order(clip: Path, reference: list[np.ndarray]) -> None:
    order = [0, 13, 26, 39, *range(17, 24), *range(16, -1, -1)]
    with open_video(clip) as source:
        got = list(source.iter_frames(order))
    assert [index for index, _ in got] == order
    for index, frame in got:
        np.testing.assert_array_equal(frame, reference[index])


def test_read_returns_independent_copies(clip: Path) -> None:
    with open_video(clip) as source:
        first = source.read(4)
        first[:] = 0
        assert source.read(4).any()


def test_read_outside_range(clip: Path) -> None:
    with open_video(clip, max_frames=2) as source, pytest.raises(IndexError):
        source.read(2)


def test_video_stride_and_max_frames(clip: Path, reference: list[np.ndarray]) -> None:
    with open_video(clip, stride=3) as source:
        assert source.num_frames == 14  # frames 0, 3, ..., 39
        assert source.frame_names[-1] == "00039"
        assert source.fps == pytest.approx(29.97 / 3, abs=1e-3)
    with open_video(clip, stride=3, max_frames=4) as source:
        assert source.num_frames == 4
        assert source.source_indices == [0, 3, 6, 9]
        assert source.frame_names == ["00000", "00003", "00006", "00009"]
        np.testing.assert_array_equal(source.read(2), reference[6])
        np.testing.assert_array_equal(source.read(0), reference[0])
    with open_video(clip, max_frames=100) as source:
        assert source.num_frames == NUM_FRAMES


def test_frame_count_ignores_wrong_metadata(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_capture = cv2.VideoCapture

    class LyingCapture:
        """A capture whose container metadata claims 1000 frames."""

        def __init__(self, *args: object) -> None:
            self._capture = real_capture(*args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._capture, name)

        def get(self, prop: int) -> float:
            return 1000.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self._capture.get(prop)

    monkeypatch.setattr(video_module.cv2, "VideoCapture", LyingCapture)
    with open_video(clip) as source:
        assert source.num_frames == NUM_FRAMES


def test_timestamps_of_a_constant_rate_video(clip: Path) -> None:
    with open_video(clip, stride=3, max_frames=4) as source:
        assert source.timestamps == pytest.approx([i / 29.97 for i in (0, 3, 6, 9)], abs=1e-6)


def test_timestamps_of_a_variable_rate_video(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 1.0, 1.04]
    path = write_variable_rate_video(tmp_path / "vfr.mp4", times)
    with open_video(path) as source:
        assert source.num_frames == len(times)
        assert source.timestamps == pytest.approx(times, abs=1e-6)
    with open_video(path, stride=2, max_frames=3) as source:
        assert source.timestamps == pytest.approx([0.0, 0.15, 0.45], abs=1e-6)


def test_frames_without_timestamps(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_video(write_frame_folder(tmp_path / "frames", 2, SIZE, ext="png")) as source:
        assert source.timestamps is None  # folders carry none
    real_capture = cv2.VideoCapture

    class NoTimestamps:
        """A capture whose decoder reports every frame at 0 ms, as OpenCV does for frames without one."""

        def __init__(self, *args: object) -> None:
            self._capture = real_capture(*args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._capture, name)

        def get(self, prop: int) -> float:
            return 0.0 if prop == cv2.CAP_PROP_POS_MSEC else self._capture.get(prop)

    monkeypatch.setattr(video_module.cv2, "VideoCapture", NoTimestamps)
    with open_video(clip) as source:
        assert source.num_frames == NUM_FRAMES
        assert source.timestamps is None


def test_one_frame_video_is_valid(tmp_path: Path) -> None:
    path = write_synthetic_video(tmp_path / "one.mp4", 1, SIZE)
    with open_video(path) as source:
        assert source.num_frames == 1
        assert source.read(0).shape == (*SIZE, 3)


def test_frame_folder_reads_exact_pixels(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "bear", 12, ODD_SIZE, ext="png")
    with open_video(folder) as source:
        assert isinstance(source, ImageSequenceSource)
        assert source.name == "bear"
        assert source.num_frames == 12
        assert source.frame_size == ODD_SIZE
        assert source.fps == DEFAULT_FPS
        assert source.frame_names == [f"{i:05d}" for i in range(12)]
        for index, frame in source.iter_frames([11, 0, 5]):
            np.testing.assert_array_equal(frame, synthetic_frame(index, ODD_SIZE))


def test_frame_folder_jpg_stride_and_fps(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "clip", 10, SIZE, ext="jpg")
    with open_video(folder, stride=4, max_frames=2, folder_fps=10.0) as source:
        assert source.frame_names == ["00000", "00004"]
        assert source.source_indices == [0, 4]
        assert source.fps == pytest.approx(2.5)
        assert np.abs(source.read(1).astype(int) - synthetic_frame(4, SIZE)).mean() < 8


def _write_named(folder: Path, names: list[str], size: tuple[int, int] = (8, 10)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for value, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((*size, 3), value * 10, np.uint8))


def test_folder_natural_order_and_ignored_files(tmp_path: Path) -> None:
    _write_named(tmp_path / "f", ["frame10.png", "frame2.png", "frame1.png", "Frame3.PNG"])
    (tmp_path / "f" / "notes.txt").write_text("not a frame")
    (tmp_path / "f" / "._frame1.png").write_bytes(b"macOS resource fork")
    with open_video(tmp_path / "f") as source:
        assert source.frame_names == ["frame1", "frame2", "Frame3", "frame10"]
        assert source.read(3)[0, 0, 0] == 0  # frame10.png was written first, with value 0


def test_natural_key() -> None:
    names = ["b10", "a", "b2", "00010", "00009", "b1x"]
    assert sorted(names, key=natural_key) == ["00009", "00010", "a", "b1x", "b2", "b10"]


def test_glob_pattern(tmp_path: Path) -> None:
    _write_named(tmp_path / "shots", ["s10.png", "s9.png", "s1.png", "other.jpg"])
    with open_video(str(tmp_path / "shots" / "s*.png")) as source:
        assert source.name == "shots"
        assert source.frame_names == ["s1", "s9", "s10"]
    with open_video(str(tmp_path / "shots" / "*"), stride=2) as source:
        assert source.frame_names == ["other", "s9"]


def test_single_image(tmp_path: Path) -> None:
    _write_named(tmp_path, ["photo.jpg"])
    with open_video(tmp_path / "photo.jpg") as source:
        assert (source.name, source.num_frames, source.frame_names) == ("photo", 1, ["photo"])


def _message(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as excinfo:
        open_video(tmp_path / "nothing.mp4")
    assert "nothing.mp4" in _message(excinfo)


def test_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n" * 100)
    with pytest.raises(InputError, match="is not a video"):
        open_video(tmp_path / "notes.txt")


def test_corrupt_video(tmp_path: Path) -> None:
    (tmp_path / "fake.mp4").write_text("this is not an mp4\n" * 100)
    with pytest.raises(InputError, match="cannot decode video") as excinfo:
        open_video(tmp_path / "fake.mp4")
    assert "fake.mp4" in _message(excinfo)


def test_video_without_frames(tmp_path: Path) -> None:
    # An empty MJPG AVI opens (unlike an empty mp4, which has no index and reads as corrupt).
    path = write_synthetic_video(tmp_path / "empty.avi", 0, SIZE, codec="MJPG")
    with pytest.raises(InputError, match="has no frames"):
        open_video(path)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no frames here")
    with pytest.raises(InputError, match="holds no images"):
        open_video(tmp_path / "empty")


def test_glob_without_matches(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no files match"):
        open_video(str(tmp_path / "*.png"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no images match"):
        open_video(str(tmp_path / "*"))


def test_images_of_different_sizes(tmp_path: Path) -> None:
    _write_named(tmp_path / "f", ["00000.png", "00001.png"], size=(8, 10))
    _write_named(tmp_path / "g", ["00002.png"], size=(9, 10))
    (tmp_path / "g" / "00002.png").rename(tmp_path / "f" / "00002.png")
    with pytest.raises(InputError, match="all frames must have one size") as excinfo:
        open_video(tmp_path / "f")
    assert "00002.png" in _message(excinfo)


def test_unreadable_image(tmp_path: Path) -> None:
    _write_named(tmp_path / "f", ["00000.jpg", "00001.jpg"])
    (tmp_path / "f" / "00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot read image") as excinfo:
        open_video(tmp_path / "f")
    assert "00002.jpg" in _message(excinfo)


def test_duplicate_frame_names(tmp_path: Path) -> None:
    _write_named(tmp_path / "f", ["00000.jpg", "00000.png"])
    with pytest.raises(InputError, match="would both name frame '00000'"):
        open_video(tmp_path / "f")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stride": 0}, "stride must be at least 1"),
        ({"max_frames": 0}, "max-frames must be at least 1"),
        ({"folder_fps": 0.0}, "fps must be a positive number"),
    ],
)
def test_option_errors(clip: Path, options: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        open_video(clip, **options)  # type: ignore[arg-type]
