"""Frame sources: a video file, a folder of frames or a glob pattern, read as a stream of RGB frames.

`open_video` returns a `VideoSource`: random access to RGB uint8 (H, W, 3) frames that never holds the
decoded video in memory. Only a few recently decoded frames are kept (`cache_frames`), which is what the
model's access pattern needs: it reads about four context frames spread over the video, then walks every
frame in order, and in key-frame mode also backwards from the key frame.

Decoding follows the official GLUS code, because another decoder changes pixels: images with
``cv2.imread`` + ``cv2.cvtColor(BGR2RGB)``, videos with ``cv2.VideoCapture`` (FFmpeg backend).

Video files cost one cheap pass at open: container metadata (``CAP_PROP_FRAME_COUNT``) can be wrong, so
frames are counted exactly by grabbing them (demux + decode, no colour conversion; a few hundred frames
per second at 1080p), stopping early when ``max_frames`` needs no more. The same pass records a digest of
three frames; after seeking to them natively, the decoded frames must match, else the file is read by
decoding forward from the start whenever it has to seek backwards (exact, slower; logged).

The same pass records each frame's presentation timestamp as the decoder gives it (`timestamps`), so that
a variable-frame-rate video keeps its timing in the overlay. Folders and globs carry no frame rate and no
timestamps: they play at `DEFAULT_FPS` (24) unless `folder_fps` says otherwise. Their image headers are
checked at open (sizes must agree), without decoding the images.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import logging
import math
import os
import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
from PIL import Image

from glus_cli.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""Frame files a folder or glob may hold (case-insensitive); other files are ignored."""
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
"""Extensions named in error messages; any file FFmpeg can decode is accepted whatever its name."""
DEFAULT_FPS = 24.0
"""Frame rate of folders and globs, which carry none, and of videos whose container reports none."""
DEFAULT_CACHE_FRAMES = 8
"""Decoded frames kept per source; also the block decoded at once when walking a video backwards."""

_GRAB_RATHER_THAN_SEEK = 32
"""Decode forward instead of seeking when the target is at most this many frames ahead."""
_GLOB_CHARACTERS = frozenset("*?[")
_TEXT_CODECS = frozenset({"ansi", "bint", "xbin", "idf"})
"""FFmpeg codecs that render text files (ANSI art, binary text) as "video": not a video to segment."""


class VideoSource(ABC):
    """A sequence of RGB uint8 (H, W, 3) frames, read on demand.

    The sequence is the source subsampled by `stride` and `max_frames`; every index below is an index in
    that presented sequence. Use it as a context manager, or call `close`.

    Attributes:
        name: stem naming output folders (the video's file stem, or the frame folder's name).
        fps: frames per second of the presented sequence (the source's rate divided by `stride`, so an
            overlay of a subsampled video plays at real speed).
        frame_size: (H, W) of every frame.
        frame_names: one name per presented frame, naming its mask files: the image's stem for folders and
            globs, the zero-padded index in the original video (``"00042"``) for video files.
        source_indices: index of each presented frame in the original sequence.
        stride: every `stride`-th original frame is presented.
        timestamps: presentation time in seconds of each presented frame, from the start of the stream,
            strictly increasing, as the decoder gives them; None where the source has none (folders,
            globs) or the decoder gives none that can be trusted. A variable-frame-rate video has uneven
            steps here, while `fps` is only its average rate.
    """

    def __init__(
        self,
        *,
        name: str,
        fps: float,
        frame_size: tuple[int, int],
        frame_names: list[str],
        source_indices: list[int],
        stride: int,
        cache_frames: int,
        timestamps: list[float] | None = None,
    ) -> None:
        self.name = name
        self.fps = fps
        self.frame_size = frame_size
        self.frame_names = frame_names
        self.source_indices = source_indices
        self.stride = stride
        self.timestamps = timestamps
        self._cache_frames = max(1, cache_frames)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def num_frames(self) -> int:
        """Number of presented frames (exact)."""
        return len(self.source_indices)

    def read(self, index: int) -> np.ndarray:
        """Frame `index` of the presented sequence as a new RGB uint8 (H, W, 3) array.

        Raises:
            IndexError: `index` is outside ``[0, num_frames)``.
            InputError: the frame cannot be decoded or its size differs from `frame_size`.
        """
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is outside 0..{self.num_frames - 1}")
        frame = self._cache.get(index)
        if frame is None:
            frame = self._decode(index)
            self._remember(index, frame)
        else:
            self._cache.move_to_end(index)
        return frame.copy()

    def iter_frames(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for `indices` in the order given.

        Consecutive indices decode sequentially; a video seeks only on a jump, and a backward walk seeks
        once per `cache_frames` frames.
        """
        for index in indices:
            yield index, self.read(index)

    def close(self) -> None:
        """Release the decoder and the cached frames; the source cannot be read afterwards."""
        self._cache.clear()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        height, width = self.frame_size
        kind = type(self).__name__
        return f"{kind}({self.name!r}, {self.num_frames} frames, {width}×{height}, {self.fps:g} fps)"

    @abstractmethod
    def _decode(self, index: int) -> np.ndarray:
        """Decode presented frame `index` (RGB); may `_remember` neighbours decoded on the way."""

    @abstractmethod
    def _describe(self, index: int) -> str:
        """Where frame `index` comes from, for error messages."""

    def _remember(self, index: int, frame: np.ndarray) -> None:
        """Cache a decoded frame, checking its size, and evict the least recently used ones."""
        size = (int(frame.shape[0]), int(frame.shape[1]))
        if size != self.frame_size:
            raise InputError(
                f"{self._describe(index)} is {size[1]}×{size[0]}, but the first frame is "
                f"{self.frame_size[1]}×{self.frame_size[0]}; all frames must have one size"
            )
        self._cache[index] = frame
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)


class ImageSequenceSource(VideoSource):
    """Frames stored as image files (a folder, a glob, or a single image), in the order given."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        name: str,
        fps: float = DEFAULT_FPS,
        stride: int = 1,
        max_frames: int | None = None,
        cache_frames: int = DEFAULT_CACHE_FRAMES,
    ) -> None:
        source_indices = _subsample(len(paths), stride, max_frames)
        if not source_indices:
            raise InputError("no image files to read")
        self.paths = [paths[i] for i in source_indices]
        frame_names = [path.stem for path in self.paths]
        _check_unique_names(frame_names, self.paths)
        first = _read_image(self.paths[0])
        super().__init__(
            name=name,
            fps=fps / stride,
            frame_size=(int(first.shape[0]), int(first.shape[1])),
            frame_names=frame_names,
            source_indices=source_indices,
            stride=stride,
            cache_frames=cache_frames,
        )
        _check_image_sizes(self.paths, self.frame_size)
        self._remember(0, first)

    def _decode(self, index: int) -> np.ndarray:
        return _read_image(self.paths[index])

    def _describe(self, index: int) -> str:
        return str(self.paths[index])


class VideoFileSource(VideoSource):
    """Frames decoded from a video file with OpenCV's FFmpeg backend."""

    def __init__(
        self,
        path: Path,
        *,
        stride: int = 1,
        max_frames: int | None = None,
        cache_frames: int = DEFAULT_CACHE_FRAMES,
    ) -> None:
        self.path = path
        self._capture: cv2.VideoCapture | None = _open_capture(path)
        self._next = 0  # original index of the frame the capture decodes next
        needed = None if max_frames is None else (max_frames - 1) * stride + 1
        try:
            total, first, probes, timestamps = self._count_frames(needed)
        except BaseException:
            self._capture.release()
            raise
        native_fps = self._capture.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(native_fps) and native_fps > 0):
            logger.warning("%s reports no frame rate; assuming %g fps", path, DEFAULT_FPS)
            native_fps = DEFAULT_FPS
        source_indices = _subsample(total, stride, max_frames)
        super().__init__(
            name=path.stem,
            fps=native_fps / stride,
            frame_size=(int(first.shape[0]), int(first.shape[1])),
            frame_names=[f"{i:05d}" for i in source_indices],
            source_indices=source_indices,
            stride=stride,
            cache_frames=cache_frames,
            timestamps=_presented_timestamps(timestamps, source_indices, path),
        )
        self._remember(0, first)
        self._native_seek = self._seeks_exactly(probes)
        if not self._native_seek and total > 1:
            logger.info("%s: seeking not confirmed frame-exact; seeking by decoding from the start", path)

    def close(self) -> None:
        """Release the decoder and the cached frames; the source cannot be read afterwards."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        super().close()

    def _describe(self, index: int) -> str:
        return f"frame {self.source_indices[index]} of {self.path}"

    def _count_frames(self, needed: int | None) -> tuple[int, np.ndarray, dict[int, bytes], list[float]]:
        """Count the frames by grabbing them (up to `needed`).

        Returns:
            The count, frame 0, the probe digests, and every counted frame's timestamp in seconds (what
            the decoder reports after each grab; 0 where it has none).
        """
        capture = self._live_capture()
        reported = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        estimate = int(reported) if math.isfinite(reported) else 0
        if needed is not None:
            estimate = min(estimate, needed)
        probe_positions = {p for p in (estimate // 3, 2 * estimate // 3, estimate - 1) if p > 0}
        ok, bgr = capture.read()
        if not ok:
            raise InputError(f"video {self.path} has no frames")
        first = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        probes: dict[int, bytes] = {}
        timestamps = [capture.get(cv2.CAP_PROP_POS_MSEC) / 1000]
        count = 1
        while (needed is None or count < needed) and capture.grab():
            timestamps.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
            if count in probe_positions:
                ok, bgr = capture.retrieve()
                if ok:
                    probes[count] = _digest(bgr)
            count += 1
        self._next = count
        return count, first, probes, timestamps

    def _seeks_exactly(self, probes: dict[int, bytes]) -> bool:
        """Whether native seeking lands on the frames the counting pass saw at the probe positions."""
        capture = self._live_capture()
        for position, digest in sorted(probes.items()):
            if not self._native_seek_to(position):
                break
            ok, bgr = capture.read()
            if not ok or _digest(bgr) != digest:
                break
            self._next = position + 1
        else:
            return bool(probes)
        self._reopen()  # where a failed seek left the capture is unknown
        return False

    def _decode(self, index: int) -> np.ndarray:
        target = self.source_indices[index]
        if self._next <= target <= self._next + _GRAB_RATHER_THAN_SEEK:
            return self._decode_forward(target)
        if target > self._next:
            self._seek(target)
            return self._decode_forward(target)
        # Backwards: decode the block of frames ending at `index` once and keep it cached, so a backward
        # walk seeks once per block instead of once per frame.
        first = max(0, index - self._cache_frames + 1)
        self._seek(self.source_indices[first])
        for earlier in range(first, index):
            self._remember(earlier, self._decode_forward(self.source_indices[earlier]))
        return self._decode_forward(target)

    def _seek(self, target: int) -> None:
        """Position the capture so that it can decode forward to original frame `target`."""
        if self._native_seek:
            if self._native_seek_to(target):
                self._next = target
                return
            logger.warning("seeking in %s failed; seeking by decoding from the start from now on", self.path)
            self._native_seek = False
            self._reopen()
        elif target < self._next:
            self._reopen()

    def _native_seek_to(self, target: int) -> bool:
        capture = self._live_capture()
        return (
            bool(capture.set(cv2.CAP_PROP_POS_FRAMES, target))
            and round(capture.get(cv2.CAP_PROP_POS_FRAMES)) == target
        )

    def _reopen(self) -> None:
        self._live_capture().release()
        self._capture = _open_capture(self.path)
        self._next = 0

    def _decode_forward(self, target: int) -> np.ndarray:
        """Grab frames up to original frame `target` and return it decoded (RGB)."""
        capture = self._live_capture()
        while self._next < target:
            if not capture.grab():
                raise InputError(f"cannot decode frame {self._next} of {self.path}")
            self._next += 1
        ok, bgr = capture.read()
        if not ok:
            raise InputError(f"cannot decode frame {target} of {self.path}")
        self._next += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _live_capture(self) -> cv2.VideoCapture:
        if self._capture is None:
            raise ValueError(f"{self.path} was closed")
        return self._capture


def open_video(
    source: str | Path,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    folder_fps: float = DEFAULT_FPS,
    cache_frames: int = DEFAULT_CACHE_FRAMES,
) -> VideoSource:
    """Open a video file, a folder of frames, a glob pattern of frames, or a single image.

    Folders and globs hold images (`IMAGE_EXTENSIONS`, hidden files ignored) sorted by name in natural
    order, so ``frame2`` comes before ``frame10``. Subsampling keeps every `stride`-th frame, then at
    most `max_frames` of them; the source presents only that subsequence.

    Args:
        source: path of a video file, a frame folder or an image, or a glob pattern such as
            ``"clips/*.png"``.
        stride: keep every `stride`-th frame (1: all).
        max_frames: keep at most this many frames after striding (None: all).
        folder_fps: frame rate of a folder, glob or image, which carry none (videos use their own).
        cache_frames: decoded frames kept in memory.

    Raises:
        InputError: the source is missing, not a video or images, undecodable, empty, holds images of
            different sizes, or an option is out of range.
    """
    if stride < 1:
        raise InputError(f"stride must be at least 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max-frames must be at least 1, got {max_frames}")
    if not (math.isfinite(folder_fps) and folder_fps > 0):
        raise InputError(f"fps must be a positive number, got {folder_fps}")
    options = {"stride": stride, "max_frames": max_frames, "cache_frames": cache_frames}
    path = Path(source).expanduser()
    if path.is_dir():
        paths = _images_in(path)
        if not paths:
            raise InputError(f"folder {path} holds no images ({_extension_list()})")
        return ImageSequenceSource(paths, name=path.resolve().name, fps=folder_fps, **options)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageSequenceSource([path], name=path.stem, fps=folder_fps, **options)
        return VideoFileSource(path, **options)
    if _has_glob_characters(str(source)):
        return _open_glob(str(path), folder_fps=folder_fps, **options)
    if path.exists():
        raise InputError(f"{path} is neither a video file nor a folder of frames")
    raise InputError(f"{path} does not exist")


def estimate_num_frames(source: Path, *, stride: int = 1, max_frames: int | None = None) -> int:
    """Frames `open_video` would present, estimated without decoding (for planning work, not for indexing).

    A folder counts its image files; a video file trusts its container's ``CAP_PROP_FRAME_COUNT``, which
    `VideoFileSource` does not (it may be wrong), hence "estimate". An unreadable source counts 0.
    """
    if source.is_dir():
        total = len(_images_in(source))
    else:
        capture = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
        reported = capture.get(cv2.CAP_PROP_FRAME_COUNT) if capture.isOpened() else 0.0
        capture.release()
        total = int(reported) if math.isfinite(reported) and reported > 0 else 0
    return len(_subsample(total, stride, max_frames))


def natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key ordering runs of digits by value: ``frame2`` < ``frame10``, ``00009`` < ``00010``."""
    parts: list[str | int] = [
        int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name))
    ]
    return parts, name


def _has_glob_characters(text: str) -> bool:
    return any(character in _GLOB_CHARACTERS for character in text)


def _open_glob(pattern: str, *, folder_fps: float, **options: int | None) -> VideoSource:
    # glob.glob, not Path.glob: the pattern may be absolute ("/data/clip/*.jpg"), which pathlib refuses.
    matches = [Path(match) for match in glob.glob(pattern, recursive=True)]  # noqa: PTH207
    if not matches:
        raise InputError(f"no files match {pattern}")
    paths = sorted(
        (p for p in matches if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: natural_key(str(p)),
    )
    if not paths:
        raise InputError(f"no images match {pattern} ({_extension_list()})")
    folders = {str(p.parent.resolve()) for p in paths}
    name = Path(os.path.commonpath(sorted(folders))).name or "frames"
    return ImageSequenceSource(paths, name=name, fps=folder_fps, **options)


def _images_in(folder: Path) -> list[Path]:
    """The visible image files directly inside `folder`, in natural order."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc
    images = [
        p
        for p in entries
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(images, key=lambda p: natural_key(p.name))


def _subsample(total: int, stride: int, max_frames: int | None) -> list[int]:
    """Original indices kept by `stride` then `max_frames`."""
    return list(range(0, total, stride))[:max_frames]


def _presented_timestamps(
    timestamps: Sequence[float], source_indices: Sequence[int], path: Path
) -> list[float] | None:
    """The timestamps of the presented frames, or None unless every counted frame has a distinct one.

    OpenCV reports a frame without a timestamp as 0 ms, and some containers give a run of equal ones: only
    strictly increasing, finite times describe the frames' timing.
    """
    trusted = all(math.isfinite(t) for t in timestamps) and all(
        later > earlier for earlier, later in itertools.pairwise(timestamps)
    )
    if not trusted:
        logger.info("%s: the decoder gives no usable frame timestamps; outputs use its frame rate", path)
        return None
    return [timestamps[i] for i in source_indices]


def _check_unique_names(names: Sequence[str], paths: Sequence[Path]) -> None:
    """Two frames with one stem (``00000.jpg`` and ``00000.png``) would write the same mask file."""
    seen: dict[str, Path] = {}
    for name, path in zip(names, paths, strict=True):
        if name in seen:
            raise InputError(f"{seen[name]} and {path} would both name frame {name!r}; keep one of them")
        seen[name] = path


def _check_image_sizes(paths: Sequence[Path], frame_size: tuple[int, int]) -> None:
    """Check that every image decodes to `frame_size`, reading headers only.

    A header size not seen before is confirmed by decoding the image, because ``cv2.imread`` applies
    EXIF rotation (a rotated photo's header size differs from its decoded size). An image whose header
    PIL cannot parse is decoded too, which reports unreadable files here rather than mid-run.
    """
    first = paths[0]
    confirmed = {_header_size(first)}
    for path in paths[1:]:
        header = _header_size(path)
        if header is not None and header in confirmed:
            continue
        image = _read_image(path)
        size = (int(image.shape[0]), int(image.shape[1]))
        if size != frame_size:
            raise InputError(
                f"{path} is {size[1]}×{size[0]}, but {first.name} is {frame_size[1]}×{frame_size[0]}; "
                "all frames must have one size"
            )
        confirmed.add(header)


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the image header, or None when PIL cannot parse it."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return height, width


def _read_image(path: Path) -> np.ndarray:
    """Decode an image as the official GLUS code does: ``cv2.imread`` then BGR to RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _open_capture(path: Path) -> cv2.VideoCapture:
    # The FFmpeg backend explicitly: the default would treat a name with '%' as an image sequence.
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if capture.isOpened() and _codec_name(capture) not in _TEXT_CODECS:
        return capture
    capture.release()
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        raise InputError(f"cannot decode video {path}: the file is corrupt or in a format OpenCV cannot read")
    raise InputError(f"{path} is not a video, a folder of frames or a glob pattern that OpenCV can read")


def _codec_name(capture: cv2.VideoCapture) -> str:
    """The stream's FourCC as text (OpenCV reports the FFmpeg codec name's first letters if untagged)."""
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    return fourcc.to_bytes(4, "little").decode("latin-1").rstrip("\0 ").lower()


def _digest(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()


def _extension_list() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))
