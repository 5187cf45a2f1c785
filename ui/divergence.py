"""Forward vs reverse KL you can see: the kd_core.modes toy as one section of a page (divergence_section)."""

from __future__ import annotations

import streamlit as st

from ui.widgets import chart

SEPARATION = (0.0, 8.0, 7.0, 0.5)  # the slider: distance between the teacher's modes (min, max, default, step)


@st.cache_data(show_spinner=False, max_entries=32)
def _toy(separation: float):
    """kd_core.modes.mode_toy for one separation, computed once per server."""
    from kd_core.modes import mode_toy

    return mode_toy(separation)


@st.fragment
def divergence_section() -> None:
    """The toy: a two-mode teacher, a one-mode student fitted by forward KL, reverse KL and JSD(beta), no training.

    A fragment: moving its separation slider reruns this section only; its beta slider runs in the browser.
    """
    from kd_core import charts
    from kd_core.modes import RIGHT_WEIGHT

    st.subheader("Forward vs reverse KL, on a picture")
    st.markdown("A teacher that likes two answers, and a student that can only say one thing (a single bump, "
                "a Gaussian with a mean and a width). Each divergence is minimised over every (mean, width) on a "
                "grid (no training): the **forward KL**(teacher ‖ student), the loss of ordinary distillation, is "
                "*mode-covering*: it is huge wherever the teacher has mass and the student has none, so the student "
                "spreads over both answers. The **reverse KL**(student ‖ teacher) is *mode-seeking*: it punishes "
                "only the student's mass where the teacher has none, so the student may settle on one answer. GKD's "
                "**JSD(β)** lies between them. The numbers come from the same `soft_divergence` the language models "
                "train with (log-densities on the grid as the logits).")
    low, high, default, step = SEPARATION
    separation = st.slider("Distance between the teacher's two modes (in mode widths)", low, high, default, step,
                           key="modes-separation")
    toy = _toy(separation)
    chart(charts.mode_fits(toy, 0.5), key="modes-fits")
    forward, reverse = toy.fits["forward"], toy.fits["reverse"]
    if toy.on_a_mode(reverse):
        verdict = (f"the reverse-KL student sits on the heavier mode (mean {reverse.mean:.1f}, width "
                   f"{reverse.width:.2f}) and ignores the other, while the forward-KL student sits between the modes "
                   f"(mean {forward.mean:.1f}), {forward.width:.1f} wide, to cover both.")
    else:
        verdict = (f"with the modes this close, covering both is best for every divergence: the reverse-KL "
                   f"student (mean {reverse.mean:.1f}, width {reverse.width:.2f}) is as wide as, or a little narrower "
                   f"than, the forward-KL one (width {forward.width:.2f}). Move the modes apart to see them part.")
    st.caption(f"Notice: {verdict} Drag the β slider: the JSD student (dashed) moves from the forward fit to the "
               "reverse fit, and its landscape (the third map, the × at its minimum) changes with it. The right mode "
               f"holds {RIGHT_WEIGHT:.0%} of the teacher's mass, so the mode-seeking answer is that one.")
    chart(charts.jsd_ends(toy), key="modes-jsd-ends")
    st.caption("Notice: the JSD itself falls to 0 at both ends: as β → 0 or 1 its mixture becomes one of the two "
               "distributions, and a distribution's divergence from itself is 0. So β = 0 and β = 1 are defined (as "
               "in GKD and TRL) as the pure forward and reverse KL, the two separate points, which the curve does "
               "not reach. Near the ends the JSD student still matches the pure KL's: near β = 0 the JSD is about "
               "β times the forward KL, near 1 about (1 − β) times the reverse KL, and scaling a loss does not "
               "move its minimum.")
