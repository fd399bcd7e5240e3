"""Each network against Gatys: distance ratios and the quality targets a network misses."""

from __future__ import annotations

from dataclasses import dataclass


def gatys_methods(report: dict) -> list[str]:
    """The report's Gatys columns: ``gatys``, or ``gatys <ratio>`` with ``--frontier``."""
    return [m for m in report["mean"] if m == "gatys" or m.startswith("gatys ")]


def gatys_ratios(report: dict, method: str) -> tuple[str, dict]:
    """A network's mean scores over Gatys' on the same photos: (the Gatys column, ratios).

    The Gatys column is the one at the network's style:content ratio (``--frontier``), else the
    only one. Ratios have the keys of :func:`mean_scores` (``layers`` per layer); below 1 is lower
    than Gatys' (better for distances, worse for colour kept).
    """
    gatys = gatys_methods(report)
    if not gatys:
        raise ValueError("the report has no Gatys column: run fastnst evaluate with --compare-optimize")
    ratio_of = {p["method"]: p["ratio"] for p in report.get("frontier", [])}
    match = next((g for g in gatys if ratio_of.get(g) == ratio_of.get(method)), gatys[0])
    g, n = report["mean"][match], report["mean"][method]
    ratios = {k: n[k] / max(g[k], 1e-12) for k in n if k != "layers"}
    ratios["layers"] = {layer: n["layers"][layer] / max(g["layers"][layer], 1e-12) for layer in n["layers"]}
    return match, ratios


@dataclass(frozen=True)
class QualityTargets:
    """Where a network counts as painting like Gatys (issue 21): each distance at most ``style`` x
    Gatys' (the total and every layer up to ``last_layer``), content at most ``content`` x,
    colour kept at least ``color`` x."""

    style: float = 1.5
    content: float = 1.3
    color: float = 0.8
    last_layer: str = "relu4_1"

    def unmet(self, ratios: dict) -> list[str]:
        """The targets ``ratios`` (from :func:`gatys_ratios`) misses, e.g. ``['relu2_1 1.79x', 'content 1.88x']``."""
        layers = list(ratios["layers"])
        judged = layers[: layers.index(self.last_layer) + 1] if self.last_layer in layers else layers
        misses = [("style", ratios["style_distance"])] if ratios["style_distance"] > self.style else []
        misses += [(layer, ratios["layers"][layer]) for layer in judged if ratios["layers"][layer] > self.style]
        misses += [("content", ratios["content_distance"])] if ratios["content_distance"] > self.content else []
        misses += [("colour kept", ratios["color_kept"])] if ratios["color_kept"] < self.color else []
        return [f"{name} {value:.2f}x" for name, value in misses]


def gatys_steps_sentence(report: dict, method: str) -> str:
    """' Gatys reaches its objective after N L-BFGS steps (...).', or '' without Gatys traces
    (results cached before traces were kept)."""
    matched = report.get("gatys_steps_matched", {}).get(method)
    if not matched:
        return ""
    runs = matched["steps"]
    per_photo = ", ".join(str(n) if n < runs else f"over {runs}" for n in matched["per_photo"])
    median = f"{matched['median']:g}" if matched["median"] < runs else f"over {runs}"
    return f" Gatys reaches its objective after {median} L-BFGS steps (median; per photo {per_photo})."
