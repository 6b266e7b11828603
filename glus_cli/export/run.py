"""`export_run`: read a run folder, filter its masks, write one format into a new folder atomically.

The run is read video by video and expression by expression, one mask at a time (`glus_cli.run_folder`);
the exporters keep at most one video's compressed masks (MOTS, YOLO) and stream COCO and YouTube-VIS
annotations to disk, so memory does not grow with the number of expressions. ``export.json`` in the
output folder records the source run, the options, the categories and what was kept and dropped.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from glus_cli import __version__
from glus_cli.confidence import CONFIDENCE_NAME
from glus_cli.errors import InputError, OutputError
from glus_cli.export.categories import Categories
from glus_cli.export.coco import CocoExporter
from glus_cli.export.instances import ExportCounts, Filters, Track, VideoExport, frame_file
from glus_cli.export.mots import MotsExporter
from glus_cli.export.output import check_output, place_image, staged_output, write_json
from glus_cli.export.yolo import YoloExporter
from glus_cli.export.ytvis import YtvisExporter
from glus_cli.run_folder import ExpressionRun, RunFolder, VideoRun, read_run_folder
from glus_cli.video import VideoSource

logger = logging.getLogger(__name__)

FORMATS = ("coco", "ytvis", "yolo", "mots")
"""Export formats, in the order they are documented."""
RECORD_FILE = "export.json"
EXTRACTED_IMAGES = "images"
"""Where COCO and YouTube-VIS exports put the frames (their file names are relative to it)."""


@dataclass(frozen=True)
class ExportOptions:
    """What `export_run` writes.

    Attributes:
        format: one of `FORMATS`.
        filters: the confidence filter.
        category: put every expression under this one category (default: one per distinct text).
        categories_file: a JSON file mapping ``"<video>/<exp_id>"`` or ``"<exp_id>"`` to category names.
        polygons: COCO polygons instead of RLE.
        results: YouTube-VIS results flavour (a list with scores) instead of the dataset flavour.
        copy: copy the frames into the output instead of linking them.
        strict: refuse a run with unfinished expressions instead of skipping them with a warning.
        frames_root: where the frames are, overriding the run's record (see `read_run_folder`).
        force: replace an existing output folder.
    """

    format: str
    filters: Filters = field(default_factory=Filters)
    category: str | None = None
    categories_file: Path | None = None
    polygons: bool = False
    results: bool = False
    copy: bool = False
    strict: bool = False
    frames_root: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: the output folder, its files, the counts (``export.json``'s content)."""

    out: Path
    files: list[str]
    counts: ExportCounts
    record: dict[str, Any]


class _Exporter(Protocol):
    def add_video(self, video: VideoExport) -> None: ...

    def finish(self) -> list[str]: ...


def check_format(name: str) -> str:
    """`name` if it is one of `FORMATS` (case-insensitive).

    Raises:
        InputError: an unknown format.
    """
    normalised = name.strip().lower()
    if normalised not in FORMATS:
        raise InputError(f"unknown export format {name!r}; choose from {', '.join(FORMATS)}")
    return normalised


def export_run(
    run_path: Path, out: Path, options: ExportOptions, *, progress: Callable[[int, int], None] | None = None
) -> ExportReport:
    """Export the run in `run_path` as `options.format` into the new folder `out`.

    Args:
        run_path: a ``glus segment``, ``glus batch`` or ``glus keyframes`` output folder.
        out: the output folder (must not exist unless `options.force`).
        options: what to write.
        progress: called with (videos done, videos to export) at the start and after each video.

    Raises:
        InputError: not a run folder, an unfinished expression with `options.strict`, missing scores for
            the filter, masks and frames of different sizes, a bad categories file, an unknown format.
        OutputError: `out` exists (without `force`) or cannot be written.
    """
    fmt = check_format(options.format)
    check_output(out, force=options.force)
    if options.category is not None and options.categories_file is not None:
        raise InputError("--category and --categories cannot be used together")
    run = read_run_folder(run_path, frames_root=options.frames_root)
    if out.resolve() == run.path.resolve() or run.path.resolve() in out.resolve().parents:
        raise OutputError(f"{out} is inside the run folder {run.path}; choose an -o outside it")
    counts = ExportCounts()
    _check_unfinished(run, counts, strict=options.strict)
    expressions = list(run.expressions())
    if not expressions:
        raise InputError(f"{run.path} holds no finished expression to export")
    _check_scores(run, options.filters)
    categories = _categories(options, expressions)
    try:
        with staged_output(out, force=options.force) as staging:
            exporter = _exporter(fmt, staging, categories, options)
            tracks = _tracks(run, categories)
            videos = [video for video in run.videos if video.expressions]
            for done, video in enumerate(videos):
                if progress is not None:
                    progress(done, len(videos))
                _export_video(run, video, tracks[video.name], staging, exporter, options, counts)
            if progress is not None:
                progress(len(videos), len(videos))
            files = exporter.finish()
            record = _record(run, fmt, options, categories, counts, files, exporter)
            write_json(staging / RECORD_FILE, record)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"no space left on the disk to write {out}") from error
        raise OutputError(f"cannot write {out}: {error.strerror or error}") from error
    return ExportReport(out, [*files, RECORD_FILE], counts, record)


def _check_unfinished(run: RunFolder, counts: ExportCounts, *, strict: bool) -> None:
    for video in run.videos:
        for folder in video.unfinished:
            counts.unfinished_expressions.append(f"{video.name}/{folder.name}")
    if not counts.unfinished_expressions:
        return
    first = counts.unfinished_expressions[0]
    if strict:
        raise InputError(
            f"{run.path} has {len(counts.unfinished_expressions)} unfinished expression(s) "
            f"(no expression.json), first {first}; finish the run (rerun it with the same -o) "
            "or drop --strict to skip them"
        )
    logger.warning(
        "skipping %d unfinished expression(s) without expression.json, first %s",
        len(counts.unfinished_expressions),
        first,
    )


def _check_scores(run: RunFolder, filters: Filters) -> None:
    """The SAM2 score filters need per-frame scores, which older runs did not record."""
    if not filters.needs_scores:
        return
    for expression in run.expressions():
        if not expression.frame_answers().scores_recorded:
            raise InputError(
                f"{expression.folder} has no {CONFIDENCE_NAME} with per-frame SAM2 scores (written by an "
                "older glus-cli), so --min-iou and --min-object-score cannot apply; rerun it or drop them"
            )


def _categories(options: ExportOptions, expressions: list[ExpressionRun]) -> Categories:
    if options.category is not None:
        return Categories.single(options.category, expressions)
    if options.categories_file is not None:
        return Categories.from_file(options.categories_file, expressions)
    return Categories.by_text(expressions)


def _tracks(run: RunFolder, categories: Categories) -> dict[str, list[Track]]:
    """One track per finished expression: ids unique over the export, and 1-based within each video."""
    tracks: dict[str, list[Track]] = {}
    next_id = 1
    for video in run.videos:
        tracks[video.name] = []
        for local_id, expression in enumerate(video.expressions, start=1):
            tracks[video.name].append(Track(expression, categories.id_of(expression), next_id, local_id))
            next_id += 1
    return tracks


def _exporter(fmt: str, staging: Path, categories: Categories, options: ExportOptions) -> _Exporter:
    if fmt == "coco":
        return CocoExporter(staging, categories, polygons=options.polygons)
    if fmt == "ytvis":
        return YtvisExporter(staging, categories, results=options.results)
    if fmt == "yolo":
        return YoloExporter(staging, categories, copy=options.copy)
    return MotsExporter(staging, categories, copy=options.copy)


def _export_video(
    run: RunFolder,
    video: VideoRun,
    tracks: list[Track],
    staging: Path,
    exporter: _Exporter,
    options: ExportOptions,
    counts: ExportCounts,
) -> None:
    with run.open_frames(video) as frames:
        file_names = _file_names(video, frames, staging, options)
        counts.videos += 1
        counts.expressions += len(tracks)
        exporter.add_video(VideoExport(video.name, frames, tracks, file_names, options.filters, counts))


def _file_names(video: VideoRun, frames: VideoSource, staging: Path, options: ExportOptions) -> list[str]:
    """Each frame's ``<video>/<image file>`` (COCO ``file_name``, YTVIS ``file_names``), relative to the
    frames' root and to ``images/`` in the output. COCO and YouTube-VIS exports put the frames there (links,
    or copies with ``--copy``; frames of a video file are written as JPEG); YOLO and MOTS place their own.
    """
    names = []
    for index, name in enumerate(frames.frame_names):
        image = frame_file(frames, index)
        if options.format in ("coco", "ytvis"):
            stem = staging / EXTRACTED_IMAGES / video.name / name
            names.append(f"{video.name}/{place_image(frames, index, image, stem, copy=options.copy)}")
        else:
            names.append(f"{video.name}/{name}{'.jpg' if image is None else image.suffix.lower()}")
    return names


def _record(
    run: RunFolder,
    fmt: str,
    options: ExportOptions,
    categories: Categories,
    counts: ExportCounts,
    files: list[str],
    exporter: _Exporter,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "glus_cli_version": __version__,
        "command": "export",
        "format": fmt,
        "run": str(run.path.resolve()),
        "run_command": run.command,
        "frames_root": None if run.frames_root is None else str(run.frames_root.resolve()),
        "files": files,
        "options": {
            **asdict(options.filters),
            "category": options.category,
            "categories_file": None if options.categories_file is None else str(options.categories_file),
            "polygons": options.polygons,
            "results": options.results,
            "copy": options.copy,
            "strict": options.strict,
        },
        "categories": categories.names,
        "counts": counts.as_dict(),
    }
    if isinstance(exporter, MotsExporter):
        record["counts"]["overlap_pixels"] = exporter.overlap_pixels
        record["overlap_rule"] = "highest SAM2 predicted IoU wins; ties go to the expression listed first"
    return record
