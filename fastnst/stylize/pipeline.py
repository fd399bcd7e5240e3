"""The stylize pipeline: inputs and options in, typed events out. The CLI, a server or a notebook
drive the same code and only render what it reports.

    plan = plan_jobs(["photos/", "clip.mp4"], style="starry_night", options=options)
    for event in run(stylizer, plan, options):
        ...  # Written, Kept, Failed, VideoWritten, Skipped

Nothing is ever written over an input; existing outputs are kept unless ``overwrite``; every file
is written atomically.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastnst.backends.base import check_supported
from fastnst.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ImageReadError,
    pil_to_tensor,
    read_image,
    resize_tensor,
    save_image,
    scaled_size,
    tensor_to_pil,
)


class OptionsError(ValueError):
    """Options that cannot work together; one line naming them."""


@dataclass
class StylizeOptions:
    """How to stylize (the CLI's flags, as plain values).

    Args:
        output_dir: where ``<stem>_<style>.<ext>`` go (folders of inputs are mirrored below it).
        output: one output file instead (a single input only).
        size, scale: resize before stylizing (long side in px, or factor); else the input's size.
        batch_size: images of the same size per forward pass (video: frames per pass, at least 4).
        tile: stylize in tiles of this many px with whole-image statistics.
        strength: 0 (the photo) to 1 (full style).
        preserve_color: keep the photo's colours, transfer luminance only.
        stable: video: steady the style over time.
        overwrite: replace existing outputs (never inputs).
        style: a multi-style network's style, a mix (``a=0.7,b=0.3``), or ``all`` (one output each).
    """

    output_dir: Path = Path("outputs")
    output: Path | None = None
    size: int | None = None
    scale: float | None = None
    batch_size: int = 1
    tile: int | None = None
    strength: float = 1.0
    preserve_color: bool = False
    stable: bool = False
    overwrite: bool = False
    style: str | None = None

    def validate(self) -> None:
        """Raises OptionsError for a value out of range or options that exclude each other."""
        if not 0.0 <= self.strength <= 1.0:
            raise OptionsError(f"--strength {self.strength}: must be between 0 and 1")
        if (self.size is not None and self.size < 4) or (self.scale is not None and self.scale <= 0):
            raise OptionsError("--size must be >= 4 px and --scale > 0")
        if self.size is not None and self.scale is not None:
            raise OptionsError("--size and --scale exclude each other; give one")
        if self.batch_size < 1 or (self.tile is not None and self.tile < 16):
            raise OptionsError("--batch-size must be >= 1 and --tile >= 16 px")


@dataclass
class Job:
    """One input, where its result goes, and (multi-style networks) in which style."""

    source: Path
    target: Path
    style: str | None = None

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class Skipped:
    """An input given twice (``duplicate``), or an existing output kept (``kept``): not a failure."""

    path: Path | str
    reason: str
    kind: str = "duplicate"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Failed:
    """An input that could not be stylized (missing, unreadable, unwritable ...): a failure."""

    path: Path | str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Written:
    """An image written; ``ms`` is its share of the network time, ``pixels`` its size."""

    job: Job
    ms: float
    pixels: int


@dataclass
class VideoWritten:
    """A video written, with :class:`fastnst.stylize.video.VideoReport` numbers."""

    job: Job
    report: object


@dataclass
class Plan:
    """Jobs to run and what was refused before starting."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[Skipped], list[Failed]]:
    """Files, folders (recursive) and globs to (file, folder it came from) pairs, in order, once each."""
    found: list[tuple[Path, Path | None]] = []
    skipped, failed = [], []
    seen: set[str] = set()
    wanted = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS

    def add(path: Path, base: Path | None) -> None:
        real = os.path.realpath(path)
        if real in seen:
            skipped.append(Skipped(path, "given more than once; stylized once"))
            return
        seen.add(real)
        found.append((path, base))

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
            if not files:
                failed.append(Failed(path, f"folder holds no images or videos ({', '.join(wanted)})"))
            for file in files:
                add(file, path)
        elif path.is_file():
            add(path, None)
        elif glob.has_magic(str(item)):
            matches = sorted(
                Path(p) for p in glob.glob(os.path.expanduser(str(item)), recursive=True) if Path(p).is_file()
            )
            if not matches:
                failed.append(Failed(item, "no file matches this pattern"))
            for match in matches:
                add(match, None)
        else:
            failed.append(Failed(path, "no such file or folder"))
    return found, skipped, failed


def style_label(style: str) -> str:
    """A file-name label for a style or a mix: ``starry_night``, ``starry_night70_great_wave30``."""
    if "=" not in style:
        return style
    parts = [item.partition("=") for item in style.split(",")]
    total = sum(float(v) for _, _, v in parts) or 1.0
    return "_".join(f"{name.strip()}{round(100 * float(v) / total)}" for name, _, v in parts)


def plan_jobs(
    inputs: Iterable[str | Path], style: str, options: StylizeOptions, styles: tuple[str, ...] | None = None
) -> Plan:
    """Decide every output path: refuse any that would overwrite an input, keep existing outputs.

    Args:
        style: the network's name (single-style networks), used in output names.
        styles: a multi-style network's styles; ``options.style`` picks one, a mix or ``all``.

    Raises:
        OptionsError: ``output`` names one file but several outputs would be written.
    """
    found, skipped, failed = expand_inputs(inputs)
    output = Path(options.output).expanduser() if options.output else None
    if styles is None:
        picks = [None]
    elif options.style == "all":
        picks = list(styles)
    else:
        picks = [options.style]
    if output is not None and len(found) * len(picks) > 1:
        raise OptionsError(
            f"--output names one file but {len(found) * len(picks)} outputs would be written; use -o/--output-dir"
        )
    plan = Plan(skipped=skipped, failed=failed)
    input_paths = {os.path.realpath(p) for p, _ in found}
    for (source, base), pick in ((item, pick) for item in found for pick in picks):
        label = style_label(pick) if pick else style
        if output is not None:
            target = output
        else:
            relative = source.parent.relative_to(base) if base is not None else Path()
            target = Path(options.output_dir).expanduser() / relative / f"{source.stem}_{label}{source.suffix.lower()}"
        if os.path.realpath(target) in input_paths:
            plan.failed.append(Failed(source, f"output {target} would overwrite an input; choose another -o/--output"))
        elif target.exists() and not options.overwrite:
            plan.skipped.append(Skipped(target, "exists; kept (use --overwrite to replace)", "kept"))
        else:
            plan.jobs.append(Job(source, target, pick))
    return plan


def check_options(stylizer, options: StylizeOptions) -> None:
    """Refuse options the stylizer's backend or network cannot honour (one line), before anything runs."""
    options.validate()
    backend = stylizer.backend
    check_supported(backend.name, backend.capabilities, tile=bool(options.tile), stable=options.stable)
    if stylizer.styles is None and options.style not in (None, stylizer.style):
        raise OptionsError(f"--style {options.style}: {stylizer.style!r} is a single-style network")
    if stylizer.styles is not None:
        if options.style is None:
            raise OptionsError(
                f"a multi-style network: add --style with one of {', '.join(stylizer.styles)}, a mix "
                f"{stylizer.styles[0]}=0.7,{stylizer.styles[-1]}=0.3, or all"
            )
        if options.style != "all":
            try:
                stylizer.style_weights(options.style, 1)
            except ValueError as exc:
                raise OptionsError(f"--style {options.style}: {exc}") from None


def _write(job: Job, image: torch.Tensor) -> Failed | None:
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        save_image(tensor_to_pil(image), job.target)
    except OSError as exc:
        return Failed(job.target, f"cannot write ({exc.strerror or exc})")
    return None


def run(
    stylizer,
    plan: Plan,
    options: StylizeOptions,
    on_start: Callable[[Job], None] | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    frame_progress: Callable[[Job, int, int | None], None] | None = None,
) -> Iterator[Written | VideoWritten | Failed]:
    """Stylize the plan's jobs, yielding one event per job as it finishes.

    Images of the same size are batched (``options.batch_size``); videos go one by one.

    Args:
        on_start: called with each job as it is read (progress displays).
        tile_progress: ``(done, total)`` tile passes of the current batch, with ``options.tile``.
        frame_progress: ``(job, frames done, total or None)`` for videos.
    """
    check_options(stylizer, options)
    for job in [j for j in plan.jobs if j.is_video]:
        if on_start:
            on_start(job)
        yield _run_video(stylizer, job, options, frame_progress)
    batch: list[tuple[Job, torch.Tensor]] = []
    for job in [j for j in plan.jobs if not j.is_video]:
        if on_start:
            on_start(job)
        try:
            image = read_image(job.source)
        except ImageReadError as exc:
            yield Failed(job.source, str(exc).removeprefix(f"{job.source}: "))
            continue
        tensor = resize_tensor(pil_to_tensor(image)[None], scaled_size(*image.size, options.size, options.scale))[0]
        if batch and (batch[0][1].shape != tensor.shape or batch[0][0].style != job.style):
            yield from _run_batch(stylizer, batch, options, tile_progress)
            batch = []
        batch.append((job, tensor))
        if len(batch) >= options.batch_size:
            yield from _run_batch(stylizer, batch, options, tile_progress)
            batch = []
    if batch:
        yield from _run_batch(stylizer, batch, options, tile_progress)


def _run_video(stylizer, job: Job, options: StylizeOptions, frame_progress) -> VideoWritten | Failed:
    from fastnst.stylize.video import VideoError, stylize_video

    try:
        report = stylize_video(
            stylizer, job.source, job.target, size=options.size, scale=options.scale,
            batch_size=max(options.batch_size, 4), stable=options.stable, strength=options.strength,
            keep_color=options.preserve_color, style=job.style,
            progress=(lambda n, total: frame_progress(job, n, total)) if frame_progress else None,
        )  # fmt: skip
    except VideoError as exc:
        return Failed(job.source, str(exc).removeprefix(f"{job.source}: "))
    return VideoWritten(job, report)


def _run_batch(stylizer, batch: list[tuple[Job, torch.Tensor]], options: StylizeOptions,
               tile_progress) -> Iterator[Written | Failed]:  # fmt: skip
    """One forward pass (or one tiled pass) for images of one size and style; write each."""
    x = torch.stack([t for _, t in batch])  # (B, 3, H, W)
    style = batch[0][0].style
    t0 = time.perf_counter()
    if options.tile:
        from fastnst.stylize.tiling import TILE_HALO, num_tile_passes

        total = num_tile_passes(*x.shape[-2:], options.tile, TILE_HALO, stylizer.backend.net)
        done = iter(range(1, total + 1))
        y = stylizer.stylize_tiled(
            x, options.tile, options.strength, options.preserve_color,
            progress=(lambda: tile_progress(next(done), total)) if tile_progress else None, style=style,
        )  # fmt: skip
    else:
        y = stylizer.stylize_tensor(x, strength=options.strength, keep_color=options.preserve_color, style=style)
    ms = 1000 * (time.perf_counter() - t0) / len(batch)
    for (job, _), out in zip(batch, y):
        yield _write(job, out) or Written(job, ms, out.shape[-1] * out.shape[-2])
