"""Image reading and writing with Pillow and torch only.

Every image comes out RGB with EXIF orientation applied, whatever its mode
(greyscale, palette, 16-bit, CMYK, with or without alpha). Files are written
atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")  # stylized through fastnst.stylize.video


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the reason."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (transparency composited on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


class NotAnImageError(ImageReadError):
    """The file is not an image Pillow can read."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than allowed (checked before it is decoded)."""


def read_image(
    path: str | Path, min_short_side: int | None = None, data: BinaryIO | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Read an image file (or uploaded bytes) as upright 8-bit RGB.

    Args:
        path: the file; with ``data``, only the name used in messages.
        min_short_side: when given, JPEGs are decoded with Pillow's draft mode
            at the smallest DCT scale whose short side is still at least this.
        data: read from this file object instead of ``path`` (an upload; nothing touches the disk).
        max_pixels: refuse larger images before decoding them (:class:`ImageTooLargeError`).

    Raises:
        ImageReadError: the file is missing, truncated, not an image, too large or a
            decompression bomb; the message names the file.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(data if data is not None else path) as image:
                if max_pixels and image.width * image.height > max_pixels:
                    raise ImageTooLargeError(
                        f"{path}: {image.width}x{image.height} is {image.width * image.height / 1e6:.1f} MP; "
                        f"the limit is {max_pixels / 1e6:g} MP"
                    )
                if min_short_side and image.format == "JPEG":
                    image.draft("RGB", (min_short_side, min_short_side))
                image.load()
                image = ImageOps.exif_transpose(image)
                return to_rgb(image)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise NotAnImageError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot decode ({exc})") from None


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image to a float32 tensor in [0, 1].

    Shape:
        - Output: (3, H, W).
    """
    array = np.array(image.convert("RGB"), dtype=np.uint8)  # writable copy
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor in [0, 1] to an RGB PIL image (values clamped, rounded).

    Shape:
        - Input: (3, H, W) or (1, 3, H, W).
    """
    if tensor.dim() == 4:
        tensor = tensor[0]
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def resize_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Resize so the longer side is ``long_side`` px, keeping the aspect ratio."""
    w, h = image.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def load_image(path: str | Path, long_side: int | None = None) -> torch.Tensor:
    """Read an image file as a (1, 3, H, W) float tensor in [0, 1], long side resized to ``long_side``.

    Raises:
        ImageReadError: see :func:`read_image`.
    """
    image = read_image(path)
    if long_side:
        image = resize_long_side(image, long_side)
    return pil_to_tensor(image).unsqueeze(0)


def scaled_size(
    width: int, height: int, size: int | None = None, scale: float | None = None, even: bool = False
) -> tuple[int, int]:
    """Output (width, height) for ``--size`` (long side, px) or ``--scale`` (factor); else unchanged.

    Sides are at least 4 px (the network downsamples twice); ``even`` rounds them down to even
    numbers (video encoders need it).
    """
    if size:
        factor = size / max(width, height)
    elif scale:
        factor = scale
    else:
        factor = 1.0
    w, h = (max(4, round(width * factor)), max(4, round(height * factor))) if factor != 1.0 else (width, height)
    return (w - w % 2, h - h % 2) if even else (w, h)


def resize_tensor(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize images to (width, height): antialiased bicubic, clamped to [0, 1]. Same for photos and video.

    Shape: (B, 3, H, W) -> (B, 3, height, width).
    """
    if tuple(images.shape[-2:]) == (size[1], size[0]):
        return images
    resized = torch.nn.functional.interpolate(images, size=(size[1], size[0]), mode="bicubic", antialias=True)
    return resized.clamp_(0, 1)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$FASTNST_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastnst``, else ``~/.cache/fastnst``."""
    if os.environ.get("FASTNST_CACHE_DIR"):
        return Path(os.environ["FASTNST_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "fastnst"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    while True:  # created with mode 0o666 so the umask applies, as to any new file (mkstemp makes it private)
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save_image(image: Image.Image, path: str | Path, quality: int = 95) -> Path:
    """Write an image atomically; the format follows the suffix."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension; use one of {', '.join(IMAGE_EXTENSIONS)}")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)
    return path


def make_grid(images: torch.Tensor, nrow: int = 4, padding: int = 2, fill: float = 1.0) -> torch.Tensor:
    """Tile a batch of images into one image (like torchvision's make_grid).

    Shape:
        - Input: (B, 3, H, W).
        - Output: (3, rows * (H + p) + p, cols * (W + p) + p).
    """
    b, c, h, w = images.shape
    cols = min(nrow, b)
    rows = (b + cols - 1) // cols
    grid = images.new_full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), fill)
    for i in range(b):
        r, col = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid
