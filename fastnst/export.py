"""Export a trained network to safetensors, ONNX or TorchScript.

ONNX and TorchScript exports take (B, 3, H, W) RGB in [0, 1] with H and W
multiples of 4 (dynamic otherwise); the onnxruntime backend
pads and crops for you.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from fastnst.checkpoint import CheckpointError, LoadedNetwork, load_network, network_spec, save_network
from fastnst.io import atomic_path
from fastnst.models.transformer_net import TransformerNet

# Bumped whenever the exported graph changes, so that ONNX and OpenVINO files cached by an older
# fastnst are converted again (a checkpoint's hash alone would find the old graph).
GRAPH_VERSION = 2


class AlignedNet(nn.Module):
    """The network without its shape-dependent padding (traceable, for ONNX/TorchScript)."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if style_weights is None:
            return self.net.forward_aligned(images)
        return self.net.forward_aligned(images, style_weights)


def example_inputs(net: TransformerNet) -> tuple[torch.Tensor, ...]:
    """A photo, and the numbers a conditioned network takes beside it (style weights or an embedding)."""
    size = getattr(net, "condition_size", 0)
    return (torch.rand(1, 3, 64, 64),) + ((torch.full((1, size), 1.0 / size),) if size else ())


def export_onnx(net: TransformerNet, path: Path, opset: int = 17) -> None:
    """ONNX with dynamic batch, height and width (onnx package needed for export only).

    A multi-style network takes a second input, ``style_weights`` (B, S): one file serves every
    style and every mix; an any-painting network takes its style embedding (B, E) there, so a new
    painting needs no new export.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'fastnst[onnx]'") from None
    example = example_inputs(net)
    names, axes = ["images"], {"images": {0: "batch", 2: "height", 3: "width"}}
    if len(example) > 1:  # style weights (multi-style) or a style embedding (any painting)
        names.append("style_weights")
        axes["style_weights"] = {0: "batch"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            AlignedNet(net).eval(),
            example,
            str(tmp),
            input_names=names,
            output_names=["stylized"],
            dynamic_axes={**axes, "stylized": {0: "batch", 2: "height", 3: "width"}},
            opset_version=opset,
            dynamo=False,
        )


def export_torchscript(net: TransformerNet, path: Path) -> None:
    """A traced TorchScript module (``torch.jit.load`` runs it without fastnst)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(AlignedNet(net).eval(), example_inputs(net))
    with atomic_path(path) as tmp:
        traced.save(str(tmp))


def average_networks(ckpts: list[str | Path]) -> LoadedNetwork:
    """One network whose every tensor is the mean of ``ckpts``' (the checkpoints of one run, say the
    last few hundred steps: averaging smooths out what the last batches pulled each way).

    Raises:
        CheckpointError: a file is unreadable, or the networks differ in architecture.
    """
    loaded = [load_network(path) for path in ckpts]
    first = loaded[0]
    for other in loaded[1:]:
        if network_spec(other.net) != network_spec(first.net):
            raise CheckpointError(
                f"{other.path}: cannot average it with {first.path}: {network_spec(other.net)} vs "
                f"{network_spec(first.net)}; give checkpoints of one run"
            )
    states = [item.net.state_dict() for item in loaded]
    first.net.load_state_dict({k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]})
    last = loaded[-1]  # what is known about the training: the latest file's
    first.info = replace(last.info, extra={**last.info.extra, "averaged": [Path(p).name for p in ckpts]})
    return first


def export_network(ckpt: str | Path | list, target: str | Path, fmt: str, half: bool = False) -> str:
    """Export ``ckpt`` (or the average of several, :func:`average_networks`) to ``target`` in ``fmt``
    (``half``: fp16 weights, safetensors only); returns a one-line report."""
    if half and fmt != "safetensors":
        raise ValueError(f"--half stores safetensors weights in fp16; {fmt} exports are fp32")
    ckpts = [ckpt] if isinstance(ckpt, (str, Path)) else list(ckpt)
    loaded = load_network(ckpts[0]) if len(ckpts) == 1 else average_networks(ckpts)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    net = loaded.net.float().eval()
    if fmt == "safetensors":
        save_network(net, target, loaded.info, half=half)
    elif fmt == "onnx":
        export_onnx(net, target)
    elif fmt == "torchscript":
        export_torchscript(net, target)
    else:
        raise ValueError(f"unknown export format {fmt!r}; use safetensors, onnx or torchscript")
    kind = f"{fmt}, fp16" if half else fmt
    kind += f", the mean of {len(ckpts)} checkpoints" if len(ckpts) > 1 else ""
    return f"exported '{loaded.style}' to {target} ({kind}, {target.stat().st_size / 1e6:.1f} MB)"
