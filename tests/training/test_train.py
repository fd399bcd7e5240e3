"""Real train() runs through the composed Hydra configs (tiny network, tiny random VGG)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastnst.training.train as train_script

from conftest import ROOT, write_photo

LOSS_TAGS = {"train/content_loss", "train/style_loss", "train/tv_loss", "train/loss"}


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(run_dir.rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard events under {run_dir}"
    out: dict[str, list] = {}
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_two_step_train_writes_checkpoint_export_and_events(train_cfg, tmp_path):
    cfg = train_cfg("callbacks.style_samples.every_n_steps=1")
    result = train_script.train(cfg)
    assert result["steps"] == 2
    assert (Path(result["checkpoint_dir"]) / "last.ckpt").is_file()
    export = Path(result["export_path"])
    assert export == tmp_path / "export" / "tiny.safetensors"
    from fastnst.checkpoint import load_network

    loaded = load_network(export)
    assert loaded.info.steps == 2 and loaded.net.config.width == 0.25
    assert load_network(Path(result["checkpoint_dir"]) / "last.ckpt").style == "tiny"
    tags = scalars(tmp_path / "run")
    assert LOSS_TAGS <= set(tags)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((tmp_path / "run").rglob("events.out.tfevents.*"))))
    acc.Reload()
    assert "samples" in acc.Tags()["images"]


def test_export_never_overwrites(train_cfg, tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "tiny.safetensors").write_bytes(b"keep me")
    result = train_script.train(train_cfg("~callbacks.style_samples", "~logger.tensorboard"))
    assert (tmp_path / "export" / "tiny.safetensors").read_bytes() == b"keep me"
    assert Path(result["export_path"]).name.startswith("tiny-")


def test_style_loss_falls(train_cfg, tmp_path):
    cfg = train_cfg(
        "trainer.max_steps=30",
        "optim.lr=0.01",
        "loss.vgg.weights=caffe_vgg19",
        "loss.vgg.channel_scale=1.0",
        "data.image_size=64",
        "~callbacks.style_samples",
        "callbacks.model_checkpoint.every_n_train_steps=100",
    )
    train_script.train(cfg)
    style = [v for _, v in sorted(scalars(tmp_path / "run")["train/style_loss"])]
    assert len(style) >= 25
    assert sum(style[-5:]) / 5 < 0.7 * sum(style[:5]) / 5


def test_resume_continues_step_counter_and_curves(train_cfg, tmp_path):
    run_dir = tmp_path / "logs" / "tiny" / "first"
    first = train_cfg(f"paths.output_dir={run_dir}", "callbacks.model_checkpoint.every_n_train_steps=1", "export=false")
    assert train_script.train(first)["steps"] == 2
    again = train_cfg(
        "resume=true", "trainer.max_steps=4", f"paths.output_dir={tmp_path / 'elsewhere'}", "export=false"
    )
    result = train_script.train(again)
    assert result["steps"] == 4
    assert Path(result["output_dir"]) == run_dir
    steps = sorted(s for s, _ in scalars(run_dir)["train/loss"])
    assert steps[0] == 0 and steps[-1] == 3


def test_empty_folder_fails_before_training(train_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    from fastnst.data import DataError

    with pytest.raises(DataError, match="empty"):
        train_script.train(train_cfg(f"data.root={tmp_path / 'empty'}"))
    assert not (tmp_path / "run").exists()


def test_missing_style_image_is_a_config_error(train_cfg, tmp_path):
    with pytest.raises(train_script.ConfigError, match="style.image=.*not found"):
        train_script.train(train_cfg(f"style.image={tmp_path / 'nope.jpg'}"))


def test_non_finite_loss_names_step_and_cause(train_cfg):
    from fastnst.training.module import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="step 0.*learning rate"):
        train_script.train(train_cfg("loss.style_weight=inf", "~callbacks.style_samples"))


def test_every_shipped_network_has_a_style_preset_that_composes(shipped_cfg, monkeypatch):
    from fastnst.checkpoint import load_network

    shipped = []
    for path in sorted((ROOT / "checkpoints").glob("*.safetensors")):
        styles = getattr(load_network(path).net, "styles", None)
        shipped += list(styles) if styles else [path.stem]  # a multi-style network: each of its styles
    assert "starry_night" in shipped
    monkeypatch.delenv("FASTNST_STYLE_DIR", raising=False)
    for style in sorted(set(shipped)):
        assert (ROOT / "fastnst" / "configs" / "style" / f"{style}.yaml").is_file(), (
            f"checkpoints/{style} has no preset"
        )
        cfg = shipped_cfg(f"style={style}")
        assert cfg.style.name == style
        image = str(cfg.style.image)
        # Shipped with the package (starry_night), or asked of the user: never a path outside the project.
        assert Path(image).is_file() if style == "starry_night" else image == f"missing:{style}.jpg", image


def test_presets_never_point_outside_the_project():
    for path in (ROOT / "fastnst" / "configs").rglob("*.yaml"):
        assert "shared" not in path.read_text(), f"{path} points at the development machine's ../shared"


def test_a_painting_that_is_not_shipped_is_one_line(shipped_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("FASTNST_STYLE_DIR", raising=False)
    cfg = shipped_cfg("style=great_wave")
    with pytest.raises(train_script.ConfigError) as info:
        train_script.validate(cfg)
    assert str(info.value) == (
        "style=great_wave: the painting great_wave.jpg is not shipped with fastnst; "
        "add style.image=/path/to/great_wave.jpg, or set FASTNST_STYLE_DIR to a folder holding it"
    )
    (tmp_path / "paintings").mkdir()
    write_photo(tmp_path / "paintings" / "great_wave.jpg")
    monkeypatch.setenv("FASTNST_STYLE_DIR", str(tmp_path / "paintings"))
    assert shipped_cfg("style=great_wave").style.image == str(tmp_path / "paintings" / "great_wave.jpg")


def test_each_loss_preset_owns_its_weights(shipped_cfg):
    # starry_night replaces the perceptual preset's style weight, and only that preset's.
    assert shipped_cfg("style=starry_night").loss.style_weight == 10.0
    assert shipped_cfg("style=great_wave").loss.style_weight == 5.0
    classic = shipped_cfg("style=starry_night", "loss=gatys").loss
    assert classic.style_weight == 8.5 and set(classic.style_layers.values()) == {1.0}
    assert shipped_cfg("style=starry_night", "loss.style_weight=3").loss.style_weight == 3


def test_validate_checks_the_loss_values_used(train_cfg):
    with pytest.raises(train_script.ConfigError, match=r"loss.style_weight=-1: expected a number >= 0"):
        train_script.validate(train_cfg("loss.style_weight=-1"))
    with pytest.raises(train_script.ConfigError, match=r"loss.style_layers.relu1_2='x'"):
        train_script.validate(train_cfg("loss.style_layers.relu1_2=x"))
    with pytest.raises(train_script.ConfigError, match=r"keep_weight=-1.0: expected a number >= 0"):
        train_script.validate(train_cfg("experiment=arbitrary", "keep_weight=-1.0"))
    with pytest.raises(train_script.ConfigError, match=r"named_share=2: expected a share from 0 to 1"):
        train_script.validate(train_cfg("experiment=arbitrary_named", "named_share=2"))


def test_cpu_training_uses_bf16_only_where_it_measures_faster(train_cfg, monkeypatch, tmp_path):
    import fastnst.backends.machine as machine
    import fastnst.training.precision as precision

    monkeypatch.setattr(machine, "emulated_precisions", lambda identity=None: set())  # a CPU with bf16 instructions
    measured = []
    for timings, expected in (({"32-true": 100, "bf16-mixed": 50}, "bf16-mixed"),
                              ({"32-true": 100, "bf16-mixed": 130}, "32-true"),  # the Intel case: flags say bf16
                              ({"32-true": 100, "bf16-mixed": 95}, "32-true")):  # fmt: skip
        precision.cpu_training_precision.cache_clear()
        monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / expected / str(timings["bf16-mixed"])))
        monkeypatch.setattr(
            precision, "measure_training_step", lambda p, steps=3, t=timings: measured.append(p) or t[p]
        )
        assert train_cfg("experiment=demo").trainer.precision == expected
        n = len(measured)
        precision.cpu_training_precision.cache_clear()
        assert train_cfg("experiment=demo").trainer.precision == expected
        assert len(measured) == n  # the second run read the cached measurement
    precision.cpu_training_precision.cache_clear()
    # A CPU without bf16 instructions (Zen 3): bf16 would be emulated, 18x slower; it is never run.
    monkeypatch.setattr(machine, "emulated_precisions", lambda identity=None: {"bf16"})
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "zen3"))
    measured.clear()
    assert train_cfg("experiment=demo").trainer.precision == "32-true" and measured == ["32-true"]
    # A clearly slower bf16 stops after one step.
    monkeypatch.setattr(machine, "emulated_precisions", lambda identity=None: set())
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "slow"))
    precision.cpu_training_precision.cache_clear()
    measured.clear()
    slow = {"32-true": 100, "bf16-mixed": 900}
    monkeypatch.setattr(precision, "measure_training_step", lambda p, steps=3: measured.append((p, steps)) or slow[p])
    assert train_cfg("experiment=demo").trainer.precision == "32-true"
    assert measured == [("32-true", 3), ("bf16-mixed", 1)]
    precision.cpu_training_precision.cache_clear()


def test_gatys_loss_preset_is_the_evaluate_objective(shipped_cfg):
    from fastnst.optimize import GATYS_CONTENT_LAYERS, GatysConfig

    cfg = shipped_cfg("experiment=finetune", "style=great_wave")
    plain = shipped_cfg("experiment=finetune", "style=starry_night")  # no layer weights of its own
    assert dict(plain.loss.style_layers) == GatysConfig().style_layers
    assert tuple(cfg.loss.content_layers) == GATYS_CONTENT_LAYERS
    assert Path(cfg.init_from).name == "great_wave.safetensors" and Path(cfg.init_from).is_file()
    assert "bsds500/test/*" in cfg.data.exclude
    # The shipped recipe adds the colour-layout term; a style preset or the command line beats it.
    assert cfg.loss.color_weight == 5e7 and shipped_cfg("style=great_wave").loss.color_weight == 0
    assert shipped_cfg("experiment=finetune", "loss.color_weight=0").loss.color_weight == 0
    preset = shipped_cfg("experiment=finetune", "+style.weights.gatys.color_weight=1e6")
    assert preset.loss.color_weight == 1e6
    gpu = shipped_cfg("experiment=gpu_refresh")
    assert gpu.loss.color_weight == cfg.loss.color_weight
    # Crops that span most of a photo at the scale it is stylized at (short side 256-384 px), on CPU and GPU.
    for recipe in (cfg, gpu):
        assert (recipe.data.image_size, recipe.data.scale_jitter) == (256, 1.5)
    # A style preset may weight single layers (the finest two or three, 3-5x); the command line beats it.
    scream = shipped_cfg("experiment=finetune", "style=the_scream")
    assert dict(scream.loss.style_layers) == {
        "relu1_1": 5.0,
        "relu2_1": 5.0,
        "relu3_1": 3.0,
        "relu4_1": 1.0,
        "relu5_1": 1.0,
    }
    wave = shipped_cfg("experiment=finetune", "style=great_wave")
    assert dict(wave.loss.style_layers) == {**GatysConfig().style_layers, "relu1_1": 5.0, "relu2_1": 5.0}
    hat = shipped_cfg("experiment=finetune", "style=woman_with_a_hat")
    assert dict(hat.loss.style_layers) == {**GatysConfig().style_layers, "relu1_1": 3.0, "relu2_1": 3.0}
    udnie = shipped_cfg("experiment=finetune", "style=udnie")  # its one weak layer alone
    assert dict(udnie.loss.style_layers) == {**GatysConfig().style_layers, "relu2_1": 3.0}
    assert (
        shipped_cfg("experiment=finetune", "style=the_scream", "loss.style_layers.relu1_1=1").loss.style_layers.relu1_1
        == 1
    )
    bad = shipped_cfg("experiment=finetune", "+style.weights.gatys.style_layers.relu3_1=-1")
    with pytest.raises(train_script.ConfigError, match="loss.style_layers.relu3_1=-1"):
        train_script.validate(bad)


def max_difference(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_fine_tune_starts_from_init_from(train_cfg, tmp_path, style_path, capsys):
    from fastnst.checkpoint import load_network
    from fastnst.io import file_sha256

    base = Path(train_script.train(train_cfg("~callbacks.style_samples"))["export_path"])
    tuned = train_script.train(
        train_cfg(f"init_from={base}", "optim.lr=1e-9", "trainer.max_steps=1", "~callbacks.style_samples")
    )
    before, after = load_network(base), load_network(tuned["export_path"])
    assert after.info.init_from == base.name and after.info.init_steps == 2
    # A network exported later from the run's .ckpt (or several, averaged) says as much about its training.
    trained_on = file_sha256(style_path)
    write_photo(style_path, size=(64, 64), seed=7)  # the painting's file changes after the run
    ckpt = load_network(Path(tuned["checkpoint_dir"]) / "last.ckpt").info
    assert ckpt.style_image_sha256 == trained_on != file_sha256(style_path)
    for key in ("style_image_sha256", "style_size", "image_size", "loss", "style_layers", "init_from", "init_steps"):
        assert getattr(ckpt, key) == getattr(after.info, key) is not None, key
    assert max_difference(after.net, before.net) < 1e-6
    # Without init_from the same run starts from random weights, about two Adam steps of 1e-3 away.
    fresh = train_script.train(train_cfg("optim.lr=1e-9", "trainer.max_steps=1", "~callbacks.style_samples"))
    assert max_difference(load_network(fresh["export_path"]).net, before.net) > 1e-4
    with pytest.raises(train_script.ConfigError, match=r"init_from=.*; add model.width=0.25$"):
        train_script.train(train_cfg(f"init_from={base}", "model.width=0.125"))  # narrower: refused
    # A wider and deeper network grows from it (copied channels, identity blocks, a closed input
    # skip): it draws the same.
    deeper = train_script.train(
        train_cfg(
            f"init_from={base}",
            "model.width=0.5",
            "model.num_residual_blocks=3",
            "model.input_skip=true",
            "optim.lr=1e-9",
            "trainer.max_steps=1",
            "~callbacks.style_samples",
        )
    )
    assert "grown 2x wider and by 2 residual blocks, given a closed input skip" in capsys.readouterr().err
    grown = load_network(deeper["export_path"])
    assert len(grown.net.residuals) == 3 and grown.net.config.width == 0.5 and grown.net.config.input_skip
    assert grown.info.init_from == base.name
    photo = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert (grown.net.eval()(photo) - before.net.eval()(photo)).abs().max() < 1e-4
    with pytest.raises(
        train_script.ConfigError, match=r"add model.width=0.5 model.num_residual_blocks=3 model.input_skip=True$"
    ):
        train_script.train(train_cfg(f"init_from={deeper['export_path']}"))  # shallower than its file: refused


def test_resumed_fine_tune_keeps_its_weights_and_records_its_start(train_cfg, tmp_path):
    from fastnst.checkpoint import load_network

    base = Path(train_script.train(train_cfg("~callbacks.style_samples"))["export_path"])
    run_dir = tmp_path / "tune"
    options = (f"init_from={base}", "optim.lr=1e-2", "trainer.max_steps=1", "~callbacks.style_samples")
    train_script.train(train_cfg(*options, f"paths.output_dir={run_dir}", "export=false"))
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = load_network(train_script.train(train_cfg(*options, f"ckpt_path={last}"))["export_path"])
    assert resumed.info.init_from == base.name
    assert max_difference(resumed.net, load_network(last).net) == 0  # not reset to init_from's weights
    assert max_difference(resumed.net, load_network(base).net) > 1e-3


def run_cli(*args, timeout=300):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_bad_setting_leaves_no_run_folder(tmp_path, photo_dir, style_path):
    result = run_cli(
        "style=custom", f"style.image={style_path}", "style.name=early", f"data.root={photo_dir}",
        f"init_from={tmp_path / 'missing.safetensors'}", f"paths.log_dir={tmp_path / 'logs'}", timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "missing.safetensors: checkpoint not found" in result.stderr
    assert not (tmp_path / "logs" / "early").exists()  # Hydra's folder for the run, with only its config, removed


def test_unknown_style_lists_available(tmp_path):
    result = run_cli("style=no_such_style", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "no_such_style" in result.stderr and "starry_night" in result.stderr and "custom" in result.stderr


def test_ddp_two_cpu_processes(tmp_path, photo_dir, style_path):
    result = run_cli(
        "style=custom",
        f"style.image={style_path}",
        "style.name=ddp",
        "style.size=64",
        f"data.root={photo_dir}",
        "data.image_size=32",
        "data.batch_size=1",
        "data.num_workers=0",
        "data.num_val_images=1",
        "model.width=0.25",
        "model.num_residual_blocks=1",
        "loss.vgg.weights=random",
        "loss.vgg.channel_scale=0.125",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_steps=3",
        "trainer.log_every_n_steps=1",
        "~callbacks.progress_bar",
        "trainer.enable_progress_bar=false",
        "~callbacks.style_samples",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.export_dir={tmp_path / 'export'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "export" / "ddp.safetensors").is_file()
    assert "exported" in result.stdout and "after 3 steps" in result.stdout


@pytest.mark.parametrize(
    "override, words",
    [
        ("data.image_size=abc", "data.image_size='abc': expected a positive integer"),
        ("optim.lr=-1", "optim.lr=-1"),
        ("+style_size=0", "style_size=0: expected a number > 0"),
        ("loss.color_weight=-2", "loss.color_weight=-2: expected a number >= 0"),
    ],
)
def test_bad_override_value_is_one_line(train_cfg, override, words):
    with pytest.raises(train_script.ConfigError, match=words):
        train_script.train(train_cfg(override))


def test_bad_override_from_the_command_line(tmp_path):
    result = run_cli("data.image_size=abc", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: data.image_size='abc': expected a positive integer"


def test_nan_keeps_the_last_good_checkpoint(train_cfg, tmp_path):
    import torch

    run_dir = tmp_path / "logs" / "tiny" / "good"
    train_script.train(train_cfg(f"paths.output_dir={run_dir}", "export=false"))
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    from fastnst.training.module import NonFiniteLossError

    with pytest.raises(NonFiniteLossError):
        train_script.train(train_cfg("resume=true", "trainer.max_steps=4", "loss.style_weight=inf", "export=false"))
    assert last.read_bytes() == before
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2


def test_crash_while_saving_a_lightning_checkpoint_keeps_the_old_one(tmp_path, monkeypatch):
    """Lightning writes checkpoints through an fsspec transaction (temporary file, then move)."""
    import torch
    from fsspec.implementations.local import LocalFileOpener
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    path = tmp_path / "last.ckpt"
    TorchCheckpointIO().save_checkpoint({"global_step": 1}, path)
    before = path.read_bytes()

    def crash(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalFileOpener, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        TorchCheckpointIO().save_checkpoint({"global_step": 2, "big": torch.zeros(1000)}, path)
    assert path.read_bytes() == before


def test_fastnst_train_command(tmp_path, photo_dir, style_path):
    args = [
        "style=custom", f"style.image={style_path}", "style.name=cmd", "style.size=64", f"data.root={photo_dir}",
        "data.image_size=32", "data.batch_size=2", "data.num_workers=0", "data.num_val_images=1", "model.width=0.25",
        "model.num_residual_blocks=1", "loss.vgg.weights=random", "loss.vgg.channel_scale=0.125", "trainer=cpu",
        "trainer.max_steps=2", "~callbacks.progress_bar", "trainer.enable_progress_bar=false", "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}", f"paths.export_dir={tmp_path / 'export'}",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "fastnst.cli", "train", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "export" / "cmd.safetensors").is_file() and "after 2 steps" in result.stdout


def test_a_run_writes_under_the_folder_it_is_run_from_not_the_checkout(tmp_path, photo_dir, style_path):
    def checkout_files() -> set[str]:
        found = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,  # a new folder shows
                               capture_output=True, text=True).stdout.splitlines()  # fmt: skip
        return {line for line in found if ".venv" not in line and "__pycache__" not in line}

    before = checkout_files()
    args = [
        "style=custom", f"style.image={style_path}", "style.name=here", "style.size=64", f"data.root={photo_dir}",
        "data.image_size=32", "data.batch_size=2", "data.num_workers=0", "data.num_val_images=1", "model.width=0.25",
        "model.num_residual_blocks=1", "loss.vgg.weights=random", "loss.vgg.channel_scale=0.125", "trainer=cpu",
        "trainer.max_steps=1", "~callbacks.progress_bar", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "FASTNST_ROOT"}
    result = subprocess.run([sys.executable, "-m", "fastnst.cli", "train", *args], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "checkpoints" / "here.safetensors").is_file()  # the export, under the working folder
    assert list((tmp_path / "logs" / "here").glob("*/checkpoints/last.ckpt"))  # the run folder too
    assert checkout_files() == before


def test_the_module_takes_each_config_group_as_it_is(train_cfg):
    from omegaconf import OmegaConf

    cfg = train_cfg("optim.lr=0.003", "runtime.channels_last=true", "model.width=0.25")
    module = train_script.build_module(cfg)
    assert module.hparams.net == OmegaConf.to_container(cfg.model, resolve=True)  # arch + its config, nothing copied
    assert module.hparams.optim == OmegaConf.to_container(cfg.optim, resolve=True)
    assert module.hparams.runtime == {"channels_last": True, "compile": False}
    assert module.hparams.loss["style_layers"] == OmegaConf.to_container(cfg.loss.style_layers)
    assert cfg.callbacks.export._target_.endswith("ExportNetwork") and "graceful_stop" in cfg.callbacks
    assert module.perceptual.color_weight == 0.0  # off unless asked for
    assert train_script.build_module(train_cfg("loss.color_weight=2e7")).perceptual.color_weight == 2e7


def test_multi_style_training_then_adding_a_style_trains_only_its_rows(train_cfg, tmp_path, monkeypatch):
    import torch

    from fastnst.checkpoint import load_network
    from fastnst.models.multi_style import mix_weights

    paintings = tmp_path / "paintings"
    for i, name in enumerate(("starry_night", "great_wave", "the_scream")):
        write_photo(paintings / f"{name}.jpg", size=(64, 64), seed=20 + i)
    monkeypatch.setenv("FASTNST_STYLE_DIR", str(paintings))
    multi = ("experiment=multi_style", "styles=[great_wave,the_scream]", "data.exclude=[]", f"data.root={tmp_path / 'photos'}",
             "data.image_size=32", "trainer.max_steps=4", "callbacks.style_samples.every_n_steps=2", "trainer.precision=bf16-mixed",
             "style_size=40")  # fmt: skip
    result = train_script.train(train_cfg(*multi, f"paths.output_dir={tmp_path / 'run1'}"))
    first = load_network(result["export_path"])
    assert first.net.styles == ("great_wave", "the_scream")
    assert set(first.info.extra["paintings"]) == {"great_wave", "the_scream"}
    assert {p["size"] for p in first.info.extra["paintings"].values()} == {40}  # style_size beats each preset's
    tags = __import__("test_train").scalars(tmp_path / "run1")
    assert {"train_great_wave/style_loss", "train_the_scream/style_loss"} & set(tags)  # per-style curves
    x = torch.rand(1, 3, 32, 32)
    a, b = (first.net(x, mix_weights(first.net.styles, s)) for s in ("great_wave", "the_scream"))
    assert (a - b).abs().max() > 0  # the styles differ after training

    grown = train_script.train(train_cfg(*multi, f"init_from={result['export_path']}", "add_style=starry_night",
                                         "optim.lr=1e-2", f"paths.output_dir={tmp_path / 'run2'}"))  # fmt: skip
    second = load_network(grown["export_path"])
    assert second.net.styles == ("great_wave", "the_scream", "starry_night")
    old, new = first.net.state_dict(), second.net.state_dict()
    for key, value in old.items():
        if new[key].shape == value.shape:
            assert torch.equal(new[key], value), f"{key} changed while only the new style trains"
        else:  # (γ, β): the old rows untouched, the new row learned
            assert torch.equal(new[key][:2], value) and not torch.equal(new[key][2], value.mean(0))


def test_style_draw_sets_how_often_each_style_trains(train_cfg, tmp_path, monkeypatch):
    paintings = tmp_path / "paintings"
    for i, name in enumerate(("great_wave", "the_scream", "udnie")):
        write_photo(paintings / f"{name}.jpg", size=(48, 48), seed=30 + i)
    monkeypatch.setenv("FASTNST_STYLE_DIR", str(paintings))
    multi = ("experiment=multi_style", "styles=[great_wave,the_scream,udnie]", "style_size=32")
    module = train_script.build_module(train_cfg(*multi, "style_draw={udnie:3,the_scream:0}"))
    assert module.draw_weights == [1.0, 0.0, 3.0]
    drawn = [module.draw_style(step) for step in range(4000)]
    assert drawn.count(1) == 0 and 0.72 < drawn.count(2) / len(drawn) < 0.78
    assert [module.draw_style(step) for step in range(50)] == drawn[:50]  # a resumed run draws the same
    even = train_script.build_module(train_cfg(*multi))
    assert even.draw_weights is None
    assert all(1200 < [even.draw_style(step) for step in range(4000)].count(i) < 1470 for i in range(3))
    for bad, words in (("{monet:2}", "style_draw.monet: not a style of this network"),
                       ("{udnie:-1}", "style_draw.udnie=-1: expected a number >= 0"),
                       ("{great_wave:0,the_scream:0,udnie:0}", "every weight is 0")):  # fmt: skip
        with pytest.raises(train_script.ConfigError, match=words):
            train_script.build_module(train_cfg(*multi, f"style_draw={bad}"))


@pytest.fixture
def any_painting_run(tmp_path, monkeypatch):
    """Two named styles' paintings, a folder of paintings (one unreadable), a tiny multi-style network to
    start from, and the overrides of a tiny ``experiment=arbitrary`` run: (styles folder, multi, overrides)."""
    from fastnst.checkpoint import save_network
    from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig

    styles = tmp_path / "styles"
    for i, name in enumerate(("great_wave", "the_scream")):
        write_photo(styles / f"{name}.jpg", size=(64, 64), seed=40 + i)
    monkeypatch.setenv("FASTNST_STYLE_DIR", str(styles))
    paintings = tmp_path / "paintings"
    for i in range(6):
        write_photo(paintings / f"movement{i % 2}" / f"p{i}.jpg", size=(72, 56), seed=50 + i)
    (paintings / "movement0" / "broken.jpg").write_text("not a painting")
    torch.manual_seed(0)
    multi = MultiStyleNet(MultiStyleNetConfig(width=0.25, num_residual_blocks=1, styles=("great_wave", "the_scream")))
    start = save_network(multi, tmp_path / "multi.safetensors", {"style": "multi"})
    overrides = ("experiment=arbitrary", "styles=[great_wave,the_scream]", f"init_from={start}", "data.exclude=[]",
                 f"data.root={tmp_path / 'photos'}", f"data.style_root={paintings}", "data.image_size=32",
                 "data.style_image_size=32", "data.num_workers=0", "model.embedding_dim=8", "model.hidden_dim=16",
                 "model.encoder_channel_scale=0.125", "trainer.precision=32-true")  # fmt: skip
    return styles, multi, overrides


def test_any_painting_training_from_a_multi_style_network(train_cfg, tmp_path, any_painting_run):
    from fastnst.checkpoint import load_network
    from fastnst.models.multi_style import mix_weights

    _, multi, overrides = any_painting_run
    overrides += ("trainer.max_steps=3", "callbacks.style_samples.every_n_steps=2", "data.style_held_out=0.3")
    result = train_script.train(train_cfg(*overrides))
    net = load_network(result["export_path"]).net
    assert net.arch == "johnson_arbitrary" and net.styles == ("great_wave", "the_scream")
    assert any("broken.jpg" in reason for reason in result["skipped_files"])  # counted, not fatal
    assert net.style_embeddings.abs().sum() > 0  # the stored styles were embedded from their paintings
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # after 3 small steps it still paints the multi-style network's styles closely
        for name in net.styles:
            assert (net(x, net.stored(name)) - multi.eval()(x, mix_weights(multi.styles, name))).abs().mean() < 0.05
    tags = __import__("test_train").scalars(tmp_path / "run")
    assert "train/style_loss" in tags
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "run").rglob("events.out.tfevents*")).parent))
    events.Reload()
    assert "samples" in events.Tags()["images"]  # held-out paintings x photos


def test_any_painting_named_styles_learn_their_stored_embeddings(train_cfg, tmp_path, any_painting_run):
    from fastnst.checkpoint import load_network
    from fastnst.io import load_image
    from fastnst.models.arbitrary import prepare_painting

    styles, _, overrides = any_painting_run
    overrides += ("trainer.max_steps=4", "logger=none")
    module = train_script.build_module(train_cfg(*overrides, "named_share=0.25"))
    drawn = [module.draw_named(step) for step in range(4000)]
    assert 0.22 < sum(d is not None for d in drawn) / len(drawn) < 0.28 and {0, 1} <= set(drawn)

    def moved(share: float) -> float:
        """How far the exported named embeddings are from what the predictor makes of their paintings."""
        run = tmp_path / f"share{share}"
        result = train_script.train(train_cfg(*overrides, f"named_share={share}", f"paths.output_dir={run}",
                                              f"paths.export_dir={run}"))  # fmt: skip
        net = load_network(result["export_path"]).net
        assert isinstance(net.style_embeddings, torch.Tensor)  # loads as a plain tensor either way
        predicted = torch.cat([net.embed(prepare_painting(load_image(styles / f"{n}.jpg"))) for n in net.styles])
        return float((net.style_embeddings - predicted).abs().max())

    assert moved(0.0) < 1e-3  # the predictor makes them
    assert moved(1.0) > 2e-3  # every batch trained a named style: its embedding learnt (Adam, lr 1e-3)


def test_any_painting_predictor_only_trains_the_predictor_alone(train_cfg, tmp_path, any_painting_run):
    from fastnst.checkpoint import load_network

    _, multi, overrides = any_painting_run
    common = (*overrides, "trainer.max_steps=2", "logger=none", "named_share=0", "+optim.predictor_only=true")
    module = train_script.build_module(train_cfg(*common))
    trained = {name for name, p in module.net.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith("style_predictor.") for name in trained)
    net = load_network(train_script.train(train_cfg(*common))["export_path"]).net
    own = net.state_dict()
    convolutions = {k: v for k, v in multi.state_dict().items() if k in own and own[k].shape == v.shape}
    assert len(convolutions) > 10 and all(torch.equal(own[k].float(), v.float()) for k, v in convolutions.items())


def test_any_painting_training_leaves_the_predictor_skip_as_its_fits_made_it(train_cfg, any_painting_run):
    from fastnst.checkpoint import load_network

    _, _, overrides = any_painting_run
    common = (*overrides, "trainer.max_steps=2", "logger=none", "named_share=0", "model.predictor_skip=true",
              "+optim.predictor_only=true")  # fmt: skip
    module = train_script.build_module(train_cfg(*common))
    trained = {name for name, p in module.net.named_parameters() if p.requires_grad}
    assert "style_predictor.mlp.0.weight" in trained and not any(".skip." in name for name in trained)
    skip = load_network(train_script.train(train_cfg(*common))["export_path"]).net.style_predictor.skip
    assert torch.count_nonzero(skip.weight) == 0 and torch.count_nonzero(skip.bias) == 0  # zero, as it started


def test_any_painting_keep_weight_holds_other_paintings_while_the_named_styles_train(train_cfg, tmp_path, monkeypatch,
                                                                                     any_painting_run):  # fmt: skip
    from fastnst.checkpoint import load_network
    from fastnst.io import load_image
    from fastnst.models.arbitrary import prepare_painting

    _, _, overrides = any_painting_run
    run = (f"paths.output_dir={tmp_path}/0", f"paths.export_dir={tmp_path}/0")
    first = train_script.train(train_cfg(*overrides, "trainer.max_steps=1", "logger=none", "named_share=0", *run))
    start = load_network(first["export_path"]).net  # an any-painting network, as the shipped one is
    common = (*overrides, f"init_from={first['export_path']}", "trainer.max_steps=8", "logger=none",
              "named_share=1.0", "optim.lr=3e-3")  # fmt: skip
    with torch.no_grad():
        embedding = start.embed(prepare_painting(load_image(next((tmp_path / "paintings").rglob("p1.jpg")))))
    photo = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))

    def trained(keep: float) -> tuple[float, float]:
        """How far a painting no batch trains moved from the start, and how far the named embeddings did."""
        run = tmp_path / f"keep{keep:g}"
        net = load_network(train_script.train(train_cfg(*common, f"keep_weight={keep}", f"paths.output_dir={run}",
                                                        f"paths.export_dir={run}"))["export_path"]).net  # fmt: skip
        with torch.no_grad():
            other = (net(photo, embedding) - start(photo, embedding)).abs().mean()
        return float(other), float((net.style_embeddings - start.style_embeddings).abs().max())

    free, held = trained(0.0), trained(1e11)
    assert held[0] < 0.5 * free[0]  # every batch trained a named style, yet the other painting moved less than half
    assert held[1] > 2e-3  # and the named styles still learnt (Adam, embedding_lr 1e-3)

    from fastnst.training.module import StyleTransferModule

    holds, hold = [], StyleTransferModule.hold
    monkeypatch.setattr(StyleTransferModule, "hold", lambda self, net: holds.append(net) or hold(self, net))
    again = train_cfg(
        *common, "keep_weight=1e11", "resume=true", "trainer.max_steps=9", f"paths.output_dir={tmp_path}/keep1e+11"
    )
    assert train_script.train(again)["steps"] == 9
    first_conv = next(k for k in start.state_dict() if k.endswith("weight") and start.state_dict()[k].dim() == 4)
    assert len(holds) == 1 and torch.equal(holds[0].state_dict()[first_conv], start.state_dict()[first_conv])
