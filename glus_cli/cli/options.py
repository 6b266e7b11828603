"""Options shared by the commands that run the model (`segment`, `batch`, `keyframes`)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from glus_cli.precision import DType, Quantize
from glus_cli.protocol import ContextSampler, FuserGamma, Schedule

if TYPE_CHECKING:
    from glus_cli.protocol import SegmentationOptions


if TYPE_CHECKING:
    from glus_cli.model.footprint import Workload
    from glus_cli.model.glus import GlusModel

DEFAULT_MODEL = "Swindl/GLUS-A"
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
        help="fast: reuse unchanged work (same [SEG] decisions, masks to IoU >= 0.999); fast-exact: reuse "
        "only what keeps results bit-identical; reference: the official order of work (slowest).",
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
FormatOption = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format, repeatable: png (0/255 masks), palette (DAVIS-style), rle (COCO RLE json), "
        "overlay (mp4). Default: png.",
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
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary table.")]


@dataclass
class ModelArgs:
    """The model options of a command, as given."""

    model: str
    revision: str | None
    vision_tower: str | None
    sam2_config: str | None
    device: str
    dtype: DType
    quantize: Quantize | None
    fuser_gamma: FuserGamma

    def load(self, workload: Workload | None = None, quiet: bool = True) -> GlusModel:
        """Load the model these options describe (imported lazily so `glus --help` stays fast).

        Args:
            workload: the run's frame size and batch, for the memory check before loading.
            quiet: False prints the run header (device, precision and why, memory estimate) on stderr.
        """
        from glus_cli.model.glus import load_glus

        model = load_glus(
            self.model,
            revision=self.revision,
            device=self.device,
            dtype=self.dtype,
            vision_tower=self.vision_tower,
            sam2_config=self.sam2_config,
            quantize=self.quantize,
            fuser_gamma=self.fuser_gamma,
            workload=workload,
        )
        if not quiet:
            from glus_cli.cli.console import error_console

            info = model.info
            error_console.print(
                f"{info.source} on {info.device} in {info.dtype} ({info.dtype_reason}); "
                f"about {info.memory_estimate_gb:.1f} GB",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return model


def protocol_options(
    context_frames: int,
    query_frames: int,
    mem_stride: int,
    context_sampler: ContextSampler,
    schedule: Schedule,
    llm_batch_size: int | None = None,
) -> SegmentationOptions:
    """`SegmentationOptions` from the command-line values."""
    from glus_cli.protocol import SegmentationOptions

    return SegmentationOptions(
        num_context_frames=context_frames,
        num_query_frames=query_frames,
        mem_stride=mem_stride,
        context_sampler=context_sampler,
        schedule=schedule,
        llm_batch_size=llm_batch_size,
    )


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and CUDA allocations when a GPU was used), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_rss_mib": round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


class Stopwatch:
    """Named wall-clock stages for run summaries."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Add the elapsed time of the `with` block to `stage`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - start, 3)


def default_formats(formats: list[str] | None) -> list[str]:
    """The formats asked for, or png."""
    return list(dict.fromkeys(formats)) if formats else ["png"]


def resolve_output_dir(output_dir: Path | None) -> Path:
    """A user-given output folder (must be new or empty), or a fresh numbered folder under runs/."""
    from glus_cli.outputs import new_run_dir, prepare_output_dir

    return prepare_output_dir(output_dir) if output_dir is not None else new_run_dir(Path("runs"))
