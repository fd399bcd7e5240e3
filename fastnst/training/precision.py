"""``trainer=cpu`` precision: bf16 only where a measured training step is faster than fp32 here.

CPU flags mislead: on AMD EPYC (Zen 4/5) a bf16 step was about 2x faster than fp32, on an Intel
Xeon with AVX512-BF16 1.3x slower, and on a CPU without bf16 instructions (Zen 3) 18x slower. The
measurement (a small network's forward and backward pass in each precision, a second or two) follows
the rule of ``--backend auto`` (:mod:`fastnst.backends.auto`): an emulated precision is not run, a
clearly slower one stops after a step; it is cached per machine like the backends' timings.
"""

from __future__ import annotations

import contextlib
import json
import time
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from fastnst.io import atomic_path, default_cache_dir

BF16_MARGIN = 0.9  # bf16 must be at least 10% faster to be chosen


def measure_training_step(precision: str, steps: int = 3, size: int = 96) -> float:
    """Milliseconds per training step of a half-width TransformerNet and a VGG-like conv stack."""
    from fastnst.losses import gram_matrix
    from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

    torch.manual_seed(0)
    net = TransformerNet(TransformerNetConfig(width=0.5, num_residual_blocks=2))
    loss_net = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
    ).requires_grad_(False)  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(2, 3, size, size)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-mixed" else contextlib.nullcontext()

    def step() -> None:
        optimizer.zero_grad()
        with autocast:
            features = loss_net(net(x))
            loss = gram_matrix(features).pow(2).mean() + features.float().pow(2).mean()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def measure_precisions() -> dict[str, float]:
    """ms per training step in each precision this CPU runs in hardware, fp32 first; a precision the
    CPU would emulate is not run, and one whose first step is already over twice fp32's stops there."""
    from fastnst.backends.auto import SLOWER_THAN_BEST
    from fastnst.backends.machine import emulated_precisions

    timings = {"32-true": measure_training_step("32-true")}
    if "bf16" not in emulated_precisions():
        first = measure_training_step("bf16-mixed", steps=1)
        slow = first > SLOWER_THAN_BEST * timings["32-true"]
        timings["bf16-mixed"] = first if slow else measure_training_step("bf16-mixed")
    return timings


@lru_cache(maxsize=1)
def cpu_training_precision(cache_dir: Path | None = None) -> str:
    """``bf16-mixed`` when a bf16 step measured at least 10% faster than fp32 on this CPU, else ``32-true``.

    Measured once per machine (:func:`fastnst.backends.machine.machine_key`) and cached; a cache
    that cannot be read or written is measured again, never an error.
    """
    from fastnst.backends.machine import machine_key

    key, digest = machine_key(measure="training_precision")
    path = (cache_dir or default_cache_dir()) / f"training_precision_{digest}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(path.read_text())
        if saved["key"] == key:
            return saved["choice"]
    timings = measure_precisions()
    fp32, bf16 = timings["32-true"], timings.get("bf16-mixed", float("inf"))
    choice = "bf16-mixed" if bf16 < BF16_MARGIN * fp32 else "32-true"
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"key": key, "ms_per_step": timings, "choice": choice}, indent=2))
    return choice
