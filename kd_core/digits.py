"""Your own digit: check an uploaded or drawn image, prepare it the MNIST way, and ask the models about it.

MNIST's recipe (LeCun et al.): the digit, white on black, is cropped to its ink, scaled so that its
longer side is 20 pixels (keeping the aspect ratio), and placed in a 28 x 28 field so that its centre
of mass sits at the centre. The result goes to the models exactly as the training images do
(`kd_core.evaluate.predict_logits`, which scales pixels to [0, 1] with `kd_core.data.to_float`).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from kd_core.evaluate import predict_logits
from kd_core.losses import soften

MAX_IMAGE_BYTES = 5_000_000          # a larger file is refused before it is parsed: Streamlit's own cap
#                                      (maxUploadSize = 5 in .streamlit/config.toml means 5 * 10^6 bytes)
MAX_IMAGE_PIXELS = 24_000_000         # width x height, checked before decoding (decompression bombs)
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
UPLOAD_TYPES = ("png", "jpg", "jpeg", "bmp", "gif", "webp")  # file-name endings of FORMATS
WORK_SIDE = 1024        # images are shrunk to at most this many pixels a side before preprocessing
SIZE = 28               # MNIST's field
BOX = 20                # the digit's longer side inside the field
MIN_CONTRAST = 40       # grey levels between paper and ink below which an image counts as blank
INK_FLOOR = 0.25        # after stretching the ink to 0..255, fainter pixels (paper texture, noise) become 0


class ImageError(ValueError):
    """An image that cannot be used, with a plain-English message saying why."""


def _open(data: bytes) -> Image.Image:
    """Pillow's lazy image of `data` in one of FORMATS (header read only); ImageError otherwise."""
    with warnings.catch_warnings():  # MAX_IMAGE_PIXELS below Pillow's own limit decides; no log noise
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.DecompressionBombError as exc:
            raise ImageError(f"The image is too large: {exc}. Use one under {MAX_IMAGE_PIXELS:,} pixels.") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):  # Pillow's ways of saying "bad header"
            pass
        try:  # only to name the format in the message: the header is read, the image never decoded
            other = Image.open(io.BytesIO(data)).format
        except Exception:  # Pillow raises many kinds on bytes that are no image at all
            other = None
    if other:
        raise ImageError(f"{other} images are not supported. Use {', '.join(FORMATS)}.")
    raise ImageError(f"This file is not an image that can be read. Use {', '.join(FORMATS)}.")


def load_image(data: bytes, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Grayscale uint8 (H, W) pixels of an uploaded or drawn image, at most WORK_SIDE a side.

    Checked before decoding: not empty, at most MAX_IMAGE_BYTES and MAX_IMAGE_PIXELS, one of FORMATS
    (the first frame of an animation). Transparent parts are laid on `background` (white paper for
    uploads; the canvas colour for drawings); a photo's EXIF rotation is applied. ImageError if unusable.
    """
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"The file is too large ({len(data):,} bytes); the limit is "
                         f"{MAX_IMAGE_BYTES / 1e6:.0f} MB ({MAX_IMAGE_BYTES:,} bytes).")
    image = _open(data)
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"The image is too large ({width:,} x {height:,} pixels); the limit is "
                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels.")
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.")
    try:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((WORK_SIDE, WORK_SIDE))  # decodes; JPEGs at a reduced scale when they are large
        if image.mode.startswith(("I", "F")):  # 16-bit greyscale PNGs: Pillow's convert would clip them to white
            wide = np.asarray(image, dtype=np.float64)
            image = Image.fromarray(np.clip(wide / 257 if wide.max() > 255 else wide, 0, 255).astype(np.uint8))
        rgba = image.convert("RGBA")
    except Exception as exc:  # Pillow's decoders raise many kinds on damaged data
        raise ImageError(f"The image could not be decoded (damaged or truncated file: {exc}).") from exc
    paper = Image.new("RGBA", rgba.size, (*background, 255))
    return np.asarray(Image.alpha_composite(paper, rgba).convert("L"))


def _border(gray: np.ndarray) -> np.ndarray:
    """The pixels of the outer frame (a 5 % band, at least one pixel), where paper shows around a digit."""
    band = max(1, round(0.05 * min(gray.shape)))
    inner = np.zeros(gray.shape, dtype=bool)
    inner[band:-band, band:-band] = True
    return gray[~inner] if inner.any() else gray.ravel()


def ink(gray: np.ndarray) -> np.ndarray:
    """float32 ink in 0..255 (paper 0), whichever the polarity: dark ink on light paper is inverted.

    The paper's brightness is the median of the border; pixels darker (or, on dark paper, lighter)
    than it are ink, stretched so the strongest is 255; faint ones (below INK_FLOOR) become 0.
    ImageError when nothing stands out from the paper.
    """
    values = np.asarray(gray, dtype=np.float32)
    paper = float(np.median(_border(values)))
    if paper > 127:  # light paper: MNIST digits are white on black
        values, paper = 255.0 - values, 255.0 - paper
    values = np.clip(values - paper, 0.0, None)
    strongest = float(values.max())
    if strongest < MIN_CONTRAST:
        raise ImageError("The image is blank: no digit stands out from the background. Draw or photograph "
                         "a digit in dark ink on light paper (or light on dark).")
    values *= 255.0 / strongest
    values[values < 255.0 * INK_FLOOR] = 0.0
    return values


def preprocess(gray: np.ndarray) -> np.ndarray:
    """An MNIST-style 28 x 28 uint8 image: ink cropped, longer side scaled to 20 px, centre of mass centred."""
    values = ink(gray)
    rows, cols = np.flatnonzero(values.any(axis=1)), np.flatnonzero(values.any(axis=0))
    crop = values[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.LANCZOS)
    small = np.clip(np.asarray(resized), 0, 255)  # Lanczos overshoots a little at sharp edges
    total = float(small.sum())
    if total <= 0:  # only possible for a speck that vanishes when shrunk
        raise ImageError("The image is blank: the ink is too faint or too small to make out a digit.")
    ys, xs = np.indices(small.shape)
    centre_y, centre_x = float((ys * small).sum()) / total, float((xs * small).sum()) / total
    top = int(np.clip(round(SIZE / 2 - centre_y), 0, SIZE - small.shape[0]))
    left = int(np.clip(round(SIZE / 2 - centre_x), 0, SIZE - small.shape[1]))
    field = np.zeros((SIZE, SIZE), dtype=np.float32)
    field[top:top + small.shape[0], left:left + small.shape[1]] = small
    return np.round(field).astype(np.uint8)


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """`image` with every pixel repeated factor x factor times (sharp squares, not a blur, when shown large)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def softened_outputs(models: dict[str, nn.Module], image28: np.ndarray, temperature: float) -> dict[str, np.ndarray]:
    """Each model's softmax(logits / T) for one 28 x 28 uint8 image, fed exactly as the test images are."""
    batch = torch.tensor(np.asarray(image28, dtype=np.uint8))[None]  # a copy: the input may be read-only
    return {name: soften(predict_logits(model, batch)[0], temperature).numpy() for name, model in models.items()}
