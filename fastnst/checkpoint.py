"""Saving and loading stylization networks without executing code.

Two formats are read:

- ``.safetensors`` written by :func:`save_network`: the network's tensors, and
  in the metadata ``fastnst_arch`` (the architecture's registered name),
  ``fastnst_config`` (its config as JSON) and ``fastnst_info`` (a
  :class:`NetworkInfo`: style name, training steps, the painting ...).
- a Lightning ``.ckpt`` of :class:`~fastnst.training.module.StyleTransferModule`,
  read with ``torch.load(weights_only=True)``; the architecture comes from its
  saved hyper-parameters.

Anything else gets a :class:`CheckpointError` with one line naming the file
and what was expected.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fastnst.io import atomic_path
from fastnst.models.registry import build_network

FORMAT = "fastnst-network/2"
NET_PREFIX = "net."


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what was expected."""


@dataclass
class NetworkInfo:
    """What is known about how a network was made; stored as JSON beside its weights.

    Keys that this version does not know are kept in ``extra`` and written back.
    """

    style: str | None = None
    style_image: str | None = None  # the painting's file name
    style_image_sha256: str | None = None  # ... and its content, to tell reproductions apart
    style_size: int | None = None  # long side (px) the painting's Grams were taken at
    steps: int | None = None
    image_size: int | None = None  # training crop side
    loss: dict | None = None  # loss preset name and weights
    content_layers: list[str] | None = None
    style_layers: dict[str, float] | None = None
    init_from: str | None = None
    init_steps: int | None = None
    card: dict | None = None  # the model card: ``painting`` (title, artist, year, source), ``recipe``, ``evaluation``
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict | None) -> NetworkInfo:
        data = dict(data or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: data.pop(k) for k in list(data) if k in known}, extra=data)


def training_info(hparams: dict, steps: int | None, run: dict | None = None) -> NetworkInfo:
    """What a training run's hyper-parameters (``StyleTransferModule``'s) say about its network.

    ``run`` is what the run adds (``StyleTransferModule.run_info``: ``image_size``, ``init_from``,
    ``init_steps`` and ``painting_sha256``, each painting's hash taken when the run started).
    Nothing is read from disk: a checkpoint without ``run`` (an older one) leaves those unknown.
    """
    style, loss = dict(hparams.get("style") or {}), dict(hparams.get("loss") or {})
    run = dict(run or {})
    sha = run.pop("painting_sha256", None) or {}
    image = style.get("image")
    info = NetworkInfo(
        style=style.get("name"),
        style_image=Path(image).name if image else None,
        style_image_sha256=sha.get(style.get("name")),
        style_size=style.get("size"),
        steps=steps,
        loss={k: loss[k] for k in ("name", "content_weight", "style_weight", "tv_weight", "color_weight") if k in loss}
        or None,
        content_layers=list(loss["content_layers"]) if "content_layers" in loss else None,
        style_layers=dict(loss["style_layers"]) if "style_layers" in loss else None,
        **run,
    )
    if style.get("painting"):
        info.card = {"painting": dict(style["painting"])}
    cards = {s["name"]: dict(s["painting"]) for s in hparams.get("styles") or [] if s.get("painting")}
    if cards:  # a network of named styles: each one's painting on its card
        info.card = {**(info.card or {}), "paintings": cards}
    if hparams.get("styles"):  # a multi-style network: every style's painting
        info.style_image = info.style_image_sha256 = info.style_size = None
        info.extra["paintings"] = {
            s["name"]: {"file": Path(s["image"]).name, "sha256": sha.get(s["name"]), "size": s.get("size")}
            for s in hparams["styles"]
            if s.get("image")
        }
    return info


@dataclass
class LoadedNetwork:
    """A network rebuilt from a checkpoint, with what is known about its training."""

    net: nn.Module
    info: NetworkInfo = field(default_factory=NetworkInfo)
    path: Path | None = None

    @property
    def style(self) -> str:
        return str(self.info.style or (self.path.stem if self.path else "styled"))


def network_spec(net: nn.Module) -> dict:
    """The architecture's name and config of ``net``, e.g. ``{"arch": "johnson", "width": 1.0, ...}``."""
    return {"arch": net.arch, **net.config.to_dict()}


def save_network(net: nn.Module, path: str | Path, info: NetworkInfo | dict | None = None, half: bool = False) -> Path:
    """Write the network's tensors, architecture and config to ``.safetensors``, atomically.

    Args:
        net: a registered architecture (``net.arch``, ``net.config.to_dict()``).
        path: destination; parent folders are created.
        info: a :class:`NetworkInfo` (or its dict) about the training.
        half: store the weights in fp16: half the file, and a picture within one 8-bit level of
            fp32's (loading casts them back to fp32). The shipped networks are stored so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = info if isinstance(info, NetworkInfo) else NetworkInfo.from_dict(info)
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in net.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "fastnst_arch": net.arch,
        "fastnst_config": json.dumps(net.config.to_dict()),
        "fastnst_info": json.dumps(info.to_dict()),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _build(path: Path, arch: str, config: dict, state: dict[str, torch.Tensor]) -> nn.Module:
    try:
        net = build_network(arch, config)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}; a newer fastnst may read it") from None
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
    arch = metadata.get("fastnst_arch")
    if metadata.get("format") != FORMAT or not arch or "fastnst_config" not in metadata:
        kind = "VGG weights or another model" if any("features" in k for k in state) else "another model"
        raise CheckpointError(
            f"{path}: a .safetensors file without fastnst metadata ({kind}?); "
            "expected a network exported by fastnst (fastnst export or a training run)"
        )
    config = json.loads(metadata["fastnst_config"])
    info = NetworkInfo.from_dict(json.loads(metadata.get("fastnst_info", "{}")))
    return LoadedNetwork(_build(path, arch, config, state), info, path)


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
    # StyleTransferModule(net={"arch": ..., **config}, style={...}, ...)
    spec = dict(hparams["net"]) if "net" in hparams else None
    style = dict(hparams.get("style") or {})
    if spec is None or not state:
        raise CheckpointError(
            f"{path}: a Lightning checkpoint of another model (no fastnst network inside); "
            "expected one written by fastnst train"
        )
    arch = spec.pop("arch")
    info = training_info({**hparams, "style": style}, ckpt.get("global_step"), ckpt.get("fastnst_info"))
    return LoadedNetwork(_build(path, arch, spec, state), info, path)


def load_network(path: str | Path) -> LoadedNetwork:
    """Rebuild a network of any registered architecture from a ``.safetensors`` or Lightning ``.ckpt``.

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
