"""``--backend auto``: measure, on this machine, which installed backend and precision is fastest.

CPU flags do not tell: torch bf16 ran 1.5-2x faster than fp32 on AMD EPYC (Zen 4 and 5) and 1.3x
slower on an Intel Xeon with AVX512-BF16. So on first use a short calibration times each candidate
(a few forward passes at 256²) and keeps the fastest. Timings are cached per CPU model, library
versions and network architecture; int8 is a candidate only for a network whose int8 pictures
passed :func:`fastnst.backends.openvino.check_int8` (stored per network).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fastnst.backends import build_backend
from fastnst.backends.base import BackendError
from fastnst.io import atomic_path

CALIBRATION_SIZE = 256
CALIBRATION_RUNS = 3


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {"torch": torch.__version__}
    for name in ("onnxruntime", "openvino"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


@dataclass
class Choice:
    """What ``auto`` picked, and why."""

    backend: str
    precision: str
    ms: float  # per image at CALIBRATION_SIZE², batch 1
    timings: dict[str, float]  # "backend precision" -> ms, every candidate measured
    calibrated_in: float  # seconds the calibration took (0 when it came from the cache)
    from_cache: bool = False

    def describe(self) -> str:
        how = "cached measurement" if self.from_cache else f"measured in {self.calibrated_in:.1f} s"
        return f"{self.backend} {self.precision}, {self.ms:.0f} ms at {CALIBRATION_SIZE}², {how}"


def _time(backend, x: torch.Tensor, weights: torch.Tensor | None) -> float:
    """Milliseconds per ``backend.run`` (``weights``: a multi-style network's, else None)."""
    backend.run(x, weights)  # warm-up (first-call allocations, compilation)
    start = time.perf_counter()
    for _ in range(CALIBRATION_RUNS):
        backend.run(x, weights)
    return 1000 * (time.perf_counter() - start) / CALIBRATION_RUNS


def candidates(
    needs_norm_statistics: bool = False, backends: list[str] | None = None, precisions: list[str] | None = None
) -> list[tuple[str, str]]:
    """(backend, precision) pairs installed here, optionally only of ``backends`` / ``precisions``.

    Only torch can share instance-norm statistics (``--tile``, ``--stable``).
    """
    pairs = [("torch", "fp32"), ("torch", "bf16")]
    versions = library_versions()
    if "onnxruntime" in versions:
        pairs.append(("onnxruntime", "fp32"))
    if "openvino" in versions:
        pairs += [("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")]
    return [
        (b, p) for b, p in pairs
        if (b == "torch" or not needs_norm_statistics) and (not backends or b in backends)
        and (not precisions or p in precisions)
    ]  # fmt: skip


def choose(
    checkpoint: Path,
    cache_dir: Path,
    needs_norm_statistics: bool = False,
    recalibrate: bool = False,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    loaded=None,
) -> Choice:
    """The fastest (backend, precision) for ``checkpoint`` on this CPU, measured once and cached.

    Args:
        checkpoint: the network (its architecture keys the timings; its hash the int8 verdict).
        cache_dir: where timings, converted models and int8 verdicts are kept.
        needs_norm_statistics: only backends that can tile and smooth video (torch).
        recalibrate: measure again even when a cached measurement exists.
        backends, precisions: consider only these (``--backend openvino --precision auto``, say).
        loaded: the checkpoint already loaded (:func:`fastnst.checkpoint.load_network`), if it is.
    """
    from fastnst.checkpoint import load_network, network_spec

    loaded = loaded or load_network(checkpoint)
    spec = network_spec(loaded.net)
    key = {"cpu": cpu_model(), "versions": library_versions(), "network": spec, "size": CALIBRATION_SIZE}
    name = "_".join(f"{k}={v}" for k, v in spec.items()).replace("/", "-")
    record = cache_dir / "auto" / f"{name}.json"
    timings: dict[str, float] = {}
    if record.is_file() and not recalibrate:
        try:
            saved = json.loads(record.read_text())
            if saved["key"] == key:
                timings = saved["timings"]
        except (ValueError, KeyError):
            pass
    from_cache = bool(timings)
    if not from_cache:
        import sys

        print(f"fastnst: measuring the backends for this network on {cpu_model()} (first use, a few seconds)",
              file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    x = torch.rand(1, 3, CALIBRATION_SIZE, CALIBRATION_SIZE, generator=torch.Generator().manual_seed(0))
    styles = getattr(loaded.net, "styles", None)
    weights = torch.full((1, len(styles)), 1.0 / len(styles)) if styles else None
    usable: dict[str, float] = {}
    for backend, precision in candidates(needs_norm_statistics, backends, precisions):
        label = f"{backend} {precision}"
        try:
            if precision == "int8":
                from fastnst.backends.openvino import cached_openvino, int8_verdict

                verdict = int8_verdict(cached_openvino(loaded.net, Path(checkpoint), cache_dir, int8=True))
                if not (verdict and verdict["passed"]):
                    continue  # never run in int8 a network whose int8 pictures differ
            if label not in timings:
                timings[label] = _time(build_backend(loaded, checkpoint, backend, precision, cache_dir), x, weights)
            usable[label] = timings[label]
        except (BackendError, RuntimeError, ImportError):
            continue  # not runnable here (e.g. bf16 without CPU support): not a candidate
    if not usable:
        raise BackendError(
            "auto: none of the backends and precisions asked for runs this network here; try --backend torch"
        )
    calibrated_in = time.perf_counter() - started
    record.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps({"key": key, "timings": timings}, indent=2))
    best = min(usable, key=usable.get)
    backend, precision = best.split()
    return Choice(backend, precision, usable[best], usable, calibrated_in, from_cache and calibrated_in < 1.0)
