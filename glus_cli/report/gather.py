"""What a run folder holds, gathered into the JSON-ready data the report page renders.

A run folder is found by its ``expression.json`` records, at the depth each command writes them:

- ``glus segment``: ``OUT/<index>-<slug>/`` (one video, named in ``summary.json`` or ``run.json``);
- ``glus batch`` (and ``glus eval``'s predictions): ``OUT/<video>/<exp_id>/``;
- ``glus keyframes``: ``OUT/masks/<video>/<exp_id>/``.

Every path in the data is relative to the run folder and URL-quoted, so the page opens from any place the
folder is copied to. Nothing is written here: records are only read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from glus_cli import __version__
from glus_cli.confidence import CONFIDENCE_NAME
from glus_cli.errors import GlusError, InputError
from glus_cli.evaluation import REPORT_FILES_DIR
from glus_cli.json_files import read_json_object
from glus_cli.keyframes import MASKS_DIR
from glus_cli.outputs import OVERLAY_FILENAME
from glus_cli.preview import PREVIEW_FILENAME
from glus_cli.run_record import RUN_RECORD_NAME
from glus_cli.runner import RECORD_NAME
from glus_cli.video import natural_key

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
SHARD_SUMMARY_GLOB = "summary.shard-*-of-*.json"
EVAL_NAME = "eval.json"
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi")
"""Overlay containers, preferred first (see `glus_cli.overlay`)."""


@dataclass
class Scores:
    """J, F and J&F of one expression or of the dataset, with the texts `glus eval` prints for them."""

    j: float
    f: float
    jf: float
    digits: int

    def as_dict(self) -> dict[str, Any]:
        """Values, and the same values in percent with `digits` decimals as `glus eval` shows them."""
        values = {"J": self.j, "F": self.f, "JF": self.jf}
        return {**values, "text": {key: f"{100 * value:.{self.digits}f}" for key, value in values.items()}}


@dataclass
class Evaluation:
    """What `glus eval` measured (read from ``eval.json`` or computed): rows by (video, exp_id)."""

    layout: str
    overall: Scores
    n_expressions: int
    rows: dict[tuple[str, str], tuple[str, Scores]]
    """(video, exp_id) -> (expression text, scores)."""
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], source: Path) -> Evaluation:
        """From the ``eval.json`` document `glus_cli.evaluation.EvaluationResult.write_json` writes.

        Raises:
            InputError: the document lacks a key or holds a value of the wrong type.
        """
        try:
            overall = document["overall"]
            rows = {
                (str(row["video"]), str(row["exp_id"])): (
                    str(row["expression"]),
                    Scores(float(row["J"]), float(row["F"]), float(row["J&F"]), 1),
                )
                for row in document["per_expression"]
            }
            return cls(
                str(document["layout"]),
                Scores(float(overall["J"]), float(overall["F"]), float(overall["J&F"]), 2),
                int(overall["n_expressions"]),
                rows,
                [str(warning) for warning in document.get("warnings", [])],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{source} is not an eval.json written by glus eval ({error!r})") from error


@dataclass
class ExpressionEntry:
    """One expression folder of the run."""

    video: str
    exp_id: str
    folder: Path
    record: dict[str, Any] | None
    """Its ``expression.json``; None while the folder is unfinished."""


def url(path: Path | PurePosixPath) -> str:
    """A relative path as a URL path: each component percent-quoted, ``/`` between them."""
    return "/".join(quote(part) for part in PurePosixPath(path).parts)


def find_expressions(root: Path) -> tuple[str, list[ExpressionEntry]]:
    """The run's kind of layout and its expression folders, finished or not, in natural order.

    Returns:
        ``("segment" | "batch" | "keyframes", entries)``, or ``("masks", entries)`` for a bare mask tree
        ``<video>/<exp_id>/<frame>.png`` without records (predictions of another tool, scored by glus eval).
    """
    layouts = (
        ("keyframes", root / MASKS_DIR, 2),
        ("segment", root, 1),
        ("batch", root, 2),
    )
    for layout, base, depth in layouts:
        if not base.is_dir():
            continue
        records = sorted(base.glob("/".join(["*"] * depth) + "/" + RECORD_NAME))
        if records or (layout == _recorded_command(root) == "segment"):
            return layout, _entries(root, base, depth)
    if _recorded_command(root) == "batch":  # no expression finished yet
        return "batch", _entries(root, root, 2)
    return "masks", _entries(root, root, 2)


def _recorded_command(root: Path) -> str | None:
    """The command that `run.json` records (None without one; ``segment`` for records that name none)."""
    record = read_optional(root / RUN_RECORD_NAME)
    return None if record is None else str(record.get("command", "segment"))


def _entries(root: Path, base: Path, depth: int) -> list[ExpressionEntry]:
    """Every folder at `depth` under `base` that holds a record or looks like an unfinished one."""
    folders = [
        path
        for path in base.glob("/".join(["*"] * depth))
        if path.is_dir() and path.relative_to(root).parts[0] != REPORT_FILES_DIR  # the report's own
    ]
    entries = []
    for folder in sorted(folders, key=lambda path: [natural_key(part) for part in path.parts]):
        record_path = folder / RECORD_NAME
        if record_path.is_file():
            try:
                record: dict[str, Any] | None = read_json_object(record_path, what="expression record ")
            except GlusError as error:
                logger.warning("%s", error)
                record = None
        elif _has_outputs(folder):
            record = None
        else:
            continue
        video = "" if depth == 1 else folder.parent.name
        exp_id = str(record["exp_id"]) if record and depth == 1 else folder.name
        entries.append(ExpressionEntry(video, exp_id, folder, record))
    return entries


def _has_outputs(folder: Path) -> bool:
    """Whether a folder without a record holds mask outputs: an expression that is being written."""
    return any(path.suffix in (".png", ".json", ".jpg", *VIDEO_SUFFIXES) for path in folder.iterdir())


def read_optional(path: Path) -> dict[str, Any] | None:
    """A JSON object file, None when absent or unreadable (warned)."""
    if not path.is_file():
        return None
    try:
        return read_json_object(path)
    except GlusError as error:
        logger.warning("%s", error)
        return None


def gather(
    root: Path,
    evaluation: Evaluation | None,
    worst: Mapping[tuple[str, str], list[dict[str, Any]]],
) -> dict[str, Any]:
    """The page's data: the run, its status, each expression, and the scores when there are any.

    Args:
        root: the run folder.
        evaluation: scores against the ground truth, or None.
        worst: (video, exp_id) -> worst-frame thumbnails, ``{"frame", "J", "src"}`` with `src` relative to
            `root`.
    """
    layout, entries = find_expressions(root)
    summary = read_optional(root / SUMMARY_NAME)
    run_record = read_optional(root / RUN_RECORD_NAME)
    video_name = _single_video_name(summary, run_record) if layout == "segment" else ""
    expressions: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        video = entry.video or video_name
        key = (video, entry.exp_id)
        seen.add(key)
        expressions.append(_expression(root, layout, entry, video, evaluation, worst.get(key, [])))
    if evaluation is not None:  # scored expressions without a prediction folder (they score 0)
        for (video, exp_id), (text, scores) in evaluation.rows.items():
            if (video, exp_id) not in seen:
                expressions.append(_missing_expression(video, exp_id, text, scores))
    partial = _partial_reasons(root, layout, entries, summary, run_record)
    failures = list(summary.get("failures", [])) if summary else []
    return {
        "generator": f"glus-cli {__version__}",
        "layout": layout,
        "command": (summary or run_record or {}).get("command", layout),
        "title": _title(root, layout, video_name, summary),
        "source": _source(summary, run_record),
        "partial": partial,
        "failures": [
            {"video": str(item.get("video", "")), "error": str(item.get("error", ""))}
            for item in failures
            if isinstance(item, Mapping)
        ],
        "evaluation": None
        if evaluation is None
        else {
            "layout": evaluation.layout,
            "n_expressions": evaluation.n_expressions,
            "overall": evaluation.overall.as_dict(),
            "warnings": evaluation.warnings,
        },
        "expressions": expressions,
    }


def _expression(
    root: Path,
    layout: str,
    entry: ExpressionEntry,
    video: str,
    evaluation: Evaluation | None,
    worst: list[dict[str, Any]],
) -> dict[str, Any]:
    """One expression's row and section data."""
    record = entry.record or {}
    folder = entry.folder.relative_to(root)
    text = str(record.get("text", ""))
    scored = evaluation.rows.get((video, entry.exp_id)) if evaluation is not None else None
    if scored is not None and not text:
        text = scored[0]
    overlay = _overlay(entry.folder, record)
    confidence = read_optional(entry.folder / CONFIDENCE_NAME)
    without_seg = [str(name) for name in record.get("frames_without_seg", [])]
    return {
        "video": video,
        "exp_id": entry.exp_id,
        "text": text,
        "done": entry.record is not None or layout == "masks",
        "dir": url(folder) + "/" if str(folder) != "." else "./",
        "record": url(folder / RECORD_NAME) if entry.record is not None else None,
        "overlay": None if overlay is None else url(folder / overlay),
        "preview": url(folder / PREVIEW_FILENAME) if (entry.folder / PREVIEW_FILENAME).is_file() else None,
        "frames": _number(record.get("num_frames")),
        "seconds": _number(record.get("seconds")),
        "keyframe": _number(record.get("keyframe")),
        "no_seg": without_seg,
        "iou": _number(record.get("mean_predicted_iou")),
        "series": _series(confidence, without_seg),
        "scores": None if scored is None else scored[1].as_dict(),
        "worst": worst,
    }


def _missing_expression(video: str, exp_id: str, text: str, scores: Scores) -> dict[str, Any]:
    """A scored expression the run has no folder for."""
    return {
        "video": video,
        "exp_id": exp_id,
        "text": text,
        "done": False,
        "missing": True,
        "dir": None,
        "record": None,
        "overlay": None,
        "preview": None,
        "frames": None,
        "seconds": None,
        "keyframe": None,
        "no_seg": [],
        "iou": None,
        "series": None,
        "scores": scores.as_dict(),
        "worst": [],
    }


def _overlay(folder: Path, record: Mapping[str, Any]) -> str | None:
    """The overlay video's file name in `folder`, as recorded, else the first present."""
    overlay = record.get("overlay")
    names = [overlay["file"]] if isinstance(overlay, Mapping) and "file" in overlay else []
    names += [Path(OVERLAY_FILENAME).stem + suffix for suffix in VIDEO_SUFFIXES]
    for name in names:
        if isinstance(name, str) and "/" not in name and (folder / name).is_file():
            return name
    return None


def _number(value: object, digits: int | None = None) -> float | int | None:
    """A finite number from a record (rounded to `digits`), else None: the page's JSON has no NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value if digits is None else round(float(value), digits)


def _series(confidence: Mapping[str, Any] | None, without_seg: Iterable[str]) -> dict[str, Any] | None:
    """Per-frame chart data: names, predicted IoU, object score (3 decimals) and the [SEG] answer."""
    if confidence is None:
        return None
    try:
        frames = [str(name) for name in confidence["frames"]]
        ious = list(confidence["predicted_iou"])
        objects = list(confidence["object_score"])
    except (KeyError, TypeError):
        return None
    if not len(frames) == len(ious) == len(objects):
        return None
    missing = set(without_seg)
    return {
        "frames": frames,
        "iou": [_number(value, 3) for value in ious],
        "object": [_number(value, 3) for value in objects],
        "seg": [int(name not in missing and iou is not None) for name, iou in zip(frames, ious, strict=True)],
    }


def _partial_reasons(
    root: Path,
    layout: str,
    entries: list[ExpressionEntry],
    summary: Mapping[str, Any] | None,
    run_record: Mapping[str, Any] | None,
) -> list[str]:
    """Why the run is not finished (empty when it is)."""
    if layout == "masks":  # no records to tell
        return []
    reasons = []
    unfinished = [entry for entry in entries if entry.record is None]
    if unfinished:
        first = unfinished[0].folder.relative_to(root)
        reasons.append(f"{len(unfinished)} expression folders are unfinished (first: {first})")
    if layout == "segment" and run_record is not None:
        planned = len(run_record.get("expressions", []))
        done = len(entries) - len(unfinished)
        if planned > done:
            reasons.append(f"{done} of {planned} expressions are done")
    if layout == "keyframes":
        if not (root / "keyframes.json").is_file():
            reasons.append("keyframes.json is not written yet")
    elif summary is None:
        shards = sorted(root.glob(SHARD_SUMMARY_GLOB))
        if shards:
            count = shards[0].name.rsplit("-of-", 1)[-1].removesuffix(".json")
            if count.isdigit() and len(shards) < int(count):
                reasons.append(f"{len(shards)} of {count} shards have written their summary")
        elif entries:
            reasons.append("no summary.json yet: the run is still going or was interrupted")
    return reasons


def _single_video_name(summary: Mapping[str, Any] | None, run_record: Mapping[str, Any] | None) -> str:
    """The video of a `glus segment` run."""
    video = (summary or {}).get("video")
    if isinstance(video, Mapping) and video.get("name"):
        return str(video["name"])
    source = (run_record or {}).get("source")
    return Path(str(source)).stem if source else ""


def _title(root: Path, layout: str, video_name: str, summary: Mapping[str, Any] | None) -> str:
    """The page's heading."""
    if layout == "segment":
        return f"glus segment: {video_name or root.name}"
    if layout == "keyframes":
        return f"glus keyframes: {root.resolve().name}"
    if layout == "masks":
        return f"masks: {root.resolve().name}"
    command = (summary or {}).get("command", "batch")
    return f"glus {command}: {root.resolve().name}"


def _source(summary: Mapping[str, Any] | None, run_record: Mapping[str, Any] | None) -> str:
    """Where the run's frames came from, as recorded."""
    for document, key in ((summary, "input"), (summary, "source"), (run_record, "source")):
        if document and document.get(key):
            return str(document[key])
    return ""
