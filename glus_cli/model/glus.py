"""`GlusModel`: the loaded GLUS checkpoint (tokenizer, CLIP projector, LLaMA + `[SEG]` head, SAM2) and
`load_glus`, which builds it from a checkpoint folder or Hub id in the official layout."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import CLIPImageProcessorPil, CLIPVisionModel, LlamaForCausalLM

from glus_cli import hardware
from glus_cli.errors import CheckpointError, InputError, ResourceError
from glus_cli.model.checkpoint import (
    PROJECTOR_PREFIX,
    SAM2_PREFIX,
    SEG_HEAD_PREFIX,
    GlusStateDicts,
    load_into,
    read_checkpoint,
    weight_files,
)
from glus_cli.model.config import DEFAULT_SAM2_CONFIG, GlusConfig
from glus_cli.model.footprint import check_memory, count_tensors
from glus_cli.model.mllm import CLIP_ATTENTION, RotaryTable, SegLanguageModel, VisionProjector
from glus_cli.model.segmenter import GlusSegmenter, build_sam2_model, place_sam2_tables
from glus_cli.model.tokenizer import GlusTokenizer
from glus_cli.plural import plural
from glus_cli.precision import PrecisionPlan, Quantize, plan_precision
from glus_cli.protocol import FuserGamma, Workload

logger = logging.getLogger(__name__)

LoadProgress = Callable[[str, int, int], None]
"""`(step, done, total)`: `load_glus` is starting `step` ("weights 2/3", "LLaMA and CLIP vision tower",
"SAM2") with `done` of `total` steps finished; `("ready", total, total)` ends the load."""

# SAM2's CXBlock layer-scale init: what the official `inference_iter.py` ends up with (see `load_glus`).
OFFICIAL_EVAL_FUSER_GAMMA = 1e-6


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`auto` (CUDA, then Apple MPS, then CPU) or an explicit device; unavailable devices are an error."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise InputError(f"unknown device {device!r}; use auto, cuda, cuda:N, mps or cpu") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError(
            f"--device {device} was asked for but no CUDA GPU is available (this torch build or machine)"
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ResourceError(
            f"--device {device} was asked for but this machine shows {plural(count, 'CUDA GPU')} "
            f"(cuda:0 to cuda:{count - 1}; CUDA_VISIBLE_DEVICES renumbers them)"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ResourceError(f"--device {device} was asked for but Apple MPS is not available")
    return resolved


def precision_plan(dtype: str | torch.dtype | None, device: torch.device) -> PrecisionPlan:
    """The compute dtype and why: explicit, or `auto` (None) chosen for what `device` computes natively.

    See `glus_cli.precision.plan_precision`: bf16 on CUDA with native bf16, else fp16; bf16 on a CPU with
    AMX or AVX512-BF16, else fp32; bf16 on MPS where it runs, else fp32.
    """
    if isinstance(dtype, torch.dtype):
        return PrecisionPlan(str(dtype).removeprefix("torch."), "given as a torch.dtype")
    return plan_precision(dtype, hardware.probe_device(device))


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype of `precision_plan`, as a `torch.dtype`."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, precision_plan(dtype, device).dtype)


def configure_matmul_precision(device: torch.device, dtype: torch.dtype) -> None:
    """fp32 on a GPU means fp32: no TF32 in matrix products and cuDNN convolutions.

    torch lets cuDNN convolutions (SAM2's patch embedding, FPN, upscaling, mask downsampler, fuser) run in
    TF32 on Ampere and newer by default, which moves fp32 results by about 1e-3. These are process-wide
    torch settings; other dtypes leave them as they are.
    """
    if device.type == "cuda" and dtype == torch.float32:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"


@dataclass(frozen=True)
class ModelInfo:
    """Where a loaded model came from, for logs and run summaries."""

    source: str
    revision: str | None
    checkpoint_dir: str
    vision_tower: str
    sam2_config: str
    fuser_gamma: str
    quantize: str | None
    device: str
    dtype: str
    dtype_reason: str
    memory_estimate_gb: float


class GlusModel(nn.Module):
    """A GLUS checkpoint ready for inference.

    Attributes:
        config: the checkpoint's `GlusConfig`.
        tokenizer: v4-exact LLaMA tokenizer with `[SEG]`, `<im_start>`, `<im_end>`.
        image_processor: the CLIP tower's `CLIPImageProcessorPil` (bit-identical to 4.31's processor).
        vision: CLIP vision tower + pooling + `mm_projector`.
        language: LLaMA + `text_hidden_fcs`.
        segmenter: SAM2 with GLUS's per-frame protocol.
        info: provenance of the weights and the numeric settings.
    """

    def __init__(
        self,
        config: GlusConfig,
        tokenizer: GlusTokenizer,
        image_processor: CLIPImageProcessorPil,
        vision: VisionProjector,
        language: SegLanguageModel,
        segmenter: GlusSegmenter,
        info: ModelInfo,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.vision = vision
        self.language = language
        self.segmenter = segmenter
        self.info = info

    @property
    def device(self) -> torch.device:
        """Device of the SAM2 weights (the LLM may be spread by a quantised load)."""
        return self.segmenter.sam2.no_mem_embed.device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the SAM2 and CLIP weights."""
        return self.segmenter.sam2.no_mem_embed.dtype

    def clip_preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 (H, W, 3) -> (1, 3, 224, 224) float32: shortest side 224 (PIL bicubic), center crop."""
        return self.image_processor(images=frame, return_tensors="pt")["pixel_values"]


def load_glus(
    source: str | Path,
    *,
    revision: str | None = None,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = None,
    vision_tower: str | None = None,
    sam2_config: str | Path | None = None,
    quantize: Quantize | None = None,
    fuser_gamma: FuserGamma = "checkpoint",
    workload: Workload | None = None,
    available_memory: int | None = None,
    on_progress: LoadProgress | None = None,
) -> GlusModel:
    """Load a GLUS checkpoint (folder or Hub id) in the official layout.

    Args:
        source: a checkpoint folder, used as is, or a Hub id such as `Swindl/GLUS-A`.
        revision: Hub revision (branch, tag or commit) for a Hub id.
        device: `auto`, `cuda`, `cuda:N`, `mps` or `cpu`.
        dtype: compute dtype (`float32`, `bfloat16`, `float16`, or `fp32`/`bf16`/`fp16`); default `auto`,
            chosen by `precision_plan` for the device.
        vision_tower: CLIP tower (Hub id or folder) overriding the one config.json names.
        sam2_config: SAM2 config (packaged name or yaml path); default the checkpoint's own
            `sam2_config` field if it has one, else `sam2_hiera_l.yaml` as in the official release.
        quantize: `4bit` or `8bit` to load the LLaMA with bitsandbytes (SAM2, CLIP and the heads stay
            unquantised, as in the official code); needs the `quantization` extra. Meant for CUDA; the
            CPU kernels work but are slow.
        fuser_gamma: `checkpoint` loads SAM2's memory-encoder layer-scale `gamma` from the checkpoint (the
            model as trained). `official-eval` resets both to bf16(1e-6): transformers 4.31 renamed keys
            containing "gamma" while loading, so the official `inference_iter.py` never loaded them; use it
            to reproduce that script's numbers.
        workload: frame size, `llm_batch_size` and window of the run, for the memory check (default
            1080p frames and the protocol's defaults).
        available_memory: bytes the model may use, instead of asking the device (for tests and tools).
        on_progress: told each step of the load (weight shards, CLIP, SAM2), for progress displays.

    Before reading any weight, the memory the plan needs is estimated and compared with the available RAM
    or free GPU memory (`glus_cli.model.footprint.check_memory`).

    Raises:
        CheckpointError, NetworkError, ResourceError, InputError: one-line user-facing problems.
    """
    from glus_cli import hub

    torch_device = resolve_device(device)
    plan = precision_plan(dtype, torch_device)
    torch_dtype = dtype if isinstance(dtype, torch.dtype) else getattr(torch, plan.dtype)
    if fuser_gamma not in ("checkpoint", "official-eval"):
        raise InputError(f"unknown fuser_gamma {fuser_gamma!r}; use checkpoint or official-eval")
    if quantize is not None and quantize not in ("4bit", "8bit"):
        raise InputError(f"unknown quantization {quantize!r}; use 4bit or 8bit")

    folder = hub.resolve_model(str(source), revision=revision)
    config = GlusConfig.from_pretrained(folder)
    tokenizer = GlusTokenizer.from_pretrained(folder)
    if tokenizer.vocab_size != config.llama["vocab_size"]:
        raise CheckpointError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but config.json says "
            f"vocab_size={config.llama['vocab_size']}"
        )
    sam2_name = str(sam2_config or _checkpoint_sam2_config(config, folder) or DEFAULT_SAM2_CONFIG)
    tower_name = vision_tower or config.vision_tower
    tower_dir = hub.resolve_vision_tower(tower_name)

    footprint = check_memory(
        config,
        count_tensors(folder, tower_dir),
        torch_device,
        plan.dtype,
        quantize,
        workload or Workload(),
        available_memory,
        native_bf16=hardware.probe_device(torch_device).native_bf16,
    )
    logger.info("precision %s (%s); about %.1f GB needed", plan.dtype, plan.reason, footprint.total / 1e9)
    configure_matmul_precision(torch_device, torch_dtype)
    logger.info("reading GLUS weights from %s", folder)
    num_shards = len(weight_files(folder))
    total = num_shards + 2  # the shards, then CLIP, then SAM2

    def step(what: str, done: int) -> None:
        if on_progress is not None:
            on_progress(what, done, total)

    parts = read_checkpoint(folder, on_shard=lambda index: step(f"weights {index + 1}/{num_shards}", index))
    step("LLaMA and CLIP vision tower", num_shards)
    modules = build_modules(config, sam2_name)
    language = _build_language_model(
        config, tokenizer, modules, parts, folder, quantize, torch_device, torch_dtype
    )
    vision = _build_vision(
        config, tower_dir, modules.mm_projector, parts.mm_projector, torch_device, torch_dtype
    )
    step("SAM2", num_shards + 1)
    segmenter = _build_segmenter(modules.sam2, sam2_name, parts.sam2, fuser_gamma, torch_device, torch_dtype)
    info = ModelInfo(
        source=str(source),
        revision=revision,
        checkpoint_dir=str(folder),
        vision_tower=str(tower_dir),
        sam2_config=sam2_name,
        fuser_gamma=fuser_gamma,
        quantize=quantize,
        device=str(torch_device),
        dtype=plan.dtype,
        dtype_reason=plan.reason,
        memory_estimate_gb=round(footprint.total / 1e9, 2),
    )
    image_processor = CLIPImageProcessorPil.from_pretrained(str(tower_dir))
    step("ready", total)
    return GlusModel(config, tokenizer, image_processor, vision, language, segmenter, info).eval()


def _checkpoint_sam2_config(config: GlusConfig, folder: Path) -> str | None:
    """The checkpoint's own SAM2 config (a glus-cli extension), resolved against its folder."""
    if config.sam2_config is None:
        return None
    candidate = folder / config.sam2_config
    return str(candidate) if candidate.is_file() else config.sam2_config


@dataclass
class GlusModules:
    """The modules a GLUS checkpoint fills, named like its key prefixes (see `checkpoint.route_key`).

    The LLaMA and the heads are built on the meta device (no memory until weights are assigned); SAM2 is
    built on the CPU because its constructors compute tables from their parameters.
    """

    llm: LlamaForCausalLM
    mm_projector: nn.Linear
    text_hidden_fcs: nn.ModuleList
    sam2: nn.Module


def build_modules(config: GlusConfig, sam2_config: str) -> GlusModules:
    """Empty GLUS modules with the shapes `config` and `sam2_config` describe."""
    hidden = config.hidden_size
    with torch.device("meta"):
        llm = LlamaForCausalLM(config.llama_config())
        mm_projector = nn.Linear(config.mm_hidden_size, hidden)
        text_hidden_fcs = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Linear(hidden, hidden),
                    nn.ReLU(inplace=True),
                    nn.Linear(hidden, config.out_dim),
                    nn.Dropout(0.0),
                )
            ]
        )
    # transformers' rotary module holds meta buffers; the 4.31-style table is real from the start.
    llm.model.rotary_emb = _rotary_table(config)
    sam2 = build_sam2_model(sam2_config, device="cpu")
    if int(sam2.hidden_dim) != config.out_dim:
        raise CheckpointError(
            f"SAM2 config {sam2_config} has width {sam2.hidden_dim}, "
            f"but the checkpoint's [SEG] embedding (out_dim) has {config.out_dim}"
        )
    return GlusModules(llm, mm_projector, text_hidden_fcs, sam2)


def _rotary_table(config: GlusConfig) -> RotaryTable:
    head_dim = config.hidden_size // int(config.llama["num_attention_heads"])
    max_positions = config.max_positions
    return RotaryTable(head_dim, config.rope_theta, max_positions)


def _build_language_model(
    config: GlusConfig,
    tokenizer: GlusTokenizer,
    modules: GlusModules,
    parts: GlusStateDicts,
    folder: Path,
    quantize: Quantize | None,
    device: torch.device,
    dtype: torch.dtype,
) -> SegLanguageModel:
    if quantize is None:
        load_into(modules.llm, parts.llm, what="the LLaMA", prefix="", assign=True)
        llm = modules.llm.to(device=device, dtype=dtype)
    else:
        llm = _load_quantized_llm(config.llama_config(), folder, quantize, device, dtype)
        llm.model.rotary_emb = _rotary_table(config).to(device=device, dtype=dtype)
    head = modules.text_hidden_fcs
    load_into(head, parts.text_hidden_fcs, what="the [SEG] head", prefix=SEG_HEAD_PREFIX, assign=True)
    return SegLanguageModel(llm, head.to(device=device, dtype=dtype), tokenizer.seg_token_id)


def _load_quantized_llm(
    llama_config: object, folder: Path, quantize: Quantize, device: torch.device, dtype: torch.dtype
) -> LlamaForCausalLM:
    """LLaMA decoder in 4/8 bit through transformers' bitsandbytes loader.

    The checkpoint's LLaMA keys are `LlamaForCausalLM`'s own names, so transformers reads them from the
    shards directly; the GLUS-only keys it reports as unused were already checked by `read_checkpoint`.
    """
    try:
        import accelerate  # noqa: F401
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise InputError(
            "--quantize needs bitsandbytes and accelerate: pip install 'glus-cli[quantization]'"
        ) from error
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
        )
    else:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    try:
        with _quiet_transformers_load():
            return LlamaForCausalLM.from_pretrained(
                str(folder),
                config=llama_config,
                dtype=dtype,
                quantization_config=quantization,
                device_map={"": device.index or 0} if device.type == "cuda" else {"": str(device)},
            )
    except (RuntimeError, ValueError, ImportError) as error:
        raise ResourceError(f"cannot load the LLM in {quantize}: {str(error).splitlines()[0]}") from error


@contextmanager
def _quiet_transformers_load() -> Iterator[None]:
    """No output from transformers' `from_pretrained`: its "Loading weights" bar and its load report, which
    lists the keys the model leaves unused (CLIP's text tower; the GLUS-only keys of a quantised LLaMA).
    Both are expected here, and the Python API, like the CLI, shows its own progress (`on_progress`).

    The report is filtered out, not silenced by the logger's level: transformers runs another check, with
    its own warnings, when that logger's level is WARNING or above.
    """
    from transformers.utils import logging as hf_logging

    report = logging.getLogger("transformers.modeling_utils")
    below_error = _BelowErrorFilter()
    bars = hf_logging.is_progress_bar_enabled()
    report.addFilter(below_error)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        report.removeFilter(below_error)
        if bars:
            hf_logging.enable_progress_bar()


class _BelowErrorFilter(logging.Filter):
    """Drops records below ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether `record` is an error."""
        return record.levelno >= logging.ERROR


def _build_vision(
    config: GlusConfig,
    tower_dir: Path,
    projector: nn.Linear,
    projector_state: dict[str, torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
) -> VisionProjector:
    try:
        with _quiet_transformers_load():
            tower = CLIPVisionModel.from_pretrained(str(tower_dir), dtype=dtype, attn_implementation="eager")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the CLIP vision tower from {tower_dir}: {error}") from error
    tower.config._attn_implementation = CLIP_ATTENTION
    if tower.config.hidden_size != config.mm_hidden_size:
        raise CheckpointError(
            f"the vision tower {tower_dir} has width {tower.config.hidden_size}, "
            f"but the checkpoint's projector expects mm_hidden_size={config.mm_hidden_size}"
        )
    load_into(projector, projector_state, what="the projector", prefix=PROJECTOR_PREFIX, assign=True)
    return VisionProjector(
        tower.to(device=device).eval(),
        projector.to(device=device, dtype=dtype),
        config.mm_vision_select_layer,
    )


def _build_segmenter(
    sam2: nn.Module,
    sam2_config: str,
    state: dict[str, torch.Tensor],
    fuser_gamma: FuserGamma,
    device: torch.device,
    dtype: torch.dtype,
) -> GlusSegmenter:
    load_into(sam2, state, what=f"SAM2 {sam2_config}", prefix=SAM2_PREFIX, assign=False)
    if fuser_gamma == "official-eval":
        for block in sam2.memory_encoder.fuser.layers:
            gamma = torch.full_like(block.gamma, OFFICIAL_EVAL_FUSER_GAMMA, dtype=torch.bfloat16)
            block.gamma.data.copy_(gamma)
    return GlusSegmenter(place_sam2_tables(sam2.to(device=device, dtype=dtype), device).eval())
