"""Your digit: draw or upload a digit, see it prepared the MNIST way, and the three models' softened outputs at T."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

import ui
from kd_core import charts, digits
from kd_core.data import DATASETS, DIGITS

CANVAS = 280  # pixels a side: ten times MNIST's 28
SOURCES = {"draw": "Draw", "upload": "Upload an image"}

st.title("Your digit: what do the models make of it?")
st.markdown("Draw a digit, or upload a photo or scan of one. It is prepared exactly as the MNIST images "
            "were (cropped to the ink, scaled to 20 pixels, centred in 28 × 28, white on black), then "
            "shown to the teacher and to both students. Nothing trains on this page.")
cfg = ui.current_config()
dataset = ui.require_dataset()
result, current = ui.current_or_latest_result(cfg, dataset)
if result is None:
    st.info("No trained models yet: run the demo first (a teacher and two students), then come back.")
    st.page_link("app_pages/home.py", label="Home: run the classroom demo", icon=":material/home:")
    st.page_link("app_pages/distill.py", label="Distill: choose the settings and run", icon=":material/science:")
    st.stop()
if not current:
    st.caption("No run with exactly the current settings yet (the distilled student depends on the T and alpha "
               "it was trained with), so these are the models of the most recent run.")
st.caption(f"Models: {ui.config_summary(result['config'])}.")
if DATASETS[result["config"]["dataset"]].classes != DIGITS:
    st.info("These models learned clothes, not digits. Choose an MNIST dataset in the sidebar and run the demo.")
    st.page_link("app_pages/distill.py", label="Distill: choose the settings and run", icon=":material/science:")
    st.stop()
models = ui.result_models(result)
if models is None:
    st.warning("The trained models of this run are not in the cache any more: run it again on the Distill page.")
    st.page_link("app_pages/distill.py", label="Distill", icon=":material/science:")
    st.stop()

source = st.radio("Your digit", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="digit_source")
left, right = st.columns([2, 3])
with left:  # the input, then what the models see, under it: each at its own size, never over the next column
    if source == "draw":
        st.space("medium")  # room for the canvas's toolbar, which floats above it
        drawing = st_canvas(stroke_width=22, stroke_color="#FFFFFF", background_color="#000000", width=CANVAS,
                            height=CANVAS, drawing_mode="freedraw", return_image_data=True, key="digit_canvas")
        st.caption("Draw one digit, large, with the mouse or a finger. The bin icon above the canvas clears it; "
                   "the curved arrow undoes a stroke.")
        if not (drawing.json_data or {}).get("objects") or drawing.image_bytes is None:
            st.info("Draw a digit in the black square.")
            st.stop()
        data, paper = drawing.image_bytes, (0, 0, 0)
    else:
        upload = st.file_uploader("A photo, scan or drawing of one digit", type=list(digits.UPLOAD_TYPES),
                                  key="digit_upload", help=f"{', '.join(digits.FORMATS)}; up to "
                                                           f"{digits.MAX_IMAGE_BYTES // 1_000_000} MB and "
                                                           f"{digits.MAX_IMAGE_PIXELS // 10**6} megapixels.")
        if upload is None:
            st.info("Upload an image: one digit, dark on light paper or light on dark, filling most of the picture.")
            st.stop()
        data, paper = upload.getvalue(), (255, 255, 255)
    try:
        gray = digits.load_image(data, background=paper)
        image28 = digits.preprocess(gray)
    except digits.ImageError as exc:
        st.error(str(exc))
        st.stop()
    if source == "upload":
        st.image(gray, caption="Your image, in grey", width=CANVAS)
    st.image(digits.enlarge(image28, 6), caption="What the models see: 28 × 28 pixels, shown 6× larger",
             width=28 * 6)

with right:
    T = ui.setting_widget(st.slider, "Temperature T", "temperature", min_value=0.5, max_value=20.0, step=0.5,
                          help="Shared with the Temperature and Distill pages. It only softens the outputs here; "
                               "the models do not change.")
    plain = digits.softened_outputs(models, image28, 1.0)
    soft = digits.softened_outputs(models, image28, T)
    st.markdown("  \n".join(f"{ui.ROLE_TITLES[role].capitalize()} says **{DIGITS[p.argmax()]}** "
                            f"({p.max():.0%} at T = 1)" for role, p in plain.items()))
    ui.chart(charts.digit_outputs(soft, DIGITS, T), key="digit-outputs")
    sure = float(plain["teacher"].max())  # what the models show, not what a well-trained model would
    st.caption(("Notice: at T = 1 the teacher is sure of its answer; raise T and the digits it also sees in yours "
                "appear. " if sure >= 0.9 else
                "Notice: at T = 1 the teacher is fairly sure; raise T and the digits it also sees in yours grow. "
                if sure >= 0.5 else
                "Notice: even at T = 1 the teacher is far from sure of this one; raising T flattens the bars further, "
                "towards 10% each. ")
               + "The distilled student learned such second choices from the teacher."
               + (" Tiny mode: these models trained for seconds on a few hundred images, so they are less sure "
                  "(and more often wrong) than fully trained ones." if ui.tiny() else ""))
with st.expander("How your image was prepared"):
    st.markdown("1. Made grey; transparent parts laid on the paper (white for uploads, black for the canvas).\n"
                "2. If the border is light (dark ink on paper), inverted: MNIST digits are white on black.\n"
                "3. The paper's grey level subtracted and the ink stretched to full brightness; faint specks dropped.\n"
                "4. Cropped to the ink, scaled so the longer side is 20 pixels, keeping the proportions.\n"
                "5. Placed in a 28 × 28 black field with the ink's centre of mass in the middle.\n"
                "6. Pixel values divided by 255, exactly as for the training images.")
