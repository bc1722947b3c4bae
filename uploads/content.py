"""What an uploaded file really is, from its bytes: the client's content type and file
name are never trusted. Pure functions over a file object.

- The type comes from magic bytes (`filetype`); bytes it does not know are
  `text/plain` if they read as UTF-8 text, else `application/octet-stream`. A file
  that claims `image/png` but holds text is stored, and served, as `text/plain`.
- PNG, JPEG, GIF and WebP are *images*: Pillow must decode them (a corrupt or
  oversized one is refused), they get width/height (as displayed, EXIF rotation
  applied) and a thumbnail. Every other type, SVG included (it can carry script),
  is a plain file.
"""

import codecs
import io
import unicodedata
import warnings
from dataclasses import dataclass
from typing import IO

import filetype
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# What browsers display inline, by the MIME name Pillow gives each format.
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
IMAGE_TYPES = frozenset(IMAGE_FORMATS.values())
_IMAGE_MAGIC = IMAGE_TYPES | {"image/apng"}  # an animated PNG decodes as PNG
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
              "text/plain": "txt"}
THUMBNAIL_BOX = (320, 320)
MAX_IMAGE_PIXELS = 50_000_000  # a decompression bomb's guard: ~8000 x 6000
SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"
_TURNED = (5, 6, 7, 8)  # EXIF orientations a quarter turn away: width and height swap
TEXT = "text/plain"


class UnreadableImage(ValueError):
    """Bytes that announce an image but do not decode as one (or decode too large)."""


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    extension: str  # for the storage name; "" when unknown
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None
    thumbnail_extension: str = ""

    @property
    def is_image(self) -> bool:
        return self.content_type in IMAGE_TYPES


def sniff(file: IO[bytes]) -> Sniffed:
    """The real type of `file` (read from the start; left at the start)."""
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    kind = filetype.guess(head)
    if kind is not None and kind.mime in _IMAGE_MAGIC:
        return _image(file)
    if kind is not None:
        return Sniffed(kind.mime, kind.extension)
    if _is_text(head):
        return Sniffed(TEXT, EXTENSIONS[TEXT])
    return Sniffed(OCTET_STREAM, "")


def _is_text(head: bytes) -> bool:
    """UTF-8 without NULs or other C0 controls but tab, newlines and form feed."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut last character is fine
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r\f" for c in text)


def _image(file: IO[bytes]) -> Sniffed:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(file) as probe:
                _check_pixels(probe.size)
                probe.verify()  # the whole stream: truncated or corrupt data fails here
            file.seek(0)
            with Image.open(file) as img:
                content_type = IMAGE_FORMATS.get(img.format or "")
                if content_type is None:
                    raise UnreadableImage(f"{img.format} is not an image type GoChat shows")
                width, height = img.size
                if img.getexif().get(ExifTags.Base.Orientation, 1) in _TURNED:
                    width, height = height, width  # as a viewer displays it
                # A JPEG decodes at a reduced scale (no full-size bitmap); other formats ignore this.
                img.draft("RGB", (THUMBNAIL_BOX[0] * 2, THUMBNAIL_BOX[1] * 2))
                thumbnail, thumb_ext = _thumbnail(ImageOps.exif_transpose(img))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
                OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, UnreadableImage):
                raise
            raise UnreadableImage("The image cannot be decoded.") from exc
        finally:
            file.seek(0)
    return Sniffed(content_type, EXTENSIONS[content_type], width, height, thumbnail, thumb_ext)


def _check_pixels(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise UnreadableImage(f"The image is over {MAX_IMAGE_PIXELS} pixels.")


def _thumbnail(img: Image.Image) -> tuple[bytes, str]:
    """At most THUMBNAIL_BOX, aspect kept: PNG where there is transparency, else JPEG."""
    thumb = img.copy()  # the first frame of an animation
    thumb.thumbnail(THUMBNAIL_BOX)
    out = io.BytesIO()
    if thumb.mode in ("RGBA", "LA", "PA") or (thumb.mode == "P" and "transparency" in thumb.info):
        thumb.convert("RGBA").save(out, "PNG", optimize=True)
        return out.getvalue(), "png"
    thumb.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue(), "jpg"


def safe_name(raw: str | None) -> str:
    """The client's file name for display and Content-Disposition: no directories, no
    control characters, at most 255 characters (the extension kept)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if not name:
        return "file"
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = stem[: 254 - len(ext)] + dot + ext if dot and len(ext) <= 16 else name[:255]
    return name
