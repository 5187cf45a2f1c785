"""Layout in a real browser at a 1400 px desktop and a 390 px phone: nothing overlaps, nothing is cut.

The app's server as `make run` starts it (tests/appserver.py), tiny config, a private cache; Chromium through
Playwright. The tiny demo is run once (so Teacher, Temperature and Distill show its teacher and result), then
every page is opened at both widths: Home, Data, Teacher, Temperature, Distill, Compare (a click on a
confusion-matrix cell shows its images), Your digit (a drawn digit), Efficiency (its tiny compression run),
Experiments (its first tab's tiny data-budget run), Run history and Language models (its
first full paint: the pretrained teacher's view stays off and nothing trains). On each: no two of the main
column's images, charts, diagrams, formulas, tables and text blocks overlap (an element inside another is not
an overlap), none reaches past the column's right edge, a formula is never cut, and at 1400 px every table
shows its columns (the key ones; the rest behind its eye icon) without a horizontal scroll. Full-page
screenshots go to test-artifacts/layout/{desktop,phone}-{page}.png, to be looked at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appserver import ROOT, serving
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, EXCEPTION, draw_seven, settle

SHOTS = ROOT / "test-artifacts" / "layout"
WIDTHS = {"desktop": 1400, "phone": 390}
PAGES = {"": "Home", "data": "Data", "teacher": "Teacher", "temperature": "Temperature", "distill": "Distill",
         "compare": "Compare", "your_digit": "Your digit", "efficiency": "Efficiency", "experiments": "Experiments",
         "history": "Run history", "language": "Language models"}  # url path -> title, in the sidebar's order

BOXES = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const kinds = {image: '[data-testid="stImage"] img', chart: '[data-testid="stPlotlyChart"]',
                 text: '[data-testid="stMarkdown"]', diagram: '[data-testid="stGraphVizChart"] svg',
                 formula: '[data-testid="stLatex"], .katex-display', table: '[data-testid="stDataFrame"]',
                 component: 'iframe', caption: '[data-testid="stImageCaption"]'};
  const found = [];
  for (const [kind, selector] of Object.entries(kinds)) {
    for (const el of main.querySelectorAll(selector)) {
      const r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) continue;  // hidden (e.g. the diagram for the other screen width)
      found.push({el, kind, r, text: (el.innerText || el.getAttribute('alt') || '').trim().slice(0, 60)});
    }
  }
  const box = main.getBoundingClientRect();
  const right = Math.min(box.right - parseFloat(getComputedStyle(main).paddingRight), window.innerWidth);
  const overlaps = [], outside = [], clipped = [];
  for (let i = 0; i < found.length; i++) {
    const a = found[i];
    if (a.r.right > right + 2) outside.push(`${a.kind} "${a.text}" ends at ${a.r.right | 0} px`);
    // a formula scrolls (KaTeX's own scroll box) or is cut; a glyph's italic overhang of a pixel or two is
    // neither, and the MathML copy for screen readers is invisible
    const wider = [a.el, ...a.el.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 4
                                                                && getComputedStyle(e).overflowX !== 'visible'
                                                                && !e.closest('.katex-mathml'));
    if (a.kind === 'formula' && wider) clipped.push(`formula "${a.text}"`);
    for (let j = i + 1; j < found.length; j++) {
      const b = found[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;  // nested, e.g. a caption's text
      const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (w > 2 && h > 2) overlaps.push(`${a.kind} "${a.text}" and ${b.kind} "${b.text}" (${w | 0}x${h | 0} px)`);
    }
  }
  return {count: found.length, overlaps, outside, clipped};
}"""

LAID_OUT = """() => [...document.querySelectorAll(
    '[data-testid="stMainBlockContainer"] :is([data-testid="stElementContainer"], .main-svg)')]
  .map(e => { const r = e.getBoundingClientRect(); return `${r.x | 0},${r.y | 0},${r.width | 0},${r.height | 0}`; })
  .join(';')"""  # where everything in the main column is: the same twice in a row once it has settled

TABLES = """() => [...document.querySelectorAll('[data-testid="stMainBlockContainer"] [data-testid="stDataFrame"]')]
  .map(t => { const s = t.querySelector('.dvn-scroller');
              return {scroll: s ? s.scrollWidth : 0, client: s ? s.clientWidth : 0,
                      text: (t.getAttribute('aria-label') || '').slice(0, 40)}; })"""


@pytest.fixture()
def server(tmp_path):
    """The app's server as `make run` starts it, with a private cache and the tiny config; killed at the end."""
    with serving({"KD_LAB_CACHE_DIR": str(tmp_path / "cache"), "KD_LAB_TINY": "1"}, tmp_path / "server.log") as (url, _):
        yield url


def open_page(page, url: str, path: str) -> None:
    """Open the page at `path` (a fresh session: the cached results are on disk, the settings are the defaults)."""
    page.goto(f"{url}/{path}")
    page.locator("h1").first.wait_for(timeout=60_000)
    settle(page)


def fit_to_content(page, width: int) -> None:
    """Make the window as tall as the page (Streamlit scrolls inside its own container, so a full-page
    screenshot would show one screenful): every element is then laid out and in the picture. Returns once
    the charts have finished their resize to the column (nothing in the main column moves for 150 ms)."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": min(max(height, 900), 12_000)})
    before = None
    for _ in range(20):
        page.wait_for_timeout(150)
        now = page.evaluate(LAID_OUT)
        if now == before:
            return
        before = now


def click_confusion_cell(page) -> None:
    """Click the confusion matrix's first row, first column (true 0 predicted 0: always has images)."""
    chart = page.locator('[data-testid="stPlotlyChart"]', has_text="Confusion matrix").first
    chart.scroll_into_view_if_needed()
    grid = chart.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(grid["x"] + grid["width"] / 20, grid["y"] + grid["height"] / 20)
    page.get_by_text("Test images of true class 0").first.wait_for(timeout=30_000)
    settle(page)


def result_shown(chart_title: str):
    """Wait until the page shows the chart `chart_title` (a queued run has finished and the page redrawn)."""
    def wait(page) -> None:
        page.locator(".js-plotly-plot", has_text=chart_title).first.wait_for(timeout=180_000)
        settle(page)
    return wait


PREPARE = {"compare": click_confusion_cell, "your_digit": draw_seven,
           "efficiency": result_shown("Recovering from pruning"),
           "experiments": result_shown("Gain from distillation")}  # url path -> what is done there first


def test_pages_fit_a_desktop_and_a_phone(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (`make browser` or apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    url = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTHS["desktop"], "height": 900})
            open_page(page, url, "")
            page.get_by_role("button", name="Run the classroom demo").click()
            page.locator(".js-plotly-plot", has_text="Test accuracy of the three models").wait_for(timeout=180_000)
            # the tiny compression run and the first experiment tab's tiny data-budget run, queued one after
            # the other on the server while the pages before them are checked; cached for the phone
            for path, button in {"efficiency": "Distil → prune → quantize, and measure",
                                 "experiments": "Run the data-budget experiment"}.items():
                open_page(page, url, path)
                page.get_by_role("button", name=button).click()
                page.wait_for_timeout(300)
                settle(page)  # submitted: it runs on the server whichever page this browser shows
            for width_name, width in WIDTHS.items():
                for path, title in PAGES.items():
                    page.set_viewport_size({"width": width, "height": 900})
                    open_page(page, url, path)
                    if path in PREPARE:
                        PREPARE[path](page)
                    fit_to_content(page, width)
                    page.screenshot(path=SHOTS / f"{width_name}-{path or 'home'}.png")
                    where = f"{title} at {width} px"
                    assert page.locator(EXCEPTION).count() == 0, f"exception on {where}"
                    boxes = page.evaluate(BOXES)
                    assert boxes["count"] > 3, f"{where}: found only {boxes['count']} elements"
                    problems += [f"{where}: overlap of {o}" for o in boxes["overlaps"]]
                    problems += [f"{where}: past the column's edge: {o}" for o in boxes["outside"]]
                    problems += [f"{where}: clipped {o}" for o in boxes["clipped"]]
                    if width_name == "desktop":
                        problems += [f"{where}: table {t['text']!r} scrolls sideways ({t['scroll']} > {t['client']} px)"
                                     for t in page.evaluate(TABLES) if t["scroll"] > t["client"] + 1]
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
