"""The OpenVINO backend (CPU): fp32, bf16 and int8, converted once and cached by the checkpoint's hash.

The network goes checkpoint -> ONNX -> OpenVINO IR with dynamic batch, height and width, compiled
once (on the CPUs measured, dynamic shapes ran as fast as a model reshaped to each size). int8 is
NNCF post-training quantization calibrated on crops of the photos fastnst ships; before int8 is
offered its pictures are compared with fp32's (:func:`check_int8`) and the verdict is stored
beside the quantized model.

A conditioned network (multi-style, any painting) takes its style as a second input, so one file
serves every style. Once a style is used again, the backend compiles a copy of the model with that
style as a constant (:func:`fold_style`): OpenVINO then folds each norm's (γ, β) in as it does a
one-style network's, which is what brings the per-photo time down to a one-style network's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastnst.backends.base import Backend, BackendError, Capabilities
from fastnst.io import atomic_path
from fastnst.models.transformer_net import pad_to_multiple

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8 layers stay int8; the rest in f32
INT8_TOLERANCE = 0.05  # int8 may move the picture by at most 5% of what stylizing moved it (see check_int8)
CALIBRATION_CROPS = 8  # as good as 32 on the shipped networks (check_int8), in a third of the time
FOLD_STYLES_AFTER = 2  # a style's second pass compiles a model with it folded in (tens of ms; a one-off never)
FOLDED_KEPT = 4  # folded models kept per backend, the least recently used dropped


def require_openvino():
    try:
        import openvino
    except ImportError:
        raise BackendError(
            "the openvino backend needs OpenVINO: pip install 'fastnst[openvino]' (or make install)"
        ) from None
    return openvino


def _save_model(model, path: Path) -> None:
    ov = require_openvino()
    with atomic_path(path) as tmp_xml, atomic_path(path.with_suffix(".bin")) as tmp_bin:  # the .bin lands first
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        Path(str(tmp_xml)[: -len(".xml")] + ".bin").replace(tmp_bin)


def calibration_images(size: int = 192, count: int = CALIBRATION_CROPS) -> list[np.ndarray]:
    """Crops of the photos shipped in fastnst/assets/photos (and their mirror images), fixed by a seed."""
    from fastnst.io import load_image

    folder = Path(__file__).resolve().parents[1] / "assets" / "photos"
    photos = [load_image(p, 2 * size) for p in sorted(folder.glob("*.jpg"))]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[-2:]
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = photo[..., top : top + size, left : left + size]
        crops.append((crop.flip(-1) if i % 2 else crop).numpy())
    return crops


def style_conditions(net: nn.Module) -> list[np.ndarray] | None:
    """What a conditioned network takes beside the photo, one (1, S) array per named style: one-hot style
    weights, or an any-painting network's stored embeddings (a zero embedding without any); None for a
    single-style network. int8 is calibrated and checked over them."""
    size = getattr(net, "condition_size", 0)
    if not size:
        return None
    if getattr(net, "arch", None) == "johnson_arbitrary":
        rows = [e for e in net.style_embeddings.detach().float()] or [torch.zeros(size)]
        return [r.reshape(1, -1).numpy() for r in rows]
    return [np.eye(size, dtype=np.float32)[i : i + 1] for i in range(size)]


def check_int8(fp32: Backend, int8: Backend, size: int = 192, weights: list[torch.Tensor] | None = None) -> dict:
    """Do int8's pictures measure as fp32's do, in the classic VGG terms? On the shipped photos.

    - ``content_change``: relative change of the content distance (relu4_2 features against the
      photo's) from fp32's to int8's, as ``fastnst evaluate`` would report it.
    - ``style_change``: Gram distance (relu1_1 ... relu5_1, summed) of int8's output to fp32's, over
      the distance of the unstylized photo to fp32's output: how far int8 moved the texture, as a
      share of how far stylizing moved it. No painting is needed (most are not shipped), so every
      network can be checked where it runs.

    ``weights``: a conditioned network's style inputs, one per photo in turn.

    Returns:
        dict with both numbers, ``passed`` (each within :data:`INT8_TOLERANCE`), the photos and size.
    """
    from fastnst.evaluation.metrics import precision_change
    from fastnst.io import load_image

    folder = Path(__file__).resolve().parents[1] / "assets" / "photos"
    paths = sorted(folder.glob("*.jpg"))
    with torch.no_grad():  # a conditioned network: each photo in another of its styles
        triples = []
        for i, photo in enumerate(load_image(p, size) for p in paths):
            w = weights[i % len(weights)] if weights else None
            triples.append((photo, fp32.run(photo, w), int8.run(photo, w)))
    style, content = precision_change(triples)
    return {
        "style_change": style, "content_change": content, "tolerance": INT8_TOLERANCE,
        "passed": style <= INT8_TOLERANCE and content <= INT8_TOLERANCE, "photos": [p.name for p in paths], "size": size,
    }  # fmt: skip


def cached_openvino(net: nn.Module, checkpoint: Path, cache_dir: Path, int8: bool = False) -> Path:
    """The network's OpenVINO IR (``.xml``) in ``<cache_dir>/openvino/<hash>/``, converted on first use.

    ``int8=True`` also quantizes it (NNCF, calibrated on the shipped photos) and checks it against
    fp32 (:func:`check_int8`), storing the verdict in ``int8_check.json`` beside it.
    """
    from fastnst.backends.onnxruntime import cached_onnx
    from fastnst.export import GRAPH_VERSION
    from fastnst.io import file_sha256

    ov = require_openvino()
    folder = cache_dir / "openvino" / f"{file_sha256(checkpoint)[:32]}-v{GRAPH_VERSION}"
    fp32_path = folder / "model.xml"
    if not fp32_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _save_model(ov.convert_model(str(cached_onnx(net, checkpoint, cache_dir))), fp32_path)
    if not int8:
        return fp32_path
    conditions = style_conditions(net)
    int8_path = folder / "int8.xml"
    if not int8_path.is_file():
        try:
            import nncf
        except ImportError:
            raise BackendError(
                "--precision int8 needs NNCF: pip install 'fastnst[openvino]' (or make install)"
            ) from None
        import contextlib
        import io
        import sys

        print(f"fastnst: quantizing {checkpoint.name} to int8 and checking it against fp32 (once)", file=sys.stderr)
        model = ov.Core().read_model(str(fp32_path))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # NNCF's bars
            crops = calibration_images()
            if conditions is None:
                items, options = crops, {}
            else:  # the style's maps to (γ, β) stay in float: they fold into constants (fold_style)
                items = [(c, conditions[i % len(conditions)]) for i, c in enumerate(crops)]
                options = {"ignored_scope": nncf.IgnoredScope(types=["MatMul"])}
            quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=CALIBRATION_CROPS, **options)
        _save_model(quantized, int8_path)
    verdict = folder / "int8_check.json"
    if not verdict.is_file() or "content_change" not in json.loads(verdict.read_text()):
        fp32 = OpenVinoBackend(fp32_path, "fp32")
        if conditions is None:
            result = check_int8(fp32, OpenVinoBackend(int8_path, "int8"))
        else:  # a style used once runs the model as it is; one used again, folded in: both are checked
            weights = [torch.from_numpy(c) for c in conditions]
            result = check_int8(fp32, OpenVinoBackend(int8_path, "int8", fold_styles_after=None), weights=weights)
            folded = check_int8(fp32, OpenVinoBackend(int8_path, "int8", fold_styles_after=1), weights=weights)
            result = {
                **result, "folded_style_change": folded["style_change"],
                "folded_content_change": folded["content_change"], "passed": result["passed"] and folded["passed"],
            }  # fmt: skip
        with atomic_path(verdict) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    return int8_path


def int8_verdict(model_path: Path) -> dict | None:
    """The stored quality check of an int8 model (None when it was never checked)."""
    path = model_path.parent / "int8_check.json"
    return json.loads(path.read_text()) if path.is_file() else None


def fold_style(model, condition: np.ndarray):
    """A copy of a conditioned ``model`` (an ``ov.Model``) whose style input is the constant ``condition``
    (1, S): the images are its only input, and the style's (γ, β) fold into the norms when it compiles.
    A quantizer NNCF put on the style input is bypassed (its range came from other styles)."""
    require_openvino()
    from openvino import opset13

    model = model.clone()
    style = model.inputs[1].get_node()
    constant = opset13.constant(np.ascontiguousarray(condition, dtype=np.float32)).output(0)
    for target in list(style.output(0).get_target_inputs()):
        node = target.get_node()
        inputs = node.output(0).get_target_inputs() if node.get_type_name() == "FakeQuantize" else [target]
        for consumer in list(inputs):
            consumer.replace_source_output(constant)
    model.remove_parameter(style)
    model.validate_nodes_and_infer_types()
    return model


class OpenVinoBackend(Backend):
    """Runs an OpenVINO IR (or ONNX) model on the CPU; inputs padded to multiples of 4, outputs cropped back.

    Args:
        model_path: ``.xml`` IR or ``.onnx``.
        precision: ``fp32``, ``bf16`` (``INFERENCE_PRECISION_HINT``) or ``int8`` (a quantized model).
        threads: inference threads (default: OpenVINO's choice).
        styles: a conditioned network's style names.
        fold_styles_after: a conditioned network: the pass with the same style (every row of the batch
            alike) at which a model with that style folded in is compiled and used from then on
            (:func:`fold_style`); None never folds.
    """

    name = "openvino"
    capabilities = Capabilities(norm_statistics=False, precisions=("fp32", "bf16", "int8"), devices=("cpu",))

    def __init__(
        self, model_path: str | Path, precision: str = "fp32", threads: int | None = None,
        styles: tuple[str, ...] | None = None, fold_styles_after: int | None = FOLD_STYLES_AFTER,
    ):  # fmt: skip
        ov = require_openvino()
        if precision not in PRECISION_HINTS:
            raise BackendError(f"the openvino backend runs in fp32, bf16 or int8, not {precision}")
        self.device, self.precision, self.model_path = torch.device("cpu"), precision, Path(model_path)
        self.config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(model_path))
            compiled = self.core.compile_model(self.model, "CPU", self.config)
        except Exception as exc:
            raise BackendError(f"{model_path}: OpenVINO cannot run it ({str(exc).splitlines()[0]})") from None
        self.request = compiled.create_infer_request()
        self.styles = None
        if len(compiled.inputs) > 1:  # a multi-style network; names from its checkpoint, else numbered
            count = compiled.inputs[1].get_partial_shape()[1].get_length()
            self.styles = tuple(styles) if styles else tuple(f"style{i}" for i in range(count))
        self.fold_styles_after = fold_styles_after
        self.uses: dict[bytes, int] = {}  # passes per style (its row's bytes)
        self.folded: dict[bytes, object] = {}  # style -> infer request of its folded model, most recent last

    def run(self, images: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        h, w = images.shape[-2:]
        feed = {0: pad_to_multiple(images.detach().cpu().float(), 4).contiguous().numpy()}
        request = self.request
        if self.styles is not None:
            condition = self._condition(weights)
            folded = self._folded(condition)
            if folded is None:
                feed[1] = np.broadcast_to(condition, (feed[0].shape[0], condition.shape[1])).copy()
            else:
                request = folded
        y = request.infer(feed)[0]
        return torch.from_numpy(np.array(y))[..., :h, :w]

    def fold(self, weights: torch.Tensor) -> None:
        """Compile the model with this style folded in now (as its second pass would): (1, S) or (S,)."""
        condition = self._condition(weights)[:1]
        if condition.tobytes() not in self.folded:
            self._compile_folded(condition)

    @staticmethod
    def _condition(weights: torch.Tensor) -> np.ndarray:
        return weights.detach().cpu().float().reshape(-1, weights.shape[-1]).contiguous().numpy()

    def _folded(self, condition: np.ndarray):
        """The infer request of the model with this style folded in, compiled on its ``fold_styles_after``-th
        pass; None for a batch of several styles, or a style not yet used that often."""
        if self.fold_styles_after is None or (condition.shape[0] > 1 and not (condition == condition[:1]).all()):
            return None
        key = condition[:1].tobytes()
        if key in self.folded:
            self.folded[key] = self.folded.pop(key)  # most recently used last
            return self.folded[key]
        if len(self.uses) > 256:  # styles each used once (a server's uploads) are forgotten
            self.uses.clear()
        self.uses[key] = self.uses.get(key, 0) + 1
        if self.uses[key] < self.fold_styles_after:
            return None
        return self._compile_folded(condition[:1])

    def _compile_folded(self, condition: np.ndarray):
        key = condition.tobytes()
        self.uses.pop(key, None)
        if len(self.folded) >= FOLDED_KEPT:
            del self.folded[next(iter(self.folded))]
        compiled = self.core.compile_model(fold_style(self.model, condition), "CPU", self.config)
        self.folded[key] = compiled.create_infer_request()
        return self.folded[key]
