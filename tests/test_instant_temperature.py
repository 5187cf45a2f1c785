"""Instant temperature (issue 13) and forward vs reverse KL you can see (issue 14): charts with their own client-side
sliders, the mode-covering / mode-seeking toy, the Temperature page with and without a teacher, the background
warm-up, and one real browser that drags a chart's T slider and sees no script rerun.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ui
from apptest import assert_clean, open_page, plotly_titles
from kd_core import charts
from kd_core.losses import soft_divergence, soften
from kd_core.charts.divergence import LOG_RANGE
from kd_core.modes import MODE_WIDTH, gaussian_log_density, mode_toy, teacher_log_density

LOGITS = np.array([9.0, 1.0, 4.0, 0.5, -2.0, 3.0, 0.0, 6.0, 2.0, -1.0], dtype=np.float32)
CLASSES = [str(d) for d in range(10)]
TEMPERATURE_PAGE = "app_pages/temperature.py"
IMAGES_LOADED = "() => [...document.images].every(image => image.complete && image.naturalWidth > 0)"


def steps_of(fig) -> list[tuple[float, list]]:
    """(T, update args) of each step of a figure's one slider, as the browser gets them (the figure's JSON)."""
    [slider] = json.loads(fig.to_json())["layout"]["sliders"]
    return [(float(step["label"]), step["args"]) for step in slider["steps"]]


def soft(logits, t: float) -> np.ndarray:
    return soften(torch.as_tensor(np.asarray(logits, dtype=np.float32)), t).numpy()


# ---- the Temperature charts -------------------------------------------------------------------------------------

def test_softmax_slider_steps_hold_softmax_z_over_t_for_every_t_of_the_grid():
    fig = charts.softmax_slider(LOGITS, CLASSES, 2.5)
    steps = steps_of(fig)
    assert [t for t, _ in steps] == charts.t_grid(2.5) and 2.5 in charts.t_grid(2.5)  # an off-grid T joins the grid
    assert set(charts.T_GRID) <= {t for t, _ in steps} and min(charts.T_GRID) == 0.5 and max(charts.T_GRID) == 20
    for t, (data, layout, traces) in steps:
        assert traces == [1]  # the T = 1 reference bars stay
        np.testing.assert_allclose(data["y"][0], soft(LOGITS, t), rtol=1e-6)
        assert f"<sup>T = 1 vs T = {t:g}:" in layout["title.text"] and layout["title.text"].endswith("</b>")
    np.testing.assert_allclose(fig.data[0].y, soft(LOGITS, 1.0), rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, soft(LOGITS, 2.5), rtol=1e-6)  # drawn at the slider's start
    assert fig.layout.sliders[0].active == charts.t_grid(2.5).index(2.5)
    assert all(step.method == "update" for step in fig.layout.sliders[0].steps)  # client-side: no server call
    assert fig.layout.title.text.startswith("Teacher's probabilities for this image<br><sup>T = 1 vs T = 2.5:")


def test_effective_classes_marker_moves_with_the_slider():
    fig = charts.effective_classes_slider(LOGITS, 8.0)
    for t, (data, layout, traces) in steps_of(fig):
        p = soft(LOGITS, t).astype(np.float64)
        expected = float(np.exp(-np.sum(p * np.log(p))))
        assert traces == [1, 2] and data["x"][0] == [t] and data["x"][1] == [t, t]
        assert data["y"][0][0] == pytest.approx(expected, rel=1e-5)
        assert f"{expected:.1f} classes at T = {t:g} " in layout["title.text"]
    assert fig.data[1].x == (8.0,)


def test_similarity_heatmap_keeps_one_colour_scale_and_turns_uniform_at_a_high_t():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    logits = rng.normal(size=(200, 10)).astype(np.float32) + 6 * np.eye(10, dtype=np.float32)[labels]
    fig = charts.similarity_slider(logits, labels, CLASSES, 8.0, hide_diagonal=True)
    heatmap = fig.data[0]
    assert (heatmap.zmin, heatmap.zmax, heatmap.zauto) == (0.0, 0.25, False)
    spread = {}
    for t, (data, layout, traces) in steps_of(fig):
        z = np.array(data["z"][0], dtype=float)  # None (hidden diagonal) becomes nan
        expected = charts.average_soft_targets(logits, labels, t, 10)
        off = ~np.eye(10, dtype=bool)
        assert np.isnan(np.diag(z)).all() and traces == [0]
        assert f"(T = {t:g}, diagonal hidden)" in layout["title.text"]
        np.testing.assert_allclose(z[off], expected[off], rtol=1e-6)
        spread[t] = float((np.nanmax(z) - np.nanmin(z)) / np.nanmean(z))  # relative: one colour -> 0
    assert spread[20.0] < 0.2 < 1.0 < spread[1.0]  # a high T: every cell nearly the same colour
    shown = charts.similarity_slider(logits, labels, CLASSES, 8.0, hide_diagonal=False)
    assert shown.data[0].zmax == 1.0 and not np.isnan(np.array(shown.data[0].z, dtype=float)).any()


# ---- the forward vs reverse KL toy --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    return mode_toy(7.0)


def test_forward_kl_covers_both_modes_and_reverse_kl_picks_one(toy):
    forward, reverse = toy.fits["forward"], toy.fits["reverse"]
    half = toy.separation / 2
    assert abs(forward.mean) < half - 2 * MODE_WIDTH  # between the modes
    assert forward.width > 3 * reverse.width  # wide: it covers both
    assert toy.on_a_mode(reverse) and not toy.on_a_mode(forward)
    assert reverse.mean == pytest.approx(half, abs=0.5)  # the heavier (right) mode
    widths = [toy.jsd_fits[b].width for b in sorted(toy.jsd_fits)]
    assert widths[0] == forward.width and widths[-1] == reverse.width  # beta 0 and 1: the pure KLs
    assert all(a >= b for a, b in zip(widths, widths[1:]))  # JSD(beta) goes from covering to seeking


def test_toy_numbers_are_soft_divergence_of_log_densities(toy):
    teacher = torch.as_tensor(teacher_log_density(toy.x, toy.separation), dtype=torch.float64)
    for row, column in ((3, 5), (10, 20), (15, 0)):
        student = torch.as_tensor(gaussian_log_density(toy.x, toy.means[column], toy.widths[row]))
        for name, landscape, beta in (("forward", toy.forward, 0.5), ("reverse", toy.reverse, 0.5),
                                      ("jsd", toy.jsd[0.3], 0.3)):
            assert landscape[row, column] == pytest.approx(float(soft_divergence(student, teacher, 1.0, name, beta)),
                                                           rel=1e-9)
        # beta = 0 and 1 are the pure KLs by soft_divergence's convention
        assert float(soft_divergence(student, teacher, 1.0, "jsd", 0.0)) == pytest.approx(toy.jsd[0.0][row, column])
        assert float(soft_divergence(student, teacher, 1.0, "jsd", 1.0)) == pytest.approx(toy.jsd[1.0][row, column])
    assert toy.teacher.sum() == pytest.approx(1.0) and toy.student(toy.fits["forward"]).sum() == pytest.approx(1.0)


def test_jsd_vanishes_at_its_ends_where_the_convention_puts_the_kls(toy):
    betas, values = np.array(toy.curve_betas), toy.jsd_curve
    assert values[0] == pytest.approx(toy.fits["forward"].value)  # beta = 0: the forward KL of that student
    inner = values[(betas > 0) & (betas < 1)]
    assert inner[0] < values[0] / 10 and inner[-1] < values[-1] / 10  # the JSD itself is nearly 0 near the ends
    assert inner.max() > 5 * max(inner[0], inner[-1])


def test_close_modes_make_every_divergence_cover_them():
    close = mode_toy(0.0)
    assert len({(f.mean, f.width) for f in [*close.fits.values(), *close.jsd_fits.values()]}) == 1
    assert not close.on_a_mode(close.fits["reverse"])


def test_mode_fits_beta_slider_moves_the_jsd_student_and_its_landscape(toy):
    fig = charts.mode_fits(toy, 0.5)
    assert [float(s.label) for s in fig.layout.sliders[0].steps] == list(toy.jsd)
    assert fig.data[3].name.startswith("JSD(β = 0.5)") and fig.layout.annotations[2].text == "JSD(β = 0.5)"
    assert "JSD(β = 0.5)</span> (dashed)" in fig.layout.title.text  # the subtitle is the legend
    for beta, (data, layout, traces) in steps_of(fig):
        fit = toy.jsd_fits[beta]
        assert traces == [3, 9, 8] and fig.data[8].type == "heatmap" and fig.data[9].mode == "markers"
        np.testing.assert_allclose(data["y"][0], toy.student(fit))
        assert (data["x"][1], data["y"][1]) == ([fit.mean], [fit.width])
        np.testing.assert_allclose(data["z"][2], np.clip(np.log10(toy.jsd[beta]), *LOG_RANGE), atol=6e-4)  # log colours
        assert layout["annotations[2].text"] == f"JSD(β = {beta:g})"
        assert f"JSD(β = {beta:g})</span> (dashed)" in layout["title.text"]
        assert ("by convention" in layout["title.text"]) == (beta in (0, 1))
    assert "by convention" in charts.beta_name(0.0) and "by convention" in charts.beta_name(1.0)
    ends = charts.jsd_ends(toy)
    assert [t.name.split(":")[0] for t in ends.data[1:]] == ["β = 0", "β = 1"]


# ---- the Temperature page -----------------------------------------------------------------------------------------

pages = pytest.mark.usefixtures("fresh_app")


def own_chart_title(at) -> str:
    return next(t for t in plotly_titles(at) if t.startswith("Your scores as probabilities"))


@pages
def test_temperature_page_without_a_teacher_shows_your_own_scores_and_starts_nothing():
    at = open_page(TEMPERATURE_PAGE)
    assert own_chart_title(at).startswith("Your scores as probabilities<br><sup>T = 1 vs T = 8:")
    assert at.dataframe[0].key == "own-scores"
    assert any(c.value.startswith("Notice: cat takes") for c in at.caption)
    assert any("needs a trained teacher" in i.value for i in at.info) and at.button(key="train-teacher-offer")
    assert ui.get_runner().jobs() == {}  # AppTest has no browser address: no warm-up job


@pages
def test_temperature_page_shows_the_warm_up_teachers_progress_beside_your_own_scores(monkeypatch):
    from kd_core import experiment
    from kd_core.train import TrainingCancelled

    def held(cfg, dataset, on_progress=None, should_stop=None):  # a teacher that trains until it is stopped
        while not should_stop():
            time.sleep(0.05)
        raise TrainingCancelled()

    monkeypatch.setattr(experiment, "get_teacher", held)
    ui.start_teacher().join(60)
    [job] = ui.get_runner().active()
    assert job.key.startswith("teacher-") and job.owners == set()  # nobody's session: it counts against no one
    at = open_page(TEMPERATURE_PAGE)
    assert own_chart_title(at)
    assert any("training in the background" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "train-teacher-offer"]
    job.cancel()
    assert job.wait(30)


@pages
def test_a_page_opened_before_the_warm_up_submits_its_teacher_waits_for_it_instead_of_offering_one(monkeypatch):
    from ui import warm

    monkeypatch.setattr(warm, "pending", lambda: True)  # the server's first seconds: data loading, nothing submitted
    at = open_page(TEMPERATURE_PAGE)
    assert own_chart_title(at)
    assert any("training in the background (getting it ready)" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "train-teacher-offer"] and not at.info
    monkeypatch.setattr(warm, "pending", lambda: False)  # submitted (or nothing to submit): the usual offer
    at.run()
    assert at.button(key="train-teacher-offer")


@pages
def test_temperature_page_with_a_teacher_marks_the_chosen_image_and_starts_the_sliders_at_t():
    from kd_core.data import load_dataset
    from kd_core.experiment import teacher_task

    teacher_task(ui.base_preset("classroom"), load_dataset("mnist-sample")).run()
    at = open_page(TEMPERATURE_PAGE)
    titles = plotly_titles(at)
    assert any(t.startswith("Teacher's probabilities for this image<br><sup>T = 1 vs T = 8:") for t in titles)
    assert any(t.startswith("How many classes the soft target spreads over") and "classes at T = 8 " in t
               for t in titles)
    assert any(t.startswith("Average soft target per true class") and "(T = 8, diagonal hidden)" in t for t in titles)
    gallery = [b for b in at.button if b.key.startswith("pick-") and b.key != "pick-random"]
    chosen = [b for b in gallery if b.proto.type == "primary"]
    assert len(gallery) == 10 and [b.key for b in chosen] == [f"pick-{at.session_state['temp_image']}"]
    gallery[4].click().run()
    assert_clean(at)
    assert [b.key for b in at.button if b.proto.type == "primary" and b.key.startswith("pick-")] == [gallery[4].key]
    at.slider[0].set_value(3.0).run()
    assert any("T = 1 vs T = 3:" in t for t in plotly_titles(at) if t.startswith("Teacher's probabilities"))
    assert "T = 1 vs T = 3:" in own_chart_title(at)  # every chart starts at the setting


# ---- a real browser: the chart's own slider redraws without the server ---------------------------------------------

def test_dragging_the_charts_t_slider_redraws_in_the_browser_without_a_rerun(tmp_path):
    from tests.appserver import ROOT, free_port, start_app, wait_healthy
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, EXCEPTION, settle

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is missing at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as log:
        proc = start_app(port, {"KD_LAB_CACHE_DIR": str(tmp_path / "cache"), ui.TINY_ENV: "1"}, log)
    try:
        wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 3400})
                sent: list[str] = []  # what the browser sends the server: a script rerun needs a message
                page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(str(frame)[:40])))
                page.goto(f"{url}/temperature")
                page.locator(".js-plotly-plot", has_text="Your scores as probabilities").wait_for(timeout=60_000)
                # the warm-up teacher (tiny: seconds) arrives without a click: the page redraws when it is done
                chart = page.locator(".js-plotly-plot", has_text="Teacher's probabilities")
                chart.wait_for(timeout=120_000)
                settle(page)
                page.wait_for_function(IMAGES_LOADED)
                assert page.locator(EXCEPTION).count() == 0
                page.screenshot(path=artifacts / "instant-temperature-1400.png")

                def bars() -> list[str]:
                    return chart.locator(".bars path").evaluate_all("els => els.map(e => e.getAttribute('d'))")

                title, before = chart.locator(".gtitle").first.text_content(), bars()
                assert "T = 1 vs T = 8:" in title
                rail = chart.locator(".slider-rail-touch-rect").first
                page.wait_for_timeout(500)
                quiet = len(sent)
                box = rail.bounding_box()
                middle = box["y"] + box["height"] / 2
                page.mouse.move(box["x"] + box["width"] * 0.58, middle)
                page.mouse.down()  # drag from T = 8 down to the left end (T = 0.5), then back up to T = 1.5
                page.mouse.move(box["x"] + 2, middle, steps=12)
                page.mouse.move(box["x"] + box["width"] * 0.17, middle, steps=6)
                page.mouse.up()
                page.wait_for_timeout(1_500)
                assert bars() != before, "dragging the chart's slider did not change its bars"
                assert "T = 1 vs T = 1.5:" in chart.locator(".gtitle").first.text_content()
                assert sent[quiet:] == [], f"the browser asked the server for a rerun: {sent[quiet:]}"
                page.screenshot(path=artifacts / "instant-temperature-dragged-1400.png")
                thumb = page.get_by_role("slider", name="Temperature T")  # the check can see a rerun: the setting
                thumb.focus()
                thumb.press("ArrowRight")
                page.wait_for_timeout(1_000)
                assert len(sent) > quiet, "no websocket frame seen even for a Streamlit widget"

                phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
                phone.goto(f"{url}/temperature")
                phone.locator(".js-plotly-plot", has_text="Teacher's probabilities").wait_for(timeout=60_000)
                settle(phone)
                assert phone.locator(EXCEPTION).count() == 0
                phone.screenshot(path=artifacts / "instant-temperature-390-first-screen.png")
                phone.set_viewport_size({"width": 390, "height": 6000})
                settle(phone)
                phone.wait_for_function(IMAGES_LOADED)
                phone.screenshot(path=artifacts / "instant-temperature-390.png")
            finally:
                browser.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        (artifacts / "instant-temperature-server.log").write_text((tmp_path / "server.log").read_text())

