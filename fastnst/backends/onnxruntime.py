"""The ONNX Runtime backend (CPU, fp32): a network exported to ONNX once, cached by content hash."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fastnst.backends.base import Backend, BackendError, Capabilities
from fastnst.io import file_sha256
from fastnst.models.transformer_net import pad_to_multiple


def cached_onnx(net: nn.Module, checkpoint: Path, cache_dir: Path) -> Path:
    """``<cache_dir>/onnx/<hash of the checkpoint>-v<graph version>.onnx``, exported on first use."""
    from fastnst.export import GRAPH_VERSION, export_onnx

    path = cache_dir / "onnx" / f"{file_sha256(checkpoint)[:32]}-v{GRAPH_VERSION}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(net, path)
    return path


class OnnxRuntimeBackend(Backend):
    """Runs an ``.onnx`` network (inputs padded to multiples of 4, outputs cropped back).

    Raises:
        BackendError: onnxruntime is not installed, or the file is not a loadable model.
    """

    name = "onnxruntime"
    capabilities = Capabilities(norm_statistics=False, precisions=("fp32",), devices=("cpu",))

    def __init__(self, onnx_path: str | Path, threads: int | None = None, styles: tuple[str, ...] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the onnxruntime backend needs onnxruntime: pip install 'fastnst[onnx]'") from None
        self.device, self.precision = torch.device("cpu"), "fp32"
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BackendError(f"{onnx_path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.styles = None
        if "style_weights" in inputs:  # a multi-style network; names from its checkpoint, else numbered
            count = inputs["style_weights"].shape[1]
            self.styles = tuple(styles) if styles else tuple(f"style{i}" for i in range(int(count)))

    def run(self, images: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        h, w = images.shape[-2:]
        feed = {"images": pad_to_multiple(images.detach().cpu().float(), 4).numpy()}
        if self.styles is not None:
            feed["style_weights"] = weights.detach().cpu().float().numpy()
        (y,) = self.session.run(None, feed)
        return torch.from_numpy(y)[..., :h, :w]
