"""`report.html` in a real browser (headless Chromium through Playwright), on runs of the tiny model.

Skipped, with the reason, where there is no Chromium or no Playwright (`glus_cli.testing.browser`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from glus_dataset import Dataset, batch_args, write_split
from PIL import Image

from glus_cli.report import REPORT_NAME
from glus_cli.testing.browser import PageProblems, chromium_path, open_browser, skip_reason
from glus_cli.testing.videos import write_synthetic_video
from tests.cli_helpers import run_glus

pytest_plugins = ["tests.cli_fixtures"]
pytestmark = [
    pytest.mark.skipif(chromium_path() is None, reason=skip_reason()),
    pytest.mark.usefixtures("cli_environment"),
]

if chromium_path() is not None:
    from playwright.sync_api import BrowserContext, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    with open_browser() as context:
        yield context


@pytest.fixture
def segment_run(cli_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    video = write_synthetic_video(tmp_path / "clip.mp4", 10, size=(98, 130))
    out = tmp_path / "seg"
    args = ["segment", str(video), "the red circle", "the green square", "-o", str(out)]
    code, output = run_glus(
        [*args, "-f", "png", "-f", "overlay", "--model", str(cli_checkpoint), "--device", "cpu", "--quiet"],
        capsys,
    )
    assert code == 0, output
    return out


@pytest.fixture
def scored_batch_run(cli_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    split = tmp_path / "mevis" / "train"
    write_split(split)
    out = tmp_path / "preds"
    dataset = Dataset(cli_checkpoint, split, out, 0)
    code, output = run_glus(batch_args(dataset, out, "-f", "png", "-f", "overlay"), capsys)
    assert code == 8, output  # the split's corrupt video fails; the report shows it
    code, output = run_glus(["eval", str(out), str(split), "--quiet"], capsys)
    assert code == 0, output
    return out


def open_report(browser: BrowserContext, run: Path) -> tuple[Page, PageProblems]:
    page = browser.new_page()
    problems = PageProblems()
    problems.watch(page)
    page.goto((run / REPORT_NAME).resolve().as_uri())
    page.wait_for_selector("body[data-ready]")
    return page, problems


def check_videos_play(page: Page, count: int) -> None:
    """Every <video> decodes a frame (readyState >= 2) and its time advances once playing."""
    videos = page.locator("video")
    assert videos.count() == count
    for index in range(count):
        handle = videos.nth(index)
        handle.scroll_into_view_if_needed()
        handle.evaluate("video => video.play()")
        page.wait_for_function(
            "video => video.readyState >= 2 && video.currentTime > 0", arg=handle.element_handle()
        )
        handle.evaluate("video => video.pause()")


def check_not_blank(page: Page) -> None:
    image = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB"), np.float32)
    assert image.std() > 20  # text, charts and frames, not one flat colour
    assert len(np.unique(image.reshape(-1, 3)[::97], axis=0)) > 50


def test_a_single_run_page_loads_plays_and_charts(browser: BrowserContext, segment_run: Path) -> None:
    page, problems = open_report(browser, segment_run)
    assert page.locator("#status").inner_text() == "complete"
    assert page.locator("#runs tbody tr").count() == 2
    assert page.locator("article.exp").count() == 2
    assert page.locator("article.exp svg.frames").count() == 2  # the per-frame chart of each
    check_videos_play(page, 2)
    preview = page.locator("article.exp img").first
    preview.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    page.evaluate("window.scrollTo(0, 0)")
    check_not_blank(page)
    assert problems.all() == []
    page.close()


def test_a_scored_batch_page_sorts_worst_first_and_shows_eval_json(
    browser: BrowserContext, scored_batch_run: Path
) -> None:
    scores = json.loads((scored_batch_run / "eval.json").read_text())
    page, problems = open_report(browser, scored_batch_run)
    overall = scores["overall"]
    for element, key in (("#mean-jf", "J&F"), ("#mean-j", "J"), ("#mean-f", "F")):
        shown = page.locator(element)
        assert float(shown.get_attribute("data-value")) == overall[key]
        assert shown.inner_text() == f"{100 * overall[key]:.2f}"
    assert "failed" in page.locator("#status").inner_text()

    page.locator("#runs th[data-key=video]").click()  # another order first
    page.locator("#runs th[data-key=JF]").click()
    worst = min(scores["per_expression"], key=lambda row: row["J&F"])
    first = page.locator("#runs tbody tr").first.locator("td")
    assert (first.nth(0).inner_text(), first.nth(1).inner_text()) == (worst["video"], worst["exp_id"])
    assert page.locator("#runs th[data-key=JF]").get_attribute("aria-sort") == "ascending"

    page.locator("#filter").fill("green")
    assert page.locator("#runs tbody tr").count() == 1
    page.locator("#runs tbody tr").first.click()  # opens (scrolls to) its section
    assert page.evaluate("location.hash").startswith("#exp-")
    page.locator("#filter").fill("")

    check_videos_play(page, 3)  # vidA's two expressions and vidB's; the failed video has none
    thumbs = page.locator(".worst img")
    assert thumbs.count() >= 1
    for index in range(thumbs.count()):
        thumbs.nth(index).scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbs.nth(index).element_handle()
        )
    page.evaluate("window.scrollTo(0, 0)")
    check_not_blank(page)
    assert problems.all() == []
    page.close()
