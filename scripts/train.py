"""Train a style network.

    python scripts/train.py style=starry_night data.root=/path/to/coco/train2014
    python scripts/train.py style=custom style.image=painting.jpg style.name=my_style
    python scripts/train.py experiment=demo

Any config value can be overridden on the command line (see configs/).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def cpu_precision() -> str:
    """``bf16-mixed`` on CPUs that run bf16 natively (about 2x faster), else ``32-true``.

    Elsewhere bf16 is emulated and many times slower than fp32.
    """
    from fastnst.inference import cpu_has_fast_bf16

    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"


RESOLVERS = {
    "fastnst_root": lambda: os.environ.get("FASTNST_ROOT", str(ROOT)),
    "fastnst_cpu_precision": cpu_precision,
}
for _name, _resolver in RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


class ConfigError(ValueError):
    """A config value is unusable; the message says which and what to do."""


def find_last_checkpoint(log_dir: Path, style: str) -> Path | None:
    """The newest ``last.ckpt`` of any earlier run of ``style`` under ``log_dir``."""
    candidates = sorted((log_dir / style).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


POSITIVE_INTS = ("data.image_size", "data.batch_size", "model.num_residual_blocks", "trainer.max_steps")
POSITIVE_NUMBERS = ("model.width", "model.lr", "style.size")
NON_NEGATIVE_NUMBERS = ("loss.content_weight", "loss.style_weight", "loss.tv_weight", "data.num_workers")


def validate(cfg: DictConfig) -> None:
    """Check the values a typo most often breaks, with one line naming the key and what is allowed."""

    def check(key: str, ok, allowed: str) -> None:
        value = OmegaConf.select(cfg, key)
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"{key}={value!r}: expected {allowed}")

    for key in POSITIVE_INTS:
        check(
            key, lambda v: isinstance(v, int) and not isinstance(v, bool) and (v > 0 or v == -1), "a positive integer"
        )
    for key in POSITIVE_NUMBERS:
        check(key, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0")
    for key in NON_NEGATIVE_NUMBERS:
        check(key, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0")
    for layer in cfg.loss.style_layers:
        check(
            f"loss.style_layers.{layer}",
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
            "a number >= 0",
        )
    style_image = Path(cfg.style.image).expanduser()
    if not style_image.is_file():
        raise ConfigError(f"style.image={style_image}: file not found; give the path of a painting")


def resolve_checkpoint(cfg: DictConfig) -> Path | None:
    """The checkpoint to resume from: ``ckpt_path``, or the latest run's with ``resume=true``."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path={path}: no such checkpoint; give a last.ckpt from a run's checkpoints/ folder"
            )
        return path
    if cfg.get("resume"):
        path = find_last_checkpoint(Path(cfg.paths.log_dir), cfg.style.name)
        if path is None:
            raise ConfigError(
                f"resume=true: no last.ckpt under {Path(cfg.paths.log_dir) / cfg.style.name}/*/checkpoints; "
                "start without resume or give ckpt_path=..."
            )
        return path
    return None


def load_initial_network(cfg: DictConfig):
    """The network named by ``init_from`` (None without one), checked against the model group.

    Raises:
        ConfigError: unreadable file, or an architecture other than the model's (one line).
    """
    from fastnst.checkpoint import CheckpointError, load_network

    if not cfg.get("init_from"):
        return None
    try:
        loaded = load_network(Path(cfg.init_from).expanduser())
    except CheckpointError as exc:
        raise ConfigError(f"init_from: {exc}") from None
    have = loaded.net.config.to_dict()
    want = {key: cfg.model[key] for key in have}
    if have != want:
        overrides = " ".join(f"model.{k}={v}" for k, v in have.items())
        raise ConfigError(f"init_from={loaded.path}: its network is {have} but the model is {want}; add {overrides}")
    return loaded


def apply_initial_network(loaded, module, load_weights: bool = True) -> None:
    """Start ``module`` from ``loaded``'s weights (fine-tuning; the optimiser starts fresh).

    A resumed fine-tune already holds its weights (``load_weights=False``) but
    still records where it started, for the exported file's metadata.
    """
    if load_weights:
        module.net.load_state_dict(loaded.net.state_dict())
    module.init_info = {"init_from": loaded.path.name, "init_steps": loaded.info.get("steps")}


def build_module(cfg: DictConfig):
    """The StyleTransferModule from the model, style and loss groups (plain values only)."""
    from fastnst.training.module import StyleTransferModule

    style_image = Path(cfg.style.image).expanduser()
    return StyleTransferModule(
        net_config={"width": cfg.model.width, "num_residual_blocks": cfg.model.num_residual_blocks},
        style_image=str(style_image),
        style_name=cfg.style.name,
        style_size=cfg.style.size,
        vgg_weights=cfg.loss.vgg.weights,
        vgg_pooling=cfg.loss.vgg.pooling,
        vgg_channel_scale=cfg.loss.vgg.channel_scale,
        content_layers=list(cfg.loss.content_layers),
        style_layers=dict(cfg.loss.style_layers),
        content_weight=cfg.loss.content_weight,
        style_weight=cfg.loss.style_weight,
        tv_weight=cfg.loss.tv_weight,
        lr=cfg.model.lr,
        lr_decay_gamma=cfg.model.lr_decay_gamma,
        lr_decay_every=cfg.model.lr_decay_every,
        channels_last=cfg.model.channels_last,
        compile=cfg.model.compile,
    )


def train(cfg: DictConfig) -> dict:
    """Fit one style network and export it.

    Returns:
        dict with ``output_dir``, ``checkpoint_dir``, ``export_path`` (or None),
        ``steps``, ``metrics`` (last logged values) and ``skipped_files``.
    """
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ProgressBar

    from fastnst.training.callbacks import ExportNetwork

    validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = resolve_checkpoint(cfg)
    if ckpt_path is not None and cfg.get("resume") and not cfg.get("ckpt_path"):
        # Continue in the interrupted run's folder so checkpoints and TensorBoard curves carry on.
        OmegaConf.update(cfg, "paths.output_dir", str(ckpt_path.parents[1]), force_add=True)
    initial = load_initial_network(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # fails here, before any model is built, when the folder has no images
    module = build_module(cfg)
    if initial is not None:
        apply_initial_network(initial, module, load_weights=ckpt_path is None)
    module.note_skipped(datamodule.val_images()[1])  # unreadable validation photos are reported too
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    exporter = ExportNetwork(cfg.paths.export_dir) if cfg.get("export", True) else None
    if exporter:
        callbacks.append(exporter)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    if not loggers:  # nothing to monitor the learning rate into
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    return {
        "output_dir": str(cfg.paths.output_dir),
        "checkpoint_dir": str(Path(cfg.paths.output_dir) / "checkpoints"),
        "export_path": str(exporter.path) if exporter and exporter.path else None,
        "steps": trainer.global_step,
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "skipped_files": sorted(module.skipped_files),
    }


def remove_unused_run_dir(run_dir: Path) -> None:
    """Remove the run folder Hydra made at start-up if nothing but its config went in.

    That is a run stopped by a bad setting before training, or a resumed run, which
    writes into the folder it resumes.
    """
    if run_dir.is_dir() and {path.name for path in run_dir.iterdir()} <= {".hydra"}:
        shutil.rmtree(run_dir)
        if run_dir.parent.is_dir() and not any(run_dir.parent.iterdir()):
            run_dir.parent.rmdir()  # the style's folder, when this was its only run


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from fastnst.checkpoint import CheckpointError
    from fastnst.data import DataError
    from fastnst.io import ImageReadError
    from fastnst.models.vgg import WeightsError
    from fastnst.training.module import NonFiniteLossError

    try:
        result = train(cfg)
    except (ConfigError, DataError, ImageReadError, WeightsError, CheckpointError, NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        remove_unused_run_dir(Path(HydraConfig.get().runtime.output_dir))
    if result["skipped_files"]:
        print(f"skipped {len(result['skipped_files'])} unreadable training files:", file=sys.stderr)
        for reason in result["skipped_files"]:
            print(f"  {reason}", file=sys.stderr)
    if result["export_path"]:
        print(f"exported {result['export_path']} after {result['steps']} steps")
    print(f"run folder: {result['output_dir']} (tensorboard --logdir {result['output_dir']})")


if __name__ == "__main__":
    main()
