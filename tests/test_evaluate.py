"""fastnst.evaluation: reports, contact sheets, several networks, the Gatys cache."""

import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from fastnst.cli import main
from fastnst.evaluation import checkpoint_labels, contact_sheet, steps_to_match

from conftest import write_photo


def test_evaluate_writes_report_and_contact_sheet(tmp_path, tiny_ckpt, capsys):
    for i in range(2):
        write_photo(tmp_path / "p" / f"{i}.png", size=(40, 30), seed=i)
    style = write_photo(tmp_path / "style.png", seed=7)
    out = tmp_path / "report"
    code = main(["evaluate", "--ckpt", str(tiny_ckpt), "--style", str(style), "--images", str(tmp_path / "p"),
                 "-o", str(out), "--size", "40", "--style-size", "40", "--compare-optimize", "--optimize-steps", "3"])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    net = tiny_ckpt.stem
    assert len(report["photos"]) == 2 and set(report["mean"]) == {net, "gatys"}
    assert all(0 <= e[net]["ssim"] <= 1 and e["gatys"]["ms"] > 0 for e in report["photos"])
    assert f"{net} vs gatys: style distance" in (out / "report.md").read_text()
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 4 * 256 and sheet.height > 2 * 30  # 4 columns, 2 rows
    assert "colour kept" in capsys.readouterr().out


def test_evaluate_reuses_cached_gatys_results(tmp_path, tiny_ckpt):
    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    cache = tmp_path / "cache"

    def run(name, *extra):
        args = ["evaluate", "--ckpt", str(tiny_ckpt), "--style", str(style), "--images", str(tmp_path / "p"),
                "-o", str(tmp_path / name), "--size", "40", "--style-size", "40", "--compare-optimize", "--cache-dir", str(cache), *extra]  # fmt: skip
        assert main(args) == 0
        return json.loads((tmp_path / name / "report.json").read_text())["photos"][0]

    first = run("a", "--optimize-steps", "3")
    again = run("b", "--optimize-steps", "3")
    assert not first["gatys_cached"] and again["gatys_cached"]
    assert again["gatys"] == first["gatys"]  # same image, same scores, the original run's time
    assert "came from the cache" in (tmp_path / "b" / "report.md").read_text()
    assert not run("c", "--optimize-steps", "4")["gatys_cached"]  # other settings: optimised again
    for f in (cache / "gatys").iterdir():
        f.write_bytes(b"truncated")
    redone = run("d", "--optimize-steps", "3")
    assert not redone["gatys_cached"] and redone["gatys"]["style_distance"] == pytest.approx(
        first["gatys"]["style_distance"], rel=1e-4
    )
    assert not run("e", "--optimize-steps", "3", "--no-cache")["gatys_cached"]


def test_evaluate_compares_several_networks_side_by_side(tmp_path, tiny_ckpt):
    other = tmp_path / "b" / tiny_ckpt.name
    other.parent.mkdir()
    other.write_bytes(tiny_ckpt.read_bytes())
    write_photo(tmp_path / "p.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    labels = checkpoint_labels([tiny_ckpt, other])
    assert labels == [f"{tiny_ckpt.parent.name}/{tiny_ckpt.stem}", f"b/{tiny_ckpt.stem}"]
    code = main(["evaluate", "--ckpt", str(tiny_ckpt), str(other), "--style", str(style),
                 "--images", str(tmp_path / "p.png"), "-o", str(tmp_path / "r"), "--size", "40"])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert list(report["mean"]) == labels
    # The same weights give the same scores in both columns.
    a, b = (report["photos"][0][label] for label in labels)
    assert a["style_distance"] == pytest.approx(b["style_distance"]) and a["ssim"] == pytest.approx(b["ssim"])
    assert Image.open(tmp_path / "r" / "contact_sheet.png").width > 4 * 256  # photo, painting, two networks


def test_contact_sheet_rows_fit_their_images():
    wide, tall = Image.new("RGB", (512, 256), "red"), Image.new("RGB", (200, 400), "blue")
    sheet = contact_sheet([[wide, wide], [wide, tall]], ["a", "b"], [["x", "y"], ["", ""]])
    # Row 1: two 256 x 128 thumbnails, so 128 px tall; row 2 is as tall as the portrait (256 px).
    assert sheet.size == (2 * (256 + 6) + 6, 28 + (128 + 26) + (256 + 26) + 6)
    assert sheet.getpixel((6 + 128, 28 + 64)) == (255, 0, 0)  # row 1's first image, centred in its cell
    assert sheet.getpixel((6 + 262 + 128, 28 + 154 + 128)) == (0, 0, 255)  # the portrait in row 2


def test_distances_are_relative_to_the_photo_and_color_kept_reads_washes():
    import torch

    from fastnst.evaluation import Judge, color_kept
    from fastnst.models.vgg import VGGFeatures
    from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS

    torch.manual_seed(0)
    vgg = VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS], weights="random", channel_scale=0.125)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    photo = torch.stack([xx, yy, 1 - xx]).unsqueeze(0)  # colours vary across the picture
    judge = Judge(torch.rand(1, 3, 40, 40), vgg)
    itself = judge.score(photo, photo, 1.0)
    assert itself.style_distance == pytest.approx(1.0) and itself.content_distance == pytest.approx(0.0, abs=1e-9)
    assert itself.objective == pytest.approx(1.0)  # the photo is where Gatys starts
    assert judge.score(torch.rand_like(photo), photo, 1.0).objective > 1  # noise: far from it, and rough
    assert all(v == pytest.approx(1.0) for v in itself.layers.values()) and list(itself.layers) == list(
        GATYS_STYLE_LAYERS
    )
    assert color_kept(photo, photo) == pytest.approx(1.0)
    grey = photo.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    wash = grey * torch.tensor([0.3, 0.4, 0.9]).view(1, 3, 1, 1)  # one blue wash over the luminance
    assert color_kept(wash, photo) < 0.5
    shifted = (photo * 0.8 + torch.tensor([0.1, 0.05, 0.0]).view(1, 3, 1, 1)).clamp(0, 1)  # a global palette shift
    assert color_kept(shifted, photo) > 0.9


def test_evaluate_warns_when_the_painting_is_another_file(tmp_path, tiny_net, capsys):
    from fastnst.checkpoint import save_network
    from fastnst.io import file_sha256

    trained_on = write_photo(tmp_path / "painting_a.png", seed=1)
    other = write_photo(tmp_path / "painting_b.png", seed=2)
    ckpt = save_network(tiny_net, tmp_path / "net.safetensors",
                        {"style": "x", "style_image": "painting_a.png", "style_image_sha256": file_sha256(trained_on)})  # fmt: skip
    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    base = ["evaluate", "--ckpt", str(ckpt), "--images", str(tmp_path / "p"), "--size", "40", "--style-size", "40"]
    assert main([*base, "--style", str(other), "-o", str(tmp_path / "r1")]) == 0
    err = capsys.readouterr().err
    assert "WARNING: net learned from painting_a.png" in err and "give --style the file it was trained on" in err
    assert json.loads((tmp_path / "r1" / "report.json").read_text())["warnings"]
    assert main([*base, "--style", str(trained_on), "-o", str(tmp_path / "r2")]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_frontier_runs_gatys_at_each_training_ratio_and_draws_both_curves(tmp_path, tiny_net, capsys):
    from fastnst.checkpoint import save_network

    nets = []
    for name, ratio, colour in (("strong", 8.5, 0.0), ("mild", 2.0, 0.0), ("coloured", 8.5, 5e7)):
        loss = {
            "name": "gatys",
            "style_weight": ratio,
            "content_weight": 1.0,
            "tv_weight": 0.0,
            "color_weight": colour,
        }
        info = {"style": "x", "loss": loss, "image_size": 256 if colour else None}
        nets.append(str(save_network(tiny_net, tmp_path / f"{name}.safetensors", info)))
    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    out = tmp_path / "frontier"
    code = main(["evaluate", "--ckpt", *nets, "--style", str(style), "--images", str(tmp_path / "p"), "-o", str(out),
                 "--size", "40", "--style-size", "40", "--frontier", "--optimize-steps", "2"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    points = {(p["kind"], p.get("recipe"), p["ratio"]) for p in report["frontier"]}
    assert points == {("network", "classic", 8.5), ("network", "classic", 2.0), ("network", "colour 5e+07, 256 px crops", 8.5),
                      ("gatys", None, 8.5), ("gatys", None, 2.0)}  # fmt: skip
    assert Image.open(out / "frontier.png").size == (720, 520)
    text = (out / "report.md").read_text()
    assert "strong vs gatys 8.5:" in text and "mild vs gatys 2:" in text and "frontier.png" in text
    assert "| coloured | colour 5e+07, 256 px crops | 8.5 |" in text and "| mild | classic | 2 |" in text
    bare = save_network(tiny_net, tmp_path / "bare.safetensors", {"style": "x"})
    assert main(["evaluate", "--ckpt", str(bare), "--style", str(style), "--images", str(tmp_path / "p"),
                 "-o", str(tmp_path / "x"), "--frontier"]) == 2  # fmt: skip
    assert "records no loss weights" in capsys.readouterr().err


def test_frontier_key_fits_long_recipe_names():
    from fastnst.evaluation import frontier_plot

    points = [{"kind": "gatys", "ratio": 8.5, "style_distance": 0.03, "content_distance": 0.7}]
    for crop, shift in ((192, 0.0), (256, -0.01)):
        recipe = f"colour 5e+07, {crop} px crops, and a longer note"
        points += [{"kind": "network", "recipe": recipe, "ratio": r, "style_distance": 0.04 + shift + 0.01 * i,
                    "content_distance": 1.4 - 0.2 * i} for i, r in enumerate((8.5, 3.0))]  # fmt: skip
    image = frontier_plot(points)
    edge = image.crop((image.width - 6, 0, image.width, image.height)).convert("L")
    assert edge.getextrema() == (255, 255)  # nothing drawn against the right edge: every name whole
    colours = {image.getpixel((x, y)) for x in range(image.width) for y in range(100)}
    assert (35, 90, 200) in colours and (30, 150, 70) in colours  # both curves have their key


def test_steps_to_match_reads_the_first_step_that_reaches_the_objective():
    trace = [1.0, 0.5, 0.3, 0.2]
    assert steps_to_match(trace, 0.35) == 2 and steps_to_match(trace, 0.3) == 2
    assert steps_to_match(trace, 1.5) == 0  # worse than the photo: matched before any step
    assert steps_to_match(trace, 0.1) == 4  # better than Gatys' last step: never matched in this run
    assert steps_to_match(None, 0.3) is None


def test_evaluate_reports_the_gatys_steps_a_network_is_worth(tmp_path, tiny_ckpt, capsys):
    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    args = ["evaluate", "--ckpt", str(tiny_ckpt), "--style", str(style), "--images", str(tmp_path / "p"), "--size",
            "40", "--style-size", "40", "--compare-optimize", "--optimize-steps", "8", "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    net, photo = tiny_ckpt.stem, report["photos"][0]
    (entry,) = (tmp_path / "c" / "gatys").iterdir()
    with safe_open(str(entry), "pt") as f:
        trace = json.loads(f.metadata()["trace"])
    assert len(trace) == 8 and trace == sorted(trace, reverse=True)  # the best loss after each step
    # In the objective's units the trace starts at the photo (1) and ends where Gatys' image scores.
    normalised = [v / trace[0] for v in trace]
    assert normalised[-1] == pytest.approx(photo["gatys"]["objective"], rel=0.05)
    n = photo["gatys_steps_matched"][net]
    assert n == steps_to_match(normalised, photo[net]["objective"]) and 0 <= n <= 8
    assert report["gatys_steps_matched"][net]["median"] == n
    assert f"reaches its objective after {n if n < 8 else 'over 8'} L-BFGS steps" in capsys.readouterr().out
    assert main([*args, "-o", str(tmp_path / "b")]) == 0  # from the cache: the trace came with it
    assert json.loads((tmp_path / "b" / "report.json").read_text())["photos"][0]["gatys_steps_matched"][net] == n


def test_evaluate_follows_each_gatys_run_step_by_step(tmp_path, tiny_ckpt):
    from fastnst.evaluation import evaluate
    from fastnst.optimize import GatysConfig
    from fastnst.stylize.stylizer import Stylizer

    photos = [write_photo(tmp_path / "p" / f"{i}.png", size=(40, 30), seed=i) for i in range(2)]
    style = write_photo(tmp_path / "style.png", seed=7)
    calls = []

    def run(out):
        evaluate(Stylizer.from_checkpoint(tiny_ckpt, backend="torch"), style, photos, tmp_path / out, size=40, style_size=40,
                 compare_optimize=True, optimize_config=GatysConfig(steps=4), cache_dir=tmp_path / "c",
                 on_gatys_step=lambda *call: calls.append(call))  # fmt: skip

    run("a")
    for photo in photos:  # one run per photo, counted up to its steps
        steps = [step for what, step, n in calls if what == f"gatys on {photo.name}" and n == 4]
        assert steps[0] >= 1 and steps[-1] == 4 and steps == sorted(steps)
    assert {what for what, _, _ in calls} == {f"gatys on {photo.name}" for photo in photos}
    calls.clear()
    run("b")
    assert calls == []  # cached: nothing ran


def test_an_any_painting_network_over_a_folder_of_paintings(arbitrary_ckpt, tiny_ckpt, tmp_path, capsys):
    from fastnst.cli import main
    from fastnst.data import split_held_out

    paintings = tmp_path / "paintings"
    for i in range(6):
        write_photo(paintings / f"school{i % 2}" / f"p{i}.jpg", size=(64, 48), seed=60 + i)
    photo = write_photo(tmp_path / "photos" / "a.jpg", size=(48, 40), seed=1)
    out = tmp_path / "report"
    args = ["evaluate", "--ckpt", str(arbitrary_ckpt), str(tiny_ckpt), "--paintings", str(paintings), "--images",
            str(photo.parent), "--size", "40", "--style-size", "40", "-o", str(out), "--backend", "torch"]  # fmt: skip
    assert main([*args, "--held-out", "0.5"]) == 0
    held = split_held_out(sorted(paintings.rglob("*.jpg")), paintings, 0.5)[1]
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(p["painting"]).name for p in summary["paintings"]] == [p.name for p in held]  # only the held-out
    assert set(summary["mean"]) == {"arbitrary", "tiny"} and (out / "sheet.jpg").is_file()
    assert all((out / p.stem / "report.json").is_file() for p in held)
    text = capsys.readouterr().out
    assert f"over {len(held)} paintings x 1 photos" in text
    assert main([*args, "--style", str(held[0])]) == 2  # --style or --paintings, not both
    fitted_out = tmp_path / "fitted"
    fitted_args = [
        *args[:-4],
        "-o",
        str(fitted_out),
        "--backend",
        "torch",
        "--held-out",
        "0.5",
        "--fit",
        "--fit-steps",
        "3",
    ]
    assert main(fitted_args) == 0
    fitted = json.loads((fitted_out / "summary.json").read_text())
    assert fitted["fit_steps"] == 3 and "fitted 3 steps" in (fitted_out / "summary.md").read_text()
    style = lambda report, method: report["mean"][method]["style_distance"]  # noqa: E731
    assert style(fitted, "arbitrary") != style(summary, "arbitrary")  # the fitted styles paint differently
    assert style(fitted, "tiny") == style(summary, "tiny")  # a per-style network has nothing to fit
