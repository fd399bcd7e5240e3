"""Train a style network: ``train(cfg)`` plus the Hydra entry points.

    fastnst train style=starry_night data.root=/path/to/coco/train2014
    fastnst train style=custom style.image=painting.jpg style.name=my_style
    fastnst train --resume logs/starry_night/2026-11-24_10-00-00      # continue that run, wherever it now lives
    python scripts/train.py experiment=demo                           # the same, as a script

Any config value can be overridden on the command line (see fastnst/configs/, also at configs/).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONFIG_DIR = PACKAGE_DIR / "configs"


def project_root() -> str:
    """Where runs write: ``$FASTNST_ROOT``, else the working directory (never the installed package)."""
    return os.environ.get("FASTNST_ROOT") or str(Path.cwd())


def shipped_dir() -> str:
    """The networks fastnst ships (``checkpoints/`` of the checkout holding the package), read-only to runs."""
    return str(PACKAGE_DIR.parent / "checkpoints")


def cpu_precision() -> str:
    """``bf16-mixed`` where a bf16 training step measured faster than fp32 on this CPU, else ``32-true``."""
    from fastnst.training.precision import cpu_training_precision

    return cpu_training_precision()


def painting(file_name: str) -> str:
    """A painting by file name: from ``$FASTNST_STYLE_DIR`` (a folder of paintings) or shipped in assets/styles.

    Presets of paintings the project cannot ship resolve to ``missing:<name>`` when neither has
    it; :func:`validate` then says how to give the file.
    """
    for folder in (os.environ.get("FASTNST_STYLE_DIR"), PACKAGE_DIR / "assets" / "styles"):
        if folder and (Path(folder).expanduser() / file_name).is_file():
            return str(Path(folder).expanduser() / file_name)
    return f"missing:{file_name}"


RESOLVERS = {
    "fastnst_painting": painting,
    "fastnst_root": project_root,
    "fastnst_shipped": shipped_dir,
    "fastnst_assets": lambda: str(PACKAGE_DIR / "assets"),
    "fastnst_cpu_precision": cpu_precision,
}
for _name, _resolver in RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


class ConfigError(ValueError):
    """A config value is unusable; the message says which and what to do."""


def checkpoint_step(path: Path) -> int | None:
    """The ``global_step`` saved in a Lightning checkpoint; None when it cannot be read."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:
        return None


def newest_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    """The checkpoint of ``run_dir`` with the most steps: ``last.ckpt`` or the highest ``step*.ckpt``."""
    folder = run_dir / "checkpoints"
    numbered = sorted(folder.glob("step*.ckpt"), key=lambda p: int("".join(filter(str.isdigit, p.stem)) or 0))
    found = [(path, checkpoint_step(path)) for path in [folder / "last.ckpt", *numbered[-1:]] if path.is_file()]
    found = [(path, step) for path, step in found if step is not None]
    return max(found, key=lambda item: item[1]) if found else None


def find_last_checkpoint(log_dir: Path, style: str) -> tuple[Path, int] | None:
    """The newest resumable checkpoint of any earlier run of ``style`` under ``log_dir``."""
    runs = [found for run in (log_dir / style).glob("*/") if (found := newest_checkpoint(run))]
    return max(runs, key=lambda item: item[0].stat().st_mtime) if runs else None


POSITIVE_INTS = ("data.image_size", "data.batch_size", "model.num_residual_blocks", "trainer.max_steps")
POSITIVE_NUMBERS = ("model.width", "optim.lr", "style.size", "style_size")
OPTIONAL = ("style_size", "named_share", "keep_weight")  # absent or null unless an experiment sets them
NON_NEGATIVE_NUMBERS = (
    "loss.content_weight", "loss.style_weight", "loss.tv_weight", "loss.color_weight", "data.num_workers",
    "keep_weight",
)  # fmt: skip


def validate(cfg: DictConfig) -> None:
    """Check the values a typo most often breaks, with one line naming the key and what is allowed."""

    def check(key: str, ok, allowed: str) -> None:
        value = OmegaConf.select(cfg, key)
        if value is None and key in OPTIONAL:
            return
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"{key}={value!r}: expected {allowed}")

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for key in POSITIVE_INTS:
        check(
            key, lambda v: isinstance(v, int) and not isinstance(v, bool) and (v > 0 or v == -1), "a positive integer"
        )
    for key in POSITIVE_NUMBERS:
        check(key, lambda v: number(v) and v > 0, "a number > 0")
    for key in [*NON_NEGATIVE_NUMBERS, *(f"loss.style_layers.{layer}" for layer in cfg.loss.style_layers)]:
        check(key, lambda v: number(v) and v >= 0, "a number >= 0")
    check("named_share", lambda v: number(v) and 0 <= v <= 1, "a share from 0 to 1")
    check_painting(str(cfg.style.name), str(cfg.style.image))


def check_painting(style: str, image: str) -> None:
    """One line saying how to give a preset's painting that is not shipped, or a path that does not exist.

    Raises:
        ConfigError
    """
    if image.startswith("missing:"):
        name = image.removeprefix("missing:")
        raise ConfigError(
            f"style={style}: the painting {name} is not shipped with fastnst; "
            f"add style.image=/path/to/{name}, or set FASTNST_STYLE_DIR to a folder holding it"
        )
    if not Path(image).expanduser().is_file():
        raise ConfigError(f"style.image={Path(image).expanduser()}: file not found; give the path of a painting")


def resolve_checkpoint(cfg: DictConfig) -> tuple[Path, int, Path] | None:
    """What to resume: (checkpoint, its step, the run folder to continue in), or None.

    ``ckpt_path`` names the file; ``resume=true`` takes the newest checkpoint of this run's own
    folder (``hydra.run.dir``, ``fastnst train --resume RUN_DIR``), else of the newest run of
    the same style under ``paths.log_dir``. A checkpoint inside a run's ``checkpoints/`` folder
    continues that run (same TensorBoard curves, same checkpoint folder).
    """
    run_dir = Path(cfg.paths.output_dir)
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path).expanduser()
        step = checkpoint_step(path) if path.is_file() else None
        if step is None:
            raise ConfigError(
                f"ckpt_path={path}: no such checkpoint, or not a readable one; give a last.ckpt from a run's checkpoints/"
            )
        return path, step, path.parents[1] if path.parent.name == "checkpoints" else run_dir
    if not cfg.get("resume"):
        return None
    found = newest_checkpoint(run_dir)
    if found:
        return found[0], found[1], run_dir
    found = find_last_checkpoint(Path(cfg.paths.log_dir), cfg.style.name)
    if found is None:
        raise ConfigError(
            f"resume=true: no checkpoint in {run_dir / 'checkpoints'} nor under "
            f"{Path(cfg.paths.log_dir) / cfg.style.name}/*/checkpoints; "
            "start without resume, or give the run folder (fastnst train --resume RUN_DIR) or ckpt_path=..."
        )
    return found[0], found[1], found[0].parents[1]


def load_initial_network(cfg: DictConfig, resuming: bool = False):
    """The network named by ``init_from`` (None without one), checked against the model group.

    A resumed run already holds its weights: then only the file's name is recorded (for the
    export's metadata) and the file need not exist any more (a run folder moved to another machine).

    Raises:
        ConfigError: unreadable file, or an architecture other than the model's (one line).
    """
    from fastnst.checkpoint import CheckpointError, LoadedNetwork, load_network, network_spec

    if not cfg.get("init_from"):
        return None
    path = Path(cfg.init_from).expanduser()
    if resuming and not path.is_file():
        return LoadedNetwork(net=None, path=path)
    try:
        loaded = load_network(path)
    except CheckpointError as exc:
        raise ConfigError(f"init_from: {exc}") from None
    have = network_spec(loaded.net)
    if cfg.get("add_style"):
        have.pop("styles", None)  # the run grows the network by one style
    want = {key: cfg.model.get(key) for key in have}
    if "styles" in want and want["styles"] is not None:
        want["styles"] = list(want["styles"])
    if have != want and not grows(have, want) and not conditions(have, want):
        overrides = " ".join(f"model.{k}={v}" for k, v in have.items() if want.get(k) != v)
        raise ConfigError(f"init_from={loaded.path}: its network is {have} but the model is {want}; add {overrides}")
    return loaded


def grows(have: dict, want: dict) -> bool:
    """Whether ``want`` is ``have``'s single-style network made wider, deeper or given the input
    skip (grown on load)."""
    if have.get("arch") != "johnson" or want.get("arch") != "johnson" or set(have) != set(want):
        return False
    keys = ("width", "num_residual_blocks", "input_skip")
    if any(not isinstance(want[k], (int, float)) or want[k] < have[k] for k in keys):
        return False
    return all(have[k] == want[k] for k in have if k not in keys)


def conditions(have: dict, want: dict) -> bool:
    """Whether ``want`` is an any-painting network that starts from ``have``, a multi-style one of its shape."""
    shape = ("width", "num_residual_blocks", "input_skip")
    return (
        have.get("arch") == "johnson_multi" and want.get("arch") == "johnson_arbitrary"
        and all(have.get(k) == want.get(k) for k in shape)
    )  # fmt: skip


def apply_initial_network(loaded, module, load_weights: bool = True, cfg: DictConfig | None = None) -> None:
    """Start ``module`` from ``loaded``'s weights (fine-tuning; the optimiser starts fresh).

    A resumed fine-tune already holds its weights (``load_weights=False``) but
    still records where it started, for the exported file's metadata.
    """
    import torch

    from fastnst.checkpoint import network_spec

    if load_weights:
        state = loaded.net.state_dict()
        if getattr(module, "arbitrary", False) and loaded.net.arch == "johnson_multi":
            presets = [style_preset(cfg, name) for name in loaded.net.styles]
            embeddings = module.embed_paintings(presets)
            module.net.init_from_multi_style(loaded.net, embeddings)
            with torch.no_grad():  # the named styles start as their paintings' embeddings
                for name, embedding in zip(loaded.net.styles, embeddings):
                    if name in module.net.styles:
                        module.net.style_embeddings[module.net.styles.index(name)] = embedding
            print(
                f"init_from={loaded.path.name}: its convolutions, and norm maps that paint its "
                f"{len(presets)} styles from their paintings",
                file=sys.stderr,
            )
        elif network_spec(loaded.net) == network_spec(module.net):
            module.net.load_state_dict(state)
        else:  # wider, deeper or skipping (model.width, .num_residual_blocks, .input_skip), drawing the same
            blocks, ratio = module.net.load_smaller(state)
            skip = ", given a closed input skip" if "skip_gate" not in state and module.net.config.input_skip else ""
            print(
                f"init_from={loaded.path.name}: grown {ratio:g}x wider and by {blocks} residual blocks{skip}, "
                "drawing what it drew",
                file=sys.stderr,
            )
    module.init_info = {"init_from": loaded.path.name, "init_steps": loaded.info.steps}


def style_preset(cfg: DictConfig, name: str) -> dict:
    """The ``name``, ``image`` and ``size`` of a style preset, resolved in ``cfg``'s context.

    ``custom`` is the run's own ``style`` group (``style.image=... style.name=...``).

    Raises:
        ConfigError: no such preset (the message lists them) or its painting is missing.
    """
    if name == "custom":
        node = cfg.style
    else:
        path = CONFIG_DIR / "style" / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "style").glob("*.yaml")))
            raise ConfigError(f"style preset {name!r} not found; presets: {known}")
        context = OmegaConf.merge(cfg, {})  # a copy: the preset resolves against this run's paths
        OmegaConf.set_struct(context, False)
        context.style = OmegaConf.load(path)
        node = context.style
    size = cfg.get("style_size")  # a multi-style run may set every painting's size
    size = node.get("size") if size is None else size
    painting = node.get("painting")
    style = {"name": str(node.name), "image": str(node.image), "size": size,
             "painting": OmegaConf.to_container(painting) if painting is not None else None}  # fmt: skip
    check_painting(name, style["image"])
    return style


def build_module(cfg: DictConfig, train_styles: list[int] | None = None):
    """The StyleTransferModule from the model, style, loss, optim and runtime groups (plain values only).

    A multi-style network (``model.arch=johnson_multi``) gets one style preset per name in
    ``model.styles``; with ``train_styles`` only those are trained (and only their paintings read).
    """
    from fastnst.training.module import StyleTransferModule

    groups = {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("style", "loss", "optim", "runtime")}
    groups["style"] = {key: groups["style"].get(key) for key in ("name", "image", "size", "painting")}
    groups["style"]["image"] = str(Path(groups["style"]["image"]).expanduser())
    groups["loss"].pop("name", None)
    net = OmegaConf.to_container(cfg.model, resolve=True)
    if net.get("arch") == "johnson_arbitrary":  # the stored styles' paintings
        groups["styles"] = [style_preset(cfg, n) for n in net["styles"]]
        groups["named_share"] = float(cfg.get("named_share") or 0.0)
        groups["keep_weight"] = float(cfg.get("keep_weight") or 0.0)
    if net.get("arch") == "johnson_multi":
        names = list(net["styles"])
        chosen = train_styles if train_styles is not None else range(len(names))
        groups["styles"] = [style_preset(cfg, n) if i in chosen else {"name": n} for i, n in enumerate(names)]
        groups["train_styles"] = list(train_styles) if train_styles is not None else None
        groups["draw_weights"] = draw_weights(cfg.get("style_draw"), names)
    return StyleTransferModule(net=net, **groups)


def draw_weights(style_draw, names: list[str]) -> list[float] | None:
    """``style_draw`` ({name: how often, relative}; unnamed styles 1) as one weight per style, or None.

    Raises:
        ConfigError: a name the network does not have, or a weight that is not a number >= 0.
    """
    if not style_draw:
        return None
    given = dict(OmegaConf.to_container(style_draw) if isinstance(style_draw, DictConfig) else style_draw)
    for name, weight in given.items():
        if name not in names:
            raise ConfigError(f"style_draw.{name}: not a style of this network ({', '.join(names)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(
                f"style_draw.{name}={weight!r}: expected a number >= 0 (how often, relative; 1 = as the others)"
            )
    weights = [float(given.get(name, 1.0)) for name in names]
    if not any(weights):
        raise ConfigError("style_draw: every weight is 0; at least one style must be drawn")
    return weights


def add_style(cfg: DictConfig, initial) -> list[int]:
    """Grow ``init_from``'s multi-style network by the style ``add_style`` names: ``model.styles`` gets
    the new name and the run trains only its (γ, β). Returns the index of the new style.

    Raises:
        ConfigError: no multi-style ``init_from``, or a style the network already has.
    """
    styles = list(getattr(getattr(initial, "net", None), "styles", None) or [])
    if not styles:
        raise ConfigError("add_style needs init_from=<a multi-style .safetensors> (experiment=multi_style)")
    name = cfg.style.name if cfg.add_style == "custom" else str(cfg.add_style)
    if name in styles:
        raise ConfigError(f"add_style={name}: the network already has it ({', '.join(styles)})")
    OmegaConf.update(cfg, "model.styles", [*styles, name], force_add=True)
    OmegaConf.update(cfg, "model.arch", "johnson_multi", force_add=True)
    return [len(styles)]


def grow_into(loaded, module) -> None:
    """Copy a multi-style network into ``module.net``, which has one more style; the new rows start at the mean."""
    import torch

    target = module.net.state_dict()
    for key, value in loaded.net.state_dict().items():
        if target[key].shape == value.shape:
            target[key] = value
        else:  # a (γ or β) of shape (S, C) -> (S + 1, C)
            target[key] = torch.cat([value, value.mean(0, keepdim=True)])
    module.net.load_state_dict(target)


def train(cfg: DictConfig) -> dict:
    """Fit one style network and export it.

    Returns:
        dict with ``output_dir``, ``checkpoint_dir``, ``export_path`` (or None),
        ``steps``, ``resumed_from`` (checkpoint and step, or None), ``metrics``
        (last logged values) and ``skipped_files``.

    Raises:
        TrainingInterrupted: SIGTERM or SIGINT arrived; a resumable ``last.ckpt`` was written.
    """
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ProgressBar

    from fastnst.training.callbacks import ExportNetwork
    from fastnst.training.interrupt import AtomicCheckpointIO

    validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resumed = resolve_checkpoint(cfg)
    if resumed is not None:
        ckpt_path, step, run_dir = resumed
        # Continue in the interrupted run's folder so checkpoints and TensorBoard curves carry on.
        OmegaConf.update(cfg, "paths.output_dir", str(run_dir), force_add=True)
        print(f"resuming from {ckpt_path} (step {step}) in {run_dir}", file=sys.stderr)
    initial = load_initial_network(cfg, resuming=resumed is not None)
    train_styles = add_style(cfg, initial) if cfg.get("add_style") else None
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # fails here, before any model is built, when the folder has no images
    module = build_module(cfg, train_styles)
    if initial is not None:
        if train_styles is not None and resumed is None:
            grow_into(initial, module)
        apply_initial_network(initial, module, load_weights=resumed is None and train_styles is None, cfg=cfg)
        if resumed is not None and getattr(initial.net, "arch", None) == module.net.arch and module.keep_weight > 0:
            module.hold(initial.net)  # not where the run stopped: what it started from, when that file is here
    module.note_skipped(datamodule.val_images()[1])  # unreadable validation photos are reported too
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if not cfg.get("export", True):
        callbacks = [c for c in callbacks if not isinstance(c, ExportNetwork)]
    exporter = next((c for c in callbacks if isinstance(c, ExportNetwork)), None)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    if not loggers:  # nothing to monitor the learning rate into
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resumed[0]) if resumed else None)
    return {
        "output_dir": str(cfg.paths.output_dir),
        "checkpoint_dir": str(Path(cfg.paths.output_dir) / "checkpoints"),
        "export_path": str(exporter.path) if exporter and exporter.path else None,
        "steps": trainer.global_step,
        "resumed_from": (str(resumed[0]), resumed[1]) if resumed else None,
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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from fastnst.checkpoint import CheckpointError
    from fastnst.data import DataError
    from fastnst.io import ImageReadError
    from fastnst.models.vgg import WeightsError
    from fastnst.training.interrupt import TrainingInterrupted
    from fastnst.training.module import NonFiniteLossError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train(cfg)
    except (ConfigError, DataError, ImageReadError, WeightsError, CheckpointError, NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except TrainingInterrupted as exc:
        print(f"{exc}; continue with: fastnst train --resume {exc.checkpoint.parents[1]}", file=sys.stderr)
        sys.exit(exc.exit_code)
    finally:
        remove_unused_run_dir(run_dir)
    if result["skipped_files"]:
        print(f"skipped {len(result['skipped_files'])} unreadable training files:", file=sys.stderr)
        for reason in result["skipped_files"]:
            print(f"  {reason}", file=sys.stderr)
    if result["export_path"]:
        print(f"exported {result['export_path']} after {result['steps']} steps")
    print(f"run folder: {result['output_dir']} (tensorboard --logdir {result['output_dir']})")


def override_key(override: str) -> str:
    """The config key a Hydra command-line override sets (``+a.b=1``, ``~a.b``, ``a/b=c`` ...)."""
    return override.lstrip("+~").split("=", 1)[0]


def resume_overrides(run_dir: Path, overrides: list[str]) -> list[str]:
    """The overrides that continue ``run_dir``: those it was started with, then ``overrides``.

    A key given again on the command line replaces the saved one (a moved data folder, say).

    Raises:
        ConfigError: ``run_dir`` is not a training run folder.
    """
    import yaml

    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(f"--resume {run_dir}: not a training run folder (no .hydra/overrides.yaml in it)")
    given = {override_key(o) for o in overrides}
    kept = [
        o for o in yaml.safe_load(saved.read_text()) or [] if override_key(o) not in given | {"resume", "ckpt_path"}
    ]
    return [*kept, *overrides, "resume=true", f"hydra.run.dir={run_dir.resolve()}"]


def cli(argv: list[str]) -> int:
    """``fastnst train [--resume RUN_DIR] [overrides ...]``: Hydra's command line, plus --resume."""
    args = list(argv)
    if "--resume" in args:
        at = args.index("--resume")
        if at + 1 >= len(args):
            print("fastnst train: --resume needs the run folder (logs/<style>/<time>)", file=sys.stderr)
            return 2
        run_dir = Path(args[at + 1]).expanduser()
        try:
            args = resume_overrides(run_dir, args[:at] + args[at + 2 :])
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    saved_argv = sys.argv
    # Hydra reads sys.argv; Lightning's DDP launcher starts the other ranks as `python sys.argv[0] ...`.
    sys.argv = [str(Path(__file__).resolve()), *args]
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":  # DDP ranks are started this way
    sys.exit(cli(sys.argv[1:]))
