"""Drawing helpers shared by the pages: charts with PNG export, downloads, the noise verdict, the lesson panel."""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

import streamlit as st

from kd_core.roles import ROLE_TITLES  # noqa: F401  (the pages' role names: one vocabulary)

# Markdown's special characters: with a backslash before each, CommonMark shows the character itself, so no
# link, image, emphasis, heading, HTML tag, colour directive, LaTeX or bare-URL autolink can form.
_MARKDOWN_SPECIAL = re.compile(r"""([\\`*_{}\[\]()#+\-.!|<>~$:&='"^])""")


def plain(value: Any) -> str:
    """`value` as text that every Streamlit markdown element (st.markdown, st.caption, st.success, widget
    labels...) shows literally, on one line. For anything not written by our own code: strings read back
    from the cache, upload file names, exception messages."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def lesson_panel(page, pages: list) -> None:
    """Lesson mode's box on top of `page`: this step's what to do, what to notice, the question, and the way on.

    `pages` are the app's st.Page objects; lesson steps name their page by its title.
    """
    import lesson

    by_title = {p.title: p for p in pages}
    index = lesson.step_for(page.title)
    if index is None:
        first = lesson.STEPS[0]
        st.info("Lesson mode: this page is not a stop of the guided lesson.")
        st.page_link(by_title[first.page], label=f"Go to step 1: {first.title}", icon=":material/school:")
        return
    step, count = lesson.STEPS[index], len(lesson.STEPS)
    with st.container(border=True):
        st.markdown(f"**Lesson, step {index + 1} of {count}: {step.title}**")
        st.markdown(f"**Do:** {step.do}\n\n**Notice:** {step.notice}\n\n**Ask the class:** {step.question}")
        back, forward = st.columns(2)
        if index > 0:
            previous = lesson.STEPS[index - 1]
            back.page_link(by_title[previous.page], label=f"Back: step {index}, {previous.title}", icon=":material/arrow_back:")
        if index + 1 < count:
            following = lesson.STEPS[index + 1]
            forward.page_link(by_title[following.page], label=f"Next: step {index + 2}, {following.title}",
                              icon=":material/arrow_forward:")
        else:
            forward.page_link(by_title["Run history"], label="End of the lesson: open Run history to compare "
                                                             "every run the class made", icon=":material/history:")


def chart_filename(fig) -> str:
    """A file name for a figure's PNG download, made from its title ("kd-lab-accuracy-of-the-three-models")."""
    import re

    title = re.sub(r"<[^>]*>", " ", fig.layout.title.text or "chart")  # drop <br>, <sup> etc. of Plotly titles
    return "kd-lab-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "chart")


def shared_figure(builder: Callable[..., Any], *args: Any, **kwargs: Any):
    """builder(*args, **kwargs), a kd_core.charts figure builder, built once per server for every session that asks
    for the same figure (a class on the same settings draws the same charts). Read-only: pass it straight to chart()
    (tests/test_shared_figures.py checks every call site). Building validates every property (tens of ms), a copy
    costs ms and Streamlit's own hashing of the arguments as much again; here a page pays a pickle digest of the
    arguments and, once drawn, the JSON encoding."""
    import hashlib
    import pickle

    name = f"{builder.__module__}.{builder.__qualname__}"
    try:
        digest = hashlib.blake2b(pickle.dumps((name, args, sorted(kwargs.items())), protocol=5),
                                 digest_size=20).hexdigest()
    except (pickle.PicklingError, TypeError, AttributeError):  # an argument pickle cannot take: not shared
        return builder(*args, **kwargs)
    return _shared_figure(digest, builder, args, kwargs)


@st.cache_resource(max_entries=256, show_spinner=False)
def _shared_figure(digest: str, _builder: Callable[..., Any], _args: tuple, _kwargs: dict[str, Any]):
    """The figure `_builder(*_args, **_kwargs)`, frozen, under the `digest` of its builder's name and arguments
    (the only thing Streamlit hashes: equal pickles are equal arguments)."""
    return _frozen_figure_class()(_builder(*_args, **_kwargs))


@functools.cache
def _frozen_figure_class() -> type:
    """FrozenFigure: made on first use, so that importing ui imports no plotly."""
    import plotly.graph_objects as go

    class FrozenFigure(go.Figure):
        """A figure drawn by many sessions: to_dict() (all st.plotly_chart asks of a figure) hands out the dict
        frozen when it was built, without the deep copy plotly makes each time; never changed after that."""

        def __init__(self, figure: Any) -> None:
            frozen = figure.to_dict()
            super().__init__(frozen, skip_invalid=False, _validate=False)
            self._frozen = frozen

        def to_dict(self) -> dict[str, Any]:
            """The figure's dict as built (shared: read, never change it)."""
            return self._frozen

    return FrozenFigure


def dataset_image(dataset: Any, split: str, index: int, **image: Any) -> None:
    """st.image of `dataset`'s `split` ("train" or "test") image `index`, as a PNG data URL encoded once per server
    (a gallery of ten costs each visitor no encoding and no media file); `image` goes to st.image (width, caption)."""
    st.image(_png_data_url(dataset.fingerprint, split, int(index), _dataset=dataset), **image)


@st.cache_resource(max_entries=4096, show_spinner=False)
def _png_data_url(fingerprint: str, split: str, index: int, _dataset: Any) -> str:
    """The PNG data URL of image `index` of `split` of the dataset whose fingerprint is `fingerprint`."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(getattr(_dataset, f"{split}_x")[index].numpy()).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chart(fig, key: str, where: Any = None, **selection: Any):
    """Draw a Plotly figure with its PNG download (Plotly's own export: the camera button, 2x scale for slides).

    `selection` (on_select, selection_mode) is passed to st.plotly_chart, whose selection event is returned.
    """
    config = {"displaylogo": False,
              "toImageButtonOptions": {"format": "png", "filename": chart_filename(fig), "scale": 2}}
    return (where or st).plotly_chart(fig, key=key, config=config, **selection)


NARROW_PX = 640  # at most this wide (a phone held upright), a page shows its narrow variant


def wide_and_narrow(key: str) -> tuple[Any, Any]:
    """Two containers: the first is shown on screens wider than NARROW_PX, the second on narrower ones.

    For what cannot shrink to a phone's width (a wide diagram, a one-line formula): the page fills both, and
    the browser shows one (a CSS media query on the containers' keys), with no script run when the width changes.
    """
    if not re.fullmatch(r"[a-z0-9-]+", key):
        raise ValueError(f"a wide_and_narrow key is lower-case letters, digits and hyphens, not {key!r}")
    st.html(f"<style>@media (max-width: {NARROW_PX}px) {{ .st-key-{key}-wide {{ display: none; }} }}"
            f"@media (min-width: {NARROW_PX + 1}px) {{ .st-key-{key}-narrow {{ display: none; }} }}</style>")
    return st.container(key=f"{key}-wide"), st.container(key=f"{key}-narrow")


def download_buttons(name: str, rows: list[dict[str, Any]], document: dict[str, Any]) -> None:
    """Two buttons side by side: the rows as CSV and the whole result as JSON (kd-lab-<name>.csv / .json)."""
    from kd_core.export import to_csv, to_json

    with st.container(horizontal=True):
        st.download_button("Table (CSV)", to_csv(rows), file_name=f"kd-lab-{name}.csv", mime="text/csv",
                           key=f"dl-{name}-csv", on_click="ignore", icon=":material/download:",
                           help="One row per model and seed, numbers at full precision (accuracies as fractions).")
        st.download_button("Everything (JSON)", to_json(document), file_name=f"kd-lab-{name}.json",
                           mime="application/json", key=f"dl-{name}-json", on_click="ignore",
                           icon=":material/download:", help="The whole result: settings, every number, the curves.")


def curve_note(result: dict[str, Any]) -> str:
    """Which test images the per-epoch curves and the final accuracies of a comparison result were measured on."""
    curve, test = result.get("curve_test_images"), result.get("test_images")
    if curve is None or test is None or curve >= test:
        return "Test accuracy per epoch and the final accuracies both use all the test images."
    return (f"Test accuracy per epoch is measured on a fixed subset, the first {curve:,} of the {test:,} test images, "
            f"so points from different epochs are comparable; the final accuracies use all {test:,} test images.")


@st.cache_data(max_entries=64, show_spinner=False)
def _standalone_script(config: dict[str, Any]) -> str:
    """kd_core.standalone's script for the run of `config`, written once per server for every session."""
    from kd_core.config import RunConfig
    from kd_core.standalone import standalone_script

    return standalone_script(RunConfig(**config), config["dataset"])


def script_download(config: dict[str, Any], key: str) -> None:
    """"Show the code": the run of `config` as one standalone PyTorch + NumPy script (kd_core.standalone)."""
    try:
        script = _standalone_script(config)
    except ValueError as exc:
        st.caption(f"No standalone script for this run: {plain(exc)}.")
        return
    st.download_button("This run as a Python script", script, file_name="kd_lab_run.py", mime="text/x-python",
                       key=key, on_click="ignore", icon=":material/code:",
                       help="Plain PyTorch + NumPy, no KD Lab needed: the same data, teacher, students, loss and "
                            "seeds; it prints the same table (the same numbers with the same torch version and "
                            "machine, within seed noise elsewhere).")


def noise_verdict(result: dict[str, Any], on_distill: bool = False) -> tuple[str, str]:
    """("success" | "warning" | "info", sentence) on whether distilled beats scratch beyond the seed spread.

    With one seed it says how to get more: the Seeds slider above when `on_distill`, else the Distill page.
    """
    d, s = result["models"]["distilled"], result["models"]["scratch"]
    diff = 100 * (d["accuracy_mean"] - s["accuracy_mean"])
    seeds = len(d["accuracies"])
    if seeds < 2:
        return "info", (f"Distilled minus scratch: {diff:+.1f} points, from one seed. One seed cannot tell a real "
                        "gain from seed-to-seed noise: " + ("set Seeds above to 3 or more and run them."
                                                            if on_distill else "run 3 or more seeds on the Distill page."))
    spread = 100 * max(d["accuracy_std"], s["accuracy_std"])
    if abs(diff) <= spread:
        return "warning", (f"Within noise: distilled minus scratch is {diff:+.1f} points, smaller than the "
                           f"spread between seeds ({spread:.1f} points, {seeds} seeds).")
    word = "helped" if diff > 0 else "hurt"
    return ("success" if diff > 0 else "warning"), (
        f"Distillation {word}: distilled minus scratch is {diff:+.1f} points, larger than the spread between "
        f"seeds ({spread:.1f} points, {seeds} seeds).")


def show_verdict(result: dict[str, Any], on_distill: bool = False) -> None:
    """Write noise_verdict(result, on_distill) in its colour."""
    kind, text = noise_verdict(result, on_distill)
    getattr(st, kind)(text)
