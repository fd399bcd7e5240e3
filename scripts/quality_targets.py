"""Each network against Gatys, and which quality targets it misses, from `fastnst evaluate` reports.

    fastnst evaluate --ckpt checkpoints/udnie.safetensors --style udnie.jpg --images photos/ \\
        --compare-optimize --optimize-steps 500 -o outputs/eval/udnie
    python scripts/quality_targets.py outputs/eval/*/report.json

prints one markdown row per network: its mean distances over Gatys' on the same photos (below 1x
is closer to the painting / keeps more of the photo; colour kept above 1x keeps more colour) and
the targets it does not meet (default: the total style and each layer up to relu4_1 at most 1.5x
Gatys', content at most 1.3x, colour kept at least 0.8x).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastnst.evaluation import QualityTargets, gatys_methods, gatys_ratios


def table(reports: list[dict], targets: QualityTargets) -> str:
    """The markdown table: one row per network of every report."""
    layers = list(next(iter(reports[0]["mean"].values()))["layers"])
    head = ["network", "photos", "Gatys steps", "style", *layers, "content", "colour kept", "objective", "not met"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for report in reports:
        steps = report.get("gatys_steps") or "?"  # reports before it was recorded: unknown
        for method in [m for m in report["mean"] if m not in gatys_methods(report)]:
            _, r = gatys_ratios(report, method)
            misses = targets.unmet(r)
            cells = [
                f"`{method}`" + ("" if method == report["style"] else f" ({report['style']})"),
                str(len(report["photos"])), str(steps),
                f"{r['style_distance']:.2f}x", *(f"{r['layers'][layer]:.2f}x" for layer in layers),
                f"{r['content_distance']:.2f}x", f"{r['color_kept']:.2f}x", f"{r['objective']:.2f}x",
                ", ".join(misses) or "all met",
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report.json files of evaluate --compare-optimize")
    parser.add_argument("--style", type=float, default=QualityTargets.style, help="most style distance, x Gatys'")
    parser.add_argument("--content", type=float, default=QualityTargets.content, help="most content, x Gatys'")
    parser.add_argument("--color", type=float, default=QualityTargets.color, help="least colour kept, x Gatys'")
    args = parser.parse_args(argv)
    reports = []
    for path in args.reports:
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"quality_targets: cannot read {path}: {exc}", file=sys.stderr)
            return 1
        if not gatys_methods(report):
            print(f"quality_targets: {path} has no Gatys column; run evaluate with --compare-optimize", file=sys.stderr)
            return 1
        reports.append(report)
    print(table(reports, QualityTargets(args.style, args.content, args.color)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
