"""Benchmark of `report.html` at the scale of MeViS valid_u: write time, page size, and the page in Chromium.

A synthetic finished `glus batch` folder (`glus_cli.testing.runs.write_batch_run`, records, per-frame
confidence, contact sheets and one short H.264 overlay per expression; no mask PNGs) with an ``eval.json``
of made-up scores is reported on; then headless Chromium (`glus_cli.testing.browser`) opens the page and
times: load until the table is drawn, a sort by J&F, a filter, opening an expression's section, and
scrolling the whole page (the longest gap between two animation frames while scrolling). Also the drawing
of worst-frame thumbnails, on a small run with masks and a ground truth, per expression.

    flock /tmp/glus-heavy.lock .venv/bin/python benchmarks/bench_report.py                 # 140 x 16
    .venv/bin/python benchmarks/bench_report.py --videos 10 --per-video 5                   # quick
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from glus_cli.evaluation import EvaluationResult, ExpressionScore, OverallScore, evaluate
from glus_cli.ground_truth import Layout
from glus_cli.outputs import overlay_mask
from glus_cli.overlay import encode_video, overlay_timing, select_overlay_codec
from glus_cli.report import REPORT_NAME, GroundTruth, write_report
from glus_cli.testing.browser import PageProblems, open_browser
from glus_cli.testing.runs import write_batch_run, write_truth_tree
from glus_cli.testing.videos import synthetic_mask, write_synthetic_video
from glus_cli.video import open_video

SCROLL_SCRIPT = """async () => {
  const gaps = [];
  let last = performance.now();
  const step = Math.max(200, document.body.scrollHeight / 40);
  for (let y = 0; y <= document.body.scrollHeight; y += step) {
    window.scrollTo(0, y);
    await new Promise((resolve) => requestAnimationFrame(resolve));
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }
  return Math.max(...gaps);
}"""


def main() -> None:
    """Parse the options, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=140)
    parser.add_argument("--per-video", type=int, default=16, help="expressions per video")
    parser.add_argument("--frames", type=int, default=70, help="frames per video (MeViS averages ~70)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="glus-bench-report-") as work:
        root = Path(work)
        overlay = _overlay(root, args.frames)
        expressions = {
            f"video{v:03d}": [
                f"the object number {e} of video {v} moving left" for e in range(args.per_video)
            ]
            for v in range(args.videos)
        }
        started = time.perf_counter()
        run = write_batch_run(
            root / "run", expressions, num_frames=args.frames, masks=False, overlay=overlay, size=(98, 130)
        )
        _fake_eval(expressions, args.frames).write_json(run / "eval.json")
        print(
            f"synthetic run: {sum(map(len, expressions.values()))} expressions "
            f"({time.perf_counter() - started:.1f} s to lay out)"
        )
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            write_report(run)
            times.append(time.perf_counter() - started)
        size = (run / REPORT_NAME).stat().st_size
        print(
            f"write report.html: median {statistics.median(times):.2f} s of {args.repeats} "
            f"(min {min(times):.2f}, max {max(times):.2f}); {size / 1e6:.1f} MB"
        )
        _browse(run)
        _thumbnails(root)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _overlay(root: Path, frames: int) -> Path:
    """A short H.264 overlay of the synthetic video, as the runs write them."""
    source = write_synthetic_video(root / "clip.mp4", frames, (98, 130), fps=10.0)
    path = root / "overlay.mp4"
    with open_video(source) as video:
        tinted = (
            overlay_mask(frame, synthetic_mask(index, video.frame_size))
            for index, frame in video.iter_frames(range(video.num_frames))
        )
        encode_video(path, tinted, select_overlay_codec(), overlay_timing(video), video.frame_size)
    return path


def _fake_eval(expressions: dict[str, list[str]], frames: int) -> EvaluationResult:
    """Made-up scores for every expression, as `glus eval` would write them."""
    rng = random.Random(0)
    rows = [
        ExpressionScore(video, str(i), text, rng.betavariate(2, 1.5), rng.betavariate(2, 1.3), frames)
        for video, texts in expressions.items()
        for i, text in enumerate(texts)
    ]
    overall = OverallScore(
        statistics.fmean(row.j for row in rows), statistics.fmean(row.f for row in rows), len(rows)
    )
    return EvaluationResult(Layout.MEVIS, rows, overall)


def _browse(run: Path) -> None:
    """Open the page in Chromium and time what a reader does."""
    with open_browser() as context:
        page = context.new_page()
        problems = PageProblems()
        problems.watch(page)
        started = time.perf_counter()
        page.goto((run / REPORT_NAME).resolve().as_uri())
        page.wait_for_selector("body[data-ready]")
        ready = time.perf_counter() - started
        timing = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return [n.domContentLoadedEventEnd, n.loadEventEnd]; }"
        )
        print(
            f"page: ready (table drawn) {ready:.2f} s wall; DOMContentLoaded {timing[0]:.0f} ms, "
            f"load {timing[1]:.0f} ms; {page.locator('#runs tbody tr').count()} rows drawn, "
            f"{page.locator('img, video').count()} media elements"
        )
        sort_ms = page.evaluate(
            "() => { const th = document.querySelector('#runs th[data-key=video]');"
            " const jf = document.querySelector('#runs th[data-key=JF]'); th.click();"
            " const t = performance.now(); jf.click(); return performance.now() - t; }"
        )
        filter_ms = page.evaluate(
            "() => { const box = document.getElementById('filter'); box.value = 'number 3';"
            " const t = performance.now(); box.dispatchEvent(new Event('input'));"
            " const ms = performance.now() - t; box.value = ''; box.dispatchEvent(new Event('input'));"
            " return ms; }"
        )
        started = time.perf_counter()
        page.locator("#runs tbody tr").first.click()
        page.locator("article.exp video").wait_for()
        open_s = time.perf_counter() - started
        page.evaluate("window.scrollTo(0, 0)")
        gap = page.evaluate(SCROLL_SCRIPT)
        print(
            f"sort by J&F {sort_ms:.1f} ms; filter {filter_ms:.1f} ms; open a section {open_s * 1000:.0f} ms;"
            f" scroll: longest frame gap {gap:.0f} ms"
        )
        print(f"page problems: {problems.all() or 'none'}")


def _thumbnails(root: Path) -> None:
    """Time the worst-frame thumbnails on a run with masks (10 x 5 expressions, 30 frames of 270x480)."""
    expressions = {f"v{v}": [f"e{e}" for e in range(5)] for v in range(10)}
    size = (270, 480)
    run = write_batch_run(root / "small", expressions, num_frames=30, size=size)
    truth = write_truth_tree(root / "truth", expressions, num_frames=30, size=size)
    started = time.perf_counter()
    result = evaluate(run, truth)
    scoring = time.perf_counter() - started
    started = time.perf_counter()
    write_report(run, result=result, ground_truth=GroundTruth(truth))
    first = time.perf_counter() - started
    started = time.perf_counter()
    write_report(run)
    again = time.perf_counter() - started
    print(
        f"worst frames (50 expressions x 30 frames of 270x480): glus eval scoring {scoring:.2f} s, then the"
        f" report with its thumbnails {first:.2f} s ({first / 50 * 1000:.0f} ms per expression); "
        f"rebuilt after: {again:.2f} s"
    )


if __name__ == "__main__":
    main()
