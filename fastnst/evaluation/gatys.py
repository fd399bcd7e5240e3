"""The reference: Gatys et al.'s optimisation on the same losses, run once per photo and setting and cached."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fastnst.io import (
    atomic_path,
)
from fastnst.models.vgg import VGGFeatures
from fastnst.optimize import GatysConfig, gatys


@dataclass
class GatysRun:
    """One Gatys result: the image, the milliseconds its optimisation took when it ran, whether it
    came from the cache, and the lowest loss reached by each step (``trace[k]``: after k steps;
    ``None`` for results cached before traces were kept)."""

    image: torch.Tensor
    ms: float
    cached: bool
    trace: list[float] | None


def steps_to_match(trace: list[float] | None, objective: float) -> int | None:
    """The first step at which Gatys' (normalised) ``trace`` reaches ``objective``; ``len(trace)``
    when it never does within the run; ``None`` without a trace."""
    if not trace:
        return None
    return next((k for k, value in enumerate(trace) if value <= objective), len(trace))


def cached_gatys(
    photo: torch.Tensor,
    style: torch.Tensor,
    vgg: VGGFeatures,
    config: GatysConfig,
    cache_dir: Path | None,
    on_step: Callable[[int, float], None] | None = None,
) -> GatysRun:
    """Gatys' result for ``photo``, from ``cache_dir`` when the same inputs were optimised before.
    ``on_step(step, loss)`` follows an optimisation as it runs (a progress bar).

    The key hashes the photo and painting tensors, every setting of ``config`` and the VGG's
    source and a fingerprint of its weights, so any change recomputes. An unreadable cache entry is recomputed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open, save_file

    key = hashlib.sha256()
    for tensor in (photo, style):
        key.update(str(tuple(tensor.shape)).encode() + tensor.float().contiguous().numpy().tobytes())
    fingerprint = [round(float(p.double().abs().sum()), 6) for p in vgg.parameters()]  # cheap; tells weights apart
    key.update(json.dumps({"config": asdict(config), "vgg": [vgg.source, fingerprint]}, sort_keys=True).encode())
    path = cache_dir / "gatys" / f"{key.hexdigest()[:32]}.safetensors" if cache_dir else None
    if path and path.is_file():
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata()
            trace = json.loads(meta["trace"]) if "trace" in meta else None
            return GatysRun(load_file(path)["image"], float(meta["ms"]), True, trace)
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # unreadable: optimise again and replace it
    trace: list[float] = []  # trace[k]: the lowest loss once k steps were taken (a running minimum)

    def record(step: int, loss: float) -> None:
        # L-BFGS evaluates several times a step (the line search); step k's calls start step k - 1's search.
        while len(trace) < step:
            trace.append(trace[-1] if trace else loss)
        trace[-1] = min(trace[-1], loss)
        if on_step:
            on_step(step, trace[-1])

    t0 = time.perf_counter()
    image = gatys(photo, style, vgg, config, progress=record)
    ms = 1000 * (time.perf_counter() - t0)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            meta = {"ms": repr(ms), "trace": json.dumps([float(f"{v:.6g}") for v in trace])}
            save_file({"image": image.contiguous()}, str(tmp), metadata=meta)
    return GatysRun(image, ms, False, trace)
