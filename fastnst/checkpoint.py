"""Saving and loading stylization networks without executing code.

Two formats are read:

- ``.safetensors`` written by :func:`save_network`: the network's tensors, and
  in the metadata ``fastnst_config`` (the architecture as JSON) plus
  ``fastnst_info`` (style name, training steps, source image ...).
- a Lightning ``.ckpt`` of :class:`~fastnst.training.module.StyleTransferModule`,
  read with ``torch.load(weights_only=True)``; the architecture comes from its
  saved hyper-parameters.

Anything else gets a :class:`CheckpointError` with one line naming the file
and what was expected.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fastnst.io import atomic_path
from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

FORMAT = "fastnst-transformer-net/1"
NET_PREFIX = "net."


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what was expected."""


@dataclass
class LoadedNetwork:
    """A network rebuilt from a checkpoint, with what is known about its training."""

    net: TransformerNet
    info: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def style(self) -> str:
        return str(self.info.get("style") or (self.path.stem if self.path else "styled"))


def save_network(net: TransformerNet, path: str | Path, info: dict | None = None) -> Path:
    """Write the network's tensors and config to ``.safetensors``, atomically.

    Args:
        net: the network (its ``config`` is stored as JSON metadata).
        path: destination; parent folders are created.
        info: JSON-serialisable facts (style, steps, source image ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "fastnst_config": json.dumps(net.config.to_dict()),
        "fastnst_info": json.dumps(info or {}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _build(path: Path, config: dict, state: dict[str, torch.Tensor]) -> TransformerNet:
    try:
        net = TransformerNet(TransformerNetConfig.from_dict(config))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad network config {config} ({exc})") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(
            f"{path}: weights do not match the architecture in its config {config} ({first})"
        ) from None
    return net.eval()


def _load_safetensors(path: Path) -> LoadedNetwork:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable .safetensors file, truncated or corrupt? ({exc})") from None
    if metadata.get("format") != FORMAT or "fastnst_config" not in metadata:
        kind = "VGG weights or another model" if any("features" in k for k in state) else "another model"
        raise CheckpointError(
            f"{path}: a .safetensors file without fastnst metadata ({kind}?); "
            "expected a network exported by fastnst (fastnst export or a training run)"
        )
    config = json.loads(metadata["fastnst_config"])
    info = json.loads(metadata.get("fastnst_info", "{}"))
    return LoadedNetwork(_build(path, config, state), info, path)


def _load_lightning(path: Path) -> LoadedNetwork:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors and plain values "
            f"(it could run code when loaded); expected a fastnst checkpoint ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint, truncated or corrupt? ({exc})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict); expected a fastnst .ckpt")
    hparams = ckpt.get("hyper_parameters") or {}
    state = {k[len(NET_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}
    if "net_config" not in hparams or not state:
        raise CheckpointError(
            f"{path}: a Lightning checkpoint of another model (no fastnst network inside); "
            "expected one written by scripts/train.py"
        )
    info = {
        "style": hparams.get("style_name"),
        "style_image": hparams.get("style_image"),
        "steps": ckpt.get("global_step"),
    }
    return LoadedNetwork(_build(path, dict(hparams["net_config"]), state), info, path)


def load_network(path: str | Path) -> LoadedNetwork:
    """Rebuild a :class:`TransformerNet` from a ``.safetensors`` or Lightning ``.ckpt`` file.

    Raises:
        CheckpointError: missing, truncated, foreign or unsafe file (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass a .safetensors from checkpoints/ or a .ckpt")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        return _load_safetensors(path)
    return _load_lightning(path)
