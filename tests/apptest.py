"""Shared AppTest helpers for the page tests: open the app on a page, check it shows no error, read its charts."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_page(page: str | None = None, **state) -> AppTest:
    """Run the app's router, then switch to `page` (a path under app_pages/) with `state` set in session state."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        at.switch_page(page)
    at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def plotly_titles(at: AppTest) -> list[str]:
    """Titles of the Plotly figures on the page (AppTest has no Plotly accessor: read the figure JSON)."""
    return [json.loads(el.proto.spec)["layout"]["title"]["text"] for el in at.get("plotly_chart")]
