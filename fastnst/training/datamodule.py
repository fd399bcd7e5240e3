"""LightningDataModule over a COCO-style folder of photos."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from fastnst.data import ImageFolderDataset, PairedDataset, StreamSampler, collate, find_images, split_held_out


class ImageFolderDataModule(L.LightningDataModule):
    """Random square crops of every photo under ``root`` (searched recursively).

    Training reads one endless stream of crops (:class:`StreamSampler`): a run is
    one Lightning epoch bounded by ``trainer.max_steps``, each pass over the photos
    brings new crops, flips and scales, and a resumed run starts the stream where
    the checkpoint's step left it, so it sees exactly the batches it would have seen.

    The first ``num_val_images`` files (sorted) are held out as a fixed
    validation set, centre-cropped, for the sample grid in TensorBoard.

    Args:
        root: folder of photos (COCO train2014 or any other).
        image_size: crop side in pixels.
        batch_size: images per step.
        num_workers: DataLoader worker processes (0: load in the main process).
        num_val_images: held-out photos for the sample grid.
        draft: decode large JPEGs at a reduced scale (much faster, same crops).
        pin_memory, persistent_workers, prefetch_factor: DataLoader tuning.
        seed: seed of the random crops.
        exclude: glob patterns (relative to ``root``) of files to leave out,
            e.g. ``["bsds500/test/*"]`` to hold out evaluation photos.
        scale_jitter: the short side is resized to between ``image_size`` and this
            multiple of it before cropping (1.0: always ``image_size``).
        flip: random horizontal flips.
        style_root: a folder of paintings (searched recursively) for a network that takes any
            painting: each photo is paired with a random crop of a painting drawn from it.
        style_image_size: side of the painting crops.
        style_scale_jitter: as ``scale_jitter``, for the paintings.
        style_held_out: share of the paintings held out of training (by a hash of their path, see
            :func:`fastnst.data.split_held_out`); the first ``num_val_images`` of them pair with the
            validation photos in the sample grid.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 256,
        batch_size: int = 4,
        num_workers: int = 2,
        num_val_images: int = 8,
        draft: bool = True,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        seed: int = 0,
        exclude: Sequence[str] = (),
        scale_jitter: float = 1.0,
        flip: bool = False,
        style_root: str | None = None,
        style_image_size: int = 256,
        style_scale_jitter: float = 1.25,
        style_held_out: float = 0.05,
    ):
        super().__init__()
        self.root, self.image_size, self.batch_size = root, image_size, batch_size
        self.num_workers, self.num_val_images, self.draft, self.seed = num_workers, num_val_images, draft, seed
        self.exclude, self.scale_jitter, self.flip = list(exclude), scale_jitter, flip
        self.pin_memory, self.persistent_workers, self.prefetch_factor = pin_memory, persistent_workers, prefetch_factor
        self.style_root, self.style_image_size = style_root, style_image_size
        self.style_scale_jitter, self.style_held_out = style_scale_jitter, style_held_out
        self.train_set: ImageFolderDataset | PairedDataset | None = None
        self.val_set: ImageFolderDataset | None = None
        self.val_paintings: ImageFolderDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        files = find_images(self.root, exclude=self.exclude)  # raises DataError naming the folder when empty
        # Hold the validation photos out when there are plenty; a tiny folder shares them.
        val = files[: self.num_val_images]
        train = files[len(val) :] if len(files) >= 4 * max(1, len(val)) else files
        self.train_set = ImageFolderDataset(
            train, self.image_size, True, self.draft, self.seed, self.scale_jitter, self.flip
        )
        # The other files follow the validation ones so that an unreadable one falls back to a good photo.
        self.val_set = ImageFolderDataset(files, self.image_size, train=False, draft=self.draft)
        self.num_val = len(val)
        if self.style_root:
            self._setup_paintings()

    def _setup_paintings(self) -> None:
        paintings = find_images(self.style_root)
        train, held = split_held_out(paintings, self.style_root, self.style_held_out)
        options = {"draft": self.draft, "seed": self.seed, "flip": self.flip}
        art = ImageFolderDataset(train or paintings, self.style_image_size, True, **options,
                                 scale_jitter=self.style_scale_jitter)  # fmt: skip
        self.train_set = PairedDataset(self.train_set, art, self.seed)
        self.val_paintings = ImageFolderDataset(held or paintings, self.style_image_size, train=False, draft=self.draft)
        self.num_paintings, self.num_held_out = len(art), len(held)

    def _loader_options(self) -> dict:
        workers = self.num_workers
        options = {
            "num_workers": workers,
            "collate_fn": collate,
            "pin_memory": self.pin_memory and torch.cuda.is_available(),
        }
        if workers > 0:
            options |= {"persistent_workers": self.persistent_workers, "prefetch_factor": self.prefetch_factor}
        return options

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        done = trainer.global_step * trainer.accumulate_grad_batches if trainer else 0  # restored before this call
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = StreamSampler(len(self.train_set), self.seed, done * self.batch_size, rank, world)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, **self._loader_options())

    def val_images(self) -> tuple[torch.Tensor, list[str]]:
        """The fixed validation crops (N, 3, S, S) and the reasons of any files skipped."""
        batch = collate([self.val_set[i] for i in range(max(1, self.num_val))])
        return batch["image"], batch["skipped"]

    def val_painting_images(self, count: int) -> tuple[torch.Tensor, list[str]]:
        """The first ``count`` held-out paintings, centre-cropped (N, 3, P, P), and any files skipped."""
        batch = collate([self.val_paintings[i] for i in range(min(count, len(self.val_paintings)))])
        return batch["image"], batch["skipped"]
