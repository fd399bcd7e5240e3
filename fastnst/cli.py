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
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str) -> int:
    print(f"fastnst: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    parser.add_argument(
        "--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
        help="auto (default): on a CPU the fastest installed backend and precision, measured on this machine "
        "on first use and cached; on a GPU torch fp16",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="auto: measured (the default with --backend auto); otherwise fp16 on GPUs and fp32 on CPUs. "
        "int8: OpenVINO, only for a network whose int8 pictures passed the check against fp32",
    )  # fmt: skip
    parser.add_argument("--recalibrate", action="store_true", help="--backend auto: measure again on this machine")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (pays off on many images)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnst", description="Fast feed-forward neural style transfer.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "bench", help="benchmark tables: fastnst bench --sections first_use backends dataset ...", add_help=False
    )  # fmt: skip; handled before parsing
    sub.add_parser(
        "train",
        help="train a style network: fastnst train style=NAME [key=value ...] | --resume RUN_DIR",
        add_help=False,
    )  # fmt: skip; handled before parsing (Hydra reads its own command line)

    add_stylize_parser(sub)
    add_info_parser(sub)
    add_optimize_parser(sub)
    add_evaluate_parser(sub)
    add_serve_parser(sub)
    add_stylize_dataset_parser(sub)
    add_styles_parser(sub)
    add_export_parser(sub)
    return parser


def add_stylize_parser(sub) -> None:
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
    st.add_argument(
        "--style",
        help="multi-style and any-painting networks: a style, a mix (starry_night=0.7,great_wave=0.3) "
        "or all (one output each)",
    )
    st.add_argument(
        "--style-image", help="any-painting networks (checkpoints/arbitrary.safetensors): your own painting"
    )
    add_fit_argument(st, "--style-image: ")
    st.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    add_runtime_options(st)


def add_info_parser(sub) -> None:
    info = sub.add_parser("info", help="describe a checkpoint: its architecture, training and model card")
    info.add_argument("--ckpt", required=True, nargs="+")
    info.add_argument("--table", action="store_true", help="a markdown table of several networks' model cards")


def add_optimize_parser(sub) -> None:
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


def add_evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="score a network against its painting, write a report and a contact sheet")
    ev.add_argument("--ckpt", required=True, nargs="+", help="one network, or several to compare side by side")
    ev.add_argument("--style", help="the painting the network was trained on (or that an any-painting network takes)")
    ev.add_argument("--paintings", help="a folder of paintings: every painting x every photo (any-painting networks)")
    ev.add_argument("--max-paintings", type=int, default=8)
    ev.add_argument("--held-out", type=float, default=None,
                    help="--paintings: only the share a training run with data.style_held_out=SHARE never saw")  # fmt: skip
    add_fit_argument(ev, "--paintings: each painting's style fitted before it is scored; ")
    ev.add_argument("--images", nargs="+", required=True, help="photos: files, folders or globs")
    ev.add_argument("-o", "--output-dir", default="report")
    ev.add_argument("--size", type=int, default=384, help="long side of the photos (default 384)")
    ev.add_argument("--style-size", type=int, default=512, help="long side of the painting (default 512)")
    ev.add_argument("--max-images", type=int, default=8)
    ev.add_argument("--compare-optimize", action="store_true", help="also run Gatys on each photo")
    ev.add_argument(
        "--frontier", action="store_true",
        help="Gatys at every style:content ratio the networks were trained at; both drawn as curves (frontier.png)",
    )  # fmt: skip
    ev.add_argument("--optimize-steps", type=int, default=500)
    ev.add_argument(
        "--cache-dir", type=Path, default=None,
        help="where Gatys results are kept for the next evaluation (default $FASTNST_CACHE_DIR or ~/.cache/fastnst)",
    )  # fmt: skip
    ev.add_argument("--no-cache", action="store_true", help="always run Gatys, keep nothing")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ev.add_argument("--backend", choices=["torch", "onnxruntime", "openvino"], default="torch")
    ev.add_argument("--network-style", help="multi-style networks: the style (or mix) to score")
    ev.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"], default="fp32",
                    help="fp32 by default, so quality is judged apart from speed; int8 with --backend openvino")  # fmt: skip


def add_serve_parser(sub) -> None:
    sv = sub.add_parser("serve", help="an HTTP API and a web page to try every style (pip install 'fastnst[serve]')")
    sv.add_argument("--ckpt", nargs="+", help="networks to serve (default: every checkpoints/*.safetensors)")
    sv.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only); 0.0.0.0 to share")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-megapixels", type=float, default=40.0, help="larger photos get 413 (default 40)")
    sv.add_argument("--max-upload-mb", type=float, default=25.0, help="larger uploads get 413 (default 25)")
    sv.add_argument("--max-batch", type=int, default=8, help="most requests in one forward pass (default 8)")
    sv.add_argument("--batch-wait-ms", type=float, default=5.0, help="longest a request waits for a batch (default 5)")
    add_runtime_options(sv)


def add_stylize_dataset_parser(sub) -> None:
    ds = sub.add_parser("stylize-dataset", help="stylize a whole folder tree, resumably (locally or on Ray)")
    ds.add_argument("src", help="the dataset's folder (class-per-folder trees keep their labels)")
    ds.add_argument("dst", help="where the stylized tree, manifest.csv and manifest.parquet go")
    ds.add_argument("--ckpt", required=True, help="a network (checkpoints/arbitrary.safetensors for --style-images)")
    ds.add_argument("--style", help="a style, a mix a=0.7,b=0.3, or a list a,b,c to draw one from per image")
    ds.add_argument("--style-images", help="a folder of paintings: one drawn per image (any-painting networks)")
    ds.add_argument("--seed", type=int, default=0, help="the draw depends only on (seed, relative path)")
    ds.add_argument("--format", choices=["same", "jpg", "png"], default="same", help="output format (default: same)")
    ds.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    ds.add_argument("--size", type=int, help="resize so the long side is PX before stylizing")
    ds.add_argument("--strength", type=float, default=1.0, help="amount of style in [0, 1]")
    ds.add_argument("--preserve-color", action="store_true", help="keep the photos' colours")
    ds.add_argument("--batch-size", type=int, default=4, help="images of one size and style per forward pass")
    ds.add_argument("--engine", choices=["local", "ray"], default="local")
    ds.add_argument("--address", help="--engine ray: the cluster to join (default: a local one)")
    ds.add_argument("--actors", type=int, help="--engine ray: actors, each loading the network once (default: CPUs/2)")
    ds.add_argument("--overwrite", action="store_true", help="redo every image, start a new manifest")
    ds.add_argument("--quiet", action="store_true", help="no progress bar")
    add_runtime_options(ds)


def add_fit_argument(parser, prefix: str = "") -> None:
    """``--fit``, ``--fit-steps N`` and ``--fit-photos DIR``: a painting's predicted style refined on the painting."""
    parser.add_argument("--fit", action="store_true",
                        help=f"{prefix}refine the predicted style on the painting itself (100 steps: about 45 s on "
                             "2 cores, once; kept): texture much nearer the painting's")  # fmt: skip
    parser.add_argument("--fit-steps", type=int, default=100, metavar="N", help="--fit: steps (default 100)")
    parser.add_argument("--fit-photos", default=None, metavar="DIR",
                        help="photos to fit on (default: the four shipped with fastnst)")  # fmt: skip


def progress_bar(*columns, quiet: bool = False, transient: bool = False):
    """A rich progress bar on stderr, drawn only on a terminal: piped into a file or a CI log, the lines
    around it are all that is written, with no frozen or half-drawn bars between them."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    return Progress(*columns, console=console, transient=transient, disable=quiet or not console.is_terminal)


def requested_fit_steps(args: argparse.Namespace) -> int:
    """``--fit-steps`` when ``--fit`` is given, else 0 (no fit).

    Raises:
        ValueError: fewer than 1 step (one line).
    """
    if not args.fit:
        return 0
    if args.fit_steps < 1:
        raise ValueError(f"--fit-steps {args.fit_steps}: give a number of steps >= 1 (100 take about 45 s on 2 cores)")
    return args.fit_steps


def fit_style(stylizer, painting: str, steps: int, photos: str | None, quiet: bool = False):
    """The painting's fitted embedding (``steps`` from :func:`requested_fit_steps`), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    with progress_bar(TextColumn(f"[bold]fitting {Path(painting).name}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), quiet=quiet, transient=True) as progress:  # fmt: skip
        task = progress.add_task("fit", total=steps)
        return stylizer.fit_style(
            painting, steps, photos, on_step=lambda step, _: progress.update(task, completed=step)
        )


def add_styles_parser(sub) -> None:
    sy = sub.add_parser("styles", help="your own paintings as named styles of the any-painting network")
    sy_sub = sy.add_subparsers(dest="styles_command", required=True)
    add = sy_sub.add_parser("add", help="keep a painting as a named style: fastnst styles add NAME painting.jpg")
    add.add_argument("name", help="the style's name (letters, digits, _ . -)")
    add.add_argument("painting", help="the painting's image file")
    add_fit_argument(add)
    listing = sy_sub.add_parser("list", help="the network's stored styles and the ones you added")
    for styles_parser in (add, listing):
        styles_parser.add_argument("--ckpt", default=None, help="an any-painting network (default: the shipped one)")


def add_export_parser(sub) -> None:
    ex = sub.add_parser("export", help="export a network to safetensors, ONNX or TorchScript")
    ex.add_argument("--ckpt", required=True, nargs="+",
                    help="a network; several checkpoints of one run: their weights averaged")  # fmt: skip
    ex.add_argument("--format", required=True, choices=["safetensors", "onnx", "torchscript"])
    ex.add_argument("-o", "--output", required=True, help="destination file")
    ex.add_argument("--half", action="store_true", help="safetensors: fp16 weights, half the file (as shipped)")
    ex.add_argument("--overwrite", action="store_true")


def painting_label(path: str) -> str:
    """A painting's file name as a style label for output names (``Monet Water-lilies.jpg`` -> ``Monet_Water-lilies``)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("_.") or "painting"


def prepare_stylize(args: argparse.Namespace):
    """(stylizer, options, plan) for ``fastnst stylize``: the network on its backend and every job.

    Raises:
        CheckpointError, BackendError, OptionsError, ValueError: a one-line reason.
    """
    from fastnst.stylize import pipeline
    from fastnst.stylize.stylizer import Stylizer

    options = pipeline.StylizeOptions(
        output_dir=Path(args.output_dir), output=Path(args.output) if args.output else None, size=args.size,
        scale=args.scale, batch_size=args.batch_size, tile=args.tile, strength=args.strength,
        preserve_color=args.preserve_color, stable=args.stable, overwrite=args.overwrite, style=args.style,
    )  # fmt: skip
    options.validate()
    backend = "torch" if args.backend == "auto" and (args.compile or args.precision == "fp16") else args.backend
    stylizer = Stylizer.from_checkpoint(
        args.ckpt, backend=backend, device=args.device, precision=args.precision, compile=args.compile,
        needs_norm_statistics=bool(args.tile or args.stable), recalibrate=args.recalibrate,
    )  # fmt: skip
    if args.style_image:
        if args.style:
            raise pipeline.OptionsError("give --style or --style-image, not both")
        steps = requested_fit_steps(args)
        fitted = fit_style(stylizer, args.style_image, steps, args.fit_photos, args.quiet) if steps else None
        options.style = stylizer.add_style(painting_label(args.style_image), args.style_image, fitted)
    elif args.fit:
        raise pipeline.OptionsError("--fit refines a painting's style: give --style-image too")
    pipeline.check_options(stylizer, options)
    return stylizer, options, pipeline.plan_jobs(args.inputs, stylizer.style, options, stylizer.styles)


class StylizeProgress:
    """A progress bar over the pipeline's jobs: images, each video's frames, a huge image's tiles."""

    def __init__(self, plan, quiet: bool, tiled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        self.images = sum(1 for job in plan.jobs if not job.is_video)
        self.bar = progress_bar(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[name]}"),
            quiet=quiet or (len(plan.jobs) < 2 and not tiled and self.images == len(plan.jobs)),
        )  # fmt: skip
        self.tasks: dict[str, object] = {}

    def on_start(self, job) -> None:
        if job.is_video:
            self.tasks["video"] = self.bar.add_task(job.source.name, total=None, name="frames")
        else:
            self.tasks.setdefault("images", self.bar.add_task("stylize", total=self.images, name=""))
            self.bar.update(self.tasks["images"], name=job.source.name)

    def on_tiles(self, done: int, total: int) -> None:
        if "tiles" not in self.tasks:
            self.tasks["tiles"] = self.bar.add_task("tiles", total=total, name="")
        self.bar.update(self.tasks["tiles"], completed=done)
        if done == total:
            self.bar.remove_task(self.tasks.pop("tiles"))

    def on_frames(self, job, done: int, total: int) -> None:
        self.bar.update(self.tasks["video"], completed=done, total=total)

    def advance(self) -> None:
        if "images" in self.tasks:
            self.bar.advance(self.tasks["images"])


def video_line(event, stable: bool) -> str:
    r = event.report
    return (
        f"{event.job.target}: {r.frames} frames at {r.width}x{r.height}, {r.fps:g} fps, "
        f"audio {'copied' if r.audio_copied else 'none'}; {r.frames_per_second:.1f} frames/s; "
        f"flicker {r.flicker_ratio:.3f} of the input's{' (--stable)' if stable else ''}"
    )


def cmd_stylize(args: argparse.Namespace) -> int:
    """Render the pipeline's events: messages on stderr, a progress bar, a summary line."""
    from fastnst.backends.base import BackendError
    from fastnst.checkpoint import CheckpointError
    from fastnst.stylize import pipeline

    try:
        stylizer, options, plan = prepare_stylize(args)
    except (CheckpointError, BackendError, pipeline.OptionsError, ValueError, RuntimeError, ImportError) as exc:
        return fail(str(exc))
    failures = list(plan.failed)
    for problem in [*plan.failed, *plan.skipped]:
        print(f"fastnst: {problem}", file=sys.stderr)
    progress = StylizeProgress(plan, args.quiet, bool(args.tile))
    written, busy_ms, pixels, videos = 0, 0.0, 0, 0
    started = time.perf_counter()
    try:
        with progress.bar:
            for event in pipeline.run(stylizer, plan, options, on_start=progress.on_start,
                                      tile_progress=progress.on_tiles, frame_progress=progress.on_frames):  # fmt: skip
                if isinstance(event, pipeline.Failed):
                    failures.append(event)
                    progress.bar.console.print(f"fastnst: {event}", style="red", highlight=False, soft_wrap=True)
                elif isinstance(event, pipeline.VideoWritten):
                    videos += 1
                    print(video_line(event, options.stable))
                    continue
                else:
                    written, busy_ms, pixels = written + 1, busy_ms + event.ms, pixels + event.pixels
                progress.advance()
    except KeyboardInterrupt:
        print(f"\nfastnst: interrupted; {written} images written, no partial files left", file=sys.stderr)
        return EXIT_INTERRUPTED
    if written:
        print(
            f"stylized {written} image{'s' * (written != 1)} with '{stylizer.style}' on {stylizer.device.type} "
            f"({stylizer.choice.describe() + ', auto' if stylizer.choice else stylizer.backend.describe()}): "
            f"{busy_ms / written:.1f} ms/image in the network, "
            f"{pixels / 1e3 / max(busy_ms, 1e-6):.2f} MP/s; {time.perf_counter() - started:.1f} s in all; "
            f"output in {options.output or options.output_dir}"
        )
    return stylize_status(plan, failures, written + videos)


def stylize_status(plan, failures: list, done: int) -> int:
    """Say what was kept or failed; the exit status (1 when anything failed or nothing was done)."""
    kept = sum(1 for s in plan.skipped if s.kind == "kept")
    if kept:
        print(f"kept {kept} existing output{'s' * (kept != 1)}")
    if failures:
        print(f"{len(failures)} failed", file=sys.stderr)
        return EXIT_FAILED
    if not done and not kept:
        print("nothing to stylize", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def card_rows(card: dict) -> dict[str, str]:
    """A model card as ``fastnst info`` rows: the painting, the recipe, each evaluation figure."""
    rows = {}
    painting = card.get("painting") or {}
    if painting:
        rows["painting (card)"] = (
            f"{painting.get('artist', '?')}, {painting.get('title', '?')} ({painting.get('year', '?')})"
        )
        rows["painting source"] = painting.get("source", "unknown")
    if card.get("recipe"):
        rows["recipe"] = card["recipe"]
    for key, value in (card.get("evaluation") or {}).items():
        rows[f"evaluation: {key.replace('_', ' ')}"] = value
    return rows


def style_table(paths: list[Path]) -> str:
    """The README's table of shipped networks, from their model cards."""
    from fastnst.checkpoint import load_network

    lines = ["| network | painting | texture | content | colour kept |", "| --- | --- | --- | --- | --- |"]
    for path in paths:
        info = load_network(path).info
        card = info.card or {}
        painting = card.get("painting") or {}
        what = (f"{painting['artist']}, *{painting['title']}* ({painting['year']})" if painting
                else card.get("description", ""))  # fmt: skip
        e = card.get("evaluation") or {}
        cells = [f"{v:{f}}" if isinstance(v, float) else str(v) for v, f in (
            (e.get("style_distance", ""), ".3f"), (e.get("content_distance", ""), ".3f"), (e.get("color_kept", ""), ".2f"))]  # fmt: skip
        lines.append(f"| `{info.style or path.stem}` | {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    if args.table:
        from fastnst.checkpoint import CheckpointError

        try:
            print(style_table([Path(p) for p in args.ckpt]))
        except CheckpointError as exc:
            return fail(str(exc))
        return EXIT_OK
    if len(args.ckpt) > 1:
        return fail("give one --ckpt, or several with --table")
    args.ckpt = args.ckpt[0]
    return describe(args)


def describe(args: argparse.Namespace) -> int:
    from fastnst.checkpoint import CheckpointError, load_network, network_spec

    try:
        loaded = load_network(args.ckpt)
    except CheckpointError as exc:
        return fail(str(exc))
    info, spec = loaded.info, network_spec(loaded.net)
    config = " ".join(f"{k}={v}" for k, v in spec.items() if k != "arch")
    channels = getattr(loaded.net.config, "channels", None)
    rows = {
        "file": str(loaded.path),
        "style": loaded.style,
        "architecture": f"{spec['arch']} ({type(loaded.net).__name__}) {config}"
        + (f" channels={'-'.join(map(str, channels()))}" if channels else ""),
        "parameters": f"{sum(p.numel() for p in loaded.net.parameters()):,}",
        "training steps": info.steps if info.steps is not None else "unknown",
    }
    paintings = info.extra.get("paintings") or {}
    if getattr(loaded.net, "styles", None):
        rows["styles"] = ", ".join(loaded.net.styles)
    if paintings:  # a multi-style network: one row per style's painting
        for name, p in paintings.items():
            rows[f"painting {name}"] = (
                f"{p.get('file', 'unknown')} (sha256 {str(p.get('sha256'))[:12]}, {p.get('size')} px)"
            )
    else:
        rows["painting"] = info.style_image or "unknown"
        if info.style_image_sha256:
            rows["painting sha256"] = info.style_image_sha256
    for key in ("style_size", "image_size", "loss", "content_layers", "style_layers", "init_from", "init_steps"):
        if getattr(info, key) is not None:
            rows[key.replace("_", " ")] = getattr(info, key)
    rows.update(card_rows(info.card or {}))
    rows.update({k: v for k, v in info.extra.items() if k not in rows and k != "paintings"})
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from fastnst.backends.torch_backend import pick_device
    from fastnst.io import ImageReadError, load_image, save_image, tensor_to_pil
    from fastnst.models.vgg import VGGFeatures, WeightsError
    from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, GatysConfig, gatys

    target = Path(args.output).expanduser()
    if target.exists() and not args.overwrite:
        return fail(f"{target} exists; use --overwrite to replace it")
    if target.resolve() in {Path(args.content).resolve(), Path(args.style).resolve()}:
        return fail(f"{target} would overwrite an input")
    try:
        device = pick_device(args.device)
        content = load_image(args.content, args.size).to(device)
        style = load_image(args.style, args.style_size or args.size).to(device)
        vgg = VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS], weights=args.vgg).to(device)
    except (ImageReadError, WeightsError, ValueError) as exc:
        return fail(str(exc))
    config = GatysConfig(
        steps=args.steps, optimizer=args.optimizer, lr=args.lr, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, coarse_to_fine=args.coarse_to_fine,
    )  # fmt: skip
    started = time.perf_counter()
    with progress_bar(TextColumn("[bold]optimize"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
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


def paintings_to_score(args: argparse.Namespace) -> list[Path]:
    """The paintings of ``--paintings`` (only the held-out share with ``--held-out``), at most ``--max-paintings``
    spread evenly over the sorted list.

    Raises:
        ValueError: no such folder, or no painting in it (one line).
    """
    from fastnst.data import find_images, split_held_out

    paintings = find_images(args.paintings)
    if args.held_out:
        paintings = split_held_out(paintings, args.paintings, args.held_out)[1]
    if not paintings:
        raise ValueError(
            f"{args.paintings}: no paintings to score" + (" in its held-out share" if args.held_out else "")
        )
    step = max(1, len(paintings) // args.max_paintings)  # spread over the folders (movements), not the first few
    return paintings[::step][: args.max_paintings]


def report_paintings(
    stylizers: dict, paintings: list[Path], photos: list[Path], output_dir: Path, options, fit_steps: int = 0,
    fit_photos: str | None = None,
) -> int:  # fmt: skip
    """``fastnst evaluate --paintings``: a report per painting, then the means over the paintings."""
    from fastnst.evaluation import evaluate_paintings

    summary = evaluate_paintings(stylizers, paintings, photos, output_dir, fit_steps=fit_steps, fit_photos=fit_photos,
                                 **options)  # fmt: skip
    for method, s in summary["mean"].items():
        print(f"{method:12s} over {len(paintings)} paintings x {len(photos)} photos: style {s['style_distance']:.3f}, "
              f"content {s['content_distance']:.3f}, colour kept {s['color_kept']:.2f}, {s['ms']:.1f} ms/image")  # fmt: skip
    print(f"summary: {output_dir / 'summary.md'}, a report per painting in {output_dir}/<painting>/")
    return EXIT_OK


def evaluation_stylizers(args: argparse.Namespace) -> dict:
    """The networks to score by label, each told its style: an any-painting network takes the painting
    (``--style``; with ``--paintings`` each in turn), a multi-style one ``--network-style``.

    Raises:
        CheckpointError, BackendError, ValueError: one line.
    """
    from fastnst.evaluation import checkpoint_labels
    from fastnst.stylize.stylizer import Stylizer

    if bool(args.style) == bool(args.paintings):
        raise ValueError("give the painting with --style, or a folder of them with --paintings")
    paths = [Path(ckpt) for ckpt in args.ckpt]
    stylizers = {
        label: Stylizer.from_checkpoint(path, backend=args.backend, device=args.device, precision=args.precision)
        for label, path in zip(checkpoint_labels(paths), paths)
    }
    for stylizer in stylizers.values():
        if stylizer.painter is not None and not args.network_style and args.style:
            stylizer.default_style = stylizer.add_style(Path(args.style).stem, args.style)
        elif stylizer.styles and not (stylizer.painter is not None and args.paintings):
            if not args.network_style:
                raise ValueError(f"{stylizer.style} is a multi-style network: add --network-style with one of "
                                 f"{', '.join(stylizer.styles)}")  # fmt: skip
            stylizer.style_weights(args.network_style, 1)  # unknown names fail here, in one line
            stylizer.default_style = args.network_style
    return stylizers


def gatys_bar():
    """One progress bar per Gatys run (minutes each on a CPU), reset for each run; messages print above it."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    bar = progress_bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)  # fmt: skip
    task = bar.add_task("", total=None, visible=False)

    def on_gatys_step(what: str, step: int, steps: int) -> None:
        if bar.tasks[0].description != what:
            bar.reset(task, total=steps, description=what, visible=True)
        bar.update(task, completed=step)

    return bar, on_gatys_step


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fastnst.backends.base import BackendError
    from fastnst.checkpoint import CheckpointError
    from fastnst.evaluation import evaluate, gatys_steps_sentence
    from fastnst.io import ImageReadError, default_cache_dir
    from fastnst.optimize import GatysConfig
    from fastnst.stylize.pipeline import expand_inputs

    inputs, skipped, failed = expand_inputs(args.images)
    for problem in [*failed, *skipped]:
        print(f"fastnst: {problem}", file=sys.stderr)
    photos = [path for path, _ in inputs][: args.max_images]
    if not photos:
        return fail("no photos to evaluate; give files, folders or globs with --images")
    try:
        stylizers = evaluation_stylizers(args)
        bar, on_gatys_step = gatys_bar()
        options = dict(
            size=args.size, style_size=args.style_size, compare_optimize=args.compare_optimize,
            optimize_config=GatysConfig(steps=args.optimize_steps), on_gatys_step=on_gatys_step,
            progress=lambda line: bar.console.print(line, markup=False, highlight=False, soft_wrap=True),
            cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()), frontier=args.frontier,
        )  # fmt: skip
        fit_steps = requested_fit_steps(args)
        with bar:
            if args.paintings:
                return report_paintings(stylizers, paintings_to_score(args), photos, Path(args.output_dir), options,
                                        fit_steps, args.fit_photos)  # fmt: skip
            report = evaluate(stylizers, Path(args.style), photos, Path(args.output_dir), **options)
    except (CheckpointError, BackendError, ImageReadError, ValueError, ImportError) as exc:
        return fail(str(exc))
    for method, s in report["mean"].items():
        layers = " ".join(f"{name} {value:.3f}" for name, value in s["layers"].items())
        print(
            f"{method:12s} style {s['style_distance']:.3f} ({layers}), content {s['content_distance']:.3f}, "
            f"colour kept {s['color_kept']:.2f}, objective {s['objective']:.3f}, SSIM {s['ssim']:.3f}, "
            f"{s['ms']:.1f} ms/image" + gatys_steps_sentence(report, method)
        )
    print(
        f"report: {Path(args.output_dir) / 'report.md'}, contact sheet: {Path(args.output_dir) / 'contact_sheet.png'}"
    )
    return EXIT_OK


def default_checkpoints() -> list[Path]:
    """``checkpoints/*.safetensors`` of the working directory, else of the checkout holding fastnst."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        found = sorted((root / "checkpoints").glob("*.safetensors"))
        if found:
            return found
    return []


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from fastnst.serve.app import Limits, create_app
    except ImportError as exc:
        return fail(f"fastnst serve needs FastAPI and uvicorn ({exc.name} is missing): pip install 'fastnst[serve]'")
    from fastnst.backends.base import BackendError
    from fastnst.checkpoint import CheckpointError
    from fastnst.stylize.stylizer import Stylizer

    paths = [Path(p) for p in args.ckpt] if args.ckpt else default_checkpoints()
    if not paths:
        return fail("no networks to serve: give --ckpt FILE ... or run from a folder with checkpoints/*.safetensors")
    from fastnst.backends.torch_backend import pick_device
    from fastnst.serve.warmup import switch_in_background

    # auto on a CPU: serve on torch fp32 at once, measure and switch in the background
    later = args.backend == "auto" and args.precision in (None, "auto") and pick_device(args.device).type == "cpu"
    stylizers, sources = {}, {}
    try:
        for path in paths:
            stylizer = Stylizer.from_checkpoint(
                path, backend="torch" if later else args.backend, device=args.device,
                precision="fp32" if later else args.precision, recalibrate=args.recalibrate,
            )  # fmt: skip
            name = stylizer.style if stylizer.style not in stylizers else path.stem
            stylizers[name], sources[name] = stylizer, path
    except (CheckpointError, BackendError, ValueError, ImportError) as exc:
        return fail(str(exc))
    status = switch_in_background(stylizers, sources, recalibrate=args.recalibrate)[0] if later else None
    limits = Limits(max_pixels=int(args.max_megapixels * 1e6), max_upload_bytes=int(args.max_upload_mb * 2**20))
    app = create_app(stylizers, limits, max_batch=args.max_batch, max_wait_ms=args.batch_wait_ms, warmup=status)
    first = next(iter(stylizers.values()))
    how = first.choice.describe() + ", auto" if first.choice else first.backend.describe()
    how += "; measuring the backends in the background" if later else ""
    print(f"serving {', '.join(stylizers)} on http://{args.host}:{args.port} ({first.device.type}, {how}); "
          f"API at http://{args.host}:{args.port}/docs", flush=True)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def cmd_stylize_dataset(args: argparse.Namespace) -> int:
    """Stylize a folder tree with a progress bar (images/s, ETA); exit 1 when any input failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from fastnst.backends.base import BackendError
    from fastnst.checkpoint import CheckpointError
    from fastnst.dataset import DatasetError, DatasetOptions, stylize_dataset

    if args.style and args.style_images:
        return fail("give --style or --style-images, not both")
    options = DatasetOptions(
        src=args.src, dst=args.dst, ckpt=args.ckpt, style=args.style, style_images=args.style_images, seed=args.seed,
        fmt=args.format, quality=args.quality, size=args.size, strength=args.strength,
        preserve_color=args.preserve_color, batch_size=max(1, args.batch_size), overwrite=args.overwrite,
        backend=args.backend, precision=args.precision,
    )  # fmt: skip
    bar = progress_bar(TextColumn("[bold]stylize-dataset"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), quiet=args.quiet)  # fmt: skip
    task = bar.add_task("images", total=None, rate="")
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        bar.update(task, completed=done, total=total, rate=f"{rate:.1f} images/s")

    try:
        with bar:
            summary = stylize_dataset(options, engine=args.engine, on_progress=progress,
                                      **({"address": args.address, "actors": args.actors} if args.engine == "ray" else {}))  # fmt: skip
    except (DatasetError, CheckpointError, BackendError, ValueError, ImportError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("\nfastnst: interrupted; what was written is in the manifest, run again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"stylized {summary.written} images ({summary.images_per_second:.1f}/s, {summary.backend}, "
          f"{args.engine} engine); kept {summary.kept} from an earlier run; {len(summary.failed)} failed; "
          f"manifest: {', '.join(map(str, summary.manifest))}")  # fmt: skip
    for row in summary.failed:
        print(f"fastnst: failed: {row['source']}: {row['error']}", file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_styles(args: argparse.Namespace) -> int:
    """``fastnst styles add NAME painting`` / ``fastnst styles list``."""
    from fastnst.checkpoint import CheckpointError
    from fastnst.io import file_sha256
    from fastnst.stylize.paintings import UserStyles
    from fastnst.stylize.stylizer import Stylizer

    ckpt = (
        Path(args.ckpt) if args.ckpt else Path(__file__).resolve().parents[1] / "checkpoints" / "arbitrary.safetensors"
    )
    try:
        stylizer = Stylizer.from_checkpoint(ckpt, backend="torch", device="cpu")
        if stylizer.painter is None:
            return fail(f"{ckpt}: not an any-painting network; give --ckpt checkpoints/arbitrary.safetensors")
        store = UserStyles()
        if args.styles_command == "add":
            steps = requested_fit_steps(args)
            embedding = (
                fit_style(stylizer, args.painting, steps, args.fit_photos) if steps else stylizer.embed(args.painting)
            )
            store.add(args.name, Path(args.painting), file_sha256(args.painting), stylizer.network_sha256, embedding,
                      fit_steps=steps)  # fmt: skip
            print(f"added style '{args.name}' from {args.painting} to {store.path}; "
                  f"use it with: fastnst stylize --ckpt {ckpt} --style {args.name} photo.jpg")  # fmt: skip
            return EXIT_OK
        user = store.load()
        for name in stylizer.styles:
            entry = user.get(name)
            fitted = f", fitted {entry['fit_steps']} steps" if entry and entry.get("fit_steps") else ""
            where = f"added {entry['added']} from {entry['painting']}{fitted}" if entry else "stored in the network"
            print(f"{name:<28} {where}")
        missing = [n for n in user if n not in stylizer.styles]
        for name in missing:
            print(f"{name:<28} added from {user[name]['painting']} for another network; add it again for this one")
    except (CheckpointError, ValueError, OSError) as exc:
        return fail(str(exc))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from fastnst.checkpoint import CheckpointError
    from fastnst.export import export_network

    target = Path(args.output).expanduser()
    if target.exists() and not args.overwrite:
        return fail(f"{target} exists; use --overwrite to replace it")
    try:
        report = export_network(args.ckpt, target, args.format, half=args.half)
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
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from fastnst.bench import main as bench

        bench(argv[1:])
        return EXIT_OK
    args = build_parser().parse_args(argv)
    commands = {
        "stylize": cmd_stylize,
        "info": cmd_info,
        "export": cmd_export,
        "optimize": cmd_optimize,
        "evaluate": cmd_evaluate,
        "serve": cmd_serve,
        "styles": cmd_styles,
        "stylize-dataset": cmd_stylize_dataset,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
