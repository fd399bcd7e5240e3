"""The work on one image, the same in every engine: read it, stylize it (in batches), write it, report a row."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from fastnst.dataset.plan import Task
from fastnst.io import ImageReadError, pil_to_tensor, read_image, resize_tensor, save_image, scaled_size, tensor_to_pil


@dataclass
class DatasetOptions:
    """How a dataset is stylized (see ``fastnst stylize-dataset --help``)."""

    src: str
    dst: str
    ckpt: str
    style: str | None = None
    style_images: str | None = None
    seed: int = 0
    fmt: str = "same"
    quality: int = 95
    size: int | None = None
    strength: float = 1.0
    preserve_color: bool = False
    batch_size: int = 4
    overwrite: bool = False
    backend: str = "auto"
    precision: str | None = None
    cache_dir: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Loaded:
    """An image read and resized (or why it could not be), ready for a batch."""

    task: Task
    image: torch.Tensor | None = None  # (1, 3, H, W)
    error: str = ""


class Worker:
    """A stylizer and the options: what an engine runs, in one process or in each Ray actor."""

    def __init__(self, options: DatasetOptions, backend: str | None = None, precision: str | None = None):
        from fastnst.stylize.stylizer import Stylizer

        self.options = options
        self.src, self.dst = Path(options.src), Path(options.dst)
        cache = Path(options.cache_dir) if options.cache_dir else None
        self.stylizer = Stylizer.from_checkpoint(
            options.ckpt, backend=backend or options.backend, precision=precision or options.precision, cache_dir=cache
        )

    def load(self, task: Task) -> Loaded:
        try:
            image = read_image(self.src / task.source)
        except ImageReadError as exc:  # the manifest names the file; the error says what is wrong with it
            return Loaded(task, error=str(exc).removeprefix(f"{self.src / task.source}: "))
        except Exception as exc:  # never fatal: the manifest lists it
            return Loaded(task, error=f"{type(exc).__name__}: {exc}")
        x = pil_to_tensor(image).unsqueeze(0)  # (1, 3, H, W)
        return Loaded(task, resize_tensor(x, scaled_size(*image.size, self.options.size)))

    def style(self, task: Task):
        """A style name or mix for the stylizer, or a painting's embedding."""
        if task.style.startswith("painting:"):
            return self.stylizer.embed(Path(self.options.style_images) / task.style.removeprefix("painting:"))
        return task.style or None

    def stylize(self, batch: list[Loaded]) -> list[torch.Tensor]:
        """One forward pass for images of one size and one style."""
        x = torch.cat([item.image for item in batch])
        y = self.stylizer.stylize_tensor(
            x, strength=self.options.strength, keep_color=self.options.preserve_color, style=self.style(batch[0].task)
        )
        return [y[i : i + 1] for i in range(len(batch))]

    def write(self, item: Loaded, result: torch.Tensor | None) -> dict:
        """Write the result atomically (never over an input) and return its manifest row."""
        task = item.task
        row = {"source": task.source, "output": task.output, "style": self.label(task), "seed": self.options.seed}
        if item.error or result is None:
            return {**row, "status": "failed", "error": item.error or "not stylized"}
        try:
            (self.dst / task.output).parent.mkdir(parents=True, exist_ok=True)
            save_image(tensor_to_pil(result), self.dst / task.output, quality=self.options.quality)
        except (OSError, ValueError) as exc:
            return {**row, "status": "failed", "error": f"cannot write {task.output} ({exc})"}
        return {**row, "width": result.shape[-1], "height": result.shape[-2], "status": "done"}

    def label(self, task: Task) -> str:
        return style_label(task, self.options) or self.stylizer.style

    def results(self, batch: list[Loaded]) -> list[torch.Tensor | None]:
        """The batch's stylized images; None for an image that could not be read, or whose style (a
        painting) cannot be used, with the reason in its ``error``."""
        if batch[0].error:
            return [None] * len(batch)
        try:
            return self.stylize(batch)
        except ValueError as exc:  # a painting that cannot be one: every image of its batch fails
            for item in batch:
                item.error = str(exc)
            return [None] * len(batch)


def style_label(task: Task, options: DatasetOptions) -> str:
    """The manifest's style: a name or mix (empty: the network's own), or ``painting:<path>@<sha256[:12]>``."""
    if not task.style.startswith("painting:"):
        return task.style
    return f"{task.style}@{painting_sha256(Path(options.style_images) / task.style.removeprefix('painting:'))[:12]}"


@lru_cache(maxsize=4096)
def painting_sha256(path: Path) -> str:
    """A painting's hash, read once per run however many images it styles."""
    from fastnst.io import file_sha256

    return file_sha256(path)


def recovered_row(task: Task, options: DatasetOptions) -> dict | None:
    """The row of an output that a run killed before writing its row left behind (written atomically,
    so whole), or None when there is no such output."""
    from PIL import Image

    path = Path(options.dst) / task.output
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError):
        return None
    return {"source": task.source, "output": task.output, "style": style_label(task, options), "seed": options.seed,
            "width": width, "height": height, "status": "done"}  # fmt: skip


def batches(items: Iterable[Loaded], size: int) -> Iterator[list[Loaded]]:
    """Consecutive images of one size and one style, at most ``size`` a batch; an unreadable one alone."""
    batch: list[Loaded] = []
    for item in items:
        if batch and (item.error or not same_batch(batch[0], item) or len(batch) >= size):
            yield batch
            batch = []
        if item.error:
            yield [item]
        else:
            batch.append(item)
    if batch:
        yield batch


def same_batch(a: Loaded, b: Loaded) -> bool:
    """Whether two images can share a forward pass: one size and one style."""
    return a.image.shape == b.image.shape and a.task.style == b.task.style
