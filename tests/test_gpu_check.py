"""`benchmarks/gpu_check.py --quick` runs on the CPU and reports sane figures, so the GPU check cannot rot."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pytest

from glus_cli.fidelity import fidelity_bound

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """The printed JSON and the JSON written to --out, of one quick CPU run."""
    work = tmp_path_factory.mktemp("gpu-check")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import gpu_check

        capture = work / "stdout.json"
        out = work / "report.json"
        with capture.open("w", encoding="utf-8") as stream, contextlib.redirect_stdout(stream):
            gpu_check.main(["--quick", "--device", "cpu", "--work-dir", str(work), "--out", str(out)])
    return json.loads(capture.read_text(encoding="utf-8")), json.loads(out.read_text(encoding="utf-8"))


def test_prints_and_writes_the_same_json(report: tuple[dict, dict]) -> None:
    printed, written = report
    assert printed == written
    assert set(printed) >= {
        "environment",
        "audit",
        "syncs_per_frame",
        "speed",
        "llm_7b",
        "clip_batch",
        "exactness",
        "full_size",
        "seconds",
    }


def test_environment_and_audit(report: tuple[dict, dict]) -> None:
    data, _ = report
    environment = data["environment"]
    assert environment["device"] == "cpu" and environment["torch"]
    assert environment["bf16_tflops"] > 0
    assert environment["gpu"] is None and environment["capability"] is None  # CUDA-only figures
    audit = data["audit"]["tiny"]
    assert audit["tensors"] > 100
    assert (audit["off_device"], audit["wrong_dtype"]) == (0, 0), audit


def test_speed_has_every_schedule_and_stage(report: tuple[dict, dict]) -> None:
    data, _ = report
    speed = data["speed"]["tiny"]
    assert set(speed) == {f"{s}/{n}" for s in ("reference", "fast-exact", "fast") for n in (1, 2)}
    for row in speed.values():
        stages = row["stages_ms_per_frame"]
        assert set(stages) == {"preprocess", "clip", "llm", "sam2_encoder", "decoder_memory", "other"}
        assert stages["llm"] > 0 and stages["sam2_encoder"] > 0 and stages["decoder_memory"] > 0
        assert row["ms_per_frame"] > 0 and row["fps"] == pytest.approx(1000 / row["ms_per_frame"])
        assert row["ms_per_frame_threads_off"] > 0 and row["host_ms_per_frame"] >= 0
        assert row["peak_mib"] is None
    assert data["syncs_per_frame"] is None  # counted on CUDA only


def test_exactness_figures(report: tuple[dict, dict]) -> None:
    data, _ = report
    exact = data["exactness"]["tiny"]
    assert exact["fast-exact"]["same_tokens"] and exact["fast-exact"]["identical_masks"]
    bound = fidelity_bound(data["audit"]["tiny"]["dtype"])  # glus-cli's plan here
    assert exact["fast"]["same_tokens"] and exact["fast"]["min_iou"] >= bound.min_iou
    assert exact["fast"]["seg_answers"] == exact["fast"]["results"] > 0
    assert exact["threads_on_vs_off_bit_identical"] is True
    assert data["clip_batch"]["tiny"]["bit_exact"] is True  # measured bit-exact on CPU fp32


def test_llm_figures(report: tuple[dict, dict]) -> None:
    data, _ = report
    llm = data["llm_7b"]
    assert llm["num_hidden_layers"] == 2 and llm["positions"] > llm["prefix_positions"] > 0  # --quick shape
    for key in ("prefill_full_ms", "prefill_suffix_ms", "prefill_suffix_batch4_ms"):
        assert llm[key] > 0
    assert math.isfinite(llm["prefix_vs_full_max_abs_diff"]) and llm["prefix_vs_full_max_abs_diff"] < 1.0
    assert llm["peak_mib_batch4"] is None


def test_full_size_section_runs_at_reduced_depth(report: tuple[dict, dict]) -> None:
    data, _ = report
    full = data["full_size"]
    assert full["layers"] == 2 and full["hidden_size"] == 128  # --quick: the narrow full shape
    assert full["build_seconds"] > 0 and full["load_seconds"] > 0
    assert set(full["runs"]) | set(full["skipped_runs"]) == {
        f"{s}/{n}" for s in ("reference", "fast") for n in (1, 2)
    }
    for key, row in full["runs"].items():
        assert row["fps"] > 0 and row["host_ms_per_frame"] >= 0, key
        assert math.isclose(row["fps_per_expression"], row["fps"] * int(key.split("/")[1]))
        assert row["seg_answers"] == row["results"] > 0  # the full shape answers [SEG]
        assert row["peak_mib"] is None  # a CUDA-only figure
    assert all(agree["same_tokens"] for agree in full["fast_vs_reference"].values())
