"""A COCO-style folder of photos as a training dataset (torch and Pillow only)."""

from __future__ import annotations

import fnmatch
import os
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from fastnst.io import IMAGE_EXTENSIONS, ImageReadError, pil_to_tensor, read_image


class DataError(ValueError):
    """The training data cannot be used; the message names the folder and the fix."""


def find_images(
    root: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, exclude: Sequence[str] = ()
) -> list[Path]:
    """All image files under ``root``, recursively, sorted.

    Extensions match in any case. Symbolic links to folders are followed once;
    a link that loops back is skipped. ``exclude`` holds glob patterns matched
    against each file's path relative to ``root`` (``*`` also crosses folders:
    ``bsds500/test/*`` holds out a whole folder, ``*.png`` every PNG).

    Raises:
        DataError: ``root`` does not exist or holds no image files.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: training folder not found; set data.root=/path/to/photos")
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(folder) / f for f in sorted(files) if f.lower().endswith(extensions)]
    kept = [p for p in found if not any(fnmatch.fnmatchcase(p.relative_to(root).as_posix(), e) for e in exclude)]
    if not kept:
        where = f" after excluding {list(exclude)}" if found else ""
        raise DataError(
            f"{root}: no images ({', '.join(e.lstrip('.') for e in extensions)}) found in this folder "
            f"or below it{where}; set data.root to a folder of photos" + (" or loosen data.exclude" if found else "")
        )
    return kept


def resize_short_side(image: Image.Image, short_side: int) -> Image.Image:
    """Resize so the shorter side is ``short_side`` px, keeping the aspect ratio."""
    w, h = image.size
    scale = short_side / min(w, h)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def random_crop(image: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """A random ``size`` x ``size`` crop of an image whose short side is at least ``size``."""
    w, h = image.size
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    return image.crop((left, top, left + size, top + size))


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size`` x ``size`` crop."""
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


class ImageFolderDataset(Dataset):
    """Photos resized on their short side, then cropped to squares.

    An unreadable file does not stop training: the item falls back to the next
    readable file and reports the bad one in ``"skipped"`` so the training loop
    can warn and count it (this also works from DataLoader worker processes).

    Args:
        files: image paths (see :func:`find_images`).
        image_size: side of the square crops.
        train: random crops when True, centre crops otherwise.
        draft: decode JPEGs at a reduced DCT scale when much larger than needed.
        seed: seed of the crop positions (per item, so workers agree).

    Returns (per item):
        dict with ``image`` (3, S, S) float in [0, 1] and ``skipped``, a list of
        ``"path: reason"`` strings for the files passed over.
    """

    def __init__(self, files: list[Path], image_size: int = 256, train: bool = True, draft: bool = True, seed: int = 0):
        if not files:
            raise DataError("ImageFolderDataset needs at least one file")
        self.files, self.image_size, self.train, self.draft, self.seed = list(files), image_size, train, draft, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path, rng: random.Random) -> torch.Tensor:
        image = read_image(path, min_short_side=self.image_size if self.draft else None)
        image = resize_short_side(image, self.image_size)
        crop = random_crop(image, self.image_size, rng) if self.train else center_crop(image, self.image_size)
        return pil_to_tensor(crop)

    def __getitem__(self, index: int) -> dict:
        rng = random.Random(hash((self.seed, self.epoch, index)))
        skipped = []
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return {"image": self.load(path, rng), "skipped": skipped}
            except ImageReadError as exc:
                skipped.append(str(exc))
            except Exception as exc:
                skipped.append(f"{path}: {exc.__class__.__name__}: {exc}")
            if attempt >= 16:
                break
        raise DataError(f"no readable image near index {index}; last errors: {'; '.join(skipped[-3:])}")


def collate(items: list[dict]) -> dict:
    """Stack images and gather the skipped-file reports of a batch."""
    return {
        "image": torch.stack([item["image"] for item in items]),  # (B, 3, S, S)
        "skipped": [reason for item in items for reason in item["skipped"]],
    }
