"""kill -9 in the middle of a real run, then resume=true: steps, optimiser state and curves carry on."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from test_train import scalars


def tiny_args(tmp_path, photo_dir, style_path):
    return [
        "style=custom", f"style.image={style_path}", "style.name=killme", "style.size=64",
        f"data.root={photo_dir}", "data.image_size=32", "data.batch_size=2", "data.num_workers=0",
        "data.num_val_images=1", "model.width=0.25", "model.num_residual_blocks=1",
        "loss.vgg.weights=random", "loss.vgg.channel_scale=0.125", "trainer=cpu", "trainer.log_every_n_steps=1",
        "~callbacks.progress_bar", "trainer.enable_progress_bar=false", "~callbacks.style_samples",
        "callbacks.model_checkpoint.every_n_train_steps=5", f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.export_dir={tmp_path / 'export'}",
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path, photo_dir, style_path):
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *tiny_args(tmp_path, photo_dir, style_path)]
    proc = subprocess.Popen(
        [*command, "trainer.max_steps=100000"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    killed_at = None
    try:
        while time.time() < deadline:
            lasts = list((tmp_path / "logs" / "killme").glob("*/checkpoints/last.ckpt"))
            if lasts:
                try:
                    step = torch.load(lasts[0], map_location="cpu", weights_only=True)["global_step"]
                except Exception:
                    step = 0
                if step >= 15:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = step
                    break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    assert killed_at is not None, "the run never saved a checkpoint"
    run_dir = lasts[0].parents[1]
    saved = torch.load(lasts[0], map_location="cpu", weights_only=True)
    assert saved["optimizer_states"][0]["state"], "optimiser state must be in the checkpoint"

    target = saved["global_step"] + 10
    result = subprocess.run(
        [*command, "resume=true", f"trainer.max_steps={target}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"after {target} steps" in result.stdout
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == target
    steps = sorted({s for s, _ in scalars(run_dir)["train/loss"]})
    assert steps[-1] == target - 1
    assert len(list(run_dir.glob("tensorboard/events.out.tfevents.*"))) == 2  # same folder, curves continue
    # The resumed run wrote into the old folder; the one Hydra made for it at start-up is gone.
    assert [d.name for d in (tmp_path / "logs" / "killme").iterdir()] == [run_dir.name]
