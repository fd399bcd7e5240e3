"""``--backend auto``: measure, on this machine, which installed backend and precision is fastest.

CPU flags do not tell: torch bf16 ran 1.5-2x faster than fp32 on AMD EPYC (Zen 4 and 5) and 1.3x
slower on an Intel Xeon with AVX512-BF16. So on first use each candidate runs a warm-up and a few
passes at 256², and is dropped as soon as one pass is slower than twice the best so far or over a
second; a precision the CPU would emulate in software (bf16 without AVX512-BF16 or AMX) is not run
at all. The timings are cached per machine (:func:`fastnst.backends.machine.machine_key`: the CPU's
identity and the library versions) and per network *shape*, so a new checkpoint of a known shape
is not measured again. int8 is a candidate only for a network whose int8 pictures passed
:func:`fastnst.backends.openvino.check_int8` (kept per checkpoint, with its int8 model).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastnst.backends import build_backend
from fastnst.backends.base import BackendError
from fastnst.backends.machine import cpu_name, emulated_precisions, library_versions, machine_key
from fastnst.export import GRAPH_VERSION
from fastnst.io import atomic_path

CALIBRATION_SIZE = 256
TIMED_PASSES = 2  # after the warm-up
PASS_LIMIT_MS = 1000.0  # a pass slower than this drops the candidate
SLOWER_THAN_BEST = 2.0  # ... and so does one slower than this times the best so far
WARMUP_SLACK = 1.5  # the warm-up (first-call allocations) may take this much longer than a pass
CACHE_VERSION = 2
# The likely fastest first, so that slow candidates meet a low "best so far" and stop early.
ORDER = [("openvino", "fp32"), ("openvino", "bf16"), ("onnxruntime", "fp32"), ("torch", "fp32"), ("torch", "bf16"),
         ("openvino", "int8")]  # fmt: skip


def report(message: str) -> None:
    """A progress line on stderr (standard output stays for results)."""
    print(f"fastnst: {message}", file=sys.stderr, flush=True)


@dataclass
class Choice:
    """What ``auto`` picked, and why."""

    backend: str
    precision: str
    ms: float  # per image at CALIBRATION_SIZE², batch 1
    timings: dict[str, float]  # "backend precision" -> ms, every candidate usable for this network
    calibrated_in: float  # seconds the calibration took (0 when it came from the cache)
    from_cache: bool = False
    dropped: dict[str, str] = field(default_factory=dict)  # "backend precision" -> why it was not timed to the end

    def describe(self) -> str:
        how = "cached measurement" if self.from_cache else f"measured in {self.calibrated_in:.1f} s"
        return f"{self.backend} {self.precision}, {self.ms:.0f} ms at {CALIBRATION_SIZE}², {how}"


def time_candidate(
    run: Callable[[], object], best_ms: float | None, clock: Callable[[], float] = time.perf_counter
) -> tuple[float | None, str]:
    """(ms per pass, "") or (None, why it was dropped): a warm-up, then up to :data:`TIMED_PASSES` passes.

    Dropped as soon as a pass is over :data:`PASS_LIMIT_MS` or :data:`SLOWER_THAN_BEST` times
    ``best_ms`` (the warm-up may be :data:`WARMUP_SLACK` times slower than that), so a slow candidate
    costs one pass. The result is the fastest timed pass.
    """
    passes: list[float] = []
    for i in range(1 + TIMED_PASSES):
        start = clock()
        run()
        ms = 1000 * (clock() - start)
        slack = WARMUP_SLACK if i == 0 else 1.0
        if ms > slack * PASS_LIMIT_MS:
            return None, f"{ms:.0f} ms a pass, over {PASS_LIMIT_MS / 1000:g} s"
        if best_ms is not None and ms > slack * SLOWER_THAN_BEST * best_ms:
            return None, f"{ms:.0f} ms a pass, over {SLOWER_THAN_BEST:g}x the best ({best_ms:.0f} ms)"
        if i:
            passes.append(ms)
    return min(passes), ""


def candidates(
    needs_norm_statistics: bool = False, backends: list[str] | None = None, precisions: list[str] | None = None
) -> list[tuple[str, str]]:
    """(backend, precision) pairs installed here, optionally only of ``backends`` / ``precisions``, likely
    fastest first. Only torch can share instance-norm statistics (``--tile``, ``--stable``)."""
    versions = library_versions()
    return [
        (b, p) for b, p in ORDER
        if (b == "torch" or b in versions) and (b == "torch" or not needs_norm_statistics)
        and (not backends or b in backends) and (not precisions or p in precisions)
    ]  # fmt: skip


def shape_of(net) -> dict:
    """The network's architecture and shape: what its speed depends on (not its weights or style names)."""
    from fastnst.checkpoint import network_spec

    spec = network_spec(net)
    if "styles" in spec:
        spec["styles"] = len(spec["styles"])
    return spec


class Record:
    """The cached timings of one network shape on this machine (``<cache>/auto/<hash>.json``)."""

    def __init__(self, cache_dir: Path, shape: dict):
        self.key, digest = machine_key(network=shape, size=CALIBRATION_SIZE, version=f"{CACHE_VERSION}.{GRAPH_VERSION}")
        self.path = cache_dir / "auto" / f"{digest}.json"
        self.timings: dict[str, float] = {}
        self.dropped: dict[str, str] = {}

    def load(self) -> bool:
        """Read the cache; a corrupt, foreign or unreadable file is ignored with a one-line warning."""
        if not self.path.is_file():
            return False
        try:
            saved = json.loads(self.path.read_text())
            if saved["key"] != self.key:
                raise ValueError("made on another machine or with other library versions")
            self.timings, self.dropped = dict(saved["timings"]), dict(saved.get("dropped", {}))
            return True
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            report(f"ignoring the backend measurements cached in {self.path} ({exc}); measuring again")
            return False

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp:
                tmp.write_text(
                    json.dumps({"key": self.key, "timings": self.timings, "dropped": self.dropped}, indent=2)
                )
        except OSError as exc:
            report(
                f"cannot cache the backend measurements in {self.path} ({exc.strerror or exc}); measured again next time"
            )


def int8_passed(loaded, checkpoint: Path, cache_dir: Path) -> bool:
    """Quantize ``checkpoint`` to int8 (once, cached by its hash) and say whether its pictures passed the check."""
    from fastnst.backends.openvino import cached_openvino, int8_verdict

    verdict = int8_verdict(cached_openvino(loaded.net, checkpoint, cache_dir, int8=True))
    return bool(verdict and verdict["passed"])


def measure(record: Record, loaded, checkpoint: Path, cache_dir: Path, pairs: list[tuple[str, str]]) -> None:
    """Time each of ``pairs`` not yet in ``record`` within the budget (see :func:`time_candidate`)."""
    x = torch.rand(1, 3, CALIBRATION_SIZE, CALIBRATION_SIZE, generator=torch.Generator().manual_seed(0))
    condition = getattr(loaded.net, "condition_size", None) or len(getattr(loaded.net, "styles", None) or ())
    weights = torch.full((1, condition), 1.0 / condition) if condition else None
    emulated = emulated_precisions()
    for backend, precision in pairs:
        label = f"{backend} {precision}"
        if label in record.timings or label in record.dropped:
            continue
        if precision in emulated:
            record.dropped[label] = "this CPU has no bf16 instructions (AVX512-BF16 or AMX): it would be emulated"
            report(f"  {label}: not run, {record.dropped[label]}")
            continue
        try:  # int8: quantized (and checked) once per checkpoint; its speed is the shape's, whatever the check said
            runner = build_backend(loaded, checkpoint, backend, precision, cache_dir)
        except (BackendError, RuntimeError, ImportError) as exc:
            record.dropped[label] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        if weights is not None and hasattr(runner, "fold"):  # OpenVINO: timed with the style folded in, as
            runner.fold(weights)  # a folder's photos after its first run (the compile is once, not per pass)
        best = min(record.timings.values(), default=None)
        try:
            ms, why = time_candidate(lambda runner=runner: runner.run(x, weights), best)
        except (BackendError, RuntimeError) as exc:
            ms, why = None, str(exc).splitlines()[0]
        if ms is None:
            record.dropped[label] = why
            report(f"  {label}: dropped, {why}")
        else:
            record.timings[label] = ms
            report(f"  {label}: {ms:.0f} ms")


def choose(
    checkpoint: Path,
    cache_dir: Path,
    needs_norm_statistics: bool = False,
    recalibrate: bool = False,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    loaded=None,
) -> Choice:
    """The fastest (backend, precision) for ``checkpoint`` on this CPU, measured once per machine and shape.

    Args:
        checkpoint: the network (its shape keys the timings; its hash the int8 model and verdict).
        cache_dir: where timings, converted models and int8 verdicts are kept.
        needs_norm_statistics: only backends that can tile and smooth video (torch).
        recalibrate: measure again even when a cached measurement exists.
        backends, precisions: consider only these (``--backend openvino --precision auto``, say).
        loaded: the checkpoint already loaded (:func:`fastnst.checkpoint.load_network`), if it is.
    """
    from fastnst.checkpoint import load_network

    checkpoint = Path(checkpoint)
    loaded = loaded or load_network(checkpoint)
    record = Record(cache_dir, shape_of(loaded.net))
    cached = not recalibrate and record.load()
    pairs = candidates(needs_norm_statistics, backends, precisions)
    started = time.perf_counter()
    missing = [p for p in pairs if " ".join(p) not in record.timings and " ".join(p) not in record.dropped]
    if missing:
        why = "first use on this machine and network shape" if not cached else "candidates not measured before"
        report(
            f"{why}: timing each backend at {CALIBRATION_SIZE}² on {cpu_name()} to pick the fastest "
            "(kept for every network of this shape)"
        )
        measure(record, loaded, checkpoint, cache_dir, missing)
        record.save()
    usable = {" ".join(p): record.timings[" ".join(p)] for p in pairs if " ".join(p) in record.timings}
    while usable:  # the fastest; int8 only where this checkpoint's int8 pictures passed
        best = min(usable, key=usable.get)
        if not best.endswith("int8") or int8_usable(loaded, checkpoint, cache_dir):
            backend, precision = best.split()
            took = time.perf_counter() - started
            dropped = {k: v for k, v in record.dropped.items() if k in {" ".join(p) for p in pairs}}
            return Choice(backend, precision, usable[best], usable, took, not missing, dropped)
        del usable[best]
    raise BackendError(
        "auto: none of the backends and precisions asked for runs this network here; try --backend torch"
    )


def int8_usable(loaded, checkpoint: Path, cache_dir: Path) -> bool:
    """Whether this checkpoint's int8 pictures pass (quantizing and checking it now if need be)."""
    with contextlib.suppress(BackendError, RuntimeError, ImportError):
        return int8_passed(loaded, checkpoint, cache_dir)
    return False
