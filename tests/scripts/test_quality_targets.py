import json

import pytest

from fastnst.cli import main as fastnst_main
from fastnst.evaluation import QualityTargets, gatys_ratios

from conftest import load_script, write_photo

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def scores(style, layers, content, colour):
    return {"style_distance": style, "layers": dict(zip(LAYERS, layers)), "content_distance": content,
            "color_kept": colour, "objective": style + content, "ssim": 0.5, "ms": 1.0}  # fmt: skip


def report(**mean):
    return {"style": "udnie", "photos": [{}, {}], "gatys_steps": 500, "mean": mean}


def test_ratios_and_the_targets_each_network_misses():
    r = report(
        net=scores(0.06, (0.2, 0.18, 0.1, 0.06, 0.9), 1.3, 0.4),
        gatys=scores(0.05, (0.1, 0.1, 0.1, 0.05, 0.3), 1.0, 0.6),
    )
    match, ratios = gatys_ratios(r, "net")
    assert match == "gatys"
    assert ratios["style_distance"] == pytest.approx(1.2) and ratios["layers"]["relu1_1"] == pytest.approx(2.0)
    # relu5_1 (3x) is not judged; content 1.3x is on the line, so met; colour 0.67x is not.
    assert QualityTargets().unmet(ratios) == ["relu1_1 2.00x", "relu2_1 1.80x", "colour kept 0.67x"]
    assert QualityTargets(style=2.5, color=0.5).unmet(ratios) == []
    with pytest.raises(ValueError, match="--compare-optimize"):
        gatys_ratios(report(net=scores(0.06, (0.2,) * 5, 1.3, 0.4)), "net")


def test_frontier_reports_pair_each_network_with_gatys_at_its_ratio():
    r = report(
        mild=scores(0.1, (0.1,) * 5, 0.5, 0.5), strong=scores(0.05, (0.05,) * 5, 1.0, 0.5),
        **{"gatys 2": scores(0.1, (0.1,) * 5, 0.25, 0.5), "gatys 8.5": scores(0.05, (0.05,) * 5, 0.5, 0.5)},
    )  # fmt: skip
    r["frontier"] = [{"method": "mild", "ratio": 2.0}, {"method": "strong", "ratio": 8.5},
                     {"method": "gatys 2", "ratio": 2.0}, {"method": "gatys 8.5", "ratio": 8.5}]  # fmt: skip
    assert gatys_ratios(r, "mild")[0] == "gatys 2" and gatys_ratios(r, "strong")[0] == "gatys 8.5"
    assert gatys_ratios(r, "strong")[1]["content_distance"] == pytest.approx(2.0)


def test_table_from_a_real_evaluate_report(tmp_path, tiny_ckpt, capsys):
    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    out = tmp_path / "eval"
    assert fastnst_main(["evaluate", "--ckpt", str(tiny_ckpt), "--style", str(style), "--images", str(tmp_path / "p"),
                         "-o", str(out), "--size", "40", "--style-size", "40", "--compare-optimize",
                         "--optimize-steps", "2", "--no-cache"]) == 0  # fmt: skip
    saved = json.loads((out / "report.json").read_text())
    assert saved["gatys_steps"] == 2
    capsys.readouterr()
    targets = load_script("quality_targets")
    assert targets.main([str(out / "report.json"), "--content", "1e9", "--color=-1e9"]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    net, gatys = saved["mean"][tiny_ckpt.stem], saved["mean"]["gatys"]
    assert row.startswith(f"| `{tiny_ckpt.stem}` | 1 | 2 |")  # the network is named after its style
    assert f"| {net['content_distance'] / gatys['content_distance']:.2f}x |" in row
    # With content and colour waived, what is left unmet is style alone (a random network is far from Gatys).
    assert row.endswith(" |") and "content" not in row.split("|")[-2] and "colour" not in row.split("|")[-2]


def test_report_without_gatys_is_one_line(tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report(net=scores(0.06, (0.2,) * 5, 1.3, 0.4))))
    assert load_script("quality_targets").main([str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "--compare-optimize" in err
