"""Mask outputs (PNG, DAVIS palette PNG, COCO RLE JSON, overlay video), all written atomically.

Masks arrive one frame at a time, as the model produces them, in no guaranteed order: key-frame mode
produces frames k..n-1, then k..0, so frame k arrives twice and the last write wins. `open_writers`
returns a `MaskWriterSet` writing any of `FORMATS` into one expression's folder:

- ``png``: ``<frame_name>.png``, single channel, 0 background, 255 object (the benchmark submission
  layout ``<video>/<exp_id>/<frame>.png``), written as each mask arrives.
- ``palette``: ``palette/<frame_name>.png``, DAVIS-style indexed PNG (mode "P", 0 background, 1 object,
  DAVIS palette), written as each mask arrives.
- ``rle``: ``masks_rle.json``, frame name → COCO RLE ``{"size": [h, w], "counts": "..."}``, written at
  close.
- ``overlay``: ``overlay.mp4`` (H.264; one frame per source frame at the source's timing, the mask tinted
  red with its contour; frames without a mask untinted), written at close by re-reading the source in
  order. Where PyAV has no H.264 encoder it is VP9 in ``overlay.webm``, then mp4v (see `glus_cli.overlay`).

Until close, masks are kept as COCO RLE (a few kB per frame), never decoded frames, so memory stays small
however long the video is. Every file is written atomically (`glus_cli.files`): a final name always
holds a complete file. Leaving the `with` block by an exception
writes nothing more: files already finished stay, the at-close outputs (RLE, overlay) are not written.
Disk-full and permission problems become `OutputError` naming the path.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from glus_cli.errors import InputError, OutputError
from glus_cli.files import atomic_write_bytes, fsync_file, output_errors, temporary_for, write_json_atomic
from glus_cli.overlay import (
    H264,
    AudioSource,
    OverlayCodec,
    VideoEncodingError,
    encode_video,
    overlay_timing,
    select_overlay_codec,
)
from glus_cli.video import VideoFileSource, VideoSource

logger = logging.getLogger(__name__)

FORMATS = ("png", "palette", "rle", "overlay")
"""Output formats, in the order they are documented."""
PALETTE_DIRNAME = "palette"
RLE_FILENAME = "masks_rle.json"
OVERLAY_FILENAME = H264.filename
"""The overlay's file name with the preferred codec (``overlay.webm`` after a fallback to VP9)."""
OVERLAY_COLOR = (255, 0, 0)
"""RGB tint and contour colour of the overlay video."""
OVERLAY_ALPHA = 0.5
"""Weight of `OVERLAY_COLOR` in masked pixels."""

RLE = dict[str, Any]
"""A pycocotools RLE: ``{"size": [h, w], "counts": bytes}``."""


def davis_palette() -> bytes:
    """The 256-colour DAVIS (PASCAL VOC) palette as 768 RGB bytes: 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ...

    Colour ``i`` spreads the bits of ``i`` over the channels, most significant bit first: bit 0 to red,
    bit 1 to green, bit 2 to blue, then the next three bits one position lower, and so on.
    """
    palette = bytearray()
    for index in range(256):
        red = green = blue = 0
        bits = index
        for shift in range(7, -1, -1):
            red |= (bits & 1) << shift
            green |= ((bits >> 1) & 1) << shift
            blue |= ((bits >> 2) & 1) << shift
            bits >>= 3
        palette += bytes((red, green, blue))
    return bytes(palette)


DAVIS_PALETTE = davis_palette()


def validate_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise output format names (``"png,rle"`` or ``["png", "rle"]``), dropping repeats.

    The CLI should call it before loading the model, so that a typo fails at once.

    Raises:
        InputError: a name is not one of `FORMATS`, or none is given.
    """
    if isinstance(formats, str):
        formats = [formats]
    names = [name.strip().lower() for item in formats for name in item.split(",") if name.strip()]
    for name in names:
        if name not in FORMATS:
            raise InputError(f"unknown output format {name!r}; choose from {', '.join(FORMATS)}")
    if not names:
        raise InputError(f"choose at least one output format ({', '.join(FORMATS)})")
    return tuple(dict.fromkeys(names))


def overlay_mask(
    frame: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = OVERLAY_COLOR,
    alpha: float = OVERLAY_ALPHA,
) -> np.ndarray:
    """A copy of RGB `frame` with bool `mask` tinted in `color` and its outer contour drawn in `color`."""
    out = frame.copy()
    tint = np.asarray(color, np.float32)
    out[mask] = (out[mask].astype(np.float32) * (1 - alpha) + tint * alpha).round().astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(min(mask.shape) / 200))
    cv2.drawContours(out, contours, -1, color, thickness)
    return out


class MaskWriterSet:
    """Writes one expression's masks in several formats; create it with `open_writers`.

    The `VideoSource` must stay open until `close`, which re-reads it for the overlay.

    Attributes:
        formats: the formats written.
        out_dir: the expression's folder.
        paths: where each format goes: a folder for ``png`` and ``palette``, a file otherwise.
        overlay: the overlay's codec, None when ``overlay`` is not among the formats.
    """

    def __init__(self, formats: str | Sequence[str], out_dir: Path, video: VideoSource) -> None:
        self.formats = validate_formats(formats)
        self.out_dir = Path(out_dir)
        self._video = video
        self.paths: dict[str, Path] = {}
        self.overlay: OverlayCodec | None = None
        self._frame_writers: list[_FrameWriter] = []
        self._final_writers: list[_FinalWriter] = []
        for name in self.formats:
            if name == "png":
                self._frame_writers.append(_PngWriter(self.out_dir, video.frame_names))
                self.paths[name] = self.out_dir
            elif name == "palette":
                self._frame_writers.append(_PaletteWriter(self.out_dir / PALETTE_DIRNAME, video.frame_names))
                self.paths[name] = self.out_dir / PALETTE_DIRNAME
            elif name == "rle":
                self._final_writers.append(_RleWriter(self.out_dir / RLE_FILENAME, video.frame_names))
                self.paths[name] = self.out_dir / RLE_FILENAME
            else:
                self.overlay = select_overlay_codec()
                self.paths[name] = self.out_dir / self.overlay.filename
                self._final_writers.append(_OverlayWriter(self.paths[name], video, self.overlay))
        with output_errors(self.out_dir):
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if "palette" in self.paths:
            with output_errors(self.paths["palette"]):
                self.paths["palette"].mkdir(exist_ok=True)
        self._masks: dict[int, RLE] = {}  # for the writers that run at close
        self._closed = False

    def write(self, index: int, mask: np.ndarray) -> None:
        """Write the bool (H, W) mask of presented frame `index`, replacing an earlier one.

        Raises:
            IndexError: `index` is not a frame of the video.
            ValueError: the mask's shape is not the video's frame size, or the set is closed.
            OutputError: a file cannot be written.
        """
        if self._closed:
            raise ValueError("write to a closed MaskWriterSet")
        if not 0 <= index < self._video.num_frames:
            raise IndexError(f"frame {index} is outside 0..{self._video.num_frames - 1}")
        mask = np.asarray(mask)
        if mask.shape != self._video.frame_size:
            raise ValueError(f"mask of frame {index} is {mask.shape}, expected {self._video.frame_size}")
        mask = mask.astype(bool, copy=False)
        for writer in self._frame_writers:
            writer.write(index, mask)
        if self._final_writers:
            self._masks[index] = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))

    def close(self) -> None:
        """Write the at-close outputs (RLE JSON, overlay video); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        missing = self._video.num_frames - len(self._masks)
        if self._final_writers and missing:
            logger.info("%d of %d frames have no mask in %s", missing, self._video.num_frames, self.out_dir)
        try:
            for writer in self._final_writers:
                writer.finish(self._masks)
        finally:
            self._masks.clear()

    def abort(self) -> None:
        """Stop without writing the at-close outputs, which would look complete; finished files stay."""
        self._closed = True
        self._masks.clear()

    def __enter__(self) -> MaskWriterSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_writers(formats: str | Sequence[str], out_dir: Path, video: VideoSource) -> MaskWriterSet:
    """Writers for `formats` (see `FORMATS`) of `video`'s masks into `out_dir`, created if needed.

    Raises:
        InputError: an unknown format name.
        OutputError: `out_dir` cannot be created.
    """
    return MaskWriterSet(formats, out_dir, video)


class _FrameWriter(Protocol):
    """Writes each mask as soon as it arrives."""

    def write(self, index: int, mask: np.ndarray) -> None: ...


class _FinalWriter(Protocol):
    """Writes once, at close, from every frame's last mask (COCO RLE by presented index)."""

    def finish(self, masks: Mapping[int, RLE]) -> None: ...


class _PngWriter:
    """``<frame_name>.png``: single-channel 0/255."""

    def __init__(self, folder: Path, frame_names: Sequence[str]) -> None:
        self._folder = folder
        self._names = frame_names

    def write(self, index: int, mask: np.ndarray) -> None:
        image = Image.fromarray(mask.astype(np.uint8) * 255)
        atomic_write_bytes(self._folder / f"{self._names[index]}.png", _png_bytes(image))


class _PaletteWriter:
    """``<frame_name>.png``: indexed, 0 background, 1 object, DAVIS palette."""

    def __init__(self, folder: Path, frame_names: Sequence[str]) -> None:
        self._folder = folder
        self._names = frame_names

    def write(self, index: int, mask: np.ndarray) -> None:
        height, width = mask.shape
        image = Image.frombytes("P", (width, height), mask.astype(np.uint8).tobytes())
        image.putpalette(DAVIS_PALETTE)
        atomic_write_bytes(self._folder / f"{self._names[index]}.png", _png_bytes(image))


class _RleWriter:
    """One JSON file: frame name → COCO RLE with string counts, in frame order."""

    def __init__(self, path: Path, frame_names: Sequence[str]) -> None:
        self._path = path
        self._names = frame_names

    def finish(self, masks: Mapping[int, RLE]) -> None:
        document = {
            self._names[index]: {
                "size": [int(v) for v in rle["size"]],
                "counts": rle["counts"].decode("ascii"),
            }
            for index, rle in sorted(masks.items())
        }
        write_json_atomic(self._path, document)


class _OverlayWriter:
    """The source with the masks tinted, one frame per source frame, in `codec`."""

    def __init__(self, path: Path, video: VideoSource, codec: OverlayCodec) -> None:
        self._path = path
        self._video = video
        self._codec = codec

    def finish(self, masks: Mapping[int, RLE]) -> None:
        video = self._video
        logger.info("writing %s (%d frames, %s)", self._path, video.num_frames, self._codec.label)
        frames = (
            frame if (rle := masks.get(index)) is None else overlay_mask(frame, mask_utils.decode(rle) > 0)
            for index, frame in video.iter_frames(range(video.num_frames))
        )
        suffix = self._path.suffix  # PyAV is told the container; the suffix keeps the temporary recognisable
        with output_errors(self._path), temporary_for(self._path, suffix) as temporary:
            try:
                encode_video(
                    temporary, frames, self._codec, overlay_timing(video), video.frame_size, _audio_of(video)
                )
            except VideoEncodingError as exc:
                raise OutputError(f"cannot encode overlay video {self._path}: {exc}") from exc
            fsync_file(temporary)
            temporary.replace(self._path)


def _audio_of(video: VideoSource) -> AudioSource | None:
    """The sound the overlay of `video` keeps: a video file's, from its first presented frame on."""
    if not isinstance(video, VideoFileSource):
        return None
    return AudioSource(video.path, video.timestamps[0] if video.timestamps else 0.0)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
