"""The overlay video's encoding: which codec, which timing, and the encoding itself, with PyAV.

Browsers (Chrome, Firefox, Safari) and the VS Code and Jupyter previews play H.264, VP9 and AV1, not the
MPEG-4 Part 2 (``mp4v``) that OpenCV's writer produces. The overlay is therefore encoded with PyAV, whose
wheels bundle FFmpeg with libx264 and libvpx, in the first codec of `OVERLAY_CODECS` that this build of
PyAV can open:

1. H.264 (libx264, yuv420p, crf 20, ``+faststart`` so that playback starts before the download ends) in
   ``overlay.mp4``;
2. VP9 (libvpx, crf 32, about the same quality) in ``overlay.webm``, which browsers play too;
3. MPEG-4 Part 2 (``mp4v``, fixed quantiser 3) in ``overlay.mp4``, for desktop players only.

A fallback is announced once per process by a one-line warning. x264 encodes yuv420p only at even sizes, so
for H.264 alone an odd-sized frame is padded by one replicated row or column (`OverlayCodec.even_size`).

Sound (`AudioCopy`): the first audio stream of a source video file is muxed into the overlay unchanged
(no re-encoding), cut to the overlay's frames, when the overlay's container can hold its codec; otherwise
it is dropped with one warning line.

Timing (`overlay_timing`): one output frame per presented frame. A source whose frames are evenly spaced at
its frame rate (within `_CONSTANT_RATE_TOLERANCE`), or that has no timestamps (folders, globs), is written
at its exact rate; a variable-frame-rate video keeps its timestamps (`VideoSource.timestamps`), shifted so
that the first frame starts at 0.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from glus_cli.errors import OutputError
from glus_cli.video import VideoSource

logger = logging.getLogger(__name__)

VARIABLE_RATE_TIME_BASE = Fraction(1, 60000)
"""Clock of a variable-frame-rate overlay: finer than the decoder's millisecond timestamps, and within
MPEG-4 Part 2's limit of 65535 ticks per second."""
_CONSTANT_RATE_TOLERANCE = 0.05
"""Steps between timestamps within this fraction of ``1 / fps`` count as a constant frame rate."""
_RATE_MAX_DENOMINATOR = 1001
"""Frame rates are stored as fractions: 29.97 → 2997/100, 30000/1001 stays exact."""


@dataclass(frozen=True)
class OverlayCodec:
    """One way to encode the overlay video.

    Attributes:
        codec: the codec's name as FFmpeg decoders report it (``h264``, ``vp9``, ``mpeg4``).
        encoder: the FFmpeg encoder.
        label: the codec's name for people.
        container: the FFmpeg muxer (``mp4``, ``webm``).
        filename: the overlay's file name in an expression's folder.
        even_size: whether the encoder needs even frame sizes (then odd ones are padded).
        encoder_options: FFmpeg options of the encoder.
        container_options: FFmpeg options of the muxer.
        plays_in_browsers: whether browsers decode the codec.
    """

    codec: str
    encoder: str
    label: str
    container: str
    filename: str
    even_size: bool = False
    encoder_options: Mapping[str, str] = field(default_factory=dict)
    container_options: Mapping[str, str] = field(default_factory=dict)
    plays_in_browsers: bool = True

    def record(self) -> dict[str, str]:
        """What `expression.json` says about the overlay: its file, codec and container."""
        return {"file": self.filename, "codec": self.codec, "container": self.container}


H264 = OverlayCodec(
    "h264",
    "libx264",
    "H.264",
    "mp4",
    "overlay.mp4",
    even_size=True,
    encoder_options={"crf": "20"},
    container_options={"movflags": "+faststart"},
)
VP9 = OverlayCodec(
    "vp9",
    "libvpx-vp9",
    "VP9",
    "webm",
    "overlay.webm",
    encoder_options={"crf": "32", "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1"},
)
MP4V = OverlayCodec(
    "mpeg4",
    "mpeg4",
    "MPEG-4 Part 2 (mp4v)",
    "mp4",
    "overlay.mp4",
    # A fixed quantiser of 3 (ffmpeg's -q:v 3): global_quality is in lambda units, 118 (FF_QP2LAMBDA) each.
    encoder_options={"flags": "+qscale", "global_quality": str(3 * 118)},
    container_options={"movflags": "+faststart"},
    plays_in_browsers=False,
)
OVERLAY_CODECS = (H264, VP9, MP4V)
"""The overlay's codecs, best first; the first one PyAV can open is used."""


AUDIO_CODECS = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"}),
    "webm": frozenset({"opus", "vorbis"}),
}
"""Audio codecs each overlay container holds, by FFmpeg's codec names; other sound is dropped."""


class VideoEncodingError(RuntimeError):
    """The encoder or the muxer failed for a reason other than the file system (which raises OSError)."""


@dataclass(frozen=True)
class OverlayTiming:
    """When each overlay frame is shown.

    Attributes:
        rate: the nominal frame rate (the source's).
        time_base: seconds per tick of `pts`.
        pts: presentation time of each frame in ticks, strictly increasing, starting at 0.
    """

    rate: Fraction
    time_base: Fraction
    pts: list[int]

    @property
    def constant_rate(self) -> bool:
        """Whether frame i is shown at ``i / rate`` (the time base is then ``1 / rate``)."""
        return self.time_base == 1 / self.rate

    def seconds(self, index: int) -> float:
        """When frame `index` is shown."""
        return float(self.pts[index] * self.time_base)

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last (shown for one frame period)."""
        return self.seconds(len(self.pts) - 1) + float(1 / self.rate) if self.pts else 0.0


@dataclass(frozen=True)
class AudioSource:
    """Where the overlay's sound comes from.

    Attributes:
        path: the source video file.
        start: seconds from the start of its video stream to its first presented frame (overlay time 0).
    """

    path: Path
    start: float = 0.0


class AudioCopy:
    """The first audio stream of a source file, muxed unchanged into an overlay in step with its frames.

    `open` returns None (after one warning line, where there is sound to drop) when the source has no
    audio, or when the overlay's container cannot hold its codec.
    """

    def __init__(
        self, source: av.container.InputContainer, output: av.container.OutputContainer, start: float
    ) -> None:
        self._input = source
        in_stream = source.streams.audio[0]
        self._stream = output.add_stream_from_template(in_stream)
        self._output = output
        video = source.streams.video[0] if source.streams.video else None
        video_start = float(video.start_time * video.time_base) if video and video.start_time else 0.0
        self._offset = video_start + start  # overlay time 0 on the source's clock
        self._packets = (packet for packet in source.demux(in_stream) if packet.pts is not None)
        self._pending: av.Packet | None = None

    @classmethod
    def open(
        cls, audio: AudioSource, output: av.container.OutputContainer, container: str
    ) -> AudioCopy | None:
        """An `AudioCopy` of `audio` into `output` (a `container` file), or None: no sound to copy."""
        try:
            source = av.open(str(audio.path))
        except av.error.FFmpegError as exc:
            logger.warning("overlay: cannot read the sound of %s (%s); the overlay has none", audio.path, exc)
            return None
        if not source.streams.audio:
            source.close()
            return None
        codec = source.streams.audio[0].codec_context.name
        if codec not in AUDIO_CODECS.get(container, frozenset()):
            _warn_dropped_audio(audio.path, codec, container)
            source.close()
            return None
        return cls(source, output, audio.start)

    def mux_until(self, seconds: float) -> None:
        """Mux the packets that start before `seconds` of overlay time."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            time_base = packet.time_base
            start = float(packet.pts * time_base) - self._offset
            if start >= seconds:
                self._pending = packet
                return
            shift = round(self._offset / time_base)
            packet.pts -= shift
            packet.dts = None if packet.dts is None else packet.dts - shift
            if start < 0 or (packet.dts is not None and packet.dts < 0):
                continue  # sound before the first frame
            packet.stream = self._stream
            self._output.mux(packet)

    def close(self) -> None:
        """Close the source file."""
        self._input.close()


@functools.cache
def _warn_dropped_audio(path: Path, codec: str, container: str) -> None:
    """One warning per source, codec and container (every expression's overlay would repeat it)."""
    logger.warning("overlay: %s's sound (%s) cannot go in %s as is; it is left out", path, codec, container)


def overlay_timing(video: VideoSource) -> OverlayTiming:
    """The timing of `video`'s overlay: its exact rate, or its own timestamps when they are uneven."""
    rate = Fraction(video.fps).limit_denominator(_RATE_MAX_DENOMINATOR)
    times = video.timestamps
    step = 1 / video.fps
    if times is None or all(
        abs((later - earlier) - step) <= _CONSTANT_RATE_TOLERANCE * step
        for earlier, later in itertools.pairwise(times)
    ):
        return OverlayTiming(rate, 1 / rate, list(range(video.num_frames)))
    pts: list[int] = []
    for seconds in times:
        tick = round((seconds - times[0]) / VARIABLE_RATE_TIME_BASE)
        pts.append(max(tick, pts[-1] + 1) if pts else tick)
    return OverlayTiming(rate, VARIABLE_RATE_TIME_BASE, pts)


@functools.cache
def select_overlay_codec() -> OverlayCodec:
    """The first of `OVERLAY_CODECS` that this PyAV build can open; a fallback is warned about once.

    Raises:
        OutputError: PyAV can open none of them.
    """
    problems: list[str] = []
    for codec in OVERLAY_CODECS:
        problem = _encoder_problem(codec)
        if problem is None:
            if problems:
                logger.warning(
                    "overlay: %s; writing %s in %s instead%s",
                    "; ".join(problems),
                    codec.label,
                    codec.filename,
                    "" if codec.plays_in_browsers else ", which browsers do not play",
                )
            return codec
        problems.append(f"no {codec.label} encoder ({codec.encoder}: {problem})")
    raise OutputError(f"cannot write the overlay video: {'; '.join(problems)}")


def encode_video(
    path: Path,
    frames: Iterable[np.ndarray],
    codec: OverlayCodec,
    timing: OverlayTiming,
    frame_size: tuple[int, int],
    audio: AudioSource | None = None,
) -> None:
    """Encode RGB uint8 (H, W, 3) `frames` of size `frame_size` into the file `path`, timed by `timing`,
    with the sound of `audio` where the container can hold it unchanged (see `AudioCopy`).

    Raises:
        VideoEncodingError: the encoder or muxer failed, or `frames` and `timing` differ in length.
        OSError: the file cannot be written (disk full, permission denied, ...).
    """
    height, width = frame_size
    pad_rows, pad_columns = (height % 2, width % 2) if codec.even_size else (0, 0)
    count = 0
    try:
        with av.open(str(path), "w", format=codec.container, options=dict(codec.container_options)) as output:
            stream = output.add_stream(codec.encoder, rate=timing.rate)
            stream.width, stream.height = width + pad_columns, height + pad_rows
            stream.pix_fmt = "yuv420p"
            context = stream.codec_context
            context.time_base = timing.time_base
            context.options = dict(codec.encoder_options)
            sound = None if audio is None else AudioCopy.open(audio, output, codec.container)
            for frame in frames:
                if count == len(timing.pts):
                    raise VideoEncodingError(f"more frames than the {len(timing.pts)} timed")
                if pad_rows or pad_columns:
                    frame = cv2.copyMakeBorder(frame, 0, pad_rows, 0, pad_columns, cv2.BORDER_REPLICATE)
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                picture.pts, picture.time_base = timing.pts[count], timing.time_base
                output.mux(stream.encode(picture))
                if sound is not None:
                    sound.mux_until(timing.seconds(count))
                count += 1
            output.mux(stream.encode(None))  # flush the frames the encoder holds back
            if sound is not None:
                sound.mux_until(timing.duration)
                sound.close()
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError):
            raise
        raise VideoEncodingError(f"{codec.encoder}: {exc}") from exc
    if count != len(timing.pts):
        raise VideoEncodingError(f"{count} frames given, {len(timing.pts)} timed")


def _encoder_problem(codec: OverlayCodec) -> str | None:
    """Why `codec`'s encoder cannot be opened in this PyAV build, or None when it can."""
    try:
        context = av.codec.Codec(codec.encoder, "w").create()
        context.width, context.height, context.pix_fmt = 64, 64, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.options = dict(codec.encoder_options)
        context.open()
    except av.codec.codec.UnknownCodecError:
        return "not in this FFmpeg build"
    except (av.error.FFmpegError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None
