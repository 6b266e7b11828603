"""`benchmarks/bench_kernels.py --narrow` measures every candidate and reports which keep bits.

The real figures (7B widths) are in benchmarks/README.md, "A faster CPU default at 7B"; the smoke run
divides the widths by 16 so that it stays fast.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from glus_cli.model import attention
from glus_cli.model.mllm import LLAMA_EAGER_IN_CHUNKS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_smoke_run_measures_each_candidate(tmp_path: Path) -> None:
    out = tmp_path / "kernels.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import bench_kernels

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            report = bench_kernels.main(["--narrow", "--repeats", "1", "--json", str(out)])
    assert json.loads(out.read_text(encoding="utf-8")) == report
    llm = {row["attention"]: row for row in report["llm"]}
    assert set(llm) == {"eager", LLAMA_EAGER_IN_CHUNKS, "sdpa"}
    assert llm["eager"]["bits_of_eager"] and llm[LLAMA_EAGER_IN_CHUNKS]["bits_of_eager"]
    assert all(row["ms_per_layer"] > 0 for row in llm.values())
    (default,) = [row for row in report["memory_attention"] if row["default"]]
    assert default["chunk_mib"] == attention.CHUNK_SCORES * 4 / 2**20 == 16
    assert attention.CHUNK_SCORES == 2**22  # the benchmark put the default back
    assert len(report["gemm"]) == 3 and all(row["linear_ms"] > 0 for row in report["gemm"])
    assert "| glus_eager_in_head_chunks |" in printed.getvalue()
