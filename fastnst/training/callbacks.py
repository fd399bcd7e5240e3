"""Callbacks: sample grids in TensorBoard and the final safetensors export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from fastnst.checkpoint import save_network, training_info
from fastnst.io import make_grid


class StyleSamples(L.Callback):
    """Every ``every_n_steps`` steps, stylize the fixed validation photos into a grid.

    The grid (photos on the top row, then one row per style) goes to every logger that
    has ``add_image`` (TensorBoard) as ``samples``.
    """

    def __init__(self, every_n_steps: int = 500, max_images: int = 8):
        self.every_n_steps, self.max_images = every_n_steps, max_images
        self._images: torch.Tensor | None = None

    def _log(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._images is None:
            images, skipped = trainer.datamodule.val_images()
            self._images = images[: self.max_images]
            if getattr(module, "arbitrary", False) and getattr(trainer.datamodule, "val_paintings", None):
                module.sample_paintings, more = trainer.datamodule.val_painting_images(self.max_images)
                skipped = [*skipped, *more]
            if hasattr(module, "note_skipped"):
                module.note_skipped(skipped)
        was_training = module.training
        module.eval()
        with torch.no_grad():
            content = self._images.to(module.device)
            rows = module.samples(content)  # the photos, then one row per style
        module.train(was_training)
        grid = make_grid(rows.cpu(), nrow=module.sample_columns(len(content)))  # (3, H, W)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("samples", grid, global_step=trainer.global_step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if trainer.is_global_zero:
            self._log(trainer, module)


def free_path(path: Path) -> Path:
    """``path`` if it does not exist yet, else the same name with a timestamp, so nothing is overwritten."""
    if not path.exists():
        return path
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{stamp}-{n}{path.suffix}")
        n += 1
    return candidate


class ExportNetwork(L.Callback):
    """At the end of training, write ``<export_dir>/<style>.safetensors`` (never over an existing file).

    The file records the painting it learned from (name, SHA-256, the size its Grams were
    taken at), so ``fastnst info`` can show it and ``fastnst evaluate`` can tell another copy.
    """

    def __init__(self, export_dir: str, overwrite: bool = False):
        self.export_dir, self.overwrite = Path(export_dir), overwrite
        self.path: Path | None = None

    def on_fit_end(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        target = self.export_dir / f"{module.hparams.style['name']}.safetensors"
        target = target if self.overwrite else free_path(target)
        info = training_info(module.hparams, trainer.global_step, module.run_info())
        self.path = save_network(module.transformer(), target, info)


class StepProgressBar(RichProgressBar):
    """Rich progress bar that names the step budget instead of a meaningless epoch total."""

    def _get_train_description(self, current_epoch: int) -> str:
        steps = self.trainer.max_steps
        return f"epoch {current_epoch}" + (f" (training to step {steps})" if steps and steps > 0 else "")
