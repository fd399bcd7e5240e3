"""The ``fastnst`` command: stylize, info, export.

    fastnst stylize --ckpt checkpoints/starry_night.safetensors photo.jpg more/ "shots/*.png" -o out/
    fastnst info --ckpt checkpoints/starry_night.safetensors
    fastnst export --ckpt checkpoints/starry_night.safetensors --format onnx -o starry_night.onnx
    fastnst optimize --content photo.jpg --style painting.jpg -o out.jpg
    fastnst evaluate --ckpt checkpoints/starry_night.safetensors --style painting.jpg --images photos/ -o report/

Light by design: torch, safetensors, Pillow and rich only (no Lightning, Hydra
or TensorBoard).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fastnst.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str) -> int:
    print(f"fastnst: error: {message}", file=sys.stderr)
    return EXIT_USAGE


@dataclass
class Job:
    """One input image and where its result goes."""

    source: Path
    target: Path


def expand_inputs(inputs: Iterable[str]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files, folders (recursive) and globs to (file, folder it came from) pairs, plus problems."""
    found: list[tuple[Path, Path | None]] = []
    problems: list[str] = []
    seen: set[str] = set()

    def add(path: Path, base: Path | None) -> None:
        real = os.path.realpath(path)
        if real in seen:
            problems.append(f"{path}: given more than once; stylized once")
            return
        seen.add(real)
        found.append((path, base))

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            wanted = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
            if not files:
                problems.append(f"{path}: folder holds no images or videos ({', '.join(wanted)})")
            for file in files:
                add(file, path)
        elif path.is_file():
            add(path, None)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True) if Path(p).is_file())
            if not matches:
                problems.append(f"{item}: no file matches this pattern")
            for match in matches:
                add(match, None)
        else:
            problems.append(f"{path}: no such file or folder")
    return found, problems


def plan_jobs(
    inputs: list[tuple[Path, Path | None]], style: str, output_dir: Path, output: Path | None
) -> tuple[list[Job], list[str]]:
    """Decide every output path; refuse any that would overwrite an input."""
    jobs, problems = [], []
    input_paths = {os.path.realpath(p) for p, _ in inputs}
    for source, base in inputs:
        if output is not None:
            target = output
        else:
            relative = source.parent.relative_to(base) if base is not None else Path()
            target = output_dir / relative / f"{source.stem}_{style}{source.suffix.lower()}"
        if os.path.realpath(target) in input_paths:
            problems.append(f"{source}: output {target} would overwrite an input; choose another -o/--output")
            continue
        jobs.append(Job(source, target))
    return jobs, problems


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        help="default: fp16 on GPUs, bf16 on CPUs with native bf16, else fp32",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (pays off on many images)")
    parser.add_argument(
        "--backend", choices=["torch", "onnxruntime"], default="torch",
        help="onnxruntime: run on the CPU through ONNX Runtime (fp32; exported once and cached), "
        "faster than torch at large sizes on CPUs",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnst", description="Fast feed-forward neural style transfer.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "train",
        help="train a style network: fastnst train style=NAME [key=value ...] | --resume RUN_DIR",
        add_help=False,
    )  # fmt: skip; handled before parsing (Hydra reads its own command line)

    st = sub.add_parser("stylize", help="stylize images with a trained network")
    st.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    st.add_argument("--ckpt", required=True, help=".safetensors export, Lightning .ckpt or .onnx file")
    st.add_argument("-o", "--output-dir", default="outputs", help="where <stem>_<style>.<ext> go (default: outputs/)")
    st.add_argument("--output", help="output file, for a single input")
    size = st.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, help="resize so the long side is PX before stylizing")
    size.add_argument("--scale", type=float, help="resize by this factor before stylizing")
    st.add_argument("--batch-size", type=int, default=1, help="images per forward pass (same-size images)")
    st.add_argument("--tile", type=int, help="stylize in PX tiles with whole-image statistics (huge images)")
    st.add_argument("--preserve-color", action="store_true", help="keep the photo's colours, transfer luminance")
    st.add_argument("--strength", type=float, default=1.0, help="amount of style in [0, 1] (0: the photo)")
    st.add_argument("--stable", action="store_true", help="video: steady the style over time (less flicker)")
    st.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    add_runtime_options(st)

    info = sub.add_parser("info", help="describe a checkpoint")
    info.add_argument("--ckpt", required=True)

    op = sub.add_parser("optimize", help="the classic Gatys et al. method: optimise the image itself")
    op.add_argument("--content", required=True, help="photo")
    op.add_argument("--style", required=True, help="painting")
    op.add_argument("-o", "--output", required=True, help="output image file")
    op.add_argument("--size", type=int, default=512, help="long side of the result (default 512)")
    op.add_argument("--style-size", type=int, help="long side of the painting (default: --size)")
    op.add_argument("--steps", type=int, default=500)
    op.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    op.add_argument("--lr", type=float, default=0.02, help="Adam learning rate")
    op.add_argument("--content-weight", type=float, default=1.0)
    op.add_argument("--style-weight", type=float, default=8.5)
    op.add_argument("--tv-weight", type=float, default=1000.0)
    op.add_argument("--coarse-to-fine", action="store_true", help="optimise at half size first, then refine")
    op.add_argument("--vgg", default="caffe_vgg19", help="caffe_vgg19 | torchvision_vgg16 | weights file")
    op.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    op.add_argument("--overwrite", action="store_true")

    ev = sub.add_parser("evaluate", help="score a network against its painting, write a report and a contact sheet")
    ev.add_argument("--ckpt", required=True, nargs="+", help="one network, or several to compare side by side")
    ev.add_argument("--style", required=True, help="the painting the network was trained on")
    ev.add_argument("--images", nargs="+", required=True, help="photos: files, folders or globs")
    ev.add_argument("-o", "--output-dir", default="report")
    ev.add_argument("--size", type=int, default=256, help="long side of the photos (default 256)")
    ev.add_argument("--max-images", type=int, default=8)
    ev.add_argument("--compare-optimize", action="store_true", help="also run Gatys on each photo")
    ev.add_argument("--optimize-steps", type=int, default=500)
    ev.add_argument(
        "--cache-dir", type=Path, default=None,
        help="where Gatys results are kept for the next evaluation (default $FASTNST_CACHE_DIR or ~/.cache/fastnst)",
    )  # fmt: skip
    ev.add_argument("--no-cache", action="store_true", help="always run Gatys, keep nothing")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ev.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")

    ex = sub.add_parser("export", help="export a network to safetensors, ONNX or TorchScript")
    ex.add_argument("--ckpt", required=True)
    ex.add_argument("--format", required=True, choices=["safetensors", "onnx", "torchscript"])
    ex.add_argument("-o", "--output", required=True, help="destination file")
    ex.add_argument("--overwrite", action="store_true")
    return parser


def target_size(width: int, height: int, size: int | None, scale: float | None) -> tuple[int, int]:
    """Output (width, height): the input's, or resized by --size (long side) / --scale."""
    if size:
        factor = size / max(width, height)
    elif scale:
        factor = scale
    else:
        return width, height
    return max(4, round(width * factor)), max(4, round(height * factor))


def cmd_stylize(args: argparse.Namespace) -> int:
    from PIL import Image
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fastnst.checkpoint import CheckpointError
    from fastnst.inference import load_stylizer
    from fastnst.io import ImageReadError, pil_to_tensor, read_image, save_image, tensor_to_pil
    from fastnst.tiling import TILE_HALO, num_tile_passes, stylize_tiled

    if not 0.0 <= args.strength <= 1.0:
        return fail(f"--strength {args.strength}: must be between 0 and 1")
    if (args.size is not None and args.size < 4) or (args.scale is not None and args.scale <= 0):
        return fail("--size must be >= 4 px and --scale > 0")
    if args.batch_size < 1 or (args.tile is not None and args.tile < 16):
        return fail("--batch-size must be >= 1 and --tile >= 16 px")
    inputs, problems = expand_inputs(args.inputs)
    output = Path(args.output).expanduser() if args.output else None
    if output is not None and len(inputs) > 1:
        return fail(f"--output names one file but {len(inputs)} inputs were given; use -o/--output-dir")
    try:
        stylizer = load_stylizer(
            args.ckpt, backend=args.backend, device=args.device, precision=args.precision, compile=args.compile
        )
    except (CheckpointError, ValueError, RuntimeError, ImportError) as exc:
        return fail(str(exc))
    if args.tile and stylizer.net is None:
        return fail(
            "--tile needs the torch backend and a .safetensors or .ckpt network (ONNX cannot share statistics across tiles)"
        )
    jobs, more = plan_jobs(inputs, stylizer.style, Path(args.output_dir).expanduser(), output)
    problems += more
    failures = [p for p in problems if "given more than once" not in p]
    for problem in problems:
        print(f"fastnst: {problem}", file=sys.stderr)

    done, kept, pixels, busy = 0, 0, 0, 0.0
    todo = []
    for job in jobs:
        if job.target.exists() and not args.overwrite:
            print(f"fastnst: {job.target} exists; kept (use --overwrite to replace)", file=sys.stderr)
            kept += 1
        else:
            todo.append(job)
    videos = [job for job in todo if job.source.suffix.lower() in VIDEO_EXTENSIONS]
    todo = [job for job in todo if job not in videos]
    try:
        done_videos = run_videos(videos, stylizer, args, failures)
    except KeyboardInterrupt:
        print("\nfastnst: interrupted; no partial video left", file=sys.stderr)
        return EXIT_INTERRUPTED

    def write(job: Job, image: Image.Image) -> None:
        nonlocal done
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            save_image(image, job.target)
            done += 1
        except OSError as exc:
            failures.append(f"{job.target}: cannot write ({exc.strerror or exc})")
            print(f"fastnst: {failures[-1]}", file=sys.stderr)

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[name]}"),
        disable=args.quiet or (len(todo) < 2 and not args.tile),  # tiling one huge image takes minutes
        transient=False,
        console=Console(stderr=True),
    )
    started = time.perf_counter()
    try:
        with progress:
            task = progress.add_task("stylize", total=len(todo), name="")
            batch: list[tuple[Job, object]] = []

            def flush() -> None:
                nonlocal pixels, busy
                if not batch:
                    return
                import torch

                x = torch.stack([t for _, t in batch])  # (B, 3, H, W)
                t0 = time.perf_counter()
                if args.tile:
                    passes = num_tile_passes(*x.shape[-2:], args.tile, TILE_HALO, stylizer.net)
                    tiles = progress.add_task("tiles", total=passes, name=f"{x.shape[-1]}x{x.shape[-2]}")
                    y = stylize_tiled(
                        stylizer.net,
                        x,
                        tile=args.tile,
                        halo=TILE_HALO,
                        forward=stylizer.forward,
                        device=stylizer.device,
                        progress=lambda: progress.advance(tiles),
                    )
                    progress.remove_task(tiles)
                    y = stylizer.finish(y, x, strength=args.strength, keep_color=args.preserve_color)
                else:
                    y = stylizer.stylize_tensor(x, strength=args.strength, keep_color=args.preserve_color)
                busy += time.perf_counter() - t0
                pixels += x.shape[0] * x.shape[-1] * x.shape[-2]
                for (job, _), out in zip(batch, y):
                    write(job, tensor_to_pil(out))
                    progress.advance(task)
                batch.clear()

            for job in todo:
                progress.update(task, name=job.source.name)
                try:
                    image = read_image(job.source)
                except ImageReadError as exc:
                    failures.append(str(exc))
                    progress.console.print(f"fastnst: {exc}", style="red", highlight=False, soft_wrap=True)
                    progress.advance(task)
                    continue
                size = target_size(*image.size, args.size, args.scale)
                if size != image.size:
                    image = image.resize(size, Image.Resampling.LANCZOS)
                tensor = pil_to_tensor(image)
                if batch and batch[0][1].shape != tensor.shape:
                    flush()
                batch.append((job, tensor))
                if len(batch) >= args.batch_size:
                    flush()
            flush()
    except KeyboardInterrupt:
        print(f"\nfastnst: interrupted; {done} images written, no partial files left", file=sys.stderr)
        return EXIT_INTERRUPTED
    wall = time.perf_counter() - started
    if done:
        print(
            f"stylized {done} image{'s' * (done != 1)} with '{stylizer.style}' on {stylizer.device.type} "
            f"({stylizer.precision}): {1000 * busy / done:.1f} ms/image in the network, "
            f"{pixels / 1e6 / max(busy, 1e-9):.2f} MP/s; {wall:.1f} s in all; "
            f"output in {output or Path(args.output_dir)}"
        )
    if kept:
        print(f"kept {kept} existing output{'s' * (kept != 1)}")
    done += done_videos
    if failures:
        print(f"{len(failures)} failed", file=sys.stderr)
        return EXIT_FAILED
    if not done and not kept:
        print("nothing to stylize", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_videos(jobs: list[Job], stylizer, args: argparse.Namespace, failures: list[str]) -> int:
    """Stylize video jobs one by one with a frame progress bar; returns how many succeeded."""
    if not jobs:
        return 0
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    try:
        from fastnst.video import VideoError, stylize_video
    except ImportError as exc:  # pragma: no cover - fastnst.video imports PyAV lazily
        failures.append(str(exc))
        return 0
    done = 0
    for job in jobs:
        progress = Progress(
            TextColumn(f"[bold]{job.source.name}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
            TimeRemainingColumn(), disable=args.quiet, console=Console(stderr=True),
        )  # fmt: skip
        try:
            with progress:
                task = progress.add_task("video", total=None)
                report = stylize_video(
                    stylizer, job.source, job.target, size=args.size, scale=args.scale, batch_size=max(args.batch_size, 4),
                    stable=args.stable, strength=args.strength, keep_color=args.preserve_color,
                    progress=lambda n, total, bar=progress, task=task: bar.update(task, completed=n, total=total),
                )  # fmt: skip
        except VideoError as exc:
            failures.append(str(exc))
            print(f"fastnst: {exc}", file=sys.stderr)
            continue
        done += 1
        print(
            f"{job.target}: {report.frames} frames at {report.width}x{report.height}, {report.fps:g} fps, "
            f"audio {'copied' if report.audio_copied else 'none'}; {report.frames_per_second:.1f} frames/s; "
            f"flicker {report.flicker_ratio:.3f} of the input's{' (--stable)' if args.stable else ''}"
        )
    return done


def cmd_info(args: argparse.Namespace) -> int:
    from fastnst.checkpoint import CheckpointError, load_network

    try:
        loaded = load_network(args.ckpt)
    except CheckpointError as exc:
        return fail(str(exc))
    cfg = loaded.net.config
    rows = {
        "file": str(loaded.path),
        "style": loaded.style,
        "architecture": f"TransformerNet width={cfg.width} channels={'-'.join(map(str, cfg.channels()))} "
        f"residual_blocks={cfg.num_residual_blocks}",
        "parameters": f"{loaded.net.num_parameters():,}",
        "training steps": loaded.info.get("steps", "unknown"),
        "style image": loaded.info.get("style_image", "unknown"),
    }
    for key in ("image_size", "style_size", "loss", "content_layers", "style_layers", "init_from", "init_steps"):
        if key in loaded.info:
            rows[key.replace("_", " ")] = loaded.info[key]
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fastnst.inference import pick_device
    from fastnst.io import ImageReadError, pil_to_tensor, read_image, resize_long_side, save_image, tensor_to_pil
    from fastnst.models.vgg import VGGFeatures, WeightsError
    from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, GatysConfig, gatys

    target = Path(args.output).expanduser()
    if target.exists() and not args.overwrite:
        return fail(f"{target} exists; use --overwrite to replace it")
    if target.resolve() in {Path(args.content).resolve(), Path(args.style).resolve()}:
        return fail(f"{target} would overwrite an input")
    try:
        device = pick_device(args.device)
        content = pil_to_tensor(resize_long_side(read_image(args.content), args.size)).unsqueeze(0).to(device)
        style = (
            pil_to_tensor(resize_long_side(read_image(args.style), args.style_size or args.size))
            .unsqueeze(0)
            .to(device)
        )
        vgg = VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS], weights=args.vgg).to(device)
    except (ImageReadError, WeightsError, ValueError) as exc:
        return fail(str(exc))
    config = GatysConfig(
        steps=args.steps, optimizer=args.optimizer, lr=args.lr, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, coarse_to_fine=args.coarse_to_fine,
    )  # fmt: skip
    started = time.perf_counter()
    with Progress(TextColumn("[bold]optimize"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("loss {task.fields[loss]}")) as progress:  # fmt: skip
        task = progress.add_task("optimize", total=args.steps, loss="")
        result = gatys(
            content, style, vgg, config, lambda step, loss: progress.update(task, completed=step, loss=f"{loss:.4g}")
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(tensor_to_pil(result.cpu()), target)
    print(
        f"wrote {target} ({args.steps} {args.optimizer} steps in {time.perf_counter() - started:.1f} s on {device.type})"
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fastnst.checkpoint import CheckpointError
    from fastnst.evaluate import checkpoint_labels, evaluate
    from fastnst.inference import Stylizer
    from fastnst.io import ImageReadError, default_cache_dir
    from fastnst.optimize import GatysConfig

    inputs, problems = expand_inputs(args.images)
    for problem in problems:
        print(f"fastnst: {problem}", file=sys.stderr)
    photos = [path for path, _ in inputs][: args.max_images]
    if not photos:
        return fail("no photos to evaluate; give files, folders or globs with --images")
    try:
        paths = [Path(ckpt) for ckpt in args.ckpt]
        stylizers = {
            label: Stylizer.from_checkpoint(path, device=args.device, precision=args.precision)
            for label, path in zip(checkpoint_labels(paths), paths)
        }
        report = evaluate(
            stylizers, Path(args.style), photos, Path(args.output_dir), size=args.size,
            compare_optimize=args.compare_optimize, optimize_config=GatysConfig(steps=args.optimize_steps),
            progress=lambda message: print(message, file=sys.stderr),
            cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        )  # fmt: skip
    except (CheckpointError, ImageReadError, ValueError) as exc:
        return fail(str(exc))
    for method, s in report["mean"].items():
        print(
            f"{method:12s} mean style distance {s['style_distance']:.1f}, content distance {s['content_distance']:.1f}, "
            f"SSIM {s['ssim']:.3f}, {s['ms']:.1f} ms/image"
        )
    print(
        f"report: {Path(args.output_dir) / 'report.md'}, contact sheet: {Path(args.output_dir) / 'contact_sheet.png'}"
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from fastnst.checkpoint import CheckpointError
    from fastnst.export import export_network

    target = Path(args.output).expanduser()
    if target.exists() and not args.overwrite:
        return fail(f"{target} exists; use --overwrite to replace it")
    try:
        report = export_network(args.ckpt, target, args.format)
    except (CheckpointError, ImportError, ValueError) as exc:
        return fail(str(exc))
    print(report)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # Hydra parses the rest: overrides, --cfg job, --help ...
        try:
            from fastnst.training.train import cli as train_cli
        except ImportError as exc:
            return fail(
                f"fastnst train needs the training extras ({exc.name} is missing): pip install 'fastnst[train]'"
            )
        return train_cli(argv[1:])
    args = build_parser().parse_args(argv)
    commands = {
        "stylize": cmd_stylize,
        "info": cmd_info,
        "export": cmd_export,
        "optimize": cmd_optimize,
        "evaluate": cmd_evaluate,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
