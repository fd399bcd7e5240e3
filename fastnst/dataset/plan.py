"""What a dataset run does to each image: its output path and its style, decided before anything runs.

The style of an image depends only on (seed, its path relative to the source folder), so a rerun,
another machine or another engine gives every image the same style.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from fastnst.io import IMAGE_EXTENSIONS

FORMATS = {"same": None, "jpg": ".jpg", "png": ".png"}


class DatasetError(ValueError):
    """The dataset run cannot start as asked; the message names what and the fix."""


@dataclass(frozen=True)
class Task:
    """One image: where it is, where its result goes (both relative to SRC and DST), and its style.

    ``style`` is a style name or mix, or ``painting:<relative path>`` for a painting drawn from
    ``--style-images``.
    """

    source: str
    output: str
    style: str

    def to_dict(self) -> dict:
        return asdict(self)


def draw(seed: int, relative: str, count: int) -> int:
    """An index in ``range(count)`` from (seed, relative path) alone (SHA-256: the same on every machine)."""
    digest = hashlib.sha256(f"{seed}\0{relative}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def find_files(root: Path, what: str) -> list[str]:
    """Image files under ``root``, recursively, as sorted POSIX paths relative to it.

    Raises:
        DatasetError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; give the folder of {what}")
    found = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(f for f in found if (root / f).is_file())


def style_choices(style: str | None, paintings: list[str] | None) -> list[str]:
    """The styles an image may be given: one name or mix, a comma list of names, or every painting."""
    if paintings is not None:
        if not paintings:
            raise DatasetError("--style-images: the folder holds no images (jpg, png, webp, bmp)")
        return [f"painting:{p}" for p in paintings]
    if style is None:
        return [""]  # a single-style network: its own style
    if "=" in style:
        return [style]  # one mix for every image
    return [name.strip() for name in style.split(",") if name.strip()]


def output_name(relative: str, fmt: str) -> str:
    """The output path relative to DST: the same as the input's, with the suffix ``fmt`` asks for."""
    suffix = FORMATS[fmt]
    return relative if suffix is None else str(Path(relative).with_suffix(suffix).as_posix())


def plan(sources: list[str], seed: int, choices: list[str], fmt: str = "same") -> list[Task]:
    """A :class:`Task` per source path (relative to SRC), each with its drawn style.

    Raises:
        DatasetError: two inputs would write the same output (``a.png`` and ``a.jpg`` with ``--format jpg``).
    """
    if fmt not in FORMATS:
        raise DatasetError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    tasks = [Task(s, output_name(s, fmt), choices[draw(seed, s, len(choices))]) for s in sources]
    seen: dict[str, str] = {}
    for task in tasks:
        if task.output in seen:
            raise DatasetError(
                f"{seen[task.output]} and {task.source} would both write {task.output}; use --format same"
            )
        seen[task.output] = task.source
    return tasks
