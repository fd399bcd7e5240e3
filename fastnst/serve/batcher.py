"""Dynamic batching: concurrent requests for the same network and image size share one forward pass."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch


class Batcher:
    """Collects requests for up to ``max_wait_ms`` (or ``max_batch`` of them) and runs them as one batch.

    Forward passes run one at a time on a single worker thread (the device is shared). A request
    whose client went away is dropped from its batch's results; the others are unaffected.

    Args:
        max_batch: most images in one forward pass.
        max_wait_ms: longest a request waits for others before its batch runs.
    """

    def __init__(self, max_batch: int = 8, max_wait_ms: float = 5.0):
        self.max_batch, self.max_wait = max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self.pending: dict[tuple, list[tuple[torch.Tensor, torch.Tensor | None, asyncio.Future]]] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastnst-forward")
        self.forward_passes = 0
        self.images = 0

    async def run(self, stylizer, image: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The network's output for ``image`` (1, 3, H, W), computed in a batch with its neighbours.

        ``weights`` (1, S): a multi-style network's style; requests of every style share a batch.
        """
        loop = asyncio.get_running_loop()
        key = (id(stylizer), tuple(image.shape[-2:]))
        future = loop.create_future()
        batch = self.pending.setdefault(key, [])
        batch.append((image, weights, future))
        if len(batch) >= self.max_batch:
            self._flush(key, stylizer)
        elif len(batch) == 1:
            loop.call_later(self.max_wait, self._flush, key, stylizer)
        return await future

    def _flush(self, key: tuple, stylizer) -> None:
        batch = self.pending.pop(key, None)
        if batch:
            asyncio.get_running_loop().create_task(self._forward(stylizer, batch))

    async def _forward(self, stylizer, batch: list) -> None:
        live = [(x, w, f) for x, w, f in batch if not f.cancelled()]
        if not live:
            return
        x = torch.cat([x for x, _, _ in live]).to(stylizer.device)  # (B, 3, H, W)
        weights = None if live[0][1] is None else torch.cat([w for _, w, _ in live]).to(stylizer.device)  # (B, S)
        try:
            y = await asyncio.get_running_loop().run_in_executor(self.executor, stylizer.forward, x, weights)
        except Exception as exc:  # every request of the batch gets the error
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        self.forward_passes += 1
        self.images += len(live)
        for i, (_, _, future) in enumerate(live):
            if not future.done():
                future.set_result(y[i : i + 1].cpu())

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
