"""uploads.content: the type of a file from its bytes, image facts and thumbnails."""

import io

import pytest
from PIL import Image

from uploads import content


def encoded(img: Image.Image, fmt: str, **params: object) -> io.BytesIO:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    out.seek(0)
    return out


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"),
                                           ("WEBP", "image/webp")])
def test_images_get_their_size_and_a_thumbnail(fmt: str, mime: str) -> None:
    sniffed = content.sniff(encoded(Image.new("RGB", (1200, 300), (10, 20, 30)), fmt))
    assert (sniffed.content_type, sniffed.width, sniffed.height, sniffed.is_image) == (mime, 1200, 300, True)
    assert sniffed.thumbnail is not None
    with Image.open(io.BytesIO(sniffed.thumbnail)) as thumb:
        assert thumb.size == (320, 80)


def test_transparency_keeps_a_png_thumbnail() -> None:
    sniffed = content.sniff(encoded(Image.new("RGBA", (50, 50), (0, 0, 0, 0)), "PNG"))
    assert sniffed.thumbnail_extension == "png"


def test_exif_rotation_gives_the_displayed_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    sniffed = content.sniff(encoded(Image.new("RGB", (400, 100)), "JPEG", exif=exif))
    assert (sniffed.width, sniffed.height) == (100, 400)
    with Image.open(io.BytesIO(sniffed.thumbnail or b"")) as thumb:
        assert thumb.size == (80, 320)


@pytest.mark.parametrize(("data", "mime"), [
    (b"hello\nworld\t\xc3\xa9", "text/plain"),
    (b"caf\xc3", "text/plain"),  # a character cut by the sniff window is still text
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "text/plain"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
    (b"\xff\xfe\xfd", "application/octet-stream"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"PK\x03\x04" + b"\0" * 40, "application/zip"),
])
def test_other_files_are_typed_by_their_bytes(data: bytes, mime: str) -> None:
    sniffed = content.sniff(io.BytesIO(data))
    assert (sniffed.content_type, sniffed.is_image, sniffed.thumbnail) == (mime, False, None)


def test_other_image_formats_are_plain_files() -> None:
    sniffed = content.sniff(encoded(Image.new("RGB", (10, 10)), "BMP"))
    assert (sniffed.content_type, sniffed.is_image) == ("image/bmp", False)


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\0" * 64, b"GIF89a" + b"\xff" * 32,
                                  b"\xff\xd8\xff\xe0" + b"\0" * 64])
def test_broken_images_are_refused(data: bytes) -> None:
    with pytest.raises(content.UnreadableImage):
        content.sniff(io.BytesIO(data))


@pytest.mark.parametrize(("raw", "name"), [("../../etc/passwd", "passwd"), ("C:\\Users\\x\\photo.jpg", "photo.jpg"),
                                           ("a\x00b\u202ec.png", "abc.png"), ("..", "file"), ("", "file"),
                                           (None, "file"), ("  .hidden  ", "hidden")])
def test_safe_name(raw: str | None, name: str) -> None:
    assert content.safe_name(raw) == name


def test_safe_name_keeps_the_extension_of_a_long_name() -> None:
    name = content.safe_name("x" * 400 + ".jpeg")
    assert len(name) == 255 and name.endswith(".jpeg")
