"""Ways to run a style network, behind one interface (:class:`Backend`).

- ``torch``: PyTorch eager or compiled, any device and precision; the only one that can share
  instance-norm statistics (``--tile``, ``--stable`` video).
- ``onnxruntime``: ONNX Runtime on the CPU, fp32 (optional extra ``fastnst[onnx]``).
- ``openvino``: OpenVINO on the CPU, fp32, bf16 or int8 (optional extra ``fastnst[openvino]``).
- ``auto`` (:mod:`fastnst.backends.auto`): the fastest of these on this machine, measured.

None of the optional libraries is imported until its backend is used.
"""

from fastnst.backends.base import Backend, BackendError, Capabilities, check_supported

CAPABILITIES: dict[str, Capabilities] = {}


def _register() -> None:
    from fastnst.backends.onnxruntime import OnnxRuntimeBackend
    from fastnst.backends.openvino import OpenVinoBackend
    from fastnst.backends.torch_backend import TorchBackend

    for backend in (TorchBackend, OnnxRuntimeBackend, OpenVinoBackend):
        CAPABILITIES[backend.name] = backend.capabilities


_register()
BACKENDS = tuple(CAPABILITIES)


def build_backend(
    loaded, checkpoint, name: str, precision: str | None, cache_dir, device: str = "cpu",
    channels_last: bool = False, compile: bool = False,
) -> Backend:  # fmt: skip
    """A backend of kind ``name`` for a loaded network (ONNX / OpenVINO conversions cached under ``cache_dir``),
    or, with ``loaded`` None, for the exported ``.onnx`` file ``checkpoint``. The one factory: the CLI, the
    Python API, serve, datasets and the benchmark all build backends here.

    ``precision`` None: fp16 on GPUs, fp32 elsewhere. A multi-style network's style names go with it.
    """
    from pathlib import Path

    if loaded is None:
        return _onnx_file_backend(Path(checkpoint), name, precision)
    styles = getattr(loaded.net, "styles", None)
    if name == "onnxruntime":
        from fastnst.backends.onnxruntime import OnnxRuntimeBackend, cached_onnx

        return OnnxRuntimeBackend(cached_onnx(loaded.net, Path(checkpoint), cache_dir), styles=styles)
    if name == "openvino":
        from fastnst.backends.openvino import OpenVinoBackend, cached_openvino

        model = cached_openvino(loaded.net, Path(checkpoint), cache_dir, int8=precision == "int8")
        return OpenVinoBackend(model, precision or "fp32", styles=styles)
    if name == "torch":
        from fastnst.backends.torch_backend import TorchBackend, default_precision, pick_device

        target = pick_device(device) if isinstance(device, str) else device
        return TorchBackend(loaded.net, target, precision or default_precision(target), channels_last, compile)
    raise BackendError(f"backend {name!r}: use one of auto, {', '.join(BACKENDS)}")


def _onnx_file_backend(path, name: str, precision: str | None) -> Backend:
    from fastnst.checkpoint import CheckpointError

    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX file not found")
    if name == "openvino":
        from fastnst.backends.openvino import OpenVinoBackend

        return OpenVinoBackend(path, precision or "fp32")
    if name != "onnxruntime":
        raise BackendError(f"{path.name}: an ONNX file runs on onnxruntime or openvino, not {name}")
    from fastnst.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path)


__all__ = ["BACKENDS", "CAPABILITIES", "Backend", "BackendError", "Capabilities", "build_backend", "check_supported"]
