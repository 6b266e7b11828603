"""The overlay video: H.264 that browsers play, its fallbacks (VP9, then mp4v), even-size padding, timing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from glus_cli import outputs
from glus_cli import overlay as overlay_module
from glus_cli.errors import OutputError
from glus_cli.outputs import open_writers
from glus_cli.overlay import (
    H264,
    MP4V,
    VARIABLE_RATE_TIME_BASE,
    VP9,
    VideoEncodingError,
    encode_video,
    overlay_timing,
    select_overlay_codec,
)
from glus_cli.testing.videos import (
    synthetic_mask,
    write_frame_folder,
    write_synthetic_video,
    write_variable_rate_video,
)
from glus_cli.video import DEFAULT_FPS, VideoSource, open_video

ODD_SIZE = (91, 161)
VFR_TIMESTAMPS = [0.0, 0.1, 0.15, 0.4, 0.45, 1.0, 1.04]


@pytest.fixture(autouse=True)
def _fresh_codec_choice() -> Iterator[None]:
    """Each test chooses the codec afresh (the choice is cached per process), and leaves no choice behind."""
    select_overlay_codec.cache_clear()
    yield
    select_overlay_codec.cache_clear()


@pytest.fixture
def odd_frames(tmp_path: Path) -> Iterator[VideoSource]:
    """A 161x91 PNG frame folder: odd in both directions, at the folders' default rate."""
    with open_video(write_frame_folder(tmp_path / "odd", 5, ODD_SIZE, ext="png")) as source:
        yield source


def _missing(*encoders: str) -> type:
    """A stand-in for `av.codec.Codec` in a PyAV build without `encoders`."""
    real = av.codec.Codec

    def codec(name: str, mode: str = "r") -> av.codec.Codec:
        if mode == "w" and name in encoders:
            raise av.codec.codec.UnknownCodecError(name)
        return real(name, mode)

    return codec


def _write_overlay(source: VideoSource, out: Path) -> Path:
    """Write every frame's synthetic mask as an overlay; return the overlay's path."""
    with open_writers(["overlay"], out, source) as writers:
        for index in range(source.num_frames):
            writers.write(index, synthetic_mask(index, source.frame_size))
    return writers.paths["overlay"]


def _probe(path: Path) -> dict[str, object]:
    """What players see: PyAV's codec, tag and frame times; OpenCV's FourCC, frame count, fps and size."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, tag, pixel_format = stream.codec_context.name, stream.codec_tag, stream.codec_context.pix_fmt
        times = [float(frame.time) for frame in container.decode(stream)]
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        fourcc = (int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little").decode()
        decoded = 0
        while capture.read()[0]:
            decoded += 1
        size = (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return {
        "codec": codec,
        "tag": tag,
        "pix_fmt": pixel_format,
        "times": times,
        "fourcc": fourcc,
        "frames": decoded,
        "size": size,
        "fps": fps,
    }


def test_h264_is_the_default(tmp_path: Path) -> None:
    size = (64, 90)
    with open_video(write_synthetic_video(tmp_path / "clip.mp4", 8, size, fps=29.97)) as source:
        path = _write_overlay(source, tmp_path / "out")
        fps = source.fps
    assert path.name == "overlay.mp4"
    probe = _probe(path)
    assert (probe["codec"], probe["tag"], probe["pix_fmt"]) == ("h264", "avc1", "yuv420p")
    assert probe["fourcc"] == "h264"
    assert probe["frames"] == 8
    assert probe["fps"] == pytest.approx(fps, abs=1e-3)
    assert probe["size"] == size  # even already: not padded


def test_h264_pads_odd_sizes_by_one(odd_frames: VideoSource, tmp_path: Path) -> None:
    path = _write_overlay(odd_frames, tmp_path / "out")
    probe = _probe(path)
    assert probe["codec"] == "h264"
    assert probe["size"] == (92, 162)
    assert probe["frames"] == 5
    assert probe["fps"] == pytest.approx(DEFAULT_FPS)


def test_faststart_puts_the_index_first(odd_frames: VideoSource, tmp_path: Path) -> None:
    data = _write_overlay(odd_frames, tmp_path / "out").read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_fallback_to_vp9_in_webm(
    odd_frames: VideoSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(av.codec, "Codec", _missing("libx264"))
    with caplog.at_level(logging.WARNING, logger=overlay_module.__name__):
        path = _write_overlay(odd_frames, tmp_path / "first")
        second = _write_overlay(odd_frames, tmp_path / "second")
    assert path.name == second.name == "overlay.webm"
    assert not (tmp_path / "first" / "overlay.mp4").exists()
    probe = _probe(path)
    assert probe["codec"] == "vp9"
    assert probe["size"] == ODD_SIZE  # VP9 takes odd sizes: no padding
    assert probe["frames"] == 5
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, "the fallback is announced once"
    assert "\n" not in warnings[0]
    assert "no H.264 encoder (libx264: not in this FFmpeg build)" in warnings[0]
    assert "writing VP9 in overlay.webm instead" in warnings[0]


def test_fallback_to_mp4v(
    odd_frames: VideoSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(av.codec, "Codec", _missing("libx264", "libvpx-vp9"))
    with caplog.at_level(logging.WARNING, logger=overlay_module.__name__):
        path = _write_overlay(odd_frames, tmp_path / "out")
    assert path.name == "overlay.mp4"
    probe = _probe(path)
    assert (probe["codec"], probe["tag"]) == ("mpeg4", "mp4v")
    assert probe["frames"] == 5
    assert probe["fps"] == pytest.approx(DEFAULT_FPS)
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "no H.264 encoder" in warning and "no VP9 encoder" in warning
    assert "MPEG-4 Part 2 (mp4v) in overlay.mp4" in warning and "browsers do not play" in warning


def test_no_encoder_at_all_is_an_output_error(
    odd_frames: VideoSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(av.codec, "Codec", _missing("libx264", "libvpx-vp9", "mpeg4"))
    with pytest.raises(OutputError, match=r"cannot write the overlay video: no H\.264 encoder") as excinfo:
        open_writers(["png", "overlay"], tmp_path / "out", odd_frames)
    assert "\n" not in str(excinfo.value)


def test_the_writer_set_names_the_codec(odd_frames: VideoSource, tmp_path: Path) -> None:
    with open_writers(["png"], tmp_path / "png", odd_frames) as writers:
        assert writers.overlay is None
    with open_writers(["overlay"], tmp_path / "overlay", odd_frames) as writers:
        assert writers.overlay == H264
        assert writers.overlay.record() == {"file": "overlay.mp4", "codec": "h264", "container": "mp4"}
    assert VP9.record()["file"] == "overlay.webm" and MP4V.record()["codec"] == "mpeg4"


def test_variable_frame_rate_keeps_the_source_timestamps(tmp_path: Path) -> None:
    with open_video(write_variable_rate_video(tmp_path / "vfr.mp4", VFR_TIMESTAMPS)) as source:
        timing = overlay_timing(source)
        path = _write_overlay(source, tmp_path / "out")
    assert not timing.constant_rate
    assert timing.time_base == VARIABLE_RATE_TIME_BASE
    probe = _probe(path)
    assert probe["codec"] == "h264"
    assert probe["times"] == pytest.approx(VFR_TIMESTAMPS, abs=1e-4)


def test_variable_frame_rate_subsampled(tmp_path: Path) -> None:
    with open_video(write_variable_rate_video(tmp_path / "vfr.mp4", VFR_TIMESTAMPS), stride=3) as source:
        path = _write_overlay(source, tmp_path / "out")
    assert _probe(path)["times"] == pytest.approx(VFR_TIMESTAMPS[::3], abs=1e-4)


def test_constant_rate_sources_keep_their_exact_rate(tmp_path: Path, odd_frames: VideoSource) -> None:
    with open_video(write_synthetic_video(tmp_path / "ntsc.mp4", 5, (64, 90), fps=29.97)) as source:
        assert source.timestamps is not None
        timing = overlay_timing(source)
    assert timing.constant_rate
    assert timing.rate == Fraction(2997, 100)
    assert timing.pts == [0, 1, 2, 3, 4]
    folder_timing = overlay_timing(odd_frames)  # frame folders have no timestamps
    assert folder_timing.constant_rate and folder_timing.rate == DEFAULT_FPS


def test_overlay_tint_is_where_the_mask_is(tmp_path: Path) -> None:
    """H.264 is lossy: the tint is checked away from the mask's border, with a tolerance."""
    size = (96, 128)
    frames = write_frame_folder(tmp_path / "frames", 3, size, ext="png")
    with open_video(frames) as source:
        path = _write_overlay(source, tmp_path / "out")
        original = source.read(1).astype(int)
    mask = synthetic_mask(1, size)
    with av.open(str(path)) as container:
        written = [frame.to_ndarray(format="rgb24").astype(int) for frame in container.decode(video=0)][1]
    inside = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    outside = ~cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    tinted = original * 0.5 + np.array([255, 0, 0]) * 0.5
    assert np.abs(written[inside] - tinted[inside]).mean() < 6
    assert np.abs(written[outside] - original[outside]).mean() < 6


def test_frames_and_timing_must_agree(odd_frames: VideoSource, tmp_path: Path) -> None:
    timing = overlay_timing(odd_frames)
    frames = [odd_frames.read(0)] * (odd_frames.num_frames - 1)
    with pytest.raises(VideoEncodingError, match="4 frames given, 5 timed"):
        encode_video(tmp_path / "short.mp4", frames, H264, timing, odd_frames.frame_size)
    with pytest.raises(VideoEncodingError, match="more frames than the 5 timed"):
        encode_video(tmp_path / "long.mp4", [*frames, *frames], H264, timing, odd_frames.frame_size)


def test_an_encoder_failure_is_an_output_error_naming_the_overlay(
    odd_frames: VideoSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object) -> None:
        raise VideoEncodingError("libx264: Generic error in an external library")

    monkeypatch.setattr(outputs, "encode_video", failing)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"cannot encode overlay video .*overlay\.mp4: libx264: Generic"):
        _write_overlay(odd_frames, out)
    assert list(out.iterdir()) == []  # no temporary left, no overlay that looks complete
