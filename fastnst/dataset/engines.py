"""Two engines over the same :class:`~fastnst.dataset.work.Worker`.

- ``local``: one process; reading and writing run on thread pools while the network runs, so
  decoding, stylizing and encoding overlap.
- ``ray``: Ray Data reads the task list and runs ``map_batches`` over an actor pool; each actor
  loads the network once, stylizes and writes its blocks, and returns the manifest rows.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from fastnst.dataset.plan import DatasetError, Task
from fastnst.dataset.work import DatasetOptions, Loaded, Worker, batches

IO_THREADS = 2
PREFETCH = 32  # images read ahead of the network
BLOCK = 64  # images a Ray actor is given at once


def prefetched(pool: ThreadPoolExecutor, load: Callable[[Task], Loaded], tasks: list[Task]) -> Iterator[Loaded]:
    """``load`` over ``tasks`` in order, at most :data:`PREFETCH` ahead (memory stays bounded)."""
    pending: deque[Future] = deque()
    for task in tasks:
        pending.append(pool.submit(load, task))
        if len(pending) >= PREFETCH:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def run_local(worker: Worker, tasks: list[Task], on_row: Callable[[dict], None]) -> None:
    """Stylize ``tasks`` in this process: reads and writes on threads, forward passes in batches."""
    with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="fastnst-read") as readers, \
         ThreadPoolExecutor(IO_THREADS, thread_name_prefix="fastnst-write") as writers:  # fmt: skip
        writes: deque[Future] = deque()
        for batch in batches(prefetched(readers, worker.load, tasks), worker.options.batch_size):
            for item, result in zip(batch, worker.results(batch)):
                writes.append(writers.submit(worker.write, item, result))
            while writes and (writes[0].done() or len(writes) > PREFETCH):
                on_row(writes.popleft().result())
        while writes:
            on_row(writes.popleft().result())


class RayActor:
    """A Ray Data actor: loads the network once, then stylizes and writes each block it is given."""

    def __init__(self, options: dict, backend: str, precision: str):
        self.worker = Worker(DatasetOptions(**options), backend, precision)

    def __call__(self, block: dict) -> dict:
        tasks = [Task(s, o, st) for s, o, st in zip(block["source"], block["output"], block["style"])]
        rows: list[dict] = []
        run_local(self.worker, tasks, rows.append)  # reading and writing overlap the network here too
        return {key: [str(row.get(key, "")) for row in rows] for key in ("source", "output", "style", "seed",
                                                                         "width", "height", "status", "error")}  # fmt: skip


def require_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise DatasetError("--engine ray needs Ray: pip install 'fastnst[ray]' (or make install)") from None
    return ray


def run_ray(options: DatasetOptions, worker: Worker, tasks: list[Task], on_row: Callable[[dict], None],
            address: str | None = None, actors: int | None = None, cpus_per_actor: float | None = None) -> None:  # fmt: skip
    """Stylize ``tasks`` with Ray Data's ``map_batches`` over an actor pool (a local cluster without ``address``).

    The backend the driver measured (``worker``'s) is the one every actor runs, so each gives the same
    pictures and none measures again.
    """
    import logging

    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)  # fmt: skip
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        cpus = cpus_per_actor or (os.cpu_count() or 1)
        count = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.verbose_stats_logs = False
        chosen = worker.stylizer.backend
        rows = ray.data.from_items([t.to_dict() for t in tasks], override_num_blocks=max(1, len(tasks) // BLOCK))
        results = rows.map_batches(
            RayActor, fn_constructor_kwargs={"options": options.to_dict(), "backend": chosen.name,
                                             "precision": chosen.precision},
            batch_size=BLOCK, concurrency=count, num_cpus=cpus, batch_format="numpy", max_restarts=0,
        )  # fmt: skip
        for row in results.iter_rows():
            on_row({key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()})
    finally:
        if started:
            ray.shutdown()
