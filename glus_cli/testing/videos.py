"""Small deterministic videos and frame folders for tests, drawn with OpenCV.

Every frame is a function of its index only: a textured background that scrolls one pixel to the left per
frame (so consecutive frames always differ, and an off-by-one seek shows) under filled shapes that move in
straight lines and bounce off the borders. `synthetic_mask` gives a shape's silhouette in any frame, to
serve as ground truth.

Frames are RGB uint8 (H, W, 3); sizes are (H, W), as everywhere in glus-cli. OpenCV's FFmpeg writer crops
odd sizes to even ones, so videos need even sizes (98×130, say); frame folders may have any size (97×131).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class Shape:
    """A filled shape moving at constant velocity and bouncing inside the frame.

    Attributes:
        kind: ``"circle"`` or ``"rectangle"`` (a square).
        color: RGB fill colour.
        start: (y, x) of the centre in frame 0, as fractions of (H, W).
        velocity: (dy, dx) per frame, as fractions of (H, W).
        radius: radius (half side for a rectangle) as a fraction of min(H, W).
    """

    kind: Literal["circle", "rectangle"]
    color: tuple[int, int, int]
    start: tuple[float, float]
    velocity: tuple[float, float]
    radius: float


DEFAULT_SHAPES = (
    Shape("circle", (230, 40, 40), start=(0.3, 0.25), velocity=(0.02, 0.05), radius=0.18),
    Shape("rectangle", (40, 200, 70), start=(0.7, 0.75), velocity=(-0.03, -0.04), radius=0.14),
)
"""A red circle and a green square crossing each other."""


def synthetic_frame(
    index: int, size: tuple[int, int], shapes: Sequence[Shape] = DEFAULT_SHAPES
) -> np.ndarray:
    """Frame `index` as RGB uint8 (H, W, 3): the scrolled background with `shapes` drawn in order."""
    frame = _background(index, size)
    for shape in shapes:
        _draw(frame, index, shape, shape.color)
    return frame


def synthetic_mask(index: int, size: tuple[int, int], shape: Shape = DEFAULT_SHAPES[0]) -> np.ndarray:
    """Bool (H, W) silhouette of `shape` in frame `index`, ignoring shapes drawn over it."""
    canvas = np.zeros((*size, 3), np.uint8)
    _draw(canvas, index, shape, (255, 255, 255))
    return canvas[..., 0] > 0


def write_synthetic_video(
    path: str | Path,
    num_frames: int,
    size: tuple[int, int] = (98, 130),
    fps: float = 7.5,
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    codec: str = "mp4v",
) -> Path:
    """Write `num_frames` synthetic frames to a video file and return its path.

    Args:
        path: output file; its extension picks the container (``.mp4``, ``.avi``, ...).
        num_frames: number of frames (0 writes a container with no frames, where the codec allows).
        size: (H, W); both must be even.
        fps: frame rate stored in the container (odd rates such as 29.97 read back exactly with mp4v).
        shapes: the moving shapes.
        codec: FourCC; ``mp4v`` is exact in frame count, fps and seeking, ``MJPG`` suits ``.avi``.

    Raises:
        ValueError: `size` is odd.
        RuntimeError: OpenCV cannot open a writer for this codec and container.
    """
    height, width = size
    if height % 2 or width % 2:
        raise ValueError(f"videos need an even size (OpenCV crops odd ones), got {height}×{width}")
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {codec!r} to {path}")
    try:
        for index in range(num_frames):
            writer.write(cv2.cvtColor(synthetic_frame(index, size, shapes), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_variable_rate_video(
    path: str | Path,
    timestamps: Sequence[float],
    size: tuple[int, int] = (64, 90),
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
) -> Path:
    """Write a variable-frame-rate MP4: synthetic frame i shown at ``timestamps[i]`` seconds; return its path.

    OpenCV's writer knows only constant rates, so this one is written with PyAV (MPEG-4 Part 2, a clock of
    1/1000 s). `timestamps` must be strictly increasing multiples of a millisecond; `size` (H, W) even.
    """
    path = Path(path)
    height, width = size
    clock = Fraction(1, 1000)
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = clock
        for index, seconds in enumerate(timestamps):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(index, size, shapes), format="rgb24")
            frame.pts, frame.time_base = round(seconds / clock), clock
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def write_video_with_sound(
    path: str | Path,
    num_frames: int,
    size: tuple[int, int] = (64, 96),
    fps: int = 10,
    audio_codec: str = "aac",
    sample_rate: int = 16000,
) -> Path:
    """Write synthetic frames (MPEG-4 Part 2) with a sine tone in `audio_codec` as long as the frames;
    return the path. The container follows the extension (``.mp4``, ``.mov``, ...); `size` (H, W) even."""
    path = Path(path)
    height, width = size
    with av.open(str(path), "w") as output:
        video = output.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream(audio_codec, rate=sample_rate)
        audio.layout = "mono"
        samples_per_frame = sample_rate // fps
        tone = np.sin(2 * np.pi * 440 * np.arange(samples_per_frame * num_frames) / sample_rate)
        sound = (tone * 0.2 * 32767).astype(np.int16)
        frame_format = audio.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=frame_format, layout="mono", rate=sample_rate)
        for index in range(num_frames):
            picture = av.VideoFrame.from_ndarray(synthetic_frame(index, size), format="rgb24")
            picture.pts = index
            output.mux(video.encode(picture))
            chunk = sound[index * samples_per_frame : (index + 1) * samples_per_frame].reshape(1, -1)
            block = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            block.sample_rate, block.pts = sample_rate, index * samples_per_frame
            for converted in resampler.resample(block):
                output.mux(audio.encode(converted))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    return path


def write_frame_folder(
    folder: str | Path,
    num_frames: int,
    size: tuple[int, int] = (97, 131),
    ext: Literal["jpg", "png"] = "jpg",
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
) -> Path:
    """Write synthetic frames as ``00000.<ext>``, ``00001.<ext>``, ... (the MeViS layout); return the folder.

    PNG frames read back exactly; JPEG frames are lossy (OpenCV's default quality, 95).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        bgr = cv2.cvtColor(synthetic_frame(index, size, shapes), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(folder / f"{index:05d}.{ext}"), bgr):
            raise RuntimeError(f"OpenCV cannot write {folder / f'{index:05d}.{ext}'}")
    return folder


def _background(index: int, size: tuple[int, int]) -> np.ndarray:
    """A smooth texture plus an 8-pixel checker, scrolled left by `index` pixels."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x += index
    checker = 24.0 * ((y // 8 + x // 8) % 2)
    red = 90 + 40 * np.sin(x / 5) + checker
    green = 110 + 40 * np.cos(y / 7) + checker
    blue = 100 + 30 * np.sin((x + y) / 9) + checker
    return np.stack([red, green, blue], axis=-1).round().astype(np.uint8)


def _draw(canvas: np.ndarray, index: int, shape: Shape, color: tuple[int, int, int]) -> None:
    height, width = canvas.shape[:2]
    cy = _bounce(shape.start[0] + shape.velocity[0] * index) * (height - 1)
    cx = _bounce(shape.start[1] + shape.velocity[1] * index) * (width - 1)
    radius = max(1, round(shape.radius * min(height, width)))
    center = (round(cx), round(cy))
    if shape.kind == "circle":
        cv2.circle(canvas, center, radius, color, thickness=-1)
    else:
        corner0 = (center[0] - radius, center[1] - radius)
        corner1 = (center[0] + radius, center[1] + radius)
        cv2.rectangle(canvas, corner0, corner1, color, thickness=-1)


def _bounce(position: float) -> float:
    """Fold a position on the real line into [0, 1], as if bouncing between the borders."""
    return 1.0 - abs(position % 2.0 - 1.0)
