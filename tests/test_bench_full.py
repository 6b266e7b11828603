"""`benchmarks/bench_full.py --layers 2 --frames 3` runs `glus segment` end to end and reports sane figures.

The smoke run uses the narrow full shape (`--narrow`: the 7B proportions at width 128, tiny CLIP and SAM2)
and one plan, so that it stays fast; the real figures come from the same script at full size.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_smoke_run_reports_timings_stages_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = ["--work-dir", str(tmp_path), "--layers", "2", "--frames", "3", "--narrow", "--plans", "bfloat16"]
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import bench_full

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            report = bench_full.main([*args, "--expressions", "1", "--json", str(out)])
    assert json.loads(out.read_text(encoding="utf-8")) == report
    assert {plan["dtype"] for plan in report["plans"]} == {"bfloat16", "float32"}  # and the quantised ones
    (run,) = report["runs"]
    assert (run["plan"], run["expressions"], run["frames"]) == ("bfloat16", 1, 3)
    assert run["frames_without_seg"] == 0  # the full shape answers [SEG], so the timing is the real one
    assert run["load_seconds"] > 0 and run["seconds_per_frame_steady"] > 0
    stages = run["stages_per_frame"]
    assert all(stages[stage] > 0 for stage in ("clip", "llm", "sam2_encoder", "decoder_memory"))
    assert run["peak_rss_gb"] > 0.3 and run["estimate_gb"] == run["cli_estimate_gb"]
    assert run["headroom"] >= 0.05  # the memory check's estimate is an upper bound
    assert "| bfloat16 | 1 | 3 |" in printed.getvalue()
