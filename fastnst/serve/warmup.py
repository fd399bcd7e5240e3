"""Serve at once, get fast in the background: ``fastnst serve`` starts on torch fp32 (no conversion, no
measuring) and a thread measures the backends (:mod:`fastnst.backends.auto`), quantizes where int8
wins, and switches each network over between two forward passes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class WarmupStatus:
    """What ``/healthz`` and the page say about the backend: measuring still under way, or done."""

    measuring: bool = False
    message: str = ""
    switched: dict[str, str] = field(default_factory=dict)  # network name -> the backend it switched to

    def to_dict(self) -> dict:
        return {"measuring": self.measuring, "message": self.message, "switched": dict(self.switched)}


def switch_in_background(stylizers: dict, paths: dict[str, Path], cache_dir: Path | None = None,
                         recalibrate: bool = False) -> tuple[WarmupStatus, threading.Thread]:  # fmt: skip
    """Measure and switch every stylizer (name -> Stylizer, first built on torch) to the auto choice.

    ``paths``: each name's checkpoint. Returns the status (updated as it goes) and the started thread.
    A failure leaves that network on the backend it has, and says so in the status.
    """
    from fastnst.backends import build_backend
    from fastnst.backends.auto import choose
    from fastnst.checkpoint import load_network
    from fastnst.io import default_cache_dir

    cache_dir = cache_dir or default_cache_dir()
    status = WarmupStatus(measuring=True, message="measuring the backends on this machine; serving on torch fp32")

    def work() -> None:
        problems = []
        for name, stylizer in stylizers.items():
            try:
                loaded = load_network(paths[name])  # its own copy: the served one keeps running
                choice = choose(paths[name], cache_dir, recalibrate=recalibrate, loaded=loaded)
                if (choice.backend, choice.precision) != ("torch", "fp32"):
                    runner = build_backend(loaded, paths[name], choice.backend, choice.precision, cache_dir)
                    stylizer.switch_to(runner, choice)
                status.switched[name] = choice.describe()
            except Exception as exc:  # never stop serving: this network stays where it is
                problems.append(f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        first = next(iter(stylizers.values()))
        status.message = f"serving on {first.backend.describe()}" + (
            f"; not switched: {'; '.join(problems)}" if problems else ""
        )
        status.measuring = False

    thread = threading.Thread(target=work, name="fastnst-warmup", daemon=True)
    thread.start()
    return status, thread
