"""What this installation and this machine offer a GLUS run, for `glus check`: the versions of the parts,
the devices with their bf16 support and free memory, the precision plans that fit the default model on
each, the model cache, and whether the Hugging Face Hub answers.

Nothing is downloaded: the plans come from the memory check (`glus_cli.model.footprint`) fed with the
default model's download size from the manifest. torch, transformers and huggingface-hub are imported
inside the functions that need them, so importing this module costs nothing.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from glus_cli import __version__
from glus_cli.errors import one_line
from glus_cli.manifest import ModelEntry, load_manifest
from glus_cli.precision import plan_precision

if TYPE_CHECKING:
    import torch

    from glus_cli.hub import ModelStatus

HUB_TIMEOUT_SECONDS = 3.0
"""How long `hub_reachability` waits for the Hub."""


@dataclass(frozen=True)
class Component:
    """One part of the installation.

    Attributes:
        name: the package or program.
        version: its version, or ``not installed``.
        detail: what else matters about it (torch's CUDA build, FFmpeg's H.264 encoder).
    """

    name: str
    version: str
    detail: str = ""


@dataclass(frozen=True)
class PlanFit:
    """One precision plan of the default model on one device.

    Attributes:
        dtype: the compute dtype.
        quantize: the LLM's quantisation, or None.
        needed: estimated peak bytes (`Footprint.total`).
        fits: whether `needed` is within the device's available memory.
        auto: whether ``--dtype auto`` picks this plan on the device.
    """

    dtype: str
    quantize: str | None
    needed: int
    fits: bool
    auto: bool

    @property
    def flags(self) -> str:
        """The options that ask for the plan: ``--dtype bfloat16 --quantize 8bit``."""
        return f"--dtype {self.dtype}" + (f" --quantize {self.quantize}" if self.quantize else "")


@dataclass(frozen=True)
class DeviceReport:
    """A device a run can use.

    Attributes:
        name: as ``--device`` takes it (``cpu``, ``cuda:0``, ``mps``).
        detail: what was found: the CPU's bf16 instructions, the GPU's name and compute capability.
        native_bf16: whether it computes bf16 natively.
        available: bytes free for the model (available RAM, or free GPU memory).
        available_what: what `available` is, in words.
        total: the device's whole memory in bytes.
        plans: the precision plans of the default model, smallest memory last.
    """

    name: str
    detail: str
    native_bf16: bool
    available: int
    available_what: str
    total: int
    plans: tuple[PlanFit, ...]


def versions() -> list[Component]:
    """glus-cli, Python, torch (and its CUDA or MPS build), transformers, sam2, PyAV with its FFmpeg and
    the codec the overlay video gets."""
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    if torch.backends.mps.is_built():
        build += ", MPS built"
    return [
        Component("glus-cli", __version__),
        Component("python", platform.python_version()),
        Component("torch", torch.__version__, build),
        Component("transformers", _version("transformers")),
        Component("sam2", _version("sam2")),
        _pyav(),
    ]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _pyav() -> Component:
    """PyAV, its FFmpeg, and which codec the overlay gets (H.264 unless this FFmpeg lacks libx264)."""
    import av

    from glus_cli.errors import OutputError
    from glus_cli.overlay import H264, select_overlay_codec

    ffmpeg = "FFmpeg " + str(getattr(av, "ffmpeg_version_info", "?"))
    try:
        codec = select_overlay_codec()
    except OutputError as error:
        return Component("PyAV", av.__version__, f"{ffmpeg}; no overlay codec: {one_line(error)}")
    present = "H.264 present" if codec == H264 else f"no H.264 encoder: overlays in {codec.label}"
    return Component("PyAV", av.__version__, f"{ffmpeg}, {present} ({codec.encoder})")


def devices(model: ModelEntry | None = None) -> list[DeviceReport]:
    """The CPU, every CUDA GPU and Apple MPS where present, each with the plans that fit `model` (default:
    the manifest's default), estimated for 1080p frames and the default window."""
    import torch

    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return [_device_report(torch.device(name), model or load_manifest().default) for name in names]


def _device_report(device: torch.device, model: ModelEntry) -> DeviceReport:
    import psutil
    import torch

    from glus_cli import hardware
    from glus_cli.model.footprint import Workload, estimate_footprint, released_model_estimate

    capabilities = hardware.probe_device(device)
    available, what = hardware.available_memory(device)
    total = torch.cuda.mem_get_info(device)[1] if device.type == "cuda" else psutil.virtual_memory().total
    auto = plan_precision(None, capabilities).dtype
    half = auto if auto != "float32" else "bfloat16"
    candidates = [("float32", None), ("bfloat16", None)]
    candidates += [("float16", None)] if device.type == "cuda" else []
    candidates += [(half, "8bit"), (half, "4bit")]
    config, tensors = released_model_estimate(model.size_bytes, model.vision_tower)
    plans = []
    for dtype, quantize in candidates:
        needed = estimate_footprint(config, tensors, device, dtype, quantize, Workload()).total
        plans.append(PlanFit(dtype, quantize, needed, needed <= available, (dtype, quantize) == (auto, None)))
    return DeviceReport(
        str(device), capabilities.detail, capabilities.native_bf16, available, what, int(total), tuple(plans)
    )


def cache() -> tuple[str, list[ModelStatus]]:
    """The model cache folder and the known (and other cached) checkpoints and towers with their state."""
    from glus_cli import hub

    return str(hub.weights_dir()), hub.list_models()


def hub_reachability(timeout: float = HUB_TIMEOUT_SECONDS) -> str:
    """Whether the Hub answers for the default model within `timeout` seconds, in words; in offline mode
    (``HF_HUB_OFFLINE=1``) it is not asked."""
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        return "not contacted: offline mode is on (HF_HUB_OFFLINE=1); only cached models are used"
    repo_id = load_manifest().default.repo_id
    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except Exception as error:  # any failure is the answer: unreachable, and why
        return f"unreachable ({constants.ENDPOINT}, {repo_id}): {one_line(error)[:160]}"
    return f"reachable ({constants.ENDPOINT}, {repo_id} found)"
