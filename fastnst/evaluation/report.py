"""``fastnst evaluate``: score networks on photos (and, for the any-painting network, on many paintings),
beside Gatys, into reports, contact sheets and frontier plots."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fastnst.evaluation.gatys import cached_gatys, steps_to_match
from fastnst.evaluation.metrics import Judge
from fastnst.evaluation.targets import gatys_methods, gatys_ratios, gatys_steps_sentence
from fastnst.io import (
    atomic_path,
    file_sha256,
    load_image,
    read_image,
    save_image,
    tensor_to_pil,
)
from fastnst.optimize import GatysConfig
from fastnst.stylize.stylizer import Stylizer


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def contact_sheet(
    rows: list[list[Image.Image]], headers: list[str], captions: list[list[str]], cell: int = 256
) -> Image.Image:
    """A labelled grid: one row per photo, one column per header; captions under each cell.

    Images are fitted into ``cell`` x ``cell``; each row is as tall as its tallest image,
    so landscape photos leave no empty bands.
    """
    header_h, caption_h, pad = 28, 20, 6
    thumbs = []
    for images in rows:
        row = [image.copy() for image in images]
        for thumb in row:
            thumb.thumbnail((cell, cell), Image.Resampling.LANCZOS)
        thumbs.append(row)
    heights = [max(thumb.height for thumb in row) for row in thumbs]
    width = len(headers) * (cell + pad) + pad
    height = header_h + sum(h + caption_h + pad for h in heights) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = _font(18), _font(13)
    for c, header in enumerate(headers):
        while len(header) > 4 and draw.textlength(header, font=font) > cell - 8:
            header = header[:-2] + "…"  # keep long labels inside their column
        draw.text((pad + c * (cell + pad) + 4, 5), header, fill="black", font=font)
    top = header_h
    for r, (row, row_h) in enumerate(zip(thumbs, heights)):
        for c, thumb in enumerate(row):
            left = pad + c * (cell + pad)
            sheet.paste(thumb, (left + (cell - thumb.width) // 2, top + (row_h - thumb.height) // 2))
            if captions[r][c]:
                draw.text((left + 2, top + row_h + 3), captions[r][c], fill="black", font=small)
        top += row_h + caption_h + pad
    return sheet


def frontier_ratio(label: str, stylizer: Stylizer) -> float:
    """The style:content weight ratio a network was trained at (from its metadata)."""
    loss = stylizer.info.loss or {}
    if not loss.get("style_weight") or not loss.get("content_weight"):
        raise ValueError(
            f"{label}: its file records no loss weights; --frontier needs networks exported by fastnst train"
        )
    if loss.get("name") not in (None, "gatys"):
        raise ValueError(f"{label}: trained on loss={loss['name']}, not on the classic objective Gatys is run at")
    return float(loss["style_weight"]) / float(loss["content_weight"])


def frontier_recipe(stylizer: Stylizer) -> str:
    """What a network was trained on besides its style:content ratio: networks that share it form one curve.

    ``classic`` for the bare Gatys objective, ``colour 5e+07`` with the colour-layout term, and the
    training crop where the file records it (``colour 5e+07, 256 px crops``).
    """
    colour = (stylizer.info.loss or {}).get("color_weight")
    recipe = f"colour {float(colour):g}" if colour else "classic"
    crop = stylizer.info.image_size
    return f"{recipe}, {crop} px crops" if crop else recipe


def frontier_plot(points: list[dict], size: tuple[int, int] = (720, 520)) -> Image.Image:
    """Style distance (x) against content distance (y): Gatys, and one curve per network recipe, over the ratio.

    Lower-left is better on both; a recipe that helps moves its network curve towards Gatys'.
    """
    width, height = size
    left, right, top, bottom = 80, 30, 40, 70
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    xs = [p["style_distance"] for p in points] + [0.0]
    ys = [p["content_distance"] for p in points] + [0.0]
    x_max, y_max = max(xs) * 1.15 or 1.0, max(ys) * 1.15 or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return left + x / x_max * (width - left - right), height - bottom - y / y_max * (height - top - bottom)

    draw.line([at(0, 0), at(x_max, 0)], fill="black", width=2)
    draw.line([at(0, 0), at(0, y_max)], fill="black", width=2)
    font, small = _font(15), _font(12)
    for i in range(1, 5):
        x, y = x_max * i / 5, y_max * i / 5
        draw.text((at(x, 0)[0] - 12, height - bottom + 6), f"{x:.3g}", fill="black", font=small)
        draw.text((8, at(0, y)[1] - 7), f"{y:.3g}", fill="black", font=small)
    draw.text((width / 2 - 150, height - 30), "style distance (relative to the photo's)", fill="black", font=font)
    draw.text((8, 10), "content distance (relative); lower-left is better", fill="black", font=font)
    palette = [(35, 90, 200), (30, 150, 70), (150, 50, 170), (120, 120, 120)]
    curves = {"Gatys": [p for p in points if p["kind"] == "gatys"]}
    for p in points:
        if p["kind"] == "network":
            curves.setdefault(f"networks, {p.get('recipe', 'classic')}", []).append(p)
    widest = max(draw.textlength(name, font=font) for name in curves)
    key_left = max(left + 10, width - 10 - 24 - widest)  # the key's longest name ends inside the picture
    for i, (name, curve) in enumerate(curves.items()):
        colour = (220, 110, 20) if name == "Gatys" else palette[(i - 1) % len(palette)]
        curve = sorted(curve, key=lambda p: p["ratio"])
        coords = [at(p["style_distance"], p["content_distance"]) for p in curve]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for p, (x, y) in zip(curve, coords):
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
            draw.text((x + 7, y - 7), f"{p['ratio']:g}", fill=colour, font=small)  # names: the report's table
        key_x, key_y = key_left, top + 12 + 18 * i
        draw.line([(key_x, key_y), (key_x + 18, key_y)], fill=colour, width=3)
        draw.text((key_x + 24, key_y - 9), name, fill=colour, font=font)
    return image


def painting_warnings(stylizers: dict[str, Stylizer], style_path: Path) -> list[str]:
    """One line per network that learned from another file than ``style_path`` (another reproduction
    of a painting reads as much worse style distances: 0.348 instead of 0.155 for one starry_night)."""
    digest = file_sha256(style_path)
    lines = []
    for label, stylizer in stylizers.items():
        known = stylizer.info.style_image_sha256
        if known and known != digest:
            lines.append(
                f"{label} learned from {stylizer.info.style_image} (sha256 {known[:12]}…), not from {style_path} "
                f"(sha256 {digest[:12]}…): its style distances are measured against another picture; "
                "give --style the file it was trained on"
            )
    return lines


def mean_scores(entries: list[dict]) -> dict:
    """Mean of each number over photos (per-layer distances too)."""
    n = len(entries)
    means = {k: sum(e[k] for e in entries) / n for k in entries[0] if k != "layers"}
    means["layers"] = {layer: sum(e["layers"][layer] for e in entries) / n for layer in entries[0]["layers"]}
    return means


def caption(s: dict) -> str:
    return f"style {s['style_distance']:.3f} content {s['content_distance']:.3f} colour {s['color_kept']:.2f}"


def score_photo(path: Path, size: int, painting, stylizers: dict, judge: Judge, gatys_configs: dict,
                base: GatysConfig, style, cache_dir, progress, on_gatys_step) -> tuple[dict, list]:  # fmt: skip
    """One photo's scores by method (each network, then each Gatys setting) and its contact-sheet row."""
    photo = load_image(path, size)
    entry, row = {"photo": str(path)}, [tensor_to_pil(photo), painting]
    for label, stylizer in stylizers.items():
        stylizer.stylize_tensor(photo)  # warm-up, so ms is the steady state
        t0 = time.perf_counter()
        out = stylizer.stylize_tensor(photo)
        entry[label] = asdict(judge.score(out, photo, 1000 * (time.perf_counter() - t0)))
        row.append(tensor_to_pil(out))
    for label, config in gatys_configs.items():
        what = f"{label} on {path.name}"
        if progress:
            progress(what)
        follow = (lambda step, _loss, w=what, n=config.steps: on_gatys_step(w, step, n)) if on_gatys_step else None
        run = cached_gatys(photo, style, judge.vgg, config, cache_dir, on_step=follow)
        entry["gatys_cached"] = entry.get("gatys_cached", True) and run.cached
        entry[label] = asdict(judge.score(run.image, photo, run.ms))
        if run.trace and config == base:  # at the objective's own weights: the trace reads in its units
            photo_objective = judge._photo_terms(photo)[2]
            entry["gatys_steps_matched"] = {
                m: steps_to_match([v / photo_objective for v in run.trace], entry[m]["objective"]) for m in stylizers
            }
        row.append(tensor_to_pil(run.image))
    return entry, row


def evaluate(
    stylizers: Stylizer | dict[str, Stylizer],
    style_path: Path,
    photos: list[Path],
    output_dir: Path,
    size: int = 384,
    style_size: int = 512,
    compare_optimize: bool = False,
    optimize_config: GatysConfig | None = None,
    progress: Callable[[str], None] | None = None,
    cache_dir: Path | None = None,
    frontier: bool = False,
    on_gatys_step: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Score networks (and optionally Gatys) on ``photos``; write report.md, report.json, contact_sheet.png.

    Args:
        stylizers: one network, or several by label (one column each, to compare settings).
        size: long side of the photos (px): the scale users stylize at.
        style_size: long side of the painting (px) its Grams are taken at.
        cache_dir: where Gatys results are read from and written to (None: always optimise).
        frontier: run Gatys at every style:content ratio the networks were trained at (from
            their metadata) and draw both as style-vs-content curves (``frontier.png``).
        on_gatys_step: ``(what, step, steps)`` after each L-BFGS step of a Gatys run (a progress bar;
            a cached result makes no calls).

    Returns:
        the report as a dict: per photo and mean scores by method (the labels, then ``gatys``),
        and ``warnings`` (networks trained on another file than ``style_path``).
    """
    if not isinstance(stylizers, dict):
        stylizers = {stylizers.style: stylizers}
    base = optimize_config or GatysConfig()
    gatys_configs = {"gatys": base} if compare_optimize and not frontier else {}
    if frontier:
        ratios = {label: frontier_ratio(label, stylizer) for label, stylizer in stylizers.items()}
        gatys_configs = {
            f"gatys {r:g}": replace(base, style_weight=r * base.content_weight) for r in sorted(set(ratios.values()))
        }
    if set(gatys_configs) & set(stylizers):
        raise ValueError("a network labelled like a Gatys column would clash with it; rename its checkpoint")
    warnings = painting_warnings(stylizers, style_path)
    for line in warnings:
        if progress:
            progress(f"WARNING: {line}")
    output_dir.mkdir(parents=True, exist_ok=True)
    painting = read_image(style_path)
    style = load_image(style_path, style_size)
    judge = Judge(style, objective=base)
    methods = [*stylizers, *gatys_configs]
    per_photo, rows, captions = [], [], []
    for path in photos:
        entry, row = score_photo(path, size, painting, stylizers, judge, gatys_configs, base, style, cache_dir,
                                 progress, on_gatys_step)  # fmt: skip
        per_photo.append(entry)
        rows.append(row)
        captions.append(["", ""] + [caption(entry[m]) for m in methods])
        if progress:
            progress(f"scored {path.name}")
    means = {m: mean_scores([e[m] for e in per_photo]) for m in methods}
    matched = {m: [e["gatys_steps_matched"][m] for e in per_photo if "gatys_steps_matched" in e] for m in stylizers}
    styles = sorted({stylizer.style for stylizer in stylizers.values()})
    report = {
        "style": ", ".join(styles), "painting": str(style_path), "size": size, "style_size": style_size,
        "objective_ratio": base.style_weight / base.content_weight, "warnings": warnings, "photos": per_photo, "mean": means,
        "gatys_steps": base.steps if gatys_configs else None,
        "gatys_steps_matched": {m: {"median": statistics.median(v), "per_photo": v, "steps": base.steps} for m, v in matched.items() if v},
    }  # fmt: skip
    headers = ["photo", "painting", *stylizers] + [
        "Gatys (L-BFGS)" if label == "gatys" else f"Gatys {label.split()[1]}" for label in gatys_configs
    ]
    sheet = contact_sheet(rows, headers, captions)
    save_image(sheet, output_dir / "contact_sheet.png")
    if frontier:
        report["frontier"] = [
            {"method": m, "kind": "gatys" if m in gatys_configs else "network",
             "ratio": float(m.split()[1]) if m in gatys_configs else ratios[m], **{
                 k: means[m][k] for k in ("style_distance", "content_distance", "color_kept")},
             **({} if m in gatys_configs else {"recipe": frontier_recipe(stylizers[m])})}
            for m in methods
        ]  # fmt: skip
        save_image(frontier_plot(report["frontier"]), output_dir / "frontier.png")
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", markdown(report))):
        with atomic_path(output_dir / name) as tmp:
            tmp.write_text(text)
    return report


def checkpoint_labels(paths: list[Path]) -> list[str]:
    """Short unique column labels for checkpoints: the file stem, with its folder where stems repeat."""
    stems = [path.stem for path in paths]
    labels = [stem if stems.count(stem) == 1 else f"{path.parent.name}/{stem}" for stem, path in zip(stems, paths)]
    return [label if labels.count(label) == 1 else str(path) for label, path in zip(labels, paths)]


def markdown(report: dict) -> str:
    """The report as markdown: the means (per layer), Gatys ratios, then every photo."""
    methods = list(report["mean"])
    layers = list(report["mean"][methods[0]]["layers"])
    head = "| method | style | " + " | ".join(layers) + " | content | colour kept | objective | SSIM | ms |"
    rule = "|" + "---|" * (len(layers) + 7)

    def row(name: str, s: dict) -> str:
        per_layer = " | ".join(f"{s['layers'][layer]:.3f}" for layer in layers)
        return (
            f"| {name} | {s['style_distance']:.3f} | {per_layer} | {s['content_distance']:.3f} | "
            f"{s['color_kept']:.2f} | {s['objective']:.3f} | {s['ssim']:.3f} | {s['ms']:.1f} |"
        )

    lines = [
        f"# fastnst evaluate: {report['style']}",
        "",
        f"Painting: `{report['painting']}` at {report['style_size']} px; photos at {report['size']} px on the long side. "
        "Style distances are relative to the unstylized photo's (lower is closer to the painting), content relative "
        "to the photo's feature energy (lower keeps more of the photo), colour kept is the correlation of the blurred "
        "a*/b* fields with the photo's (higher keeps each object's colour), objective is the classic loss "
        f"(style:content {report['objective_ratio']:g}, what Gatys minimises) over the photo's own (lower "
        "is better).",
        "",
    ]
    lines += [f"**WARNING**: {w}" for w in report.get("warnings", [])]
    lines += ["", "Mean over photos:", "", head, rule, *(row(m, report["mean"][m]) for m in methods)]
    gatys = gatys_methods(report)
    if gatys:
        lines.append("")
        for method in [m for m in methods if m not in gatys]:
            match, r = gatys_ratios(report, method)
            per_layer = ", ".join(f"{layer} {value:.2f}x" for layer, value in r["layers"].items())
            lines.append(
                f"{method} vs {match}: style distance {r['style_distance']:.2f}x ({per_layer}), content distance "
                f"{r['content_distance']:.2f}x, colour kept {r['color_kept']:.2f}x, objective {r['objective']:.2f}x, "
                f"time {r['ms']:.5f}x." + gatys_steps_sentence(report, method)
            )
        cached = sum(bool(e.get("gatys_cached")) for e in report["photos"])
        if cached:
            lines.append(
                f"Gatys results of {cached} photo(s) came from the cache; their ms is that of the run that made them."
            )
    if "frontier" in report:
        lines += ["", "Frontier (means over photos; lower-left is better):", "",
                  "| method | recipe | style:content | style | content | colour kept |", "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {p['method']} | {p.get('recipe', 'Gatys')} | {p['ratio']:g} | {p['style_distance']:.3f} | "
            f"{p['content_distance']:.3f} | {p['color_kept']:.2f} |"
            for p in sorted(report["frontier"], key=lambda p: (p.get("recipe", ""), p["ratio"]))
        ]
        lines += ["", "![frontier](frontier.png)", ""]
    lines += ["", "Per photo:", "", "| photo " + head, "|---" + rule]
    lines += [f"| {Path(e['photo']).name} " + row(m, e[m]) for e in report["photos"] for m in methods]
    lines += ["", "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)


def painting_sheet(
    stylizer: Stylizer, paintings: list[Path], photos: list[Path], size: int = 256, styles: list | None = None
) -> Image.Image:
    """A grid for an any-painting network: a row per painting (the painting, then each photo after it).
    ``styles``: each painting's embedding (e.g. fitted); None: the predictor's."""
    rows, captions = [], []
    for i, painting in enumerate(paintings):
        style = stylizer.embed(painting) if styles is None else styles[i]
        row = [read_image(painting)]
        row += [tensor_to_pil(stylizer.stylize_tensor(load_image(p, size), style=style)) for p in photos]
        rows.append(row)
        captions.append([painting.stem[:28]] + [""] * len(photos))
    return contact_sheet(rows, ["painting", *(p.stem for p in photos)], captions)


def evaluate_paintings(
    stylizers: dict[str, Stylizer], paintings: list[Path], photos: list[Path], output_dir: Path, fit_steps: int = 0,
    fit_photos: Path | None = None, **options,
) -> dict:  # fmt: skip
    """Every painting x every photo: an :func:`evaluate` per painting (in ``output_dir/<painting>/``), where an
    any-painting network takes that painting as its style, then the means over paintings per method.
    ``fit_steps``: each painting's embedding is refined on it first (:meth:`Stylizer.fit_style`, on
    ``fit_photos``, by default the bundled ones).

    Writes ``summary.md``, ``summary.json`` and, for the first any-painting network, ``sheet.jpg``
    (paintings x photos). ``options`` go to :func:`evaluate`.
    """
    per_painting, painted = [], {}  # painted: the first any-painting network's embedding of each painting
    for painting in paintings:
        for stylizer in stylizers.values():
            if stylizer.painter is not None:
                fitted = stylizer.fit_style(painting, fit_steps, fit_photos) if fit_steps else None
                stylizer.default_style = stylizer.add_style(painting.stem, painting, fitted)
                painted.setdefault(painting, stylizer.embeddings[painting.stem])
        report = evaluate(stylizers, painting, photos, output_dir / painting.stem, **options)
        per_painting.append({"painting": str(painting), "mean": report["mean"]})
    keys = ("style_distance", "content_distance", "color_kept", "ms")
    methods = list(per_painting[0]["mean"])
    mean = {m: {k: statistics.fmean(p["mean"][m][k] for p in per_painting) for k in keys} for m in methods}
    summary = {"paintings": per_painting, "photos": [str(p) for p in photos], "mean": mean, "fit_steps": fit_steps}
    lines = ["| painting | " + " | ".join(f"{m} style | {m} content" for m in methods) + " |",
             "|---|" + "---|---|" * len(methods)]  # fmt: skip
    for p in [*per_painting, {"painting": "mean", "mean": mean}]:
        cells = " | ".join(
            f"{p['mean'][m]['style_distance']:.3f} | {p['mean'][m]['content_distance']:.3f}" for m in methods
        )
        lines.append(f"| {Path(p['painting']).name} | {cells} |")
    with atomic_path(output_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    with atomic_path(output_dir / "summary.md") as tmp:
        fitted = f", each style fitted {fit_steps} steps" if fit_steps else ""
        tmp.write_text(f"# {len(paintings)} paintings x {len(photos)} photos{fitted}\n\n" + "\n".join(lines) + "\n")
    painter = next((s for s in stylizers.values() if s.painter is not None), None)
    if painter is not None:
        sheet = painting_sheet(painter, paintings, photos[:4], styles=[painted[p] for p in paintings])
        save_image(sheet, output_dir / "sheet.jpg", quality=85)
    return summary
