"""`glus keyframes INPUT -e FILE [--ground-truth DIR]`: GLUS's key-frame pseudo-labels as score files."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from glus_cli import __version__
from glus_cli.batch import BatchHooks, VideoTask, find_videos, load_expressions, plan_tasks
from glus_cli.cli.app import app
from glus_cli.cli.batch import (
    ExpressionsOption,
    InputArgument,
    output_root,
    report_failures,
    run_with_progress,
)
from glus_cli.cli.console import console
from glus_cli.cli.options import (
    DEFAULT_MODEL,
    ContextFramesOption,
    ContextSamplerOption,
    DeviceOption,
    DTypeOption,
    FuserGammaOption,
    LLMBatchSizeOption,
    MaxFramesOption,
    MemStrideOption,
    ModelArgs,
    ModelOption,
    QuantizeOption,
    QueryFramesOption,
    QuietOption,
    ResumableOutputDirOption,
    RevisionOption,
    Sam2ConfigOption,
    ScheduleOption,
    StrideOption,
    VisionTowerOption,
    protocol_options,
)
from glus_cli.errors import InputError
from glus_cli.evaluation import Layout
from glus_cli.keyframes import (
    CONFIDENCE_NAME,
    FrameConfidence,
    KeyframeRecord,
    Ranking,
    ground_truth_scores,
    write_keyframe_files,
)
from glus_cli.protocol import DEFAULT_SCHEDULE, MEM_STRIDE
from glus_cli.runner import Expression, is_complete

if TYPE_CHECKING:
    from glus_cli.protocol import FrameResult
    from glus_cli.video import VideoSource

MASKS_DIR = "masks"
SCORE_FILE = "keyframes.json"
DETAILS_FILE = "keyframe_scores.json"


def _has_confidence(folder: Path) -> bool:
    return is_complete(folder) and (folder / CONFIDENCE_NAME).is_file()


class _ConfidenceRecorder:
    """Keeps each pending expression's last frame results and writes them beside its masks."""

    def __init__(self, masks: Path) -> None:
        self._masks = masks
        self._results: dict[str, dict[int, FrameResult]] = defaultdict(dict)

    def on_result(self, task: VideoTask, job: Expression, video: VideoSource, result: FrameResult) -> None:
        self._results[job.exp_id][result.frame_index] = result

    def on_video_done(self, task: VideoTask, video: VideoSource, jobs: list[Expression]) -> None:
        for job in jobs:
            results = self._results.pop(job.exp_id, {})
            confidence = FrameConfidence.from_results(video.frame_names, results)
            confidence.write(self._masks / task.name / job.exp_id / CONFIDENCE_NAME)


@app.command()
def keyframes(
    input_dir: InputArgument,
    expressions: ExpressionsOption,
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            help="Dataset split with mask_dict.json (MeViS), Annotations/ (Ref-YouTube-VOS) or a mask tree: "
            "frames are ranked by IoU with it. Without it, by the model's own confidence (labelled so)."
        ),
    ] = None,
    layout: Annotated[Layout | None, typer.Option(help="Ground-truth layout (default: detected).")] = None,
    meta: Annotated[
        Path | None,
        typer.Option(help="The ground truth's meta_expressions.json (default: found as by glus eval)."),
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
    vision_tower: VisionTowerOption = None,
    sam2_config: Sam2ConfigOption = None,
    device: DeviceOption = "auto",
    dtype: DTypeOption = "auto",
    quantize: QuantizeOption = None,
    fuser_gamma: FuserGammaOption = "checkpoint",
    output_dir: ResumableOutputDirOption = None,
    context_frames: ContextFramesOption = 4,
    query_frames: QueryFramesOption = 4,
    mem_stride: MemStrideOption = MEM_STRIDE,
    context_sampler: ContextSamplerOption = "clips",
    stride: StrideOption = 1,
    max_frames: MaxFramesOption = None,
    schedule: ScheduleOption = DEFAULT_SCHEDULE,
    llm_batch_size: LLMBatchSizeOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run GLUS on every (video, expression), score each frame, and export the key frame of each.

    Writes OUT/keyframes.json ({"<video>_<exp_id>": "<frame name>"}, the official score file, usable with
    --keyframes), OUT/keyframe_scores.json (every frame's score, SAM2's predicted IoU and object score)
    and the masks under OUT/masks/. Reruns resume; failed videos give exit code 8.

    Example:

      glus keyframes mevis/train/JPEGImages -e mevis/train/meta_expressions.json --ground-truth mevis/train
    """
    options = protocol_options(
        context_frames, query_frames, mem_stride, context_sampler, schedule, llm_batch_size
    )
    model_args = ModelArgs(model, revision, vision_tower, sam2_config, device, dtype, quantize, fuser_gamma)
    tasks = plan_tasks(find_videos(input_dir), load_expressions(expressions))
    scorer = None
    if ground_truth is not None:
        scorer = ground_truth_scores(ground_truth, layout=layout, meta_path=meta)
        unknown = [
            f"{task.name}/{exp.exp_id}"
            for task in tasks
            for exp in task.expressions
            if (task.name, exp.exp_id) not in scorer
        ]
        if unknown:
            raise InputError(f"{len(unknown)} expressions have no ground truth (first: {unknown[0]})")
    out = output_root(output_dir)
    masks = out / MASKS_DIR
    glus = model_args.load()
    recorder = _ConfidenceRecorder(masks)
    report = run_with_progress(
        glus,
        tasks,
        masks,
        ["png"],
        options,
        stride=stride,
        max_frames=max_frames,
        keyframes=None,
        quiet=quiet,
        hooks=BatchHooks(_has_confidence, None, recorder.on_result, recorder.on_video_done),
    )
    failed = {failure.video for failure in report.failures}
    records = []
    for task in tasks:
        if task.name in failed:
            continue
        for exp in task.expressions:
            folder = masks / task.name / exp.exp_id
            confidence = FrameConfidence.read(folder / CONFIDENCE_NAME)
            scores = (
                confidence.scores()
                if scorer is None
                else scorer.frame_ious(folder, task.name, exp.exp_id, confidence.frames)
            )
            records.append(
                KeyframeRecord(
                    task.name,
                    exp.exp_id,
                    exp.text,
                    confidence.frames,
                    scores,
                    confidence.predicted_iou,
                    confidence.object_score,
                )
            )
    ranking: Ranking = "model_confidence" if scorer is None else "ground_truth_iou"
    provenance = {
        "glus_cli_version": __version__,
        "model": asdict(glus.info),
        "options": {**asdict(options), "stride": stride, "max_frames": max_frames},
        "failures": [asdict(failure) for failure in report.failures],
    }
    write_keyframe_files(records, ranking, out / SCORE_FILE, out / DETAILS_FILE, provenance)
    if scorer is None:
        console.print(
            "[yellow]no ground truth:[/] key frames ranked by the model's own confidence, "
            "not the paper's IoU pseudo-labels"
        )
    console.print(f"[green]wrote[/] {out / SCORE_FILE} and {out / DETAILS_FILE} ({len(records)} expressions)")
    report_failures(report)
