import pickle

import pytest
import torch
from safetensors.torch import save_file

from fastnst.checkpoint import CheckpointError, load_network, save_network
from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig


def test_save_load_same_output(tiny_net, tiny_ckpt):
    loaded = load_network(tiny_ckpt)
    assert loaded.net.config == tiny_net.config
    assert loaded.style == "tiny" and loaded.info.steps == 7
    x = torch.rand(1, 3, 20, 20)
    assert torch.equal(loaded.net(x), tiny_net(x))


def test_missing_and_truncated_files(tmp_path, tiny_ckpt):
    with pytest.raises(CheckpointError, match="not found"):
        load_network(tmp_path / "nope.safetensors")
    data = tiny_ckpt.read_bytes()
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors.*truncated or corrupt") as info:
        load_network(truncated)
    assert "\n" not in str(info.value)


def test_vgg_weights_file_is_refused(tmp_path):
    path = tmp_path / "vgg.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="VGG weights"):
        load_network(path)


def test_architecture_mismatch(tmp_path, tiny_net):
    path = save_network(tiny_net, tmp_path / "x.safetensors")
    # Same tensors, but metadata claiming another architecture.
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["fastnst_config"] = '{"width": 1.0, "num_residual_blocks": 5}'
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_network(path)


class Payload:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = Payload()
    Payload.marker = marker
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": payload}, f)
    torch.save({"state_dict": {"net.x": payload}}, tmp_path / "evil2.ckpt")
    for bad in (path, tmp_path / "evil2.ckpt"):
        with pytest.raises(CheckpointError, match="refused|not a readable"):
            load_network(bad)
    assert not marker.exists()


def test_lightning_checkpoint_of_another_model(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}, "hyper_parameters": {"lr": 1.0}}, path)
    with pytest.raises(CheckpointError, match="another model"):
        load_network(path)


def test_lightning_style_checkpoint_loads(tmp_path):
    net = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=1))
    path = tmp_path / "run.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"net": {"arch": "johnson", **net.config.to_dict()}, "style": {"name": "s"}},
            "global_step": 12,
        },
        path,
    )
    loaded = load_network(path)
    assert loaded.style == "s" and loaded.info.steps == 12


def test_crash_while_exporting_keeps_the_old_file(tmp_path, tiny_net, monkeypatch):
    path = save_network(tiny_net, tmp_path / "net.safetensors", {"steps": 1})
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("fastnst.checkpoint.save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_network(tiny_net, path, {"steps": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]  # no temporary left behind
