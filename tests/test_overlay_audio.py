"""overlay.mp4 keeps the source's sound: copied unchanged where the container holds its codec, cut to the
overlay's frames; dropped with one warning line otherwise."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import pytest

from glus_cli import overlay as overlay_module
from glus_cli.outputs import open_writers
from glus_cli.testing.videos import synthetic_mask, write_frame_folder, write_video_with_sound
from glus_cli.video import VideoSource, open_video


def _write_overlay(source: VideoSource, out: Path) -> Path:
    with open_writers(["overlay"], out, source) as writers:
        for index in range(source.num_frames):
            writers.write(index, synthetic_mask(index, source.frame_size))
    return writers.paths["overlay"]


def _streams(path: Path) -> dict[str, tuple[str, float]]:
    """Stream type -> (codec, seconds of its packets)."""
    found = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            packets = [p for p in container.demux(stream) if p.pts is not None]
            end = max(float((p.pts + p.duration) * p.time_base) for p in packets)
            found[stream.type] = (stream.codec_context.name, end)
            container.seek(0)
    return found


def test_overlay_keeps_the_sound_unchanged(tmp_path: Path) -> None:
    source_path = write_video_with_sound(tmp_path / "clip.mp4", 12, fps=10)
    with open_video(source_path) as source:
        overlay = _write_overlay(source, tmp_path / "out")
    streams = _streams(overlay)
    assert streams["video"][0] == "h264"
    assert streams["audio"][0] == "aac"
    assert streams["audio"][1] == pytest.approx(1.2, abs=0.15)
    with av.open(str(overlay)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples == pytest.approx(1.2 * 16000, rel=0.1)


def test_sound_is_cut_to_the_frames_kept(tmp_path: Path) -> None:
    source_path = write_video_with_sound(tmp_path / "clip.mp4", 20, fps=10)
    with open_video(source_path, max_frames=5) as source:
        overlay = _write_overlay(source, tmp_path / "out")
    assert _streams(overlay)["audio"][1] == pytest.approx(0.5, abs=0.15)


def test_sound_the_container_cannot_hold_is_dropped_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overlay_module._warn_dropped_audio.cache_clear()
    source_path = write_video_with_sound(tmp_path / "clip.mov", 6, audio_codec="pcm_s16le")
    with caplog.at_level(logging.WARNING, logger=overlay_module.__name__), open_video(source_path) as source:
        first = _write_overlay(source, tmp_path / "a")
        _write_overlay(source, tmp_path / "b")
    assert set(_streams(first)) == {"video"}
    warnings = [r.getMessage() for r in caplog.records if "sound" in r.getMessage()]
    assert len(warnings) == 1 and "pcm_s16le" in warnings[0], warnings


def test_frame_folders_have_no_sound(tmp_path: Path) -> None:
    with open_video(write_frame_folder(tmp_path / "frames", 4, (32, 48))) as source:
        overlay = _write_overlay(source, tmp_path / "out")
    assert set(_streams(overlay)) == {"video"}
