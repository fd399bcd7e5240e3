"""Measure and show stylization quality: the classic per-layer distances, colour, timing, contact sheets.

Distances are relative, so they read the same for any photo and any painting:

- style, per layer (``relu1_1`` ... ``relu5_1``): the MSE between the Gram matrices (F Fᵀ / CHW,
  as in :mod:`fastnst.losses`) of the image and of the painting, divided by the same distance of
  the unstylized photo (1: no closer to the painting than the photo; 0: the painting's texture).
  ``style`` is the sum over layers over the photo's sum (relu4_1, the largest, dominates it).
- content: MSE of the ``relu4_2`` features against the photo's, over the photo's feature energy.
- colour kept: Pearson correlation between the image's and the photo's CIELAB a* and b* fields
  after a Gaussian blur (sigma 4 px) that removes texture, averaged over a* and b*: 1 when every
  region keeps its colour relative to the others, 0 for one wash (a global palette shift costs nothing).
- SSIM between the luminance of the output and of the photo (torchmetrics).
- objective: the classic loss itself (content + style:content x style + TV, at the Gatys
  settings of the run, 8.5 unless told), over the photo's own: what Gatys minimises from the
  photo, so the network and Gatys are compared on the very number one of them optimises (lower
  is better; 1 is the photo). A network that paints less well than Gatys scores higher here,
  wherever on the style/content curve it sits.
- Gatys steps matched: how many L-BFGS steps Gatys needs, from the photo, to reach the network's
  objective on that photo (Johnson et al. 2016 compare their networks the same way): what one
  forward pass is worth in optimisation, read from Gatys' objective after every step.

Gatys results take minutes per photo on a CPU, so they are cached (see
:func:`cached_gatys`): scoring a second network on the same photos reuses them.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from fastnst.io import (
    atomic_path,
    file_sha256,
    load_image,
    read_image,
    save_image,
    tensor_to_pil,
)
from fastnst.losses import content_loss, gram_matrix, style_loss, tv_loss
from fastnst.models.vgg import VGGFeatures
from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, GatysConfig, gatys
from fastnst.stylize.color import rgb_to_yuv
from fastnst.stylize.stylizer import Stylizer


@dataclass
class Scores:
    """Quality numbers of one stylized image (see the module docstring)."""

    style_distance: float
    content_distance: float
    color_kept: float
    ssim: float
    ms: float
    layers: dict[str, float] = field(default_factory=dict)
    objective: float = float("nan")


def _srgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to CIELAB (D65). Shape: (B, 3, H, W) -> (B, 3, H, W) as L*, a*, b*."""
    linear = torch.where(images > 0.04045, ((images + 0.055) / 1.055) ** 2.4, images / 12.92)
    matrix = images.new_tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / images.new_tensor([0.9505, 1.0, 1.089]).view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    padded = torch.nn.functional.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = torch.nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def color_kept(image: torch.Tensor, photo: torch.Tensor, sigma: float = 4.0) -> float:
    """Mean Pearson correlation of the blurred a* and b* fields of ``image`` and ``photo`` (1: colours kept).

    Shape: image, photo (1, 3, H, W) in [0, 1].
    """
    a, b = (_blur(_srgb_to_lab(t.float().clamp(0, 1))[:, 1:], sigma) for t in (image, photo))
    scores = []
    for channel in range(2):
        x, y = a[:, channel].flatten(), b[:, channel].flatten()
        x, y = x - x.mean(), y - y.mean()
        denominator = (x.norm() * y.norm()).clamp_min(1e-12)
        scores.append(float((x @ y) / denominator))
    return sum(scores) / len(scores)


class Judge:
    """Scores images against one painting with a fixed VGG (the classic layers, weighted equally)."""

    def __init__(self, style: torch.Tensor, vgg: VGGFeatures | None = None, objective: GatysConfig | None = None):
        self.vgg = vgg or VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS])
        self.objective = objective or GatysConfig()  # the weights the objective column is taken at
        with torch.no_grad():
            feats = self.vgg(style)
        self.grams = {name: gram_matrix(feats[name]) for name in GATYS_STYLE_LAYERS}
        self._photo: tuple[torch.Tensor, dict, dict, float] | None = None

    def _photo_terms(self, photo: torch.Tensor) -> tuple[dict, dict, float]:
        """The photo's features, its own Gram distances to the painting and its objective (cached per photo)."""
        if self._photo is None or self._photo[0] is not photo:
            feats = self.vgg(photo)
            distances = {n: float(style_loss({n: feats[n]}, {n: self.grams[n]})) for n in GATYS_STYLE_LAYERS}
            self._photo = (photo, feats, distances, self._objective(photo, distances, 0.0))
        return self._photo[1:]

    def _objective(self, image: torch.Tensor, distances: dict[str, float], content_raw: float) -> float:
        o = self.objective
        style = sum(o.style_layers.get(n, 0.0) * d for n, d in distances.items())
        return o.content_weight * content_raw + o.style_weight * style + o.tv_weight * float(tv_loss(image))

    @torch.no_grad()
    def score(self, image: torch.Tensor, photo: torch.Tensor, ms: float) -> Scores:
        """Shape: image and photo (1, 3, H, W) in [0, 1]."""
        from torchmetrics.functional.image import structural_similarity_index_measure

        photo_feats, photo_distances, photo_objective = self._photo_terms(photo)
        feats = self.vgg(image)
        distances = {n: float(style_loss({n: feats[n]}, {n: self.grams[n]})) for n in GATYS_STYLE_LAYERS}
        layers = {n: distances[n] / max(photo_distances[n], 1e-30) for n in GATYS_STYLE_LAYERS}
        style = sum(distances.values()) / max(sum(photo_distances.values()), 1e-30)
        raw = {n: float(content_loss(feats[n], photo_feats[n])) for n in GATYS_CONTENT_LAYERS}
        content = sum(raw[n] / max(float(photo_feats[n].float().pow(2).mean()), 1e-12) for n in GATYS_CONTENT_LAYERS)
        objective = self._objective(image, distances, sum(raw.values())) / max(photo_objective, 1e-30)
        luma = rgb_to_yuv(image)[:, :1], rgb_to_yuv(photo)[:, :1]
        ssim = structural_similarity_index_measure(luma[0], luma[1], data_range=1.0)
        return Scores(style, content, color_kept(image, photo), float(ssim), ms, layers, objective)


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
        photo = load_image(path, size)
        entry, row, caps = {"photo": str(path)}, [tensor_to_pil(photo), painting], ["", ""]
        for label, stylizer in stylizers.items():
            stylizer.stylize_tensor(photo)  # warm-up, so ms is the steady state
            t0 = time.perf_counter()
            out = stylizer.stylize_tensor(photo)
            entry[label] = asdict(judge.score(out, photo, 1000 * (time.perf_counter() - t0)))
            row.append(tensor_to_pil(out))
        for label, config in gatys_configs.items():
            if progress:
                progress(f"{label} on {path.name}")

            def follow(step: int, _loss: float, what: str = f"{label} on {path.name}", n: int = config.steps) -> None:
                on_gatys_step(what, step, n)

            run = cached_gatys(photo, style, judge.vgg, config, cache_dir, on_step=follow if on_gatys_step else None)
            entry["gatys_cached"] = entry.get("gatys_cached", True) and run.cached
            entry[label] = asdict(judge.score(run.image, photo, run.ms))
            if run.trace and config == base:  # at the objective's own weights: the trace reads in its units
                photo_objective = judge._photo_terms(photo)[2]
                entry["gatys_steps_matched"] = {
                    m: steps_to_match([v / photo_objective for v in run.trace], entry[m]["objective"])
                    for m in stylizers
                }
            row.append(tensor_to_pil(run.image))
        for method in methods:
            s = entry[method]
            caps.append(
                f"style {s['style_distance']:.3f} content {s['content_distance']:.3f} colour {s['color_kept']:.2f}"
            )
        per_photo.append(entry)
        rows.append(row)
        captions.append(caps)
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


def painting_sheet(stylizer: Stylizer, paintings: list[Path], photos: list[Path], size: int = 256) -> Image.Image:
    """A grid for an any-painting network: a row per painting (the painting, then each photo after it)."""
    rows, captions = [], []
    for painting in paintings:
        style = stylizer.embed(painting)
        row = [read_image(painting)]
        row += [tensor_to_pil(stylizer.stylize_tensor(load_image(p, size), style=style)) for p in photos]
        rows.append(row)
        captions.append([painting.stem[:28]] + [""] * len(photos))
    return contact_sheet(rows, ["painting", *(p.stem for p in photos)], captions)


def evaluate_paintings(
    stylizers: dict[str, Stylizer], paintings: list[Path], photos: list[Path], output_dir: Path, **options
) -> dict:
    """Every painting x every photo: an :func:`evaluate` per painting (in ``output_dir/<painting>/``), where an
    any-painting network takes that painting as its style, then the means over paintings per method.

    Writes ``summary.md``, ``summary.json`` and, for the first any-painting network, ``sheet.jpg``
    (paintings x photos). ``options`` go to :func:`evaluate`.
    """
    per_painting = []
    for painting in paintings:
        for stylizer in stylizers.values():
            if stylizer.painter is not None:
                stylizer.default_style = stylizer.add_style(painting.stem, painting)
        report = evaluate(stylizers, painting, photos, output_dir / painting.stem, **options)
        per_painting.append({"painting": str(painting), "mean": report["mean"]})
    keys = ("style_distance", "content_distance", "color_kept", "ms")
    methods = list(per_painting[0]["mean"])
    mean = {m: {k: statistics.fmean(p["mean"][m][k] for p in per_painting) for k in keys} for m in methods}
    summary = {"paintings": per_painting, "photos": [str(p) for p in photos], "mean": mean}
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
        tmp.write_text(f"# {len(paintings)} paintings x {len(photos)} photos\n\n" + "\n".join(lines) + "\n")
    painter = next((s for s in stylizers.values() if s.painter is not None), None)
    if painter is not None:
        save_image(painting_sheet(painter, paintings, photos[:4]), output_dir / "sheet.jpg", quality=85)
    return summary
