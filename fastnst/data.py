"""A COCO-style folder of photos as a training dataset (torch and Pillow only)."""

from __future__ import annotations

import fnmatch
import itertools
import os
import random
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

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


def item_rng(seed: int, *key: int) -> random.Random:
    """A random generator determined by ``seed`` and integer ``key`` (same stream in every process)."""
    mixed = seed
    for part in key:
        mixed = (mixed * 1_000_003 + part + 0x9E3779B9) % (1 << 61)
    return random.Random(mixed)


class ImageFolderDataset(Dataset):
    """Photos resized on their short side, then cropped to squares.

    Training items are drawn by key ``(epoch, index)`` (see :class:`StreamSampler`):
    every epoch sees a new crop of each photo, a random horizontal flip and a random
    scale (the short side resized to between ``image_size`` and ``scale_jitter`` times
    it, so the network also sees photos at the scale users stylize them), all
    reproducible from ``seed``. A plain integer index is epoch 0.

    An unreadable file does not stop training: the item falls back to the next
    readable file and reports the bad one in ``"skipped"`` so the training loop
    can warn and count it (this also works from DataLoader worker processes).

    Args:
        files: image paths (see :func:`find_images`).
        image_size: side of the square crops.
        train: random crops, flips and scales when True; centre crops otherwise.
        draft: decode JPEGs at a reduced DCT scale when much larger than needed.
        seed: seed of the crops (per item, so workers and ranks agree).
        scale_jitter: largest short side as a multiple of ``image_size`` (1.0: no jitter).
        flip: random horizontal flips.

    Returns (per item):
        dict with ``image`` (3, S, S) float in [0, 1] and ``skipped``, a list of
        ``"path: reason"`` strings for the files passed over.
    """

    def __init__(
        self,
        files: list[Path],
        image_size: int = 256,
        train: bool = True,
        draft: bool = True,
        seed: int = 0,
        scale_jitter: float = 1.0,
        flip: bool = False,
    ):
        if not files:
            raise DataError("ImageFolderDataset needs at least one file")
        if scale_jitter < 1.0:
            raise DataError(f"data.scale_jitter={scale_jitter}: expected a number >= 1 (1: no jitter)")
        self.files, self.image_size, self.train, self.draft, self.seed = list(files), image_size, train, draft, seed
        self.scale_jitter, self.flip = scale_jitter, flip

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path, rng: random.Random) -> torch.Tensor:
        size = self.image_size
        short = rng.randint(size, max(size, round(size * self.scale_jitter))) if self.train else size
        image = read_image(path, min_short_side=short if self.draft else None)
        image = resize_short_side(image, short)
        crop = random_crop(image, size, rng) if self.train else center_crop(image, size)
        if self.train and self.flip and rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(crop)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        skipped = []
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return {"image": self.load(path, item_rng(self.seed, epoch, index, attempt)), "skipped": skipped}
            except ImageReadError as exc:
                skipped.append(str(exc))
            except Exception as exc:
                skipped.append(f"{path}: {exc.__class__.__name__}: {exc}")
            if attempt >= 16:
                break
        raise DataError(f"no readable image near index {index}; last errors: {'; '.join(skipped[-3:])}")


class StreamSampler(Sampler):
    """An endless, reproducible stream of ``(epoch, index)`` keys, split between ranks.

    Epoch ``e`` is a permutation of the dataset drawn from ``(seed, e)``; rank ``r``
    of ``world_size`` takes every ``world_size``-th key of it, so ranks never share a
    photo within an epoch. The stream is a pure function of the seed: ``start``
    skips the first keys of this rank's stream, which is how a resumed run continues
    with exactly the batches it would have seen.

    Args:
        size: number of items in the dataset.
        seed: seed of the permutations.
        start: keys of this rank's stream to skip (samples already trained on).
        rank, world_size: this process's place among data-parallel processes.
    """

    def __init__(self, size: int, seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1):
        if size < 1:
            raise DataError("StreamSampler needs at least one item")
        self.size, self.seed, self.start, self.rank, self.world_size = size, seed, start, rank, world_size

    def keys(self):
        """The whole stream of this rank, from its beginning."""
        epoch = 0
        while True:
            order = list(range(self.size))
            item_rng(self.seed, epoch).shuffle(order)
            order += order[: (-len(order)) % self.world_size]  # every rank gets as many keys
            for index in order[self.rank :: self.world_size]:
                yield (epoch, index)
            epoch += 1

    def __iter__(self):
        return itertools.islice(self.keys(), self.start, None)  # skipping is cheap: keys only, no images


def is_held_out(path: Path, root: Path, share: float) -> bool:
    """Whether ``path`` belongs to the held-out ``share`` of ``root``'s files: decided by a hash of its
    path relative to ``root``, so the split is the same on every machine and for every file list."""
    key = path.relative_to(root).as_posix().encode()
    return zlib.crc32(key) % 10_000 < round(share * 10_000)


def split_held_out(files: list[Path], root: str | Path, share: float) -> tuple[list[Path], list[Path]]:
    """(kept for training, held out) by :func:`is_held_out`; a share of 0 holds nothing out."""
    root = Path(root).expanduser()
    held = [p for p in files if share > 0 and is_held_out(p, root, share)]
    return [p for p in files if p not in set(held)], held


class PairedDataset(Dataset):
    """A photo and a painting per item: the photo by the key, the painting drawn from ``(seed, key)``.

    Returns (per item): dict with ``image`` (the photo crop), ``painting`` (a painting crop) and
    ``skipped`` (both datasets' reports of unreadable files).
    """

    def __init__(self, photos: ImageFolderDataset, paintings: ImageFolderDataset, seed: int = 0):
        self.photos, self.paintings, self.seed = photos, paintings, seed

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        painting = item_rng(self.seed + 1, epoch, index).randrange(len(self.paintings))
        photo, art = self.photos[(epoch, index)], self.paintings[(epoch, painting)]
        return {"image": photo["image"], "painting": art["image"], "skipped": photo["skipped"] + art["skipped"]}


def collate(items: list[dict]) -> dict:
    """Stack images (and paintings, when the items have them) and gather the skipped-file reports."""
    batch = {
        "image": torch.stack([item["image"] for item in items]),  # (B, 3, S, S)
        "skipped": [reason for item in items for reason in item["skipped"]],
    }
    if "painting" in items[0]:
        batch["painting"] = torch.stack([item["painting"] for item in items])  # (B, 3, P, P)
    return batch
