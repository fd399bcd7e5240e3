"""The LightningModule that trains one TransformerNet for one style."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning as L
import torch
from torch import nn

from fastnst.io import pil_to_tensor, read_image, resize_long_side
from fastnst.losses import PerceptualLoss
from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig
from fastnst.models.vgg import VGGFeatures


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


def load_style_image(path: str | Path, size: int | None) -> torch.Tensor:
    """The style image as (1, 3, H, W) in [0, 1], long side resized to ``size``."""
    image = read_image(path)
    if size:
        image = resize_long_side(image, size)
    return pil_to_tensor(image).unsqueeze(0)


class StyleTransferModule(L.LightningModule):
    """Trains a :class:`TransformerNet` against VGG perceptual losses.

    Takes plain values only (they are saved as hyper-parameters and must load
    under ``torch.load(weights_only=True)``). The VGG loss network is not part
    of the state dict: checkpoints hold only the transformer and optimiser.

    Args:
        net_config: :class:`TransformerNetConfig` fields.
        style_image: path of the painting.
        style_name: name used for exported files.
        style_size: long side the painting is resized to before its Grams are taken.
        vgg_weights, vgg_pooling, vgg_channel_scale: see :class:`VGGFeatures`.
        content_layers: VGG taps of the content loss.
        style_layers: VGG tap to per-layer weight.
        content_weight, style_weight, tv_weight: loss weights.
        lr: Adam learning rate.
        lr_decay_gamma: multiply the learning rate by this every ``lr_decay_every`` steps (1.0: off).
        channels_last: run the transformer in channels_last memory format.
        compile: compile the transformer's forward with ``torch.compile``.
    """

    def __init__(
        self,
        net_config: dict | None = None,
        style_image: str = "",
        style_name: str = "custom",
        style_size: int | None = 512,
        vgg_weights: str = "caffe_vgg19",
        vgg_pooling: str = "max",
        vgg_channel_scale: float = 1.0,
        content_layers: tuple[str, ...] = ("relu2_2",),
        style_layers: dict[str, float] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 5.0,
        tv_weight: float = 1e-6,
        lr: float = 1e-3,
        lr_decay_gamma: float = 1.0,
        lr_decay_every: int = 10_000,
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        style_layers = dict(style_layers or {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0})
        self.save_hyperparameters(
            {
                "net_config": dict(net_config or {}),
                "style_image": str(style_image),
                "style_name": style_name,
                "style_size": style_size,
                "vgg_weights": vgg_weights,
                "vgg_pooling": vgg_pooling,
                "vgg_channel_scale": vgg_channel_scale,
                "content_layers": list(content_layers),
                "style_layers": style_layers,
                "content_weight": content_weight,
                "style_weight": style_weight,
                "tv_weight": tv_weight,
                "lr": lr,
                "lr_decay_gamma": lr_decay_gamma,
                "lr_decay_every": lr_decay_every,
                "channels_last": channels_last,
                "compile": compile,
            }
        )
        self.net = TransformerNet(TransformerNetConfig.from_dict(self.hparams.net_config))
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        vgg = VGGFeatures(
            list(dict.fromkeys([*content_layers, *style_layers])),
            weights=vgg_weights,
            pooling=vgg_pooling,
            channel_scale=vgg_channel_scale,
        )
        perceptual = PerceptualLoss(
            vgg,
            load_style_image(style_image, style_size),
            list(content_layers),
            style_layers,
            content_weight,
            style_weight,
            tv_weight,
        )
        # Kept out of the module tree: the frozen VGG is neither saved nor trained.
        self._perceptual = [perceptual]
        self._forward = torch.compile(self.net) if compile else self.net
        self.skipped_files: set[str] = set()
        self.init_info: dict = {}  # set when fine-tuning from another network (scripts/train.py init_from)

    @property
    def perceptual(self) -> PerceptualLoss:
        loss = self._perceptual[0]
        if loss.vgg.mean.device != self.device:
            loss.to(self.device)
        return loss

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Stylize (B, 3, H, W) images in [0, 1]."""
        if self.hparams.channels_last:
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
                f"tv {terms['tv_loss'].item():.4g}); the learning rate (model.lr={self.hparams.lr}) "
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
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        gamma, every = self.hparams.lr_decay_gamma, max(1, int(self.hparams.lr_decay_every))
        if math.isclose(gamma, 1.0):
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def transformer(self) -> nn.Module:
        """The bare network (never the compiled wrapper) for export."""
        return self.net
