"""--backend auto: measured on the machine, cached, int8 only where its pictures passed the check."""

import json

import pytest

import fastnst.backends.auto as auto
from fastnst.cli import main
from fastnst.stylize.stylizer import Stylizer

from conftest import ROOT, write_photo

openvino = pytest.importorskip("openvino", reason="OpenVINO is an optional extra (make install)")


def fake_timings(monkeypatch, table):
    """Replace the stopwatch: each backend 'measures' as in ``table``; returns the list of what was timed."""
    timed = []

    def fake_time(backend, x, weights):
        label = f"{backend.name} {backend.precision}"
        timed.append(label)
        return table[label]

    monkeypatch.setattr(auto, "_time", fake_time)
    return timed


TABLE = {"torch fp32": 100.0, "torch bf16": 130.0, "onnxruntime fp32": 80.0, "openvino fp32": 60.0,
         "openvino bf16": 40.0, "openvino int8": 10.0}  # fmt: skip


def test_auto_picks_the_fastest_measured_and_caches_it(tiny_ckpt, tmp_path, monkeypatch):
    import fastnst.backends.openvino as ov_backend

    monkeypatch.setattr(ov_backend, "check_int8", lambda fp32, int8: {"style_change": 0.001, "content_change": 0.001,
                                                                      "passed": True})  # fmt: skip
    timed = fake_timings(monkeypatch, TABLE)
    first = auto.choose(tiny_ckpt, tmp_path)
    assert (first.backend, first.precision) == ("openvino", "int8") and not first.from_cache
    assert sorted(timed) == sorted(TABLE)  # every installed candidate was measured
    timed.clear()
    again = auto.choose(tiny_ckpt, tmp_path)
    assert (again.backend, again.precision) == (first.backend, first.precision) and timed == []  # from the cache
    auto.choose(tiny_ckpt, tmp_path, recalibrate=True)
    assert timed  # measured again
    record = json.loads(next((tmp_path / "auto").glob("*.json")).read_text())
    assert record["key"]["cpu"] == auto.cpu_model() and record["key"]["network"]["arch"] == "johnson"


def test_int8_is_never_chosen_when_its_pictures_failed_the_check(tiny_ckpt, tmp_path, monkeypatch):
    import fastnst.backends.openvino as ov_backend

    monkeypatch.setattr(ov_backend, "check_int8", lambda fp32, int8: {"style_change": 0.2, "content_change": 0.3,
                                                                      "passed": False})  # fmt: skip
    fake_timings(monkeypatch, TABLE)
    choice = auto.choose(tiny_ckpt, tmp_path)
    assert (choice.backend, choice.precision) == ("openvino", "bf16")
    assert "openvino int8" not in choice.timings or choice.precision != "int8"
    with pytest.warns(UserWarning, match="over the 5% allowed"):
        asked = Stylizer.from_checkpoint(tiny_ckpt, backend="openvino", precision="int8", cache_dir=tmp_path)
    assert asked.precision == "int8"  # asked for explicitly: it runs, with the warning


def test_tiling_and_stable_video_keep_auto_on_torch(tiny_ckpt, tmp_path, monkeypatch):
    fake_timings(monkeypatch, TABLE)
    choice = auto.choose(tiny_ckpt, tmp_path, needs_norm_statistics=True)
    assert (choice.backend, choice.precision) == ("torch", "fp32") and set(choice.timings) == {
        "torch fp32",
        "torch bf16",
    }


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
    out = capsys.readouterr().out
    assert ", auto)" in out and "at 256²" in out and "measured in" in out
    assert main(["stylize", "--ckpt", str(tiny_ckpt), str(photo), "-o", str(tmp_path / "out"), "--overwrite"]) == 0
    assert "cached measurement" in capsys.readouterr().out
