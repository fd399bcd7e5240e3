"""Stylize a whole dataset: every image of a folder tree, into the same tree, resumably.

    from fastnst.dataset import DatasetOptions, stylize_dataset
    summary = stylize_dataset(DatasetOptions(src="imagenet/train", dst="stylized", ckpt="checkpoints/arbitrary.safetensors",
                                             style_images="paintings/"))

Each image's style depends only on (seed, its relative path); outputs are written atomically and
listed in ``DST/manifest.csv`` (and ``.parquet``), so a run killed at any point and run again
redoes nothing it finished. ``engine="ray"`` spreads the work over a Ray cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastnst.dataset.manifest import Manifest
from fastnst.dataset.plan import DatasetError, Task, find_files, plan, style_choices
from fastnst.dataset.work import DatasetOptions, Worker, recovered_row

__all__ = ["DatasetError", "DatasetOptions", "Summary", "stylize_dataset"]


@dataclass
class Summary:
    """What a run did: images written now, kept from an earlier run, failed (with the rows), seconds."""

    written: int
    kept: int
    failed: list[dict]
    seconds: float
    manifest: list[Path]
    backend: str
    first_result: float = 0.0  # seconds until the first image was done (start-up: a cluster, the network)

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def tasks_for(options: DatasetOptions, sources: list[str] | None = None) -> list[Task]:
    """Every image's task (``sources``: paths relative to SRC; default every image under it).

    Raises:
        DatasetError: SRC is no folder or empty, DST is inside SRC, or two inputs would share an output.
    """
    src, dst = Path(options.src).resolve(), Path(options.dst).resolve()
    if dst == src or src in dst.parents:
        raise DatasetError(f"{options.dst}: inside the source folder; write the stylized dataset elsewhere")
    sources = sources if sources is not None else find_files(src, "images to stylize")
    if not sources:
        raise DatasetError(f"{options.src}: no images (jpg, png, webp, bmp) in this folder or below it")
    paintings = find_files(Path(options.style_images), "paintings") if options.style_images else None
    return plan(sources, options.seed, style_choices(options.style, paintings), options.fmt)


def already_written(task: Task, manifest: Manifest, options: DatasetOptions) -> bool:
    """Whether an earlier run wrote ``task``'s output (its row is added when only the row was lost)."""
    if manifest.done(task.source, Path(options.dst)):
        return True
    row = recovered_row(task, options)
    if row:
        manifest.append(row)
    return row is not None


def stylize_dataset(
    options: DatasetOptions, sources: list[str] | None = None, engine: str = "local",
    on_progress: Callable[[int, int], None] | None = None, **ray_options,
) -> Summary:  # fmt: skip
    """Stylize every image under ``options.src`` (or only ``sources``) into ``options.dst``.

    Args:
        options: the checkpoint, style, format and the rest (:class:`DatasetOptions`).
        sources: image paths relative to SRC (a list of paths); default every image under SRC.
        engine: ``local`` (one process, I/O overlapped with the network) or ``ray``.
        on_progress: called with (images finished, images to do) as results land.
        ray_options: ``address``, ``actors``, ``cpus_per_actor`` for ``engine="ray"``.

    Returns:
        A :class:`Summary`; failed inputs are in it and in the manifest, never raised.

    Raises:
        DatasetError, CheckpointError, BackendError: the run cannot start (one line).
    """
    from fastnst.dataset.engines import run_local, run_ray

    if engine not in ("local", "ray"):
        raise DatasetError(f"--engine {engine}: use local or ray")
    tasks = tasks_for(options, sources)
    dst = Path(options.dst)
    manifest = Manifest(dst, fresh=options.overwrite)
    todo = [t for t in tasks if options.overwrite or not already_written(t, manifest, options)]
    started, arrivals, worker = time.perf_counter(), [], None

    def on_row(row: dict) -> None:
        arrivals.append(time.perf_counter() - started)
        manifest.append(row)
        if on_progress:
            on_progress(len(arrivals), len(todo))

    try:
        if todo:
            worker = Worker(options)  # measures the backends once, here (Ray actors reuse the choice)
            if engine == "ray":
                run_ray(options, worker, todo, on_row, **ray_options)
            else:
                run_local(worker, todo, on_row)
    finally:
        written_files = manifest.close({t.source for t in tasks})
    seconds = time.perf_counter() - started
    done_now = sum(1 for t in todo if manifest.rows.get(t.source, {}).get("status") == "done")
    backend = worker.stylizer.backend.describe() if worker else "nothing to do"
    return Summary(done_now, len(tasks) - len(todo), manifest.failed(), seconds, written_files, backend,
                   arrivals[0] if arrivals else 0.0)  # fmt: skip
