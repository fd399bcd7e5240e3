"""--backend auto: measured within a budget, cached per machine and network shape, int8 only where
its pictures passed the check."""

import json
import time

import pytest
import torch

import fastnst.backends.auto as auto
import fastnst.backends.machine as machine
from fastnst.backends.base import Backend, Capabilities
from fastnst.cli import main
from fastnst.stylize.stylizer import Stylizer

from conftest import ROOT, write_photo

openvino = pytest.importorskip("openvino", reason="OpenVINO is an optional extra (make install)")

# ms per pass of each candidate (sleeps: real time, kept short)
TABLE = {"torch fp32": 10.0, "torch bf16": 13.0, "onnxruntime fp32": 8.0, "openvino fp32": 6.0,
         "openvino bf16": 4.0, "openvino int8": 1.0}  # fmt: skip
ZEN3 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nstepping\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: avx2 fma"
ZEN4 = ZEN3.replace("model\t\t: 1", "model\t\t: 17").replace("avx2 fma", "avx2 avx512f avx512_bf16 avx512_vnni")


class SleepingBackend(Backend):
    """A stand-in backend whose every pass sleeps for its row of a table."""

    capabilities = Capabilities(norm_statistics=False, precisions=("fp32", "bf16", "int8"), devices=("cpu",))

    def __init__(self, name: str, precision: str, ms: float, calls: dict):
        self.name, self.precision, self.ms, self.calls = name, precision, ms, calls
        self.device = torch.device("cpu")

    def run(self, images, weights=None):
        self.calls[f"{self.name} {self.precision}"] = self.calls.get(f"{self.name} {self.precision}", 0) + 1
        time.sleep(self.ms / 1000)
        return images


@pytest.fixture
def fake_backends(monkeypatch):
    """Candidates that sleep as in ``table``; returns (calls per label, the table to edit)."""
    calls, table = {}, dict(TABLE)
    monkeypatch.setattr(
        auto, "build_backend", lambda loaded, ckpt, b, p, cache, *rest: SleepingBackend(b, p, table[f"{b} {p}"], calls)
    )
    monkeypatch.setattr(auto, "int8_usable", lambda loaded, ckpt, cache: True)
    use_cpu(monkeypatch, ZEN4)
    return calls, table


def use_cpu(monkeypatch, cpuinfo: str) -> None:
    """This machine's /proc/cpuinfo reads ``cpuinfo``."""
    fields = machine.read_cpuinfo(cpuinfo)
    monkeypatch.setattr(machine, "read_cpuinfo", lambda text=None: fields if text is None else {})


def test_auto_picks_the_fastest_and_measures_once_per_machine_and_shape(fake_backends, tiny_ckpt, tiny_net, tmp_path):
    calls, _ = fake_backends
    first = auto.choose(tiny_ckpt, tmp_path)
    assert (first.backend, first.precision) == ("openvino", "int8") and not first.from_cache
    assert set(calls) == set(TABLE)  # every candidate ran
    calls.clear()
    again = auto.choose(tiny_ckpt, tmp_path)
    assert (again.backend, again.precision) == ("openvino", "int8") and again.from_cache and calls == {}
    from fastnst.checkpoint import save_network

    other = save_network(tiny_net, tmp_path / "other.safetensors", {"style": "other"})  # new weights, same shape
    assert auto.choose(other, tmp_path).from_cache and calls == {}
    auto.choose(tiny_ckpt, tmp_path, recalibrate=True)
    assert calls  # measured again
    record = json.loads(next((tmp_path / "auto").glob("*.json")).read_text())
    assert record["key"]["cpu"]["isa"] == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni"]
    assert record["key"]["network"]["arch"] == "johnson" and "AMD EPYC" not in json.dumps(record["key"])


def test_a_slow_candidate_is_abandoned_after_one_pass(fake_backends, tiny_ckpt, tmp_path):
    calls, table = fake_backends
    table["torch fp32"] = 400.0  # 100x the best so far
    choice = auto.choose(tiny_ckpt, tmp_path)
    assert calls["torch fp32"] == 1 and "torch fp32" not in choice.timings
    assert "over 2x the best" in choice.dropped["torch fp32"]
    assert calls["openvino bf16"] == 1 + auto.TIMED_PASSES  # a candidate that keeps up: warm-up and passes


def test_time_candidate_drops_a_pass_over_a_second_whatever_the_best():
    ticks = iter([0.0, 0.05, 0.05, 1.2, 9.0, 9.0])  # warm-up 50 ms, then a pass of 1.15 s
    runs = []
    ms, why = auto.time_candidate(lambda: runs.append(1), None, clock=lambda: next(ticks))
    assert ms is None and "over 1 s" in why and len(runs) == 2


def test_an_emulated_precision_is_never_run(fake_backends, tiny_ckpt, tmp_path, monkeypatch):
    calls, _ = fake_backends
    use_cpu(monkeypatch, ZEN3)
    choice = auto.choose(tiny_ckpt, tmp_path)
    assert "torch bf16" not in calls and "openvino bf16" not in calls
    assert "emulated" in choice.dropped["torch bf16"] and (choice.backend, choice.precision) == ("openvino", "int8")


def test_two_cpus_of_one_model_name_get_their_own_measurements(fake_backends, tiny_ckpt, tmp_path, monkeypatch):
    calls, _ = fake_backends
    auto.choose(tiny_ckpt, tmp_path)
    use_cpu(monkeypatch, ZEN3)  # the same "AMD EPYC", other model and flags
    calls.clear()
    assert not auto.choose(tiny_ckpt, tmp_path).from_cache and calls  # measured anew
    assert len(list((tmp_path / "auto").glob("*.json"))) == 2


def test_a_corrupt_or_unwritable_cache_is_measured_again_with_one_line(fake_backends, tiny_ckpt, tmp_path, capsys):
    calls, _ = fake_backends
    auto.choose(tiny_ckpt, tmp_path)
    record = next((tmp_path / "auto").glob("*.json"))
    record.write_text("{not json")
    calls.clear()
    choice = auto.choose(tiny_ckpt, tmp_path)
    assert calls and (choice.backend, choice.precision) == ("openvino", "int8")
    assert f"ignoring the backend measurements cached in {record}" in capsys.readouterr().err
    record.write_text(json.dumps({"key": {"cpu": "another"}, "timings": {}}))  # another machine's
    assert not auto.choose(tiny_ckpt, tmp_path).from_cache
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    assert auto.choose(tiny_ckpt, blocked).backend == "openvino"
    assert "cannot cache the backend measurements" in capsys.readouterr().err


def test_int8_is_never_chosen_when_its_pictures_failed_the_check(tiny_ckpt, tmp_path, monkeypatch):
    import fastnst.backends.openvino as ov_backend

    monkeypatch.setattr(ov_backend, "check_int8", lambda fp32, int8, weights=None: {"style_change": 0.2, "content_change": 0.3,
                                                                      "passed": False})  # fmt: skip
    choice = auto.choose(tiny_ckpt, tmp_path, backends=["openvino"])
    assert choice.precision != "int8"
    with pytest.warns(UserWarning, match="over the 5% allowed"):
        asked = Stylizer.from_checkpoint(tiny_ckpt, backend="openvino", precision="int8", cache_dir=tmp_path)
    assert asked.precision == "int8"  # asked for explicitly: it runs, with the warning


def test_tiling_and_stable_video_keep_auto_on_torch(fake_backends, tiny_ckpt, tmp_path):
    choice = auto.choose(tiny_ckpt, tmp_path, needs_norm_statistics=True)
    assert (choice.backend, choice.precision) == ("torch", "fp32") and set(choice.timings) == {
        "torch fp32",
        "torch bf16",
    }


def test_python_api_defaults_to_the_measured_choice(fake_backends, tiny_ckpt, tmp_path, monkeypatch):
    import fastnst.backends as backends

    assert Stylizer.from_checkpoint(tiny_ckpt, backend="torch", cache_dir=tmp_path).backend.describe() == "torch fp32"
    monkeypatch.setattr(backends, "build_backend", auto.build_backend)  # the fakes, also for the final backend
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, cache_dir=tmp_path)
    assert stylizer.choice is not None and stylizer.backend.describe() == "openvino int8"


def test_shipped_network_passes_the_int8_check(tmp_path):
    from fastnst.backends.openvino import INT8_TOLERANCE, OpenVinoBackend, cached_openvino, int8_verdict
    from fastnst.checkpoint import load_network

    path = ROOT / "checkpoints" / "starry_night.safetensors"
    model = cached_openvino(load_network(path).net, path, tmp_path, int8=True)
    verdict = int8_verdict(model)
    print(f"starry_night int8: texture moved {verdict['style_change']:.4f}, content {verdict['content_change']:.4f}")
    assert verdict["passed"] and verdict["style_change"] < INT8_TOLERANCE and verdict["content_change"] < INT8_TOLERANCE
    assert OpenVinoBackend(model, "int8").precision == "int8"


def test_cli_default_is_auto_and_says_what_it_measured(tiny_ckpt, tmp_path, capsys):
    photo = write_photo(tmp_path / "p.png", size=(40, 30))
    assert main(["stylize", "--ckpt", str(tiny_ckpt), str(photo), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert ", auto)" in captured.out and "at 256²" in captured.out and "measured in" in captured.out
    assert "timing each backend" in captured.err and "family 25 model 17" in captured.err
    assert main(["stylize", "--ckpt", str(tiny_ckpt), str(photo), "-o", str(tmp_path / "out"), "--overwrite"]) == 0
    assert "cached measurement" in capsys.readouterr().out
