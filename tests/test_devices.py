"""Every device and GPU generation: SAM2's attention kernels, where sam2's tables live, TF32, bf16 results.

GPU-only decisions are tested on the CPU by patching the capability query; the kernels actually run are
read from torch's profiler.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import profile

from glus_cli.fidelity import compare_results, fidelity_bound
from glus_cli.model import attention
from glus_cli.model.glus import GlusModel, configure_matmul_precision
from glus_cli.model.memory_bank import MemoryBank
from glus_cli.model.segmenter import GlusSegmenter, build_sam2_model
from glus_cli.protocol import SegmentationOptions
from glus_cli.testing.checkpoint import TINY_SAM2_FILE, SyntheticCheckpoint
from tests.fixtures import (
    EXPRESSION,
    OTHER_EXPRESSION,
    ModelFactory,
    run,
    synthetic_frame,
    synthetic_video,
)

pytest_plugins = ["tests.fixtures"]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


# --- Kernel choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "dtype", "expected"),
    [
        ((9, 0), torch.bfloat16, [SDPBackend.FLASH_ATTENTION]),  # H100/H200
        ((8, 0), torch.float16, [SDPBackend.FLASH_ATTENTION]),  # A100
        ((8, 6), torch.float32, [SDPBackend.MATH]),  # flash has no fp32 kernel
        ((7, 5), torch.float16, [SDPBackend.MATH]),  # T4, RTX 20xx: no flash before sm80
        ((7, 0), torch.bfloat16, [SDPBackend.MATH]),  # V100
    ],
)
def test_official_kernels_follow_the_compute_capability(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], dtype: torch.dtype, expected: list
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert attention.sdpa_backends(CUDA, dtype, "official") == expected
    assert attention.sdpa_backends(CUDA, dtype, "fastest") is None  # torch's own order: fused kernels first


def test_cpu_and_mps_kernels_and_the_schedules_choice() -> None:
    assert attention.sdpa_backends(CPU, torch.float32, "official") == [SDPBackend.MATH]
    assert attention.sdpa_backends(CPU, torch.bfloat16, "official") == [SDPBackend.MATH]
    assert attention.sdpa_backends(CPU, torch.float32, "fastest") is None
    assert attention.sdpa_backends(torch.device("mps"), torch.float32, "official") is None
    assert attention.attention_for_schedule("fast") == "fastest"
    assert attention.attention_for_schedule("fast-exact") == "official"
    assert attention.attention_for_schedule("reference") == "official"


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        (CPU, torch.float32, "fused"),  # CPU flash: 5e-8 from the math kernel, no mask moved
        (
            CPU,
            torch.bfloat16,
            "math-chunks",
        ),  # the math kernel's bits: CPU flash's order flips bf16 roundings
        (CPU, torch.float16, "math-chunks"),
        (CUDA, torch.bfloat16, "fused"),
        (CUDA, torch.float32, "fused"),
    ],
)
def test_fastest_means_the_fastest_kernel_within_the_contract(
    device: torch.device, dtype: torch.dtype, expected: str
) -> None:
    assert attention.resolve_kernels("fastest", device, dtype) == expected
    assert attention.resolve_kernels("official", device, dtype) == "official"


def _sdpa() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 64, 32, generator=generator) for _ in range(3))
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_unavailable_kernel_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A pin the device cannot run (memory-efficient attention on this CPU build) warns once and runs."""
    monkeypatch.setattr(attention, "_unavailable", set())
    monkeypatch.setattr(attention, "sdpa_backends", lambda *args: [SDPBackend.EFFICIENT_ATTENTION])
    with caplog.at_level(logging.WARNING, logger="glus_cli.model.attention"):
        first = attention.run_attention(_sdpa, CPU, torch.float32, "official")
        second = attention.run_attention(_sdpa, CPU, torch.float32, "official")
    assert torch.equal(first, _sdpa()) and torch.equal(second, first)
    assert [record.getMessage() for record in caplog.records] == [
        "SAM2 attention: no efficient_attention kernel for cpu in torch.float32; "
        "falling back to torch's choice"
    ]


def test_other_errors_are_not_swallowed() -> None:
    def broken() -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        attention.run_attention(broken, CPU, torch.float32, "official")


def _attention_kernels_run(segmenter: GlusSegmenter, kernels: attention.AttentionKernels) -> set[str]:
    features = segmenter.encode_frame(segmenter.preprocess(synthetic_frame(0)))
    conditioned = segmenter.condition_on_memory(features, None)
    decoded = segmenter.decode(features, conditioned, torch.ones(1, 1, 32))
    bank = MemoryBank()
    bank.write(0, segmenter.encode_memory(features, conditioned, decoded))
    with profile() as profiler:
        conditioned = segmenter.condition_on_memory(features, bank.read(1), kernels)
        segmenter.decode(features, conditioned, torch.ones(1, 1, 32), kernels)
    return {event.name for event in profiler.events() if "scaled_dot_product" in event.name}


def test_half_precision_cpu_attention_runs_flash_in_fp32() -> None:
    """Inside `Fp32Attention` (the `fused` kernels), bf16 SDPA is CPU flash on fp32 copies: the math
    kernel's result (which computes half inputs in fp32) to fp32 rounding, cast back to bf16."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 256, 64, generator=generator).bfloat16() for _ in range(3))
    with profile() as profiler, attention.Fp32Attention():
        upcast = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    with sdpa_kernel([SDPBackend.MATH]):
        math = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    names = {event.name for event in profiler.events()}
    assert upcast.dtype == torch.bfloat16
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert (upcast.float() - math.float()).abs().max() <= 2**-7  # at most one bf16 rounding step apart
    flash_bf16 = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert (upcast.float() - math.float()).abs().max() < (flash_bf16.float() - math.float()).abs().max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(
    ("heads", "queries", "keys", "width", "scale"),
    [
        (1, 4096, 2 * 4096, 256, None),  # memory attention over two memories (SAM2's shapes)
        (8, 7, 4096, 16, None),  # the mask decoder's token-to-image attention
        (8, 4096, 7, 16, None),  # and image-to-token
        (2, 3000, 1000, 64, 0.3),  # an explicit scale
    ],
)
def test_math_in_chunks_follows_the_math_kernel(
    monkeypatch: pytest.MonkeyPatch,
    dtype: torch.dtype,
    heads: int,
    queries: int,
    keys: int,
    width: int,
    scale: float | None,
) -> None:
    """`math-chunks` computes what the official CPU kernel computes, chunk boundaries included (chunks of
    146 queries at 7 memories, as here). In half precision its outputs are the math kernel's but for
    rare rounding steps, far rarer than CPU flash's on fp32 copies (`fused`): none with this CPU's
    AVX512 kernels; with AVX2 kernels the fp32 products of a chunk may sum in another order."""
    monkeypatch.setattr(attention, "CHUNK_SCORES", attention.CHUNK_SCORES // (7 * 4096) * keys)
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(1, heads, queries, width, generator=generator).to(dtype)
    k, v = (torch.randn(1, heads, keys, width, generator=generator).to(dtype) for _ in range(2))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with sdpa_kernel([SDPBackend.MATH]):
        math = sdpa(q, k, v, scale=scale)
    with profile() as profiler, attention.MathInChunks():
        chunked = sdpa(q, k, v, scale=scale)
    assert chunked.dtype == dtype
    assert not [event.name for event in profiler.events() if "scaled_dot_product" in event.name]
    if dtype == torch.float32:
        torch.testing.assert_close(chunked, math, rtol=1e-5, atol=1e-6)
        return
    with attention.Fp32Attention():
        fused = sdpa(q, k, v, scale=scale)
    torch.testing.assert_close(chunked, math)
    differing, fused_differing = int((chunked != math).sum()), int((fused != math).sum())
    assert differing <= fused_differing // 10, (differing, fused_differing)


def test_math_in_chunks_leaves_masked_calls_to_the_math_kernel() -> None:
    generator = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 32, 16, generator=generator).bfloat16() for _ in range(3))
    with sdpa_kernel([SDPBackend.MATH]):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    with profile() as profiler, attention.MathInChunks():
        causal = torch.nn.functional.scaled_dot_product_attention(q, k, v, None, 0.0, True)
    assert torch.equal(causal, expected)
    assert "aten::_scaled_dot_product_attention_math" in {event.name for event in profiler.events()}


def test_fast_in_bf16_on_the_cpu_runs_math_in_chunks(
    models: ModelFactory, tiny_checkpoint: SyntheticCheckpoint
) -> None:
    segmenter = models(tiny_checkpoint, dtype="bfloat16").segmenter
    assert _attention_kernels_run(segmenter, "fastest") == set()  # no SDPA kernel: the formula in chunks
    assert "aten::_scaled_dot_product_attention_math" in _attention_kernels_run(segmenter, "official")


@pytest.mark.parametrize(
    ("schedule", "kernels"), [("fast", "fastest"), ("fast-exact", "official"), ("reference", "official")]
)
def test_each_schedule_hands_its_kernels_to_sam2(
    tiny_model: GlusModel, monkeypatch: pytest.MonkeyPatch, schedule: str, kernels: str
) -> None:
    seen: list[str] = []
    original = GlusSegmenter.condition_on_memory

    def spy(self: GlusSegmenter, features: object, memory: object, kernels: str = "official") -> torch.Tensor:
        seen.append(kernels)
        return original(self, features, memory, kernels)

    monkeypatch.setattr(GlusSegmenter, "condition_on_memory", spy)
    run(
        tiny_model,
        synthetic_video(2),
        options=SegmentationOptions(num_context_frames=1, num_query_frames=1, schedule=schedule),
    )
    assert seen == [kernels, kernels]


# --- Where sam2's tables live ----------------------------------------------------------------------


def _tables(sam2: torch.nn.Module) -> list[torch.Tensor]:
    tables = [m.freqs_cis for m in sam2.modules() if isinstance(getattr(m, "freqs_cis", None), torch.Tensor)]
    caches = [
        v for m in sam2.modules() if isinstance(getattr(m, "cache", None), dict) for v in m.cache.values()
    ]
    return tables + [value for value in caches if isinstance(value, torch.Tensor)]


def test_sam2_builds_without_touching_cuda(
    tiny_checkpoint: SyntheticCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sam2 1.1.0 moves `freqs_cis` to "cuda" whenever CUDA exists: on this CPU torch that raises, so a
    build under `is_available() == True` proves the constructors never see CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    sam2 = build_sam2_model(tiny_checkpoint.path / TINY_SAM2_FILE, device="cpu")
    tables = _tables(sam2)
    assert len([m for m in sam2.modules() if hasattr(m, "freqs_cis")]) == 2  # self- and cross-attention
    assert tables and all(table.device == CPU for table in tables)


def test_loaded_model_lives_on_its_device_in_its_dtype(
    models: ModelFactory, tiny_checkpoint: SyntheticCheckpoint
) -> None:
    model = models(tiny_checkpoint, dtype="bfloat16")
    tensors = [*model.parameters(), *model.buffers(), *_tables(model.segmenter.sam2)]
    assert all(tensor.device == CPU for tensor in tensors)
    wrong_dtype = [
        name
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]
        if tensor.is_floating_point() and tensor.dtype != torch.bfloat16 and "rotary" not in name
    ]
    assert wrong_dtype == []


def test_fp32_on_a_gpu_turns_tf32_off() -> None:
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    try:
        matmul.fp32_precision, conv.fp32_precision = "tf32", "tf32"
        configure_matmul_precision(CUDA, torch.bfloat16)
        configure_matmul_precision(CPU, torch.float32)
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        configure_matmul_precision(CUDA, torch.float32)
        assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


# --- bf16 results ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_query_frames", "frames"), [(2, 2), (1, 4)])
def test_bf16_fast_keeps_the_official_bf16_decisions_and_masks(
    models: ModelFactory, tiny_checkpoint: SyntheticCheckpoint, num_query_frames: int, frames: int
) -> None:
    """bf16 `fast` (math in query chunks, prefix cache, one-row heads) against bf16 `reference` (the
    official kernels and numerics): within the bf16 fidelity contract, with SAM2 reading memories."""
    model = models(tiny_checkpoint, dtype="bfloat16")
    video = synthetic_video(frames)
    options = {"num_context_frames": 1, "num_query_frames": num_query_frames, "mem_stride": 1}
    reference = run(
        model, video, (EXPRESSION, OTHER_EXPRESSION), SegmentationOptions(schedule="reference", **options)
    )
    fast = run(model, video, (EXPRESSION, OTHER_EXPRESSION), SegmentationOptions(schedule="fast", **options))
    agreement = compare_results(fast, reference)
    assert agreement.frames == 2 * frames and all(r.is_seg for r in reference)
    assert fidelity_bound("bfloat16").holds(agreement), agreement
