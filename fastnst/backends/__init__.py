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

__all__ = ["BACKENDS", "CAPABILITIES", "Backend", "BackendError", "Capabilities", "check_supported"]
