"""Measure and show stylization quality: distances, SSIM, timing, contact sheets.

- style distance: weighted sum over ``relu1_1`` ... ``relu5_1`` of the MSE
  between the Gram matrices of the image and of the painting (weights of
  :class:`fastnst.optimize.GatysConfig`, which even out the layers' scales);
  lower is closer to the painting's texture.
- content distance: MSE of ``relu4_2`` features against the photo's.
- SSIM between the luminance of the output and of the photo (torchmetrics).

Gatys results take minutes per photo on a CPU, so they are cached (see
:func:`cached_gatys`): scoring a second network on the same photos reuses them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from fastnst.io import atomic_path, load_image, pil_to_tensor, read_image, resize_long_side, save_image, tensor_to_pil
from fastnst.losses import content_loss, gram_matrix, style_loss
from fastnst.models.vgg import VGGFeatures
from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, GatysConfig, gatys
from fastnst.stylize.color import rgb_to_yuv
from fastnst.stylize.stylizer import Stylizer


@dataclass
class Scores:
    """Quality numbers of one stylized image."""

    style_distance: float
    content_distance: float
    ssim: float
    ms: float


class Judge:
    """Scores images against one painting with a fixed VGG."""

    def __init__(self, style: torch.Tensor, vgg: VGGFeatures | None = None):
        self.vgg = vgg or VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS])
        self.layer_weights = GatysConfig().style_layers
        with torch.no_grad():
            feats = self.vgg(style)
        self.grams = {name: gram_matrix(feats[name]) for name in GATYS_STYLE_LAYERS}

    @torch.no_grad()
    def score(self, image: torch.Tensor, photo: torch.Tensor, ms: float) -> Scores:
        """Shape: image and photo (1, 3, H, W) in [0, 1]."""
        from torchmetrics.functional.image import structural_similarity_index_measure

        feats, photo_feats = self.vgg(image), self.vgg(photo)
        style = style_loss(feats, self.grams, self.layer_weights)
        content = sum(content_loss(feats[n], photo_feats[n]) for n in GATYS_CONTENT_LAYERS)
        luma = rgb_to_yuv(image)[:, :1], rgb_to_yuv(photo)[:, :1]
        ssim = structural_similarity_index_measure(luma[0], luma[1], data_range=1.0)
        return Scores(float(style), float(content), float(ssim), ms)


def cached_gatys(
    photo: torch.Tensor, style: torch.Tensor, vgg: VGGFeatures, config: GatysConfig, cache_dir: Path | None
) -> tuple[torch.Tensor, float, bool]:
    """Gatys' result for ``photo``, from ``cache_dir`` when the same inputs were optimised before.

    The key hashes the photo and painting tensors, every setting of ``config`` and the VGG's
    source and a fingerprint of its weights, so any change recomputes. An unreadable cache entry is recomputed.

    Returns:
        (image, milliseconds the optimisation took when it ran, whether it came from the cache)
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
                ms = float(f.metadata()["ms"])
            return load_file(path)["image"], ms, True
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # unreadable: optimise again and replace it
    t0 = time.perf_counter()
    image = gatys(photo, style, vgg, config)
    ms = 1000 * (time.perf_counter() - t0)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"image": image.contiguous()}, str(tmp), metadata={"ms": repr(ms)})
    return image, ms, False


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


def evaluate(
    stylizers: Stylizer | dict[str, Stylizer],
    style_path: Path,
    photos: list[Path],
    output_dir: Path,
    size: int = 256,
    compare_optimize: bool = False,
    optimize_config: GatysConfig | None = None,
    progress: Callable[[str], None] | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Score networks (and optionally Gatys) on ``photos``; write report.md, report.json, contact_sheet.png.

    Args:
        stylizers: one network, or several by label (one column each, to compare settings).
        cache_dir: where Gatys results are read from and written to (None: always optimise).

    Returns:
        the report as a dict: per photo and mean scores by method (the labels, then ``gatys``).
    """
    if not isinstance(stylizers, dict):
        stylizers = {stylizers.style: stylizers}
    if compare_optimize and "gatys" in stylizers:
        raise ValueError("a network labelled 'gatys' would clash with the Gatys column; rename its checkpoint")
    output_dir.mkdir(parents=True, exist_ok=True)
    painting = read_image(style_path)
    style = pil_to_tensor(resize_long_side(painting, size)).unsqueeze(0)
    judge = Judge(style)
    methods = [*stylizers] + (["gatys"] if compare_optimize else [])
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
        if compare_optimize:
            if progress:
                progress(f"Gatys on {path.name}")
            opt, ms, entry["gatys_cached"] = cached_gatys(
                photo, style, judge.vgg, optimize_config or GatysConfig(), cache_dir
            )
            entry["gatys"] = asdict(judge.score(opt, photo, ms))
            row.append(tensor_to_pil(opt))
        for method in methods:
            s = entry[method]
            caps.append(f"style {s['style_distance']:.0f}  content {s['content_distance']:.0f}  ssim {s['ssim']:.2f}")
        per_photo.append(entry)
        rows.append(row)
        captions.append(caps)
        if progress:
            progress(f"scored {path.name}")
    means = {
        m: {k: sum(e[m][k] for e in per_photo) / len(per_photo) for k in asdict(Scores(0, 0, 0, 0))} for m in methods
    }
    styles = sorted({stylizer.style for stylizer in stylizers.values()})
    report = {"style": ", ".join(styles), "painting": str(style_path), "size": size, "photos": per_photo, "mean": means}
    headers = ["photo", "painting", *stylizers] + (["Gatys (L-BFGS)"] if compare_optimize else [])
    sheet = contact_sheet(rows, headers, captions)
    save_image(sheet, output_dir / "contact_sheet.png")
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
    """The report as a markdown table (means last)."""
    methods = list(report["mean"])
    lines = [
        f"# fastnst evaluate: {report['style']}",
        "",
        f"Painting: `{report['painting']}`; images resized to {report['size']} px on the long side.",
        "",
        "| photo | method | style distance | content distance | SSIM (luminance) | ms |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(Path(e["photo"]).name, m, e[m]) for e in report["photos"] for m in methods]
    rows += [("**mean**", m, report["mean"][m]) for m in methods]
    for name, method, s in rows:
        lines.append(
            f"| {name} | {method} | {s['style_distance']:.1f} | {s['content_distance']:.1f} | {s['ssim']:.3f} | {s['ms']:.1f} |"
        )
    if "gatys" in report["mean"]:
        g = report["mean"]["gatys"]
        lines.append("")
        for method in methods[:-1]:
            n = report["mean"][method]
            lines.append(
                f"{method} vs Gatys: style distance {n['style_distance'] / max(g['style_distance'], 1e-12):.2f}x, "
                f"content distance {n['content_distance'] / max(g['content_distance'], 1e-12):.2f}x, "
                f"time {n['ms'] / max(g['ms'], 1e-12):.5f}x."
            )
        cached = sum(bool(e.get("gatys_cached")) for e in report["photos"])
        if cached:
            lines.append(
                f"Gatys results of {cached} photo(s) came from the cache; their ms is that of the run that made them."
            )
    lines += ["", "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)
