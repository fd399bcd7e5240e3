"""int8 against fp32 for every shipped network: the quality check, distances and a contact sheet.

    python scripts/int8_report.py --images ../shared/data/photos/bsds500/test --style-dir ../shared/data/styles

For each network: OpenVINO int8 (as ``--backend auto`` would run it) beside PyTorch fp32 on the same
photos at 384 px: the stored check (:func:`fastnst.backends.openvino.check_int8`), the classic
distances of both against the painting where it is available (starry_night ships; others from
``--style-dir``), the largest pixel difference, and a sheet photo | fp32 | int8 | difference x8.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fastnst.evaluation import Judge, contact_sheet
from fastnst.io import load_image, save_image, tensor_to_pil
from fastnst.stylize.pipeline import expand_inputs
from fastnst.stylize.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[1]  # the checkout


def painting_for(name: str, style_dir: Path | None) -> Path | None:
    shipped = ROOT / "fastnst" / "assets" / "styles" / f"{name}.jpg"
    if shipped.is_file():
        return shipped
    return style_dir / f"{name}.jpg" if style_dir and (style_dir / f"{name}.jpg").is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--images", nargs="+", default=[str(ROOT / "fastnst" / "assets" / "photos")])
    parser.add_argument("--max-images", type=int, default=4)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--style-dir", type=Path, help="folder with the paintings that are not shipped")
    parser.add_argument("-o", "--output-dir", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    found, _, _ = expand_inputs(args.images)
    photos = [load_image(path, args.size) for path, _ in found[: args.max_images]]
    cache = Path(tempfile.mkdtemp())
    print("| network | int8 check: texture moved | content distance changed | passed | style fp32 → int8 | "
          "content fp32 → int8 | max pixel difference |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for ckpt in args.checkpoints or sorted((ROOT / "checkpoints").glob("*.safetensors")):
        fp32 = Stylizer.from_checkpoint(ckpt, backend="torch", device="cpu", precision="fp32")
        if fp32.styles:
            print(f"| {fp32.style} | multi-style networks run in fp32 or bf16 (int8 not yet) | | | | | |")
            continue
        int8 = Stylizer.from_checkpoint(ckpt, backend="openvino", precision="int8", cache_dir=cache)
        from fastnst.backends.openvino import int8_verdict

        verdict = int8_verdict(next((cache / "openvino").glob("*/int8.xml")))
        painting = painting_for(fp32.style, args.style_dir)
        judge = Judge(load_image(painting, 512)) if painting else None
        rows, captions, scores, worst = [], [], {"fp32": [], "int8": []}, 0.0
        for photo in photos:
            a, b = fp32.stylize_tensor(photo), int8.stylize_tensor(photo)
            diff = (a - b).abs()
            worst = max(worst, float(diff.max()) * 255)
            rows.append([tensor_to_pil(t) for t in (photo, a, b, (diff * 8).clamp(0, 1))])
            captions.append(
                ["", "", f"max diff {255 * float(diff.max()):.0f}/255", f"mean {255 * float(diff.mean()):.2f}/255"]
            )
            if judge:
                scores["fp32"].append(judge.score(a, photo, 0))
                scores["int8"].append(judge.score(b, photo, 0))
        save_image(contact_sheet(rows, ["photo", "fp32 (torch)", "int8 (openvino)", "difference x8"], captions),
                   args.output_dir / f"int8_{fp32.style}.jpg", quality=88)  # fmt: skip
        mean = {k: (sum(s.style_distance for s in v) / len(v), sum(s.content_distance for s in v) / len(v))
                for k, v in scores.items() if v}  # fmt: skip
        distances = (
            (f"{mean['fp32'][0]:.4f} → {mean['int8'][0]:.4f}", f"{mean['fp32'][1]:.4f} → {mean['int8'][1]:.4f}")
            if mean
            else ("painting not available", "")
        )
        print(f"| {fp32.style} | {100 * verdict['style_change']:.2f}% | {100 * verdict['content_change']:.2f}% | "
              f"{'yes' if verdict['passed'] else 'no'} | {distances[0]} | {distances[1]} | {worst:.0f}/255 |")  # fmt: skip
        for path in (cache / "openvino").glob("*"):  # one network at a time
            import shutil

            shutil.rmtree(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
