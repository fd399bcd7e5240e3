"""Runs that survive: kill -9, SIGTERM, a second signal, a moved run folder, exact continuation."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import fastnst.training.train as train_script

from conftest import ROOT
from test_train import scalars


def tiny_args(tmp_path, photo_dir, style_path, name="killme"):
    return [
        "style=custom", f"style.image={style_path}", f"style.name={name}", "style.size=64",
        f"data.root={photo_dir}", "data.image_size=32", "data.batch_size=2", "data.num_workers=0",
        "data.num_val_images=1", "model.width=0.25", "model.num_residual_blocks=1",
        "loss.vgg.weights=random", "loss.vgg.channel_scale=0.125", "trainer=cpu", "trainer.precision=32-true",
        "trainer.log_every_n_steps=1", "~callbacks.progress_bar", "trainer.enable_progress_bar=false",
        "~callbacks.style_samples", "callbacks.model_checkpoint.every_n_train_steps=5",
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.export_dir={tmp_path / 'export'}",
    ]  # fmt: skip


def command(*args):
    return [sys.executable, str(ROOT / "scripts" / "train.py"), *args]


def saved_step(path: Path) -> int | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    except Exception:
        return None


def start_and_wait(args, last: Path, min_step: int, timeout: float = 120):
    """Start a long run and return (process, step) once ``last`` holds at least ``min_step``."""
    proc = subprocess.Popen(
        command(*args, "trainer.max_steps=100000"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and (saved_step(last) or 0) >= min_step:
            return proc, saved_step(last)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the run never saved step {min_step}: {proc.communicate()[1][-2000:]}")


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if "partial" in p.name]


def test_kill_9_then_resume_in_a_custom_run_folder(tmp_path, photo_dir, style_path):
    run_dir = tmp_path / "runs" / "wave"  # hydra.run.dir named by the user, outside paths.log_dir
    args = [*tiny_args(tmp_path, photo_dir, style_path), f"hydra.run.dir={run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    proc, _ = start_and_wait(args, last, 15)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # The kill may land between a numbered checkpoint and last.ckpt: resume takes the one with more steps.
    newest, _ = train_script.newest_checkpoint(run_dir)
    saved = torch.load(newest, map_location="cpu", weights_only=True)
    assert saved["optimizer_states"][0]["state"], "optimiser state must be in the checkpoint"
    target = saved["global_step"] + 10
    result = subprocess.run(
        command(*args, "resume=true", f"trainer.max_steps={target}"), cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming from {newest} (step {saved['global_step']})" in result.stderr
    assert f"after {target} steps" in result.stdout
    assert "weights_only" not in result.stderr  # no word of an unsafe load where there is none
    assert saved_step(last) == target
    steps = sorted({s for s, _ in scalars(run_dir)["train/loss"]})
    # The curves continue from the resumed step (kill -9 loses what TensorBoard had not flushed before it).
    assert [s for s in steps if s >= saved["global_step"]] == list(range(saved["global_step"], target))
    assert len(list(run_dir.glob("tensorboard/events.out.tfevents.*"))) == 2


def test_sigterm_saves_the_step_it_stopped_at_and_the_moved_folder_resumes(tmp_path, photo_dir, style_path):
    run_dir = tmp_path / "machine_a" / "run"
    args = [*tiny_args(tmp_path, photo_dir, style_path), f"hydra.run.dir={run_dir}"]
    proc, _ = start_and_wait(args, run_dir / "checkpoints" / "last.ckpt", 5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    line = next(line for line in stderr.splitlines() if line.startswith("stopped by SIGTERM"))
    stopped_at = int(line.split("after step ")[1].split(";")[0])
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == stopped_at
    assert f"fastnst train --resume {run_dir}" in line
    assert no_partial_files(run_dir)

    # Carry the run folder to another place (another machine): it resumes there, from that step.
    moved = tmp_path / "machine_b" / "run"
    shutil.move(run_dir, moved)
    result = subprocess.run(
        command("--resume", str(moved), f"trainer.max_steps={stopped_at + 3}"), cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming from {moved / 'checkpoints' / 'last.ckpt'} (step {stopped_at})" in result.stderr
    assert saved_step(moved / "checkpoints" / "last.ckpt") == stopped_at + 3
    assert not run_dir.exists()  # nothing written to the old place


def test_second_sigterm_exits_at_once_leaving_no_partial_file(tmp_path, photo_dir, style_path):
    run_dir = tmp_path / "run"
    args = [*tiny_args(tmp_path, photo_dir, style_path), f"hydra.run.dir={run_dir}"]
    proc, _ = start_and_wait(args, run_dir / "checkpoints" / "last.ckpt", 5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    _, stderr = proc.communicate(timeout=30)
    assert time.time() - t0 < 10
    assert proc.returncode in (128 + signal.SIGTERM, -signal.SIGTERM)  # by our handler, or by the signal itself
    assert no_partial_files(run_dir)
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") is not None  # the last good checkpoint loads


def test_resume_with_a_missing_data_folder_is_one_line(tmp_path, photo_dir, style_path):
    run_dir = tmp_path / "run"
    data = tmp_path / "data"
    shutil.copytree(photo_dir, data)
    args = [*tiny_args(tmp_path, data, style_path), f"hydra.run.dir={run_dir}", "export=false"]
    first = subprocess.run(command(*args, "trainer.max_steps=2"), cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    shutil.rmtree(data)
    again = subprocess.run(
        command("--resume", str(run_dir), "trainer.max_steps=4"), cwd=ROOT, capture_output=True, text=True
    )
    assert again.returncode == 1
    assert (
        again.stderr.strip().splitlines()[-1]
        == f"error: {data}: training folder not found; set data.root=/path/to/photos"
    )
    assert "Traceback" not in again.stderr
    fixed = subprocess.run(
        command("--resume", str(run_dir), "trainer.max_steps=4", f"data.root={photo_dir}"), cwd=ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == 4


def test_resume_needs_a_run_folder(tmp_path):
    assert train_script.cli(["--resume", str(tmp_path)]) == 1


def test_interrupted_and_resumed_run_ends_with_the_same_weights(train_cfg, tmp_path):
    def weights(run_dir):
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        return state["state_dict"]

    common = ("trainer.precision=32-true", "~callbacks.style_samples", "export=false", "data.num_val_images=1")
    straight = tmp_path / "straight"
    train_script.train(train_cfg(*common, "trainer.max_steps=8", f"paths.output_dir={straight}"))
    halves = tmp_path / "halves"
    train_script.train(train_cfg(*common, "trainer.max_steps=4", f"paths.output_dir={halves}"))
    result = train_script.train(train_cfg(*common, "trainer.max_steps=8", f"paths.output_dir={halves}", "resume=true"))
    assert result["resumed_from"][1] == 4
    a, b = weights(straight), weights(halves)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    # The check can tell runs apart: another seed (other crops and order) ends elsewhere.
    other = tmp_path / "other"
    train_script.train(train_cfg(*common, "trainer.max_steps=8", f"paths.output_dir={other}", "seed=7"))
    c = weights(other)
    assert max((a[k] - c[k]).abs().max().item() for k in a) > 1e-4
