"""The LightningModule that trains a style network: one style, or many in one multi-style network."""

from __future__ import annotations

import copy
import math
import random
import warnings

import lightning as L
import torch
from torch import nn

from fastnst.io import file_sha256, load_image
from fastnst.losses import PerceptualLoss
from fastnst.models.arbitrary import STYLE_TAPS, painting_statistics, prepare_painting
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
            weight), ``content_weight``, ``style_weight``, ``tv_weight``, ``color_weight`` (0: off).
        optim: Adam ``lr`` (``predictor_lr`` for an any-painting network's style predictor); ``lr_decay_gamma`` multiplies it every ``lr_decay_every`` steps (1.0: off).
            ``predictor_only``: an any-painting network's transformer and norm maps are frozen, and only its
            predictor (and stored embeddings) learn, to close the gap between the embedding it predicts
            and the best one for the painting (steps cost about as much: gradients still cross the network).
        runtime: ``channels_last`` memory format, ``compile`` the network's forward.
        styles: for a multi-style network (``arch: johnson_multi``), one ``style``-like dict per style
            (in the network's order); each batch trains one of them, drawn from the seed and the step.
        train_styles: indices of the styles to train (``add_style``: only the new one's (γ, β) learn).
        draw_weights: how often each style is drawn, relative, one number per style (None: equally often).
        named_share: an any-painting network's share of batches that train a named style on its own
            painting, through its stored embedding, which then learns (0: the predictor makes them).
        keep_weight: an any-painting network's named batches also hold what the network paints with the
            batch's own paintings to what it painted when the run began (pixel mean squared difference,
            this weight; 0: off), so that training the named styles leaves every other painting as it was.
    """

    def __init__(
        self, net: dict, style: dict, loss: dict, optim: dict, runtime: dict | None = None,
        styles: list[dict] | None = None, train_styles: list[int] | None = None,
        draw_weights: list[float] | None = None, named_share: float = 0.0, keep_weight: float = 0.0,
    ):  # fmt: skip
        super().__init__()
        runtime = {"channels_last": False, "compile": False, **(runtime or {})}
        self.save_hyperparameters(
            {
                "net": dict(net),
                "style": dict(style),
                "loss": dict(loss),
                "optim": dict(optim),
                "runtime": runtime,
                "styles": [dict(s) for s in styles] if styles else None,
                "train_styles": train_styles,
                "draw_weights": list(draw_weights) if draw_weights else None,
                "named_share": float(named_share),
                "keep_weight": float(keep_weight),
            }
        )
        spec = dict(net)
        self.net = build_network(spec.pop("arch", "johnson"), spec)
        self.arbitrary = self.net.arch == "johnson_arbitrary"
        self.multi = self.net.arch == "johnson_multi"
        if (self.multi or self.arbitrary) and len(styles or []) != len(self.net.styles):
            raise ValueError(f"a network of {len(self.net.styles)} named styles needs as many style presets")
        if runtime["channels_last"]:
            self.net.to(memory_format=torch.channels_last)
        content_layers, style_layers = list(loss["content_layers"]), dict(loss["style_layers"])
        taps = [*content_layers, *style_layers, *(STYLE_TAPS if self.arbitrary else ())]
        vgg = VGGFeatures(list(dict.fromkeys(taps)), **dict(loss.get("vgg") or {}))
        if self.arbitrary:
            self.net.load_vgg(vgg.features)  # the style predictor sees what the loss network sees
        # Kept out of the module tree: the frozen VGG is neither saved nor trained.
        run_styles = list(styles or []) if self.multi or self.arbitrary else [style]
        weights = [loss["content_weight"], loss["style_weight"], loss["tv_weight"], loss.get("color_weight", 0.0),
                   bool(loss.get("style_relative", False))]  # fmt: skip
        # An any-painting network: index 0 takes each batch's own paintings' Grams; 1.. its named styles,
        # trained on their own paintings when ``named_share`` > 0.
        self.named_share = float(named_share) if self.arbitrary else 0.0
        self.keep_weight = float(keep_weight) if self.named_share > 0 else 0.0
        self._teacher: list[nn.Module] = []  # the network as the run began (kept out of the module tree)
        named = run_styles if not self.arbitrary or self.named_share > 0 else []
        self._perceptual = [PerceptualLoss(vgg, None, content_layers, style_layers, *weights)] if self.arbitrary else []
        self._perceptual += [
            PerceptualLoss(vgg, load_image(s["image"], s.get("size")), content_layers, style_layers, *weights)
            if s.get("image")
            else None  # a style this run does not train (add_style): its painting is not needed
            for s in named
        ]
        if self.arbitrary and optim.get("predictor_only"):
            for name, parameter in self.net.named_parameters():
                parameter.requires_grad_(name.startswith("style_predictor."))
        if self.arbitrary and self.net.style_predictor.skip is not None:
            # Learnt from fits (scripts/distill_predictor.py), never by gradient steps: Adam at the predictor's
            # lr moved it 1.8% in 100 steps, and held-out texture from 0.226 (it restored) to 0.395.
            self.net.style_predictor.skip.requires_grad_(False)
        if self.named_share > 0:  # the named styles' embeddings learn, as the multi-style network's rows did
            self.net.learn_stored_styles()
        self.sample_paintings: torch.Tensor | None = None  # held-out paintings for the sample grid
        # The paintings as this run learns them, hashed once: a file changed later cannot pass for them.
        self.painting_sha256 = {s["name"]: file_sha256(s["image"]) for s in run_styles if s.get("image")}
        self.train_styles = list(train_styles) if train_styles else list(range(len(named)))
        self.run_styles = run_styles
        if self.multi and train_styles:
            self._train_only_style_rows(self.train_styles)
        self.draw_weights = [float(draw_weights[i]) for i in self.train_styles] if draw_weights else None
        self._forward = torch.compile(self.net) if runtime["compile"] else self.net
        self.skipped_files: set[str] = set()
        self.init_info: dict = {}  # set when fine-tuning from another network (init_from)

    def _train_only_style_rows(self, rows: list[int]) -> None:
        """Freeze everything but these styles' (γ, β) rows (their gradients are masked to those rows)."""
        from fastnst.models.multi_style import ConditionalInstanceNorm

        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        for module in self.net.modules():
            if isinstance(module, ConditionalInstanceNorm):
                for parameter in (module.weight, module.bias):
                    parameter.requires_grad_(True)
                    mask = torch.zeros(parameter.shape[0], 1)
                    mask[rows] = 1.0
                    parameter.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))

    def run_info(self) -> dict:
        """What this run adds to its hyper-parameters: crop size, the network it started from, painting hashes."""
        datamodule = getattr(self._trainer, "datamodule", None)
        return {"image_size": getattr(datamodule, "image_size", None), **self.init_info,
                "painting_sha256": self.painting_sha256}  # fmt: skip

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["fastnst_info"] = self.run_info()  # plain values: loads under weights_only=True
        if self.arbitrary:  # the named styles' embeddings as trained, or as the predictor now makes them
            self.refresh_stored_styles()
            checkpoint["state_dict"]["net.style_embeddings"] = self.net.style_embeddings.detach().clone()

    def embed_paintings(self, presets: list[dict]) -> torch.Tensor:
        """Embeddings (S, E) of style presets' paintings, as the network's predictor makes them now."""
        paintings = [prepare_painting(load_image(s["image"])).to(self.device) for s in presets]
        return torch.cat([self.net.embed(p) for p in paintings]) if paintings else torch.zeros(0, 1)

    def refresh_stored_styles(self) -> None:
        """Recompute the stored embeddings of the named styles from their paintings (unless they learn)."""
        if self.run_styles and self.named_share == 0:
            with torch.no_grad():
                self.net.style_embeddings.copy_(self.embed_paintings(self.run_styles))

    @property
    def perceptual(self) -> PerceptualLoss:
        return self.perceptual_for(0)

    def perceptual_for(self, index: int) -> PerceptualLoss:
        loss = self._perceptual[index]
        if loss.vgg.mean.device != self.device:
            loss.to(self.device)
        return loss

    def style_names(self) -> list[str]:
        return list(self.net.styles) if self.multi or self.arbitrary else [self.hparams.style["name"]]

    def forward(self, images: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stylize (B, 3, H, W) images in [0, 1]; ``weights`` (B, S) for a multi-style network."""
        images = self.forward_layout(images)
        return self._forward(images, weights) if self.multi or self.arbitrary else self._forward(images)

    def forward_layout(self, images: torch.Tensor) -> torch.Tensor:
        """The images in the memory format this run trains in."""
        if self.hparams.runtime["channels_last"]:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def one_hot(self, index: int, batch: int) -> torch.Tensor:
        weights = torch.zeros(batch, len(self.net.styles), device=self.device)
        weights[:, index] = 1.0
        return weights

    def samples(self, content: torch.Tensor) -> torch.Tensor:
        """The photos, then one row per style: (B * (1 + styles), 3, H, W) for a sample grid.

        An any-painting network: a row per held-out painting (``sample_paintings``), the painting first
        (B' = B + 1 columns, the photos' row starting blank)."""
        if self.arbitrary and self.sample_paintings is not None:
            paintings = self.sample_paintings.to(self.device)
            paintings = torch.nn.functional.interpolate(paintings, size=content.shape[-2:], mode="area")
            rows = [torch.cat([torch.ones_like(content[:1]), content])]
            for painting in paintings:
                stylized = self(content, self.net.embed(painting.unsqueeze(0)).expand(len(content), -1)).float()
                rows.append(torch.cat([painting.unsqueeze(0), stylized]))
            return torch.cat(rows)
        if self.arbitrary:  # no held-out paintings: the stored styles
            self.refresh_stored_styles()
            rows = [
                self(content, embedding.expand(len(content), -1)).float() for embedding in self.net.style_embeddings
            ]
            return torch.cat([content, *rows])
        if not self.multi:
            return torch.cat([content, self(content).float()])
        rows = [self(content, self.one_hot(i, len(content))).float() for i in range(len(self.net.styles))]
        return torch.cat([content, *rows])

    def sample_columns(self, photos: int) -> int:
        """Columns of the :meth:`samples` grid: the photos, and the painting before them when shown."""
        return photos + int(self.arbitrary and self.sample_paintings is not None)

    def draw_style(self, step: int) -> int:
        """The style of this step's batch: from the step, so a resumed run draws the same ones."""
        rng = random.Random(1_000_003 * step + 17)
        if self.draw_weights is None:
            return self.train_styles[rng.randrange(len(self.train_styles))]
        return rng.choices(self.train_styles, weights=self.draw_weights)[0]

    def draw_named(self, step: int) -> int | None:
        """An any-painting network's batch: a named style's index (a ``named_share`` of steps) or None."""
        if self.named_share <= 0 or random.Random(7_919 * step + 3).random() >= self.named_share:
            return None
        return self.draw_style(step)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.note_skipped(batch.get("skipped", []))
        content = batch["image"]  # (B, 3, S, S)
        if self.arbitrary:
            index = self.draw_named(self.global_step)
            if index is None:
                terms = self.arbitrary_terms(content, batch["painting"])
            else:
                stored = self.net.style_embeddings[index].expand(len(content), -1)
                terms = self.perceptual_for(1 + index)(self(content, stored), content)
                if self.keep_weight > 0:
                    keep = self.keep_weight * self.keep_term(content, batch["painting"])
                    terms = {**terms, "keep_loss": keep, "loss": terms["loss"] + keep}
        else:
            index = self.draw_style(self.global_step)
            stylized = self(content, self.one_hot(index, len(content)) if self.multi else None)
            terms = self.perceptual_for(index)(stylized, content)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at step {self.global_step} "
                f"(content {terms['content_loss'].item():.4g}, style {terms['style_loss'].item():.4g}, "
                f"tv {terms['tv_loss'].item():.4g}); the learning rate (optim.lr={self.hparams.optim['lr']}) "
                "or the loss weights are likely too high; the last good checkpoint is kept"
            )
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=False)
        if self.multi or (self.arbitrary and index is not None):
            name = self.net.styles[index]
            self.log_dict({f"train_{name}/{k}": v.detach() for k, v in terms.items()}, prog_bar=False)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        if self.skipped_files:
            self.log("data/skipped_files", float(len(self.skipped_files)), reduce_fx="max")
        return loss

    def arbitrary_terms(self, content: torch.Tensor, paintings: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of an any-painting network: each photo against its own painting (B, 3, P, P)."""
        perceptual = self.perceptual_for(0)
        grams, features = perceptual.painting_grams(paintings)
        embedding = self.net.embed_statistics(painting_statistics(features))  # (B, E), trains the predictor
        return perceptual(self(content, embedding), content, grams)

    def keep_term(self, content: torch.Tensor, paintings: torch.Tensor) -> torch.Tensor:
        """How far the network now paints these photos with these paintings from how it did when the run began.

        Both take the embedding the starting network predicts, so only the transformer is held; the mean
        squared difference of the two images in [0, 1]."""
        if not self._teacher:  # the first step of a fresh run: the network is what init_from made it
            self.hold(self.net)
        teacher = self._teacher[0].to(self.device)
        with torch.no_grad():
            features = self.perceptual_for(0).vgg(paintings)
            embedding = teacher.embed_statistics(painting_statistics(features))
            target = teacher(self.forward_layout(content), embedding)
        return torch.nn.functional.mse_loss(self(content, embedding).float(), target.float())

    def hold(self, net: nn.Module) -> None:
        """Hold the outputs of this network (a copy) with ``keep_weight``: a resumed run holds its init_from's."""
        self._teacher[:] = [copy.deepcopy(net).eval().requires_grad_(False)]

    def note_skipped(self, reasons: list[str]) -> None:
        """Warn once per unreadable file; the count goes to TensorBoard as data/skipped_files."""
        for reason in reasons:
            if reason not in self.skipped_files:
                self.skipped_files.add(reason)
                warnings.warn(f"skipped unreadable training image {reason}", stacklevel=2)

    def configure_optimizers(self):
        optim = self.hparams.optim
        trained = [(name, p) for name, p in self.net.named_parameters() if p.requires_grad]
        predictor = [p for name, p in trained if name.startswith("style_predictor.")]
        stored = [p for name, p in trained if name == "style_embeddings"]
        network = [p for name, p in trained if not name.startswith("style_predictor.") and name != "style_embeddings"]
        groups = [{"params": network}] if network else []  # none: optim.predictor_only
        if predictor:  # Adam moves each of its 1,920 inputs' weights by about lr a step, all in step
            groups.append({"params": predictor, "lr": optim.get("predictor_lr") or optim["lr"]})
        if stored:
            groups.append({"params": stored, "lr": optim.get("embedding_lr") or optim["lr"]})
        optimizer = torch.optim.Adam(groups, lr=optim["lr"])
        gamma, every = optim.get("lr_decay_gamma", 1.0), max(1, int(optim.get("lr_decay_every", 10_000)))
        if math.isclose(gamma, 1.0):
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def transformer(self) -> nn.Module:
        """The bare network (never the compiled wrapper) for export, its stored styles up to date."""
        if self.arbitrary:
            self.refresh_stored_styles()
        return self.net
