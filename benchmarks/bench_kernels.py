"""The kernels behind the CPU default at 7B (issue #15 item 5): each candidate's time and bits.

Three measurements at LLaMA-7B's and SAM2-L's real widths, with random weights, in bf16 (the `auto` plan on
a CPU with native bf16; `--dtype float32` runs the LLM and its products in fp32, the plan without it):

- `llm`: one LLaMA-7B decoder layer over the `fast` schedule's suffix (406 positions on a 310-position
  cached prefix), per attention implementation: `eager` (the official formula, what `reference` runs),
  `glus_eager_in_head_chunks` (`fast` on a CPU) and transformers' `sdpa`; ms per layer and whether the
  hidden states equal eager's bit for bit. Two layers, their mean.
- `memory_attention`: one SAM2 memory cross-attention at 7 memories (4096 queries over 7 x 4096 keys, width
  256) in `math_in_chunks`, per chunk size; s per call and whether the output equals the 128 MiB chunks'.
- `gemm`: the LLaMA's three matrix shapes, torch's `linear` against oneDNN weights packed once
  (`torch.ops.mkldnn._reorder_linear_weight`); ms, TFLOP/s, and whether the outputs are equal.

Each row is the median of `--repeats` runs, interleaved so that a noisy neighbour hits every candidate alike.
`--narrow` divides every width by 16 (the suite's smoke run, `tests/test_bench_kernels.py`).

    .venv/bin/python benchmarks/bench_kernels.py [--json F] [--repeats 5] [--only llm gemm] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DynamicCache, LlamaConfig, LlamaModel

from glus_cli.model import attention
from glus_cli.model.mllm import LLAMA_EAGER_IN_CHUNKS

PREFIX, SUFFIX = 310, 406
"""The `fast` schedule's LLM call at N_C = 4, N_Q = 4, real LLaMA vocabulary (benchmarks/README.md)."""
CHUNK_SIZES = (2**25, 2**23, 2**22, 2**21)


@dataclass(frozen=True)
class Setup:
    """What is measured: LLaMA-7B's and SAM2-L's widths (or all divided by `divisor`), the LLM in `dtype`.

    The memory attention is always in bf16: `math-chunks` is the `fast` schedule's kernel in bf16 only.
    """

    divisor: int = 1
    dtype: torch.dtype = torch.bfloat16

    @property
    def llm(self) -> dict[str, int]:
        """LlamaConfig's widths."""
        return {
            "hidden_size": 4096 // self.divisor,
            "intermediate_size": 11008 // self.divisor,
            "num_attention_heads": 32 // self.divisor,
        }

    @property
    def memory(self) -> tuple[int, int, int]:
        """(queries, keys, width) of a memory cross-attention at 7 memories."""
        return 4096 // self.divisor, 7 * 4096 // self.divisor, 256 // self.divisor


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call, each round running every candidate once (after one warm-up round)."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(_seconds(call))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_llm(setup: Setup, repeats: int) -> list[dict]:
    """ms per LLaMA-7B layer for each attention implementation, and whether it gives eager's bits."""
    torch.manual_seed(0)
    config = LlamaConfig(**setup.llm, num_hidden_layers=2, vocab_size=32)  # inputs are embeddings
    config._attn_implementation = "eager"
    model = LlamaModel(config).to(setup.dtype).eval()  # transformers' own initialisation, buffers included
    prefix = torch.randn(1, PREFIX, config.hidden_size).to(setup.dtype)
    suffix = torch.randn(1, SUFFIX, config.hidden_size).to(setup.dtype)
    with torch.inference_mode():
        cache = DynamicCache()
        model(inputs_embeds=prefix, past_key_values=cache, use_cache=True)
        layers = [(layer.keys, layer.values) for layer in cache.layers]

        def forward(implementation: str) -> torch.Tensor:
            config._attn_implementation = implementation
            cached = DynamicCache(ddp_cache_data=layers)
            return model(inputs_embeds=suffix, past_key_values=cached, use_cache=True).last_hidden_state

        implementations = ("eager", LLAMA_EAGER_IN_CHUNKS, "sdpa")
        outputs = {name: forward(name) for name in implementations}
        times = _interleaved({name: lambda name=name: forward(name) for name in implementations}, repeats)
    return [
        {
            "attention": name,
            "ms_per_layer": round(times[name] / config.num_hidden_layers * 1e3, 1),
            "bits_of_eager": torch.equal(outputs[name], outputs["eager"]),
        }
        for name in implementations
    ]


def bench_memory_attention(setup: Setup, repeats: int) -> list[dict]:
    """s per memory cross-attention at 7 memories for each chunk size, and whether the bits stay."""
    generator = torch.Generator().manual_seed(0)
    queries, keys, width = setup.memory
    query = torch.randn(1, 1, queries, width, generator=generator).bfloat16()
    key, value = (torch.randn(1, 1, keys, width, generator=generator).bfloat16() for _ in range(2))
    default = attention.CHUNK_SCORES
    outputs, calls = {}, {}
    try:
        for size in CHUNK_SIZES:

            def call(size: int = size) -> torch.Tensor:
                attention.CHUNK_SCORES = size
                return attention.math_in_chunks(query, key, value)

            outputs[size], calls[size] = call(), call
        times = _interleaved(calls, repeats)
    finally:
        attention.CHUNK_SCORES = default
    return [
        {
            "chunk_mib": size * 4 / 2**20,
            "queries_per_chunk": max(attention.MIN_CHUNK_ROWS, size // keys),
            "default": size == default,
            "seconds": round(times[size], 3),
            "bits_of_128_mib": torch.equal(outputs[size], outputs[CHUNK_SIZES[0]]),
        }
        for size in CHUNK_SIZES
    ]


def bench_gemm(setup: Setup, repeats: int) -> list[dict]:
    """The LLaMA-7B matrix products over the suffix: torch's linear against prepacked oneDNN weights."""
    generator = torch.Generator().manual_seed(0)
    hidden, mlp = setup.llm["hidden_size"], setup.llm["intermediate_size"]
    rows = []
    for out_features, in_features in ((hidden, hidden), (mlp, hidden), (hidden, mlp)):
        x = torch.randn(SUFFIX, in_features, generator=generator).to(setup.dtype)
        weight = (torch.randn(out_features, in_features, generator=generator) * 0.02).to(setup.dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, SUFFIX)

        def plain(x: torch.Tensor = x, weight: torch.Tensor = weight) -> torch.Tensor:
            return torch.nn.functional.linear(x, weight)

        def prepacked(x: torch.Tensor = x, packed: torch.Tensor = packed) -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")

        times = _interleaved({"linear": plain, "prepacked": prepacked}, repeats)
        flops = 2 * SUFFIX * in_features * out_features
        rows.append(
            {
                "shape": f"{SUFFIX}x{in_features} @ {in_features}x{out_features}",
                **{f"{name}_ms": round(seconds * 1e3, 2) for name, seconds in times.items()},
                **{f"{name}_tflops": round(flops / seconds / 1e12, 2) for name, seconds in times.items()},
                "equal": torch.equal(plain(), prepacked()),
            }
        )
    return rows


BENCHES = {"llm": bench_llm, "memory_attention": bench_memory_attention, "gemm": bench_gemm}


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[key]) for key in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the chosen benchmarks, print a table each, write JSON with `--json`, and return the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run these benchmarks only")
    parser.add_argument("--narrow", action="store_true", help="every width divided by 16 (smoke run)")
    parser.add_argument(
        "--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="the LLM's dtype"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    setup = Setup(16 if args.narrow else 1, getattr(torch, args.dtype))
    report: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "narrow": args.narrow}
    report["dtype"] = args.dtype
    for name in args.only or BENCHES:
        report[name] = BENCHES[name](setup, args.repeats)
        print(f"\n{name}\n{_table(report[name])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
