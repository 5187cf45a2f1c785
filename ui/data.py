"""The data gate: which datasets are here, their labels, and the loaded dataset or a message saying how to get it."""

from __future__ import annotations

import streamlit as st

from kd_core.data import DATASETS, DatasetError, availability

DATASET_LABELS = {"mnist-sample": "MNIST sample (bundled)", "mnist": "MNIST (full)", "fashion-mnist": "Fashion-MNIST"}


@st.cache_data(ttl=30, show_spinner=False)
def dataset_status(name: str) -> tuple[bool, str]:
    """(available offline now, source or how to get it), re-checked at most every 30 seconds."""
    return availability(name)


def dataset_label(name: str) -> str:
    """Sidebar label of a dataset: its title, marked when it is not available here."""
    ok, _ = dataset_status(name)
    return DATASET_LABELS.get(name, name) + ("" if ok else " (not here)")


def require_dataset(name: str | None = None):
    """The loaded dataset, or a message saying how to get it (with a download button) and st.stop()."""
    from kd_core.data import load_dataset

    name = name or st.session_state.get("dataset", "mnist-sample")
    ok, where = dataset_status(name)
    if not ok:
        st.warning(f"**{DATASETS[name].title}** is not available on this machine yet.\n\n**How to get it:** {where}")
        if not st.button("Try to download it now (needs internet)", key="download-dataset"):
            st.info("Or choose the MNIST sample in the sidebar: it is bundled and always works.")
            st.stop()
    try:
        with st.spinner(f"Loading {DATASETS[name].title}..."):
            dataset = load_dataset(name)
    except DatasetError as exc:
        st.error(str(exc))
        st.stop()
    if not ok:
        dataset_status.clear()
    return dataset
