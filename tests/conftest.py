"""Shared fixtures: tiny images, a tiny network, and composed Hydra configs."""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TINY_NET = {"width": 0.25, "num_residual_blocks": 1}
MULTI_STYLES = ("wave", "night", "scream")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Tests never read or fill the user's ~/.cache/fastnst, nor the styles they added."""
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("FASTNST_STYLES", str(tmp_path_factory.mktemp("styles") / "styles.json"))


def load_script(name: str):
    """Import scripts/<name>.py as a module (scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"fastnst_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_photo(path: Path, size=(48, 40), seed: int = 0, mode: str = "RGB") -> Path:
    """A smooth random colour image (not flat, not noise) saved at ``path``."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    channels = [
        np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)) + np.cos(5 * yy * rng.uniform(0.5, 2))
        for _ in range(3)
    ]
    array = ((np.stack(channels, -1) + 2) / 4 * 255).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, "RGB").convert(mode).save(path)
    return path


def png_bomb(path: Path, width: int = 30000, height: int = 30000) -> None:
    """A tiny PNG whose header claims a huge image (a decompression bomb)."""
    write_photo(path, size=(8, 8))
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpts, port: int, *extra):
    """A real `fastnst serve` subprocess on loopback, once /healthz answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnst.cli", "serve", "--ckpt", *map(str, ckpts), "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-2000:])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Six small photos, two in a subfolder, mixed extensions."""
    root = tmp_path / "photos"
    for i in range(4):
        write_photo(root / f"img{i}.jpg", seed=i)
    write_photo(root / "sub" / "img4.PNG", seed=4)
    write_photo(root / "sub" / "img5.jpeg", seed=5)
    return root


@pytest.fixture
def style_path(tmp_path: Path) -> Path:
    return write_photo(tmp_path / "style.png", size=(64, 64), seed=99)


@pytest.fixture
def tiny_net():
    from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

    torch.manual_seed(0)
    return TransformerNet(TransformerNetConfig(**TINY_NET)).eval()


@pytest.fixture
def tiny_ckpt(tmp_path: Path, tiny_net) -> Path:
    from fastnst.checkpoint import save_network

    return save_network(tiny_net, tmp_path / "ckpt" / "tiny.safetensors", {"style": "tiny", "steps": 7})


@pytest.fixture
def multi_ckpt(tmp_path: Path) -> Path:
    """A tiny multi-style network (styles wave, night, scream) whose styles really differ."""
    from fastnst.checkpoint import save_network
    from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig

    torch.manual_seed(0)
    net = MultiStyleNet(MultiStyleNetConfig(**TINY_NET, styles=MULTI_STYLES))
    with torch.no_grad():
        for module in net.modules():
            if hasattr(module, "weight") and module.weight is not None and module.weight.dim() == 2:
                module.weight.add_(torch.randn_like(module.weight) * 0.5)
                module.bias.add_(torch.randn_like(module.bias) * 0.5)
    return save_network(net.eval(), tmp_path / "multi.safetensors", {"style": "multi"})


@pytest.fixture
def arbitrary_ckpt(tmp_path: Path) -> Path:
    """A tiny any-painting network (stored styles ``a`` and ``b``) whose norms really depend on the embedding."""
    from fastnst.checkpoint import save_network
    from fastnst.models.arbitrary import ArbitraryStyleNet, ArbitraryStyleNetConfig

    torch.manual_seed(0)
    config = ArbitraryStyleNetConfig(width=0.25, num_residual_blocks=1, embedding_dim=8, hidden_dim=16,
                                     encoder_channel_scale=0.125, styles=("a", "b"))  # fmt: skip
    net = ArbitraryStyleNet(config).eval()
    with torch.no_grad():
        for norm in net.conditional_norms():
            norm.weight.add_(torch.randn_like(norm.weight))
        net.style_embeddings.copy_(torch.randn(2, 8))
    return save_network(net, tmp_path / "ckpt" / "arbitrary.safetensors", {"style": "arbitrary"})


@pytest.fixture
def shipped_cfg():
    """Compose the configs as a user's command line would; yields a function taking overrides (nothing is run)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import fastnst.training.train  # noqa: F401  (registers the fastnst_* resolvers)

    def make(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "fastnst" / "configs"), version_base="1.3"):
            return compose("train", overrides=list(overrides))

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def train_cfg(shipped_cfg, tmp_path: Path, photo_dir: Path, style_path: Path):
    """The real configs with a tiny, fast setup; yields a function taking extra overrides."""

    def make(*overrides: str):
        return shipped_cfg(
            "style=custom",
            f"style.image={style_path}",
            "style.name=tiny",
            "style.size=64",
            f"data.root={photo_dir}",
            "data.image_size=32",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.num_val_images=2",
            "model.width=0.25",
            "model.num_residual_blocks=1",
            "loss.vgg.weights=random",
            "loss.vgg.channel_scale=0.125",
            "trainer=cpu",
            "trainer.max_steps=2",
            "trainer.log_every_n_steps=1",
            "trainer.enable_model_summary=false",
            "~callbacks.progress_bar",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={tmp_path / 'run'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"paths.export_dir={tmp_path / 'export'}",
            *overrides,
        )

    return make


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests run where CUDA is (the lent GPU machine) and are skipped, saying why, elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
