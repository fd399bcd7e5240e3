"""Distil single-style networks into one multi-style network on the CPU (conditional instance norm).

    python scripts/distill_multi.py --data ../shared/data/photos --exclude "bsds500/test/*" \
        --steps 3000 --run-dir runs/distill -o checkpoints/multi_style.safetensors

The student starts from the first teacher's convolutions and each teacher's own instance-norm
(γ, β) as its style's row, then learns to reproduce every teacher: pixel MSE plus VGG feature MSE
(relu1_1, relu2_1, relu3_1) between the student's picture in style s and teacher s's, each sample
of a batch in a random style. Resumable: ``--run-dir`` keeps ``last.pt`` (weights, optimiser, step);
SIGTERM or Ctrl-C saves it and stops.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fastnst.checkpoint import NetworkInfo, load_network, save_network
from fastnst.data import ImageFolderDataset, StreamSampler, collate, find_images
from fastnst.io import atomic_path
from fastnst.models.multi_style import ConditionalInstanceNorm, MultiStyleNet, MultiStyleNetConfig
from fastnst.models.transformer_net import InstanceNorm
from fastnst.models.vgg import VGGFeatures

ROOT = Path(__file__).resolve().parents[1]  # the checkout

FEATURES = ("relu1_1", "relu2_1", "relu3_1")


def student_from(teachers: dict) -> MultiStyleNet:
    """The first teacher's convolutions, and every teacher's norm (γ, β) as its style's row."""
    names = list(teachers)
    first = teachers[names[0]]
    config = MultiStyleNetConfig(width=first.config.width, num_residual_blocks=first.config.num_residual_blocks,
                                 styles=tuple(names))  # fmt: skip
    student = MultiStyleNet(config)
    own = {k: v for k, v in first.state_dict().items()}
    state = student.state_dict()
    student_norms = [m for m in student.modules() if isinstance(m, ConditionalInstanceNorm)]
    for key, value in own.items():
        if key in state and state[key].shape == value.shape:
            state[key] = value.clone()
    student.load_state_dict(state)
    with torch.no_grad():
        for index, name in enumerate(names):
            norms = [m for m in teachers[name].modules() if isinstance(m, InstanceNorm)]
            for cin, norm in zip(student_norms, norms):
                cin.weight[index].copy_(norm.weight)
                cin.bias[index].copy_(norm.bias)
    return student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "teachers", nargs="*", type=Path, help="default: every checkpoints/*.safetensors but multi_style"
    )
    parser.add_argument("--data", required=True, help="folder of photos")
    parser.add_argument("--exclude", nargs="*", default=[], help="globs to hold out")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--feature-weight", type=float, default=1e-4, help="VGG feature MSE weight (pixel MSE is 1)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--run-dir", type=Path, required=True, help="resumable state (last.pt) lives here")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    paths = args.teachers or [
        p for p in sorted((ROOT / "checkpoints").glob("*.safetensors")) if p.stem != "multi_style"
    ]
    order = sorted(paths, key=lambda p: p.stem != "starry_night")  # starry_night's convolutions seed the student
    teachers = {p.stem: load_network(p).net.eval().requires_grad_(False) for p in order}
    student = student_from(teachers)
    optimizer = torch.optim.Adam(student.parameters(), lr=args.lr)
    step, last = 0, args.run_dir / "last.pt"
    if last.is_file():
        saved = torch.load(last, map_location="cpu", weights_only=True)
        student.load_state_dict(saved["student"])
        optimizer.load_state_dict(saved["optimizer"])
        step = saved["step"]
        print(f"resuming from {last} (step {step})", flush=True)
    vgg = VGGFeatures(list(FEATURES))
    files = find_images(args.data, exclude=args.exclude)
    dataset = ImageFolderDataset(files, args.image_size, seed=args.seed, scale_jitter=2.0, flip=True)
    sampler = StreamSampler(len(dataset), args.seed, step * args.batch_size)
    loader = torch.utils.data.DataLoader(dataset, args.batch_size, sampler=sampler, collate_fn=collate, num_workers=1)
    names = list(teachers)
    stop = {"signal": None}

    def handle(signum, frame):
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def save() -> None:
        args.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(last) as tmp:
            torch.save({"student": student.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)

    started, running = time.perf_counter(), None
    for batch in loader:
        if step >= args.steps or stop["signal"] is not None:
            break
        x = batch["image"]  # (B, 3, S, S)
        rng = random.Random(args.seed * 1_000_003 + step)
        picks = [rng.randrange(len(names)) for _ in range(len(x))]
        weights = F.one_hot(torch.tensor(picks), len(names)).float()  # (B, S)
        with torch.no_grad(), autocast:
            target = torch.cat([teachers[names[p]](x[i : i + 1]).float() for i, p in enumerate(picks)])
        with autocast:
            out = student(x, weights).float()
            both = vgg(torch.cat([out, target]))
        b = len(x)
        pixel = F.mse_loss(out, target)
        feature = sum(F.mse_loss(both[n][:b].float(), both[n][b:].float().detach()) for n in FEATURES)
        loss = pixel + args.feature_weight * feature
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % 25 == 0:
            print(f"step {step}: loss {running:.5f} (pixel {float(pixel.detach()):.5f}), "
                  f"{(time.perf_counter() - started) / 25:.2f} s/step", flush=True)  # fmt: skip
            started = time.perf_counter()
        if step % 100 == 0:
            save()
    save()
    if stop["signal"] is not None:
        print(f"stopped by signal {stop['signal']} at step {step}; run again to resume", flush=True)
        return 128 + stop["signal"]
    info = NetworkInfo(style="multi_style", steps=step, image_size=args.image_size, extra={
        "styles": names, "distilled_from": [p.name for p in order],
        "recipe": f"distillation: pixel MSE + {args.feature_weight:g} x VGG {'/'.join(FEATURES)} MSE, batch "
                  f"{args.batch_size}, {args.image_size} px crops with 1-2x scale jitter, lr {args.lr:g}, {args.precision}",
    })  # fmt: skip
    save_network(student.eval(), args.output, info)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} MB) after {step} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
