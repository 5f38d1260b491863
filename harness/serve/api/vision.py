"""Images in chat requests to `harness serve`, as OVMS takes them: OpenAI image_url content parts holding
base64 data URLs, decoded to RGB tensors for a vision-language model's pipeline, and referred to in the
prompt by openvino-genai's universal tags (`<ov_genai_image_N>`, N counting the request's images in order),
which OVMS puts before the text of the message that carried them. A text-only model refuses image parts
with OVMS's message. harness serve fetches no http(s) URL and reads no local file: only data URLs."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from harness.serve.api.protocol import ApiError

TEXT_ONLY = "This servable supports only text input, but image_url has been provided"
MAX_IMAGE_PIXELS = 4096 * 4096  # larger pictures are refused before decoding, not resized


def image_tag(index: int) -> str:
    return f"<ov_genai_image_{index}>"


def decode_image_url(url: str, where: str) -> Any:
    """An ov.Tensor of shape (1, height, width, 3), uint8, from a base64 data URL; ApiError 400 otherwise."""
    import numpy as np
    import openvino as ov
    from PIL import Image, UnidentifiedImageError

    head, sep, data = url.partition("base64,")
    if not sep or not head.startswith("data:"):
        raise ApiError(400, f"{where}: only base64 data URLs (data:image/png;base64,...) are accepted; harness "
                            "serve fetches no URL and reads no file", where)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}: Invalid base64 string in request", where) from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ApiError(400, f"{where}: the image has {img.width}x{img.height} pixels, more than "
                                    f"{MAX_IMAGE_PIXELS}", where)
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ApiError(400, f"{where}: Image parsing failed: {type(e).__name__}", where) from None
    return ov.Tensor(np.ascontiguousarray(rgb[None]))
