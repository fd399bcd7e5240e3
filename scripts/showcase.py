"""Draw the README's picture: the shipped photos on top, one row per shipped network below.

python scripts/showcase.py                      # -> docs/images/shipped_styles.jpg
python scripts/showcase.py --size 256 -o grid.jpg checkpoints/starry_night.safetensors
python scripts/showcase.py --multi checkpoints/multi_style.safetensors   # -> docs/images/multi_style.jpg
python scripts/showcase.py --multi checkpoints/arbitrary.safetensors     # -> docs/images/arbitrary.jpg (its named styles)
python scripts/showcase.py --paintings ../shared/data/paintings          # -> docs/images/any_painting.jpg
python scripts/showcase.py --paintings ../shared/data/paintings --fit    # -> docs/images/any_painting_fit.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastnst.data import center_crop, resize_short_side
from fastnst.io import make_grid, pil_to_tensor, read_image, save_image, tensor_to_pil
from fastnst.stylize.pipeline import expand_inputs
from fastnst.stylize.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[1]  # the checkout


def showcase(checkpoints: list[Path], photos: list[Path], size: int = 320) -> torch.Tensor:
    """Photos (square crops of ``size``) on the first row, each network's outputs below.

    Shape:
        - Output: (3, H, W) in [0, 1].
    """
    squares = [pil_to_tensor(center_crop(resize_short_side(read_image(p), size), size)) for p in photos]
    batch = torch.stack(squares)  # (N, 3, size, size)
    rows = [batch]
    for ckpt in checkpoints:
        stylizer = Stylizer.from_checkpoint(ckpt, device="auto")
        if stylizer.styles:  # a multi-style network has its own picture (multi_strips)
            continue
        rows.append(torch.cat([stylizer.stylize_tensor(x.unsqueeze(0)) for x in batch]).float().cpu())
    return make_grid(torch.cat(rows), nrow=len(photos), padding=4)


def multi_strips(checkpoint: Path, photo: Path, size: int = 256, steps: int = 5) -> torch.Tensor:
    """One photo across every style of a multi-style network, then a mixing strip between its first two.

    Shape:
        - Output: (3, H, W) in [0, 1].
    """
    stylizer = Stylizer.from_checkpoint(checkpoint, device="auto")
    x = pil_to_tensor(center_crop(resize_short_side(read_image(photo), size), size)).unsqueeze(0)
    first, second = stylizer.styles[:2]
    styles = [stylizer.stylize_tensor(x, style=s) for s in stylizer.styles]
    mixes = [stylizer.stylize_tensor(x, style={first: 1 - t, second: t}) if 0 < t < 1 else
             stylizer.stylize_tensor(x, style=first if t == 0 else second) for t in torch.linspace(0, 1, steps).tolist()]  # fmt: skip
    columns = max(len(styles) + 1, steps)
    blank = torch.ones_like(x)
    top = [x, *styles] + [blank] * (columns - len(styles) - 1)
    bottom = mixes + [blank] * (columns - steps)
    return make_grid(torch.cat(top + bottom).float(), nrow=columns, padding=4)


def any_painting_sheet(args) -> int:
    """docs/images/any_painting.jpg: held-out paintings (never trained on) x the bundled photos."""
    from fastnst.data import find_images, split_held_out
    from fastnst.evaluation import painting_sheet

    if not args.paintings.is_dir():
        print(f"showcase: {args.paintings}: no such folder of paintings; the any-painting sheet is left as it is")
        return 0
    held = split_held_out(find_images(args.paintings), args.paintings, args.held_out)[1]
    held = [held[i] for i in range(0, len(held), max(1, len(held) // 6))][:6]  # six, across the movements
    stylizer = Stylizer.from_checkpoint(ROOT / "checkpoints" / "arbitrary.safetensors")
    photos = sorted((ROOT / "fastnst" / "assets" / "photos").glob("*.jpg"))
    output = (
        args.output if args.output != ROOT / "docs/images/shipped_styles.jpg" else ROOT / "docs/images/any_painting.jpg"
    )
    save_image(painting_sheet(stylizer, held, photos, size=256), output, quality=80)
    print(f"wrote {output}")
    return 0


def fit_sheet(args) -> int:
    """docs/images/any_painting_fit.jpg: the 8 held-out paintings `fastnst evaluate --held-out` scores, each on
    a photo the fit never saw, through the predictor (milliseconds) and fitted (``fastnst styles add --fit``,
    on the bundled photos), with the texture distance of each picture under it."""
    from fastnst.cli import paintings_to_score
    from fastnst.evaluation.metrics import Judge
    from fastnst.evaluation.report import contact_sheet
    from fastnst.io import load_image

    if not args.paintings.is_dir():
        print(f"showcase: {args.paintings}: no such folder of paintings; the fit sheet is left as it is")
        return 0
    # the evaluation's choice (fastnst evaluate --held-out --max-paintings 8)
    held = paintings_to_score(argparse.Namespace(paintings=args.paintings, held_out=args.held_out, max_paintings=8))
    photo_path = next(path for path, _ in expand_inputs(args.photos)[0])
    photo = load_image(photo_path, 384)
    ckpt = args.checkpoints[0] if args.checkpoints else ROOT / "checkpoints" / "arbitrary.safetensors"
    stylizer = Stylizer.from_checkpoint(ckpt, backend="torch")
    cells, texts, vgg = [], [], None
    for painting in held:
        print(f"fitting {painting.name}", flush=True)
        judge = Judge(load_image(painting, 512), vgg=vgg)
        vgg = judge.vgg  # one loss network for every painting
        cells.append(read_image(painting))
        texts.append(painting.stem[:26])
        fitted = stylizer.fit_style(painting, args.fit_steps)
        for kind, style in (("predicted", stylizer.embed(painting)), ("fitted", fitted)):
            out = stylizer.stylize_tensor(photo, style=style)
            cells.append(tensor_to_pil(out))
            texts.append(f"{kind}: texture {judge.score(out, photo, 0.0).style_distance:.2f}")
    per_row = 6  # two paintings a row: painting, predicted, fitted
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    captions = [texts[i : i + per_row] for i in range(0, len(texts), per_row)]
    headers = ["painting", "predicted", "fitted"] * 2
    output = (
        args.output
        if args.output != ROOT / "docs/images/shipped_styles.jpg"
        else ROOT / "docs/images/any_painting_fit.jpg"
    )
    save_image(contact_sheet(rows, headers, captions, cell=220), output, quality=80)
    print(f"wrote {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path, help="default: every checkpoints/*.safetensors")
    parser.add_argument("--photos", nargs="+", default=[str(ROOT / "fastnst/assets/photos")])
    parser.add_argument("--size", type=int, default=320, help="side of each square (px)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs/images/shipped_styles.jpg")
    parser.add_argument("--multi", type=Path, help="a multi-style network: its styles and a mixing strip")
    parser.add_argument("--paintings", type=Path, help="the any-painting network on these paintings' held-out share")
    parser.add_argument("--held-out", type=float, default=0.05, help="--paintings: the share its training never saw")
    parser.add_argument("--fit", action="store_true", help="--paintings: predicted against fitted styles")
    parser.add_argument("--fit-steps", type=int, default=None, help="--fit: steps per painting (default: the CLI's)")
    args = parser.parse_args(argv)
    if args.paintings and args.fit:
        return fit_sheet(args)
    if args.paintings:
        return any_painting_sheet(args)
    if args.multi:
        output = (
            args.output
            if args.output != ROOT / "docs/images/shipped_styles.jpg"
            else ROOT / f"docs/images/{Path(args.multi).stem}.jpg"
        )
        photo = Path(args.photos[0])
        photo = photo if photo.is_file() else sorted(photo.glob("*.jpg"))[1]
        save_image(tensor_to_pil(multi_strips(args.multi, photo, min(args.size, 256))), output, quality=80)
        print(f"wrote {output}")
        return 0
    checkpoints = args.checkpoints or sorted((ROOT / "checkpoints").glob("*.safetensors"))
    found, _, problems = expand_inputs(args.photos)
    photos = [path for path, _ in found]
    if problems or not photos:
        print(f"showcase: {problems[0] if problems else f'no photos in {args.photos}'}", file=sys.stderr)
        return 1
    save_image(tensor_to_pil(showcase(checkpoints, photos, args.size)), args.output, quality=80)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
