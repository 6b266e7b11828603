"""The memory a run will need, estimated before anything is loaded, and the check against what is free.

The estimate adds up:
- the weights in the compute dtype: every tensor of the checkpoint's LLaMA, projector, `[SEG]` head and
  SAM2, and of the CLIP tower's vision model, counted from the weight files' headers (safetensors) or
  memory-mapped `.bin` files, so nothing is read; with `--quantize` the LLaMA's linear layers count 1 byte
  (8 bit) or about 0.53 bytes (4 bit NF4 with double quantisation) per weight;
- the working set at the run's frame size and `llm_batch_size`: the LLM's key/value cache and one layer's
  eager attention scores and MLP activations over a full prompt, CLIP's batch, SAM2 at 1024 pixels (the
  memory attention's scores over 7 memories on the math kernel, the Hiera encoder's first stage) and the
  decoded frame and masks;
- while loading on the CPU into another dtype than the checkpoint's, the checkpoint as stored (it is
  converted module by module but held until the load ends); with `--quantize` on the CPU, also the
  LLaMA as stored, twice, which bitsandbytes' loader holds until every layer is quantised (the quantised plans
  need more RAM than bf16 at their peak, and run slower on a CPU: the check says so); and SAM2 in
  fp32 (it is built so, then cast) when the compute dtype is narrower;
- on the CPU, the Python/torch runtime; on a GPU, the CUDA context and cuBLAS workspace.

plus `MARGIN` (6%). These are estimates, meant as upper bounds: 10-27% above measured peaks on the full
shape (up to 80% for the quantised plans on the CPU, a loose bound), every plan (benchmarks/README.md,
`benchmarks/bench_full.py`; tests/test_memory_estimate.py checks it). The check refuses a plan only when
the estimate exceeds the available memory, and then names the plans that would fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from glus_cli import hardware
from glus_cli.errors import ResourceError
from glus_cli.model.checkpoint import iter_tensors, route_key, weight_files
from glus_cli.model.config import GlusConfig
from glus_cli.protocol import NUM_MASKMEM, Workload, llm_batch_size_for

GIB = 2**30
# bitsandbytes bytes per quantised weight: int8, or NF4 (0.5) + blockwise absmax scales (double-quantised).
_QUANTIZED_BYTES = {"8bit": 1.0, "4bit": 0.53}
_QUANTIZED_LINEAR = re.compile(r"\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$")
_FP32_BYTES = 4
_QUANTIZED_LOADING_COPIES = 2
"""Copies of the stored LLaMA that quantised loading holds at its peak, as an upper bound: measured, 0.9x
(7B, 8 bit) to 2x (8 layers of width 2048) its bytes beyond the quantised weights (benchmarks/README.md)."""
IMAGE_TOKENS = 64
PROMPT_TEXT_POSITIONS = 256
"""Text positions of a full prompt, rounded up (about 204 with the real LLaMA vocabulary)."""
SAM2_MEMORY_TOKENS = 64 * 64
"""Tokens per memory at SAM2's 1024-pixel input (64 x 64 features)."""
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
_CLIP_TEXT_PREFIXES = ("text_model.", "text_projection", "visual_projection", "logit_scale")
"""A full CLIP checkpoint's keys that `CLIPVisionModel` does not load."""
MARGIN = 1.06
"""What the terms miss: allocator slack, threads' stacks and buffers. Peaks of the same run vary by a few
percent (15.9 and 16.6 GB for LLaMA-7B in bf16 on the CPU); with it the estimate stays >= 5% above them."""
RUNTIME_BYTES = {"cpu": 6 * GIB // 10, "mps": 6 * GIB // 10, "cuda": GIB}
"""On the CPU: Python, torch and the libraries (0.37 GiB measured after importing all that a run loads),
plus the prefetch and writer threads' allocator arenas and buffers. (It was raised from 0.5 GiB after a
clean-clone CI run measured a bf16 peak 4.8% under the estimate; that peak was the test process's own,
read through `ru_maxrss`: see `glus_cli.cli.runs.peak_rss_bytes`.) On CUDA: the context and cuBLAS
workspace."""
CPU_BATCH_LLM_COPIES = 2
"""On the CPU, a batch of prompts (`--llm-batch-size` > 1) counts the LLM's key/value cache and activations
twice: at LLaMA-7B in bf16 a batch of 4 raised the peak RSS by 2.44 GB over one prompt at a time, about twice
what these terms give for the 3 extra prompts (benchmarks/README.md, "Batching expressions on the CPU"); with
them counted once the estimate was only 0.4% above that peak."""


@dataclass(frozen=True)
class ModelTensors:
    """Element counts of a checkpoint's tensors by role, and the bytes they take as stored.

    Attributes:
        llm_linear: LLaMA linear-layer weights (what `--quantize` quantises).
        llm_other: embeddings, `lm_head`, norms.
        rest: projector, `[SEG]` head, SAM2 and the CLIP vision model.
        stored_bytes: the checkpoint's and the tower's bytes in their files' dtypes, by bytes per element.
        llm_stored_bytes: the LLaMA's bytes in its files' dtypes (what quantised loading holds).
        sam2: SAM2's elements (SAM2 is built in fp32 on the CPU before its weights are loaded).
    """

    llm_linear: int
    llm_other: int
    rest: int
    stored_bytes: dict[int, int]
    llm_stored_bytes: int
    sam2: int


@dataclass(frozen=True)
class Footprint:
    """Estimated bytes of one plan (dtype, quantisation) on one device.

    Attributes:
        dtype: the compute dtype's name.
        quantize: `4bit`, `8bit` or None.
        weights: every module's weights.
        working_set: activations and caches while segmenting.
        loading: extra bytes held only while loading (the checkpoint as stored, when converted on the CPU).
        runtime: Python/torch, or the CUDA context.
    """

    dtype: str
    quantize: str | None
    weights: int
    working_set: int
    loading: int
    runtime: int

    @property
    def total(self) -> int:
        """Peak bytes: weights + runtime + the larger of loading and segmenting, plus `MARGIN`."""
        return int((self.weights + self.runtime + max(self.working_set, self.loading)) * MARGIN)

    def flags(self, current_dtype: str) -> str:
        """How to ask for this plan on a run now in `current_dtype`: `--dtype bfloat16 --quantize 8bit`."""
        dtype = f"--dtype {self.dtype}" if self.dtype != current_dtype else ""
        quantize = f"--quantize {self.quantize}" if self.quantize else ""
        return " ".join(flag for flag in (dtype, quantize) if flag)


def count_tensors(folder: Path, tower_dir: Path) -> ModelTensors:
    """Element counts of the GLUS checkpoint in `folder` and the vision model in `tower_dir`, unread."""
    counts = {"llm_linear": 0, "llm_other": 0, "rest": 0, "llm_stored_bytes": 0, "sam2": 0}
    stored: dict[int, int] = {}
    for name, shape, itemsize in _tensor_shapes(folder):
        route = route_key(name)
        if route is None:
            continue
        size = _numel(shape)
        stored[itemsize] = stored.get(itemsize, 0) + size * itemsize
        if route[0] != "llm":
            counts["rest"] += size
            counts["sam2"] += size if route[0] == "sam2" else 0
        else:
            counts["llm_linear" if _QUANTIZED_LINEAR.search(name) else "llm_other"] += size
            counts["llm_stored_bytes"] += size * itemsize
    for name, shape, itemsize in _tensor_shapes(tower_dir):
        if not name.startswith(_CLIP_TEXT_PREFIXES):
            counts["rest"] += _numel(shape)
            stored[itemsize] = stored.get(itemsize, 0) + _numel(shape) * itemsize
    return ModelTensors(**counts, stored_bytes=stored)


RELEASED_LLAMA = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32004,
    "max_position_embeddings": 2048,
}
"""The LLaMA-7B of the released GLUS checkpoints (their config.json; vocabulary 32000 + 4 added tokens)."""
CLIP_L14_VISION_ELEMENTS = 303_179_776
"""Parameters of the CLIP ViT-L/14 vision model (`CLIPVisionModel`, 24 layers of width 1024)."""


def released_model_estimate(checkpoint_bytes: int, vision_tower: str) -> tuple[GlusConfig, ModelTensors]:
    """The config and tensor counts of a released 7B checkpoint, from its download size alone (for
    `glus check`, before any download): LLaMA-7B's linear and other weights by their shapes, the rest of
    the bf16 checkpoint (projector, `[SEG]` head, SAM2) by difference, and the ViT-L/14 vision model.
    """
    llama = RELEASED_LLAMA
    hidden, layers = llama["hidden_size"], llama["num_hidden_layers"]
    llm_linear = layers * (4 * hidden * hidden + 3 * hidden * llama["intermediate_size"])
    llm_other = 2 * llama["vocab_size"] * hidden + (2 * layers + 1) * hidden  # embeddings, lm_head, norms
    stored = checkpoint_bytes // 2  # bf16, as released
    config = GlusConfig(
        llama=dict(llama),
        vision_tower=vision_tower,
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_hidden_size=1024,
        mm_use_im_start_end=True,
        out_dim=256,
    )
    beside_llm = max(stored - llm_linear - llm_other, 0)  # SAM2-L, the projector and the [SEG] head
    tensors = ModelTensors(
        llm_linear=llm_linear,
        llm_other=llm_other,
        rest=beside_llm + CLIP_L14_VISION_ELEMENTS,
        stored_bytes={2: checkpoint_bytes, 4: CLIP_L14_VISION_ELEMENTS * 4},
        llm_stored_bytes=2 * (llm_linear + llm_other),
        sam2=beside_llm,  # an upper bound: the projector and head are counted as SAM2's fp32 build too
    )
    return config, tensors


def _numel(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def _tensor_shapes(folder: Path) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, bytes per element) of every tensor in a folder's weight files, without reading data."""
    shapes = []
    for path in weight_files(folder):
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                    piece = handle.get_slice(name)
                    dtype = getattr(torch, _SAFETENSORS_DTYPES.get(piece.get_dtype(), "float32"))
                    shapes.append((name, tuple(piece.get_shape()), dtype.itemsize))
        else:  # memory-mapped: only the pickle is read
            shapes.extend((name, tuple(t.shape), t.element_size()) for name, t in iter_tensors(path))
    return shapes


def estimate_footprint(
    config: GlusConfig,
    tensors: ModelTensors,
    device: torch.device,
    dtype: str,
    quantize: str | None,
    workload: Workload,
) -> Footprint:
    """Bytes that loading and running the plan (`dtype`, `quantize`) on `device` takes."""
    width = getattr(torch, dtype).itemsize
    llm_linear = tensors.llm_linear * (_QUANTIZED_BYTES[quantize] if quantize else width)
    weights = int(llm_linear + (tensors.llm_other + tensors.rest) * width)
    # Loading on the CPU converts the tensors stored in another width and holds the originals until it ends.
    loading = sum(size for itemsize, size in tensors.stored_bytes.items() if itemsize != width)
    if quantize is not None:
        # transformers' bitsandbytes loader reads the LLaMA as stored and holds it until every layer is
        # quantised, beside the copy glus-cli's own reader maps: measured peaks need up to twice its bytes.
        loading += _QUANTIZED_LOADING_COPIES * tensors.llm_stored_bytes
    if width != _FP32_BYTES:
        loading += tensors.sam2 * _FP32_BYTES  # built in fp32, cast to `dtype` once its weights are in
    return Footprint(
        dtype=dtype,
        quantize=quantize,
        weights=weights,
        working_set=_working_set(config, device, width, workload),
        loading=loading if device.type == "cpu" else 0,
        runtime=RUNTIME_BYTES.get(device.type, RUNTIME_BYTES["cpu"]),
    )


def _working_set(config: GlusConfig, device: torch.device, width: int, workload: Workload) -> int:
    """Activation and cache bytes of one query step at the peak, in elements of `width` bytes unless noted."""
    batch = llm_batch_size_for(workload.llm_batch_size, device.type)  # the schedule's own rule
    llama = config.llama
    hidden, layers = int(llama["hidden_size"]), int(llama["num_hidden_layers"])
    heads, kv_heads = int(llama["num_attention_heads"]), int(llama["num_key_value_heads"])
    images = workload.num_context_frames + workload.num_query_frames
    positions = images * IMAGE_TOKENS + PROMPT_TEXT_POSITIONS
    kv_cache = 2 * layers * batch * positions * kv_heads * (hidden // heads) * width
    scores = batch * heads * positions * positions * (width + 4)  # eager scores + fp32 softmax, one layer
    mlp = 3 * batch * positions * int(llama["intermediate_size"]) * width
    llm = kv_cache + scores + mlp
    if batch > 1 and device.type == "cpu":
        llm *= CPU_BATCH_LLM_COPIES
    logits = positions * int(llama["vocab_size"]) * 4  # `reference` runs lm_head over every position
    clip = images * 257 * config.mm_hidden_size * 12 * width  # ~12 live (tokens x width) activations
    # SAM2: memory-attention scores and softmax over 7 memories (math kernel), the encoder's 256² stage.
    sam2 = (2 * SAM2_MEMORY_TOKENS * NUM_MASKMEM * SAM2_MEMORY_TOKENS + 8 * 256 * 256 * 256) * width
    height, frame_width = workload.frame_size
    frames = height * frame_width * (3 + 2 * 4)  # decoded RGB + fp32 mask logits upsampled twice
    return int(llm + logits + clip + sam2 + frames)


def check_memory(
    config: GlusConfig,
    tensors: ModelTensors,
    device: torch.device,
    dtype: str,
    quantize: str | None,
    workload: Workload,
    available: int | None = None,
    native_bf16: bool = True,
) -> Footprint:
    """The plan's footprint, or a `ResourceError` naming both numbers and the plans that would fit.

    Args:
        config: the checkpoint's config (LLaMA sizes for the working set).
        tensors: `count_tensors` of the checkpoint and its CLIP tower.
        device: where the model will run.
        dtype: the compute dtype's name.
        quantize: the LLM's quantisation, or None.
        workload: frame size and batch of the run.
        available: bytes free for the model; default `glus_cli.hardware.available_memory(device)`.
        native_bf16: whether the device computes bf16 natively; when not, bf16 plans are marked as slow.

    Raises:
        ResourceError: the estimate exceeds the available memory.
    """
    footprint = estimate_footprint(config, tensors, device, dtype, quantize, workload)
    if available is None:
        available, what = hardware.available_memory(device)
    else:
        what = "available"
    if footprint.total <= available:
        return footprint
    # Smaller plans: bf16 (the official precision), then the LLM quantised, computing in bf16, not fp32.
    half = "bfloat16" if dtype == "float32" else dtype
    candidates = [("bfloat16", None)] if quantize is None and dtype == "float32" else []
    candidates += [(half, "8bit")] if quantize != "4bit" else []
    candidates += [(half, "4bit")]
    alternatives = [
        estimate_footprint(config, tensors, device, other_dtype, other_quantize, workload)
        for other_dtype, other_quantize in candidates
        if (other_dtype, other_quantize) != (dtype, quantize)
    ]
    fitting = [plan for plan in alternatives if plan.total <= available]
    if fitting:
        advice = "plans that fit: " + ", ".join(
            f"{p.flags(dtype)} ({_gb(p.total)}{_speed_note(p, device, native_bf16)})" for p in fitting
        )
    elif alternatives:
        smallest = min(alternatives, key=lambda p: p.total)
        advice = f"no plan fits: the smallest, {smallest.flags(dtype)}, needs {_gb(smallest.total)}"
    else:
        advice = "no smaller plan exists"
    plan = f"{dtype}" + (f" with {quantize} LLM" if quantize else "")
    raise ResourceError(
        f"the model needs about {_gb(footprint.total)} in {plan} on {device} "
        f"(weights {_gb(footprint.weights)}) "
        f"but {_gb(available)} is {what}; {advice}"
    )


def _speed_note(plan: Footprint, device: torch.device, native_bf16: bool) -> str:
    """What a user should know about a plan's speed before picking it."""
    if plan.dtype == "bfloat16" and not native_bf16:
        return ", emulated here: very slow"
    if plan.quantize is not None and device.type == "cpu":
        # bitsandbytes' CPU kernels dequantise every layer each step: 2.5x (8 bit) and 4.8x (4 bit) the
        # bf16 time per frame, measured at full size on a 2-core AMX CPU (benchmarks/README.md).
        return ", slower than bfloat16 on a CPU"
    return ""


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"
