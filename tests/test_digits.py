"""Your own digit: image checks, MNIST-style preprocessing, a drawn digit recognised by a trained teacher, the page."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from kd_core import charts, digits

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    """`image` as file bytes in format `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def paper(width: int = 600, height: int = 500, colour="white", mode: str = "RGB"):
    """A blank sheet and a pen for it."""
    image = Image.new(mode, (width, height), colour)
    return image, ImageDraw.Draw(image)


def one(x: int = 420, top: int = 60, bottom: int = 420, ink="#202020", colour="white") -> Image.Image:
    """A "1" as a thick vertical stroke, off-centre on a large sheet."""
    image, pen = paper(colour=colour)
    pen.line((x, top, x, bottom), fill=ink, width=36)
    return image


def zero(box=(80, 50, 300, 420), ink="#202020") -> Image.Image:
    """A "0" as a thick ellipse, off-centre on a large sheet."""
    image, pen = paper()
    pen.ellipse(box, outline=ink, width=34)
    return image


def seven() -> Image.Image:
    """A "7": a bar along the top and a long diagonal down to the left."""
    image, pen = paper()
    pen.line((200, 80, 470, 80), fill="black", width=34)
    pen.line((470, 80, 300, 440), fill="black", width=34)
    return image


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre."""
    ys, xs = np.indices(image.shape)
    total = image.astype(np.float64).sum()
    return float((ys * image).sum() / total), float((xs * image).sum() / total)


def bounding_box(image: np.ndarray, level: int = 64) -> tuple[int, int]:
    """(height, width) of the pixels brighter than `level`."""
    rows, cols = np.flatnonzero((image > level).any(axis=1)), np.flatnonzero((image > level).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


# --- loading and checking ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_every_accepted_format_loads_as_grayscale(fmt):
    gray = digits.load_image(encode(one(), fmt))
    assert gray.dtype == np.uint8 and gray.shape == (500, 600)
    assert gray[10, 10] > 200 and gray[240, 420] < 80  # white paper, dark ink


def test_16_bit_greyscale_is_scaled_not_clipped():
    deep = Image.fromarray(np.asarray(one().convert("L")).astype(np.uint16) * 257)
    assert deep.mode.startswith("I")
    gray = digits.load_image(encode(deep))
    assert gray[10, 10] == 255 and gray[240, 420] == 0x20


def test_large_images_are_shrunk_before_preprocessing():
    image, pen = paper(3000, 2000)
    pen.ellipse((300, 300, 1500, 1800), outline="black", width=150)
    gray = digits.load_image(encode(image, "JPEG"))
    assert max(gray.shape) == digits.WORK_SIDE and gray.shape == (683, 1024)


def test_transparent_parts_are_laid_on_the_given_background():
    image, pen = paper(200, 200, colour=(0, 0, 0, 0), mode="RGBA")
    pen.line((100, 20, 100, 180), fill=(0, 0, 0, 255), width=20)  # dark ink on transparent: an exported drawing
    gray = digits.load_image(encode(image))
    assert gray[5, 5] == 255 and gray[100, 100] == 0
    assert digits.preprocess(gray).max() == 255  # inverted: white digit
    canvas, pen = paper(200, 200, colour=(0, 0, 0, 0), mode="RGBA")
    pen.line((100, 20, 100, 180), fill=(255, 255, 255, 255), width=20)  # white brush on a transparent canvas
    gray = digits.load_image(encode(canvas), background=(0, 0, 0))
    assert gray[5, 5] == 0 and gray[100, 100] == 255


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"hello, I am not a picture" * 10, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image"),
    (b"\0" * (digits.MAX_IMAGE_BYTES + 1), "too large"),
])
def test_bad_bytes_are_refused_with_a_message(data, words):
    with pytest.raises(digits.ImageError, match=words):
        digits.load_image(data)


def test_other_image_formats_are_named_and_refused():
    with pytest.raises(digits.ImageError, match="TIFF images are not supported"):
        digits.load_image(encode(one(), "TIFF"))


def test_truncated_image_is_refused():
    data = encode(zero(), "PNG")
    with pytest.raises(digits.ImageError, match="damaged or truncated"):
        digits.load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (6000, 6000)))  # 36 megapixels of zeros: a few kilobytes of PNG
    assert len(bomb) < 100_000
    with pytest.raises(digits.ImageError, match="too large"):
        digits.load_image(bomb)


def test_pillows_own_bomb_limit_becomes_an_image_error():
    gif = bytearray(encode(Image.new("L", (4, 4)), "GIF"))
    gif[6:10] = (60000).to_bytes(2, "little") * 2  # the header claims 60,000 x 60,000 pixels
    with pytest.raises(digits.ImageError, match="too large"):
        digits.load_image(bytes(gif))


@pytest.mark.parametrize("colour", ["white", "black", (128, 128, 128)])
def test_blank_images_are_refused(colour):
    image, _ = paper(colour=colour)
    with pytest.raises(digits.ImageError, match="blank"):
        digits.preprocess(digits.load_image(encode(image)))


def test_faint_noise_is_blank():
    rng = np.random.default_rng(0)
    noisy = np.clip(200 + rng.normal(0, 6, (300, 300)), 0, 255).astype(np.uint8)  # paper texture, no ink
    with pytest.raises(digits.ImageError, match="blank"):
        digits.preprocess(noisy)


# --- preprocessing: the MNIST recipe -------------------------------------------------------------------

def test_dark_ink_on_paper_becomes_a_white_digit_on_black():
    image28 = digits.preprocess(digits.load_image(encode(zero())))
    assert image28.shape == (28, 28) and image28.dtype == np.uint8
    assert image28.max() == 255
    assert image28[0].max() == 0 and image28[:, 0].max() == 0  # black border
    assert image28[14, 14] == 0  # the hole of the 0 stays dark


def test_polarity_does_not_matter():
    dark_on_light = digits.load_image(encode(zero()))
    light_on_dark = 255 - dark_on_light
    np.testing.assert_array_equal(digits.preprocess(dark_on_light), digits.preprocess(light_on_dark))


def test_grey_paper_and_grey_ink_are_stretched():
    image = one(ink=(120, 120, 120), colour=(190, 190, 190))  # a dim photo
    assert digits.preprocess(digits.load_image(encode(image))).max() == 255


def test_digit_is_scaled_to_20_pixels_and_centred_by_mass():
    for image in (zero(), one()):
        image28 = digits.preprocess(digits.load_image(encode(image)))
        height, width = bounding_box(image28)
        assert height == 20 and width < 20  # the longer side is 20 px, the proportions kept
        row, col = centre_of_mass(image28)
        assert abs(row - 14) <= 0.75 and abs(col - 14) <= 0.75


def test_wide_digit_keeps_its_aspect_ratio():
    image, pen = paper(800, 400)
    pen.line((100, 200, 700, 200), fill="black", width=60)  # a dash 10:1 wide
    height, width = bounding_box(digits.preprocess(digits.load_image(encode(image))))
    assert width == 20 and 1 <= height <= 4


def test_enlarge_repeats_pixels():
    image = np.arange(4, dtype=np.uint8).reshape(2, 2)
    big = digits.enlarge(image, 3)
    assert big.shape == (6, 6) and (big[:3, :3] == 0).all() and (big[3:, 3:] == 3).all()


@settings(max_examples=40, deadline=None)
@given(x=st.integers(0, 300), y=st.integers(0, 200), w=st.integers(40, 280), h=st.integers(40, 280),
       stroke=st.integers(6, 30), light_on_dark=st.booleans())
def test_any_ellipse_anywhere_is_framed_the_same_way(x, y, w, h, stroke, light_on_dark):
    image, pen = paper(600, 500, colour="black" if light_on_dark else "white")
    pen.ellipse((x, y, x + w, y + h), outline="white" if light_on_dark else "black", width=stroke)
    image28 = digits.preprocess(digits.load_image(encode(image)))
    assert image28.shape == (28, 28) and image28.dtype == np.uint8
    assert max(bounding_box(image28, level=0)) in (20, 21)  # Lanczos may spill one faint pixel
    row, col = centre_of_mass(image28)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1


@settings(max_examples=25, deadline=None)
@given(dx=st.integers(-150, 150), dy=st.integers(-40, 40))
def test_moving_the_digit_on_the_page_changes_nothing(dx, dy):
    reference = digits.preprocess(digits.load_image(encode(one(x=300, top=80, bottom=400))))
    moved = digits.preprocess(digits.load_image(encode(one(x=300 + dx, top=80 + dy, bottom=400 + dy))))
    np.testing.assert_array_equal(reference, moved)


# --- the models --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher(tiny_config, one_thread):
    """A teacher trained one epoch on the sample's 4,000 training images (93 % test accuracy here)."""
    from kd_core.data import load_dataset
    from kd_core.experiment import get_teacher

    cfg = tiny_config.replace(teacher_train_limit=None, teacher_epochs=1)
    model, meta = get_teacher(cfg, load_dataset(cfg.dataset))
    assert meta["accuracy"] > 0.85
    return model


@pytest.mark.parametrize("label, image", [(0, zero()), (1, one()), (7, seven())])
def test_a_drawn_digit_is_recognised_by_the_teacher(teacher, label, image):
    image28 = digits.preprocess(digits.load_image(encode(image, "JPEG")))
    outputs = digits.softened_outputs({"teacher": teacher}, image28, 1.0)
    assert int(outputs["teacher"].argmax()) == label, np.round(outputs["teacher"], 3)


def test_softened_outputs_use_the_temperature_and_the_training_scale(teacher):
    from kd_core.data import load_dataset
    from kd_core.evaluate import predict_logits
    from kd_core.losses import soften

    test_image = load_dataset("mnist-sample").test_x[0]
    cold = digits.softened_outputs({"teacher": teacher}, test_image.numpy(), 1.0)["teacher"]
    hot = digits.softened_outputs({"teacher": teacher}, test_image.numpy(), 8.0)["teacher"]
    expected = soften(predict_logits(teacher, test_image[None])[0], 8.0).numpy()
    np.testing.assert_allclose(hot, expected, rtol=1e-5)
    assert cold.shape == (10,) and abs(cold.sum() - 1) < 1e-5
    assert hot.max() < cold.max()  # a higher T flattens


def test_digit_outputs_chart():
    probabilities = {"teacher": np.full(10, 0.1), "distilled": np.eye(10)[3], "scratch": np.eye(10)[5]}
    fig = charts.digit_outputs(probabilities, [str(d) for d in range(10)], 4.0)
    assert [t.name for t in fig.data] == ["teacher", "distilled student", "scratch student"]
    assert "T = 4" in fig.layout.title.text and fig.layout.xaxis.title.text == "class"
    assert "probability" in fig.layout.yaxis.title.text
    assert list(fig.data[1].y) == list(np.eye(10)[3])


# --- the page ------------------------------------------------------------------------------------------

def open_digit_page():
    """The app's router, then the Your digit page (tiny mode, empty cache: see the fresh_app fixture)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/your_digit.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.usefixtures("fresh_app")
def test_page_without_models_says_what_to_do():
    at = open_digit_page()
    assert any("No trained models yet" in i.value for i in at.info)
    assert not at.error and not at.get("plotly_chart")


@pytest.mark.usefixtures("fresh_app", "one_thread")
def test_page_shows_the_three_models_on_an_upload():
    import ui
    from kd_core.experiment import run_experiment

    run_experiment(ui.base_preset("classroom"))  # tiny: a few seconds
    at = open_digit_page()
    assert any("Draw a digit" in i.value for i in at.info)  # the canvas comes first, empty
    at.radio(key="digit_source").set_value("upload").run()
    at.file_uploader(key="digit_upload").upload("one.png", encode(one()), "image/png").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    said = " ".join(m.value for m in at.markdown)
    for role in ("Teacher says", "Distilled student says", "Scratch student says"):
        assert role in said
    assert len(at.get("plotly_chart")) == 1 and len(at.get("image")) == 2  # the image in grey, the 28 x 28 one

    at.file_uploader(key="digit_upload").upload("fake.png", b"not an image at all", "image/png").run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"This file is not an image that can be read. Use "
                                          f"{', '.join(digits.FORMATS)}."]
    assert not at.get("plotly_chart")
