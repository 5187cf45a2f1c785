"""One real-browser walk: Debian's Chromium through Playwright against `streamlit run` on a free local port.

Home -> run the classroom demo (tiny config) -> comparison chart -> "Train again, live" trains it
anew in view -> Temperature (move T, chart changes)
-> Your digit (draw on the canvas, the three models answer) -> every page without an exception -> PNG and CSV
downloads on Compare -> lesson mode's Next link. Screenshots and the time to first paint go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.appserver import ROOT, serving
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("KD_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
PAGES = ["Data", "Teacher", "Temperature", "Distill", "Compare", "Efficiency", "Experiments", "Run history",
         "Language models", "Home"]
EXCEPTION = '[data-testid="stException"]'


@pytest.fixture()
def server(tmp_path):
    """The app's server as `make run` starts it, with a private cache and the tiny config; killed at the end."""
    started = time.perf_counter()
    try:
        env = {"KD_LAB_CACHE_DIR": str(tmp_path / "cache"), "KD_LAB_TINY": "1"}
        with serving(env, tmp_path / "server.log") as (url, _):
            yield url, started
    finally:
        (ARTIFACTS / "server.log").parent.mkdir(exist_ok=True)
        (ARTIFACTS / "server.log").write_text((tmp_path / "server.log").read_text())


def settle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script (no running indicator), then a moment for charts."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_timeout(400)


def draw_seven(page) -> None:
    """Draw a 7 on the Your digit canvas with the mouse and wait for the three models' answer."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=30_000)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 70, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 210, box["y"] + 60, steps=15)
    page.mouse.move(box["x"] + 110, box["y"] + 250, steps=20)
    page.mouse.up()
    page.locator(".js-plotly-plot", has_text="probabilities for your digit").wait_for(timeout=60_000)
    settle(page)


def go_to(page, title: str) -> None:
    """Click the sidebar link of page `title` and wait for it."""
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
    page.wait_for_timeout(300)
    settle(page)


def softmax_chart_signature(page) -> str:
    """The Temperature page's softmax chart: its title and the bar shapes (changes when T changes)."""
    chart = page.locator(".js-plotly-plot", has_text="Teacher's probabilities").first
    chart.wait_for(timeout=30_000)
    return chart.locator(".gtitle").first.text_content() + "|" + "".join(
        chart.locator(".bars path").evaluate_all("els => els.map(e => e.getAttribute('d'))"))


def test_browser_walk(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (`make browser` or apt-get install chromium)")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, started = server
    ARTIFACTS.mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
            t0 = time.perf_counter()
            page.goto(url)
            page.get_by_text("Knowledge distillation: a small student").wait_for(timeout=60_000)
            timings["server_start_to_first_paint_s"] = time.perf_counter() - started
            timings["navigation_to_first_paint_s"] = time.perf_counter() - t0
            run = page.get_by_role("button", name="Run the classroom demo")
            run.wait_for(timeout=60_000)
            timings["navigation_to_run_button_s"] = time.perf_counter() - t0
            page.screenshot(path=ARTIFACTS / "01-home.png")

            run.click()
            try:  # the live view: progress bar, step counts, ETA, Stop and curves (tiny runs may finish first)
                page.locator('[data-testid="stProgress"]', has_text="step").first.wait_for(timeout=20_000)
                page.wait_for_timeout(2_000)
                page.screenshot(path=ARTIFACTS / "02-home-training.png")
            except PlaywrightTimeout:
                pass
            page.locator(".js-plotly-plot", has_text="Test accuracy of the three models").wait_for(timeout=180_000)
            settle(page)
            timings["demo_click_to_comparison_s"] = time.perf_counter() - t0 - timings["navigation_to_run_button_s"]
            assert page.locator(EXCEPTION).count() == 0
            page.screenshot(path=ARTIFACTS / "03-home-after-demo.png")

            # a finished run can be trained again in front of the class: the same settings, live, then the result
            page.get_by_role("button", name="Train again, live").click()
            page.locator('[data-testid="stProgress"]').first.wait_for(timeout=60_000)  # it trains, in view
            page.get_by_text("Done:").first.wait_for(timeout=180_000)
            settle(page)
            assert page.locator('[data-testid="stProgress"]').count() == 0
            assert page.locator(".js-plotly-plot", has_text="Test accuracy of the three models").count() == 1

            go_to(page, "Temperature")
            before = softmax_chart_signature(page)
            thumb = page.get_by_role("slider", name="Temperature T")
            thumb.focus()
            for _ in range(4):
                thumb.press("ArrowRight")
            after, deadline = before, time.monotonic() + 60  # a loaded machine may rerun the script late
            while after == before and time.monotonic() < deadline:
                page.wait_for_timeout(500)
                settle(page)
                after = softmax_chart_signature(page)
            assert after != before, "moving T did not change the softmax chart"
            assert "T = 10" in after  # 8 + 4 steps of 0.5
            assert "T=10" in page.url  # the address bar is a shareable link to these settings
            page.screenshot(path=ARTIFACTS / "04-temperature-T10.png")

            go_to(page, "Your digit")  # draw a 7 with the mouse; the canvas sends it, the models answer
            draw_seven(page)
            assert page.get_by_text("Scratch student says").count() == 1
            assert page.locator(EXCEPTION).count() == 0
            page.screenshot(path=ARTIFACTS / "04b-your-digit-drawn.png")

            for number, title in enumerate(PAGES, start=5):
                go_to(page, title)
                page.locator("h1").first.wait_for(timeout=30_000)
                page.screenshot(path=ARTIFACTS / f"{number:02d}-{title.lower()}.png")
                assert page.locator(EXCEPTION).count() == 0, f"exception on page {title}"
                errors = page.locator('[data-testid="stAlertContentError"]')
                assert errors.count() == 0, f"error on page {title}: {errors.first.inner_text()}"

            go_to(page, "Compare")  # PNG export of a chart (Plotly's camera button) and the CSV download
            chart = page.locator('[data-testid="stPlotlyChart"]').first
            chart.scroll_into_view_if_needed()
            chart.hover()
            with page.expect_download(timeout=30_000) as png:
                chart.locator('.modebar-btn[data-title^="Download plot"]').click()
            assert png.value.suggested_filename.startswith("kd-lab-test-accuracy-of-the-three-models")
            assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            with page.expect_download(timeout=30_000) as table:
                page.get_by_role("button", name="Table (CSV)").click()
            assert table.value.suggested_filename.endswith(".csv")
            assert Path(table.value.path()).read_text().startswith("run,")

            page.get_by_text("Lesson mode").click()  # the guided lesson: step box on top, Next moves on
            settle(page)
            page.get_by_text("Lesson, step 6 of 8: Compare").wait_for(timeout=30_000)
            page.get_by_text("Next: step 7, When does it help?").click()
            page.get_by_text("Lesson, step 7 of 8").wait_for(timeout=30_000)
            settle(page)
            assert page.locator(EXCEPTION).count() == 0
            page.screenshot(path=ARTIFACTS / "15-lesson-step-7.png")
        finally:
            browser.close()
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings, indent=1))
