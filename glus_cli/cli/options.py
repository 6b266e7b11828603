"""Options shared by the commands that run the model (`segment`, `batch`, `keyframes`): `Annotated`
aliases, and the option groups `ModelArgs` and `ProtocolArgs` that `option_groups` expands."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from glus_cli.manifest import default_model
from glus_cli.model_spec import ModelSpec
from glus_cli.precision import DType, Quantize
from glus_cli.protocol import (
    DEFAULT_SCHEDULE,
    MEM_STRIDE,
    NUM_CONTEXT_FRAMES,
    NUM_QUERY_FRAMES,
    ContextSampler,
    FuserGamma,
    Schedule,
    SegmentationOptions,
)

R = TypeVar("R")

DEFAULT_MODEL = default_model()
"""The manifest's default checkpoint, used when --model is not given."""
_MODEL = "Model"
_PROTOCOL = "GLUS protocol"
_OUTPUT = "Output"


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Hub id or local checkpoint folder (default: the best released).",
        rich_help_panel=_MODEL,
    ),
]
RevisionOption = Annotated[str | None, typer.Option(help="Hub revision of --model.", rich_help_panel=_MODEL)]
VisionTowerOption = Annotated[
    str | None,
    typer.Option(help="CLIP tower (Hub id or folder) instead of the checkpoint's.", rich_help_panel=_MODEL),
]
Sam2ConfigOption = Annotated[
    str | None,
    typer.Option(
        help="SAM2 config: packaged name or yaml path (default sam2_hiera_l.yaml).", rich_help_panel=_MODEL
    ),
]
DeviceOption = Annotated[str, typer.Option(help="auto, cuda, cuda:N, mps or cpu.", rich_help_panel=_MODEL)]
DTypeOption = Annotated[
    DType,
    typer.Option(
        "--dtype",
        "--precision",
        help="auto: bf16 where the device computes it natively (CUDA sm80+, CPUs with AMX/AVX512-BF16), "
        "else fp16 on CUDA and fp32 elsewhere; fp32/bf16/fp16 are accepted spellings.",
        rich_help_panel=_MODEL,
    ),
]
QuantizeOption = Annotated[
    Quantize | None,
    typer.Option(help="Load the LLM in 4 or 8 bit (bitsandbytes, CUDA).", rich_help_panel=_MODEL),
]
FuserGammaOption = Annotated[
    FuserGamma,
    typer.Option(
        help="SAM2 memory-encoder layer scale: from the checkpoint, or 1e-6 as the official eval script "
        "effectively used (to reproduce its numbers).",
        rich_help_panel=_MODEL,
    ),
]
ContextFramesOption = Annotated[
    int, typer.Option(min=1, help="Context frames shown before every query (N_C).", rich_help_panel=_PROTOCOL)
]
QueryFramesOption = Annotated[
    int,
    typer.Option(
        min=1, help="Sliding window of query frames in the prompt (N_Q).", rich_help_panel=_PROTOCOL
    ),
]
MemStrideOption = Annotated[
    int, typer.Option(min=1, help="Memory-bank stride at inference.", rich_help_panel=_PROTOCOL)
]
ContextSamplerOption = Annotated[
    ContextSampler,
    typer.Option(
        help="clips: middle frames of N_C uniform clips (official evaluation); "
        "linspace: evenly spaced (demo).",
        rich_help_panel=_PROTOCOL,
    ),
]
ScheduleOption = Annotated[
    Schedule,
    typer.Option(
        help="fast: reuse unchanged work (same [SEG] decisions, masks to IoU >= 0.999 in fp32, >= 0.97 in "
        "bf16); fast-exact: reuse only what keeps results bit-identical; reference: the official order of "
        "work (slowest).",
        rich_help_panel=_PROTOCOL,
    ),
]
LLMBatchSizeOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="fast schedule: expressions sharing one LLM forward (default: 1 on CPU, 4 on a GPU).",
        rich_help_panel=_PROTOCOL,
    ),
]
StrideOption = Annotated[
    int, typer.Option(min=1, help="Use every N-th frame of long videos.", rich_help_panel=_PROTOCOL)
]
MaxFramesOption = Annotated[
    int | None,
    typer.Option(min=1, help="Use at most this many frames (after --stride).", rich_help_panel=_PROTOCOL),
]
FpsOption = Annotated[
    float,
    typer.Option(
        min=0.001,
        help="Frame rate of a folder of frames or a glob, which carry none (video files keep their own).",
        rich_help_panel=_OUTPUT,
    ),
]
FormatOption = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format, repeatable: png (0/255 masks), palette (DAVIS-style), rle (COCO RLE json), "
        "overlay (H.264 mp4 that browsers play). Default: png; preview.jpg is always written.",
        rich_help_panel=_OUTPUT,
    ),
]
ResumableOutputDirOption = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        "-o",
        help="Output root; rerun with the same folder to resume (default: a fresh runs/NNNN).",
        rich_help_panel=_OUTPUT,
    ),
]
InputArgument = Annotated[
    Path,
    typer.Argument(help="Folder of videos or of frame folders (e.g. a dataset split's JPEGImages/)."),
]
ExpressionsOption = Annotated[
    Path,
    typer.Option(
        "--expressions",
        "-e",
        help="meta_expressions.json (MeViS, Ref-YouTube-VOS), JSON {video: {exp_id: text}} or "
        "{video: \\[text]}, or CSV with columns video, exp_id (optional), expression. A video is named "
        "with or without its extension.",
    ),
]
SkipMissingOption = Annotated[
    bool,
    typer.Option(
        "--skip-missing",
        help="Leave out the videos the expressions file names but INPUT_DIR lacks (default: refuse them).",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary table.")]


@dataclass(frozen=True)
class ModelArgs:
    """The model options of a command (an option group: see `option_groups`)."""

    model: ModelOption = DEFAULT_MODEL
    revision: RevisionOption = None
    vision_tower: VisionTowerOption = None
    sam2_config: Sam2ConfigOption = None
    device: DeviceOption = "auto"
    dtype: DTypeOption = "auto"
    quantize: QuantizeOption = None
    fuser_gamma: FuserGammaOption = "checkpoint"

    def spec(self) -> ModelSpec:
        """The `ModelSpec` these options describe (what a local load and a Ray worker take)."""
        return ModelSpec(
            self.model,
            revision=self.revision,
            vision_tower=self.vision_tower,
            sam2_config=self.sam2_config,
            device=self.device,
            dtype=self.dtype,
            quantize=self.quantize,
            fuser_gamma=self.fuser_gamma,
        )


@dataclass(frozen=True)
class ProtocolArgs:
    """The GLUS protocol and frame-selection options of a command (an option group)."""

    context_frames: ContextFramesOption = NUM_CONTEXT_FRAMES
    query_frames: QueryFramesOption = NUM_QUERY_FRAMES
    mem_stride: MemStrideOption = MEM_STRIDE
    context_sampler: ContextSamplerOption = "clips"
    schedule: ScheduleOption = DEFAULT_SCHEDULE
    llm_batch_size: LLMBatchSizeOption = None
    stride: StrideOption = 1
    max_frames: MaxFramesOption = None

    def segmentation_options(self) -> SegmentationOptions:
        """The `SegmentationOptions` these values describe."""
        return SegmentationOptions(
            num_context_frames=self.context_frames,
            num_query_frames=self.query_frames,
            mem_stride=self.mem_stride,
            context_sampler=self.context_sampler,
            schedule=self.schedule,
            llm_batch_size=self.llm_batch_size,
        )


def option_groups(command: Callable[..., R]) -> Callable[..., R]:
    """Let a Typer command take option groups (`ModelArgs`, `ProtocolArgs`) as parameters.

    Typer builds a command's options from its signature and knows nothing of groups, so the command that
    Typer sees has each group's fields in place of the group parameter, with their own `Annotated`
    options and defaults; it builds the group from them and calls `command` with it. The commands that
    run the model thus share one definition of about fifteen options instead of repeating them.
    """
    hints = get_type_hints(command, include_extras=True)
    groups: dict[str, type] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in inspect.signature(command).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            groups[parameter.name] = annotation
            field_hints = get_type_hints(annotation, include_extras=True)
            parameters.extend(
                inspect.Parameter(
                    field.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=field.default,
                    annotation=field_hints[field.name],
                )
                for field in dataclasses.fields(annotation)
            )
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))

    @functools.wraps(command)
    def with_groups(**values: Any) -> R:
        for name, group in groups.items():
            values[name] = group(
                **{field.name: values.pop(field.name) for field in dataclasses.fields(group)}
            )
        return command(**values)

    with_groups.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    with_groups.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return with_groups


def default_formats(formats: list[str] | None) -> list[str]:
    """The formats asked for, or png."""
    return list(dict.fromkeys(formats)) if formats else ["png"]
