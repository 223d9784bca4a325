"""Checkout branding: the logo (decoded, bounded, re-encoded) and the accent colour (with a readable text colour).

A logo is accepted only if Pillow decodes it as PNG, JPEG or WebP within the limits below: the upload's size is
checked before anything is read into Pillow, its pixel count from the header before it is decoded (the
decompression-bomb guard: a small file that claims a huge canvas is refused without being expanded), then the whole
image is decoded (a truncated or forged file fails here), scaled down to fit LOGO_MAX_SIDE and written again as WebP.
Only pixels survive the re-encoding: no EXIF, no GPS, no ICC profile, no text chunks, no trailing bytes.
"""
import base64
import hashlib
import warnings
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

LOGO_MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # 2 MB
LOGO_MAX_PIXELS = 4096 * 4096  # what a logo's source may claim; more is refused before decoding
LOGO_MAX_SIDE = 256  # stored at most 256 x 256 (the checkout shows it at 40-48 CSS px, 2x for dense screens)
LOGO_FORMATS = ("PNG", "JPEG", "WEBP")
LOGO_CONTENT_TYPE = "image/webp"


class LogoError(ValueError):
    """An upload that is not a logo the checkout may show; the message is for the merchant."""


@dataclass(frozen=True)
class Logo:
    image: bytes  # WebP
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()


def logo_process(upload) -> Logo:
    """An uploaded file (Django's UploadedFile, or any object with read() and size) -> the logo to store, or
    LogoError."""
    size = getattr(upload, "size", None)
    if size is not None and size > LOGO_MAX_UPLOAD_BYTES:
        raise LogoError(f"The file is larger than {LOGO_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    data = upload.read(LOGO_MAX_UPLOAD_BYTES + 1)
    if len(data) > LOGO_MAX_UPLOAD_BYTES:
        raise LogoError(f"The file is larger than {LOGO_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not data:
        raise LogoError("The file is empty.")
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that; our own, smaller limit decides first.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=LOGO_FORMATS) as source:
                width, height = source.size
                if width < 1 or height < 1 or width * height > LOGO_MAX_PIXELS:
                    raise LogoError(f"The image is {width} x {height} pixels: at most "
                                    f"{LOGO_MAX_PIXELS:,} pixels are accepted.")
                if getattr(source, "n_frames", 1) > 1:
                    raise LogoError("Animated images are not accepted: upload a still PNG, JPEG or WebP.")
                source.load()  # decodes every pixel: a truncated or forged file fails here
                image = ImageOps.exif_transpose(source)  # a photo taken sideways stands up before EXIF is dropped
    except LogoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LogoError(f"The image has too many pixels: at most {LOGO_MAX_PIXELS:,} are accepted.") from None
    except UnidentifiedImageError:
        raise LogoError("The file is not a PNG, JPEG or WebP image we can read.") from None
    except (OSError, SyntaxError, ValueError):  # Pillow's errors for broken data
        raise LogoError("The file is not a PNG, JPEG or WebP image we can read.") from None
    image = image.convert("RGBA")
    image.thumbnail((LOGO_MAX_SIDE, LOGO_MAX_SIDE), Image.Resampling.LANCZOS)
    out = BytesIO()
    image.save(out, format="WEBP", quality=85, method=4)  # a new file: pixels only, no metadata
    return Logo(image=out.getvalue(), width=image.width, height=image.height)


def logo_data_url(image: bytes, content_type: str = LOGO_CONTENT_TYPE) -> str:
    """The stored logo as a data: URL (the checkout's CSP allows `img-src data:`)."""
    return f"data:{content_type};base64,{base64.b64encode(bytes(image)).decode()}"


# --- Accent colour and contrast (WCAG 2.x) ------------------------------------------------------------------------

def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(hex_color: str) -> float:
    """WCAG relative luminance of #rrggbb (colour maths, not money: floats are fine here)."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable_text_color(background: str) -> str:
    """Black or white, whichever contrasts more with `background`: for any #rrggbb one of them reaches at least
    4.58:1, above WCAG AA's 4.5:1 for normal text."""
    return "#000000" if contrast_ratio(background, "#000000") >= contrast_ratio(background, "#ffffff") else "#ffffff"
