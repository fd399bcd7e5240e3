"""The LightningModule that trains one TransformerNet for one style."""

from __future__ import annotations

import math
import warnings

import lightning as L
import torch
from torch import nn

from fastnst.io import load_image
from fastnst.losses import PerceptualLoss
from fastnst.models.registry import build_network
from fastnst.models.vgg import VGGFeatures


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class StyleTransferModule(L.LightningModule):
    """Trains a style network against VGG perceptual losses.

    Takes plain values only, one dict per config group (they are saved as hyper-parameters and
    must load under ``torch.load(weights_only=True)``). The VGG loss network is not part of the
    state dict: checkpoints hold only the style network and the optimiser.

    Args:
        net: ``arch`` (a registered architecture, see :mod:`fastnst.models.registry`) and its config.
        style: ``name`` (used for exported files), ``image`` (the painting's path), ``size`` (long
            side the painting is resized to before its Grams are taken).
        loss: ``vgg`` (:class:`VGGFeatures` options), ``content_layers``, ``style_layers`` (tap to
            weight), ``content_weight``, ``style_weight``, ``tv_weight``.
        optim: Adam ``lr``; ``lr_decay_gamma`` multiplies it every ``lr_decay_every`` steps (1.0: off).
        runtime: ``channels_last`` memory format, ``compile`` the network's forward.
    """

    def __init__(self, net: dict, style: dict, loss: dict, optim: dict, runtime: dict | None = None):
        super().__init__()
        runtime = {"channels_last": False, "compile": False, **(runtime or {})}
        self.save_hyperparameters(
            {"net": dict(net), "style": dict(style), "loss": dict(loss), "optim": dict(optim), "runtime": runtime}
        )
        spec = dict(net)
        self.net = build_network(spec.pop("arch", "johnson"), spec)
        if runtime["channels_last"]:
            self.net.to(memory_format=torch.channels_last)
        content_layers, style_layers = list(loss["content_layers"]), dict(loss["style_layers"])
        vgg = VGGFeatures(list(dict.fromkeys([*content_layers, *style_layers])), **dict(loss.get("vgg") or {}))
        perceptual = PerceptualLoss(
            vgg,
            load_image(style["image"], style.get("size")),
            content_layers,
            style_layers,
            loss["content_weight"],
            loss["style_weight"],
            loss["tv_weight"],
        )
        # Kept out of the module tree: the frozen VGG is neither saved nor trained.
        self._perceptual = [perceptual]
        self._forward = torch.compile(self.net) if runtime["compile"] else self.net
        self.skipped_files: set[str] = set()
        self.init_info: dict = {}  # set when fine-tuning from another network (init_from)

    @property
    def perceptual(self) -> PerceptualLoss:
        loss = self._perceptual[0]
        if loss.vgg.mean.device != self.device:
            loss.to(self.device)
        return loss

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Stylize (B, 3, H, W) images in [0, 1]."""
        if self.hparams.runtime["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        return self._forward(images)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.note_skipped(batch.get("skipped", []))
        content = batch["image"]  # (B, 3, S, S)
        stylized = self(content)
        terms = self.perceptual(stylized, content)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at step {self.global_step} "
                f"(content {terms['content_loss'].item():.4g}, style {terms['style_loss'].item():.4g}, "
                f"tv {terms['tv_loss'].item():.4g}); the learning rate (optim.lr={self.hparams.optim['lr']}) "
                "or the loss weights are likely too high; the last good checkpoint is kept"
            )
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=False)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        if self.skipped_files:
            self.log("data/skipped_files", float(len(self.skipped_files)), reduce_fx="max")
        return loss

    def note_skipped(self, reasons: list[str]) -> None:
        """Warn once per unreadable file; the count goes to TensorBoard as data/skipped_files."""
        for reason in reasons:
            if reason not in self.skipped_files:
                self.skipped_files.add(reason)
                warnings.warn(f"skipped unreadable training image {reason}", stacklevel=2)

    def configure_optimizers(self):
        optim = self.hparams.optim
        optimizer = torch.optim.Adam(self.net.parameters(), lr=optim["lr"])
        gamma, every = optim.get("lr_decay_gamma", 1.0), max(1, int(optim.get("lr_decay_every", 10_000)))
        if math.isclose(gamma, 1.0):
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def transformer(self) -> nn.Module:
        """The bare network (never the compiled wrapper) for export."""
        return self.net
