import json
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import ROOT, write_photo


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for index in range(6):
        write_photo(root / "imagenet" / f"p{index}.jpg", size=(400, 300), seed=index)
    for index in range(3):
        write_photo(root / "bsds500" / "test" / f"t{index}.jpg", size=(60, 40), seed=10 + index)
    return root


def test_pack_holds_out_the_scored_photos_and_shrinks_the_rest(tmp_path, photos, capsys):
    import fastnst.gpu_session as session

    styles = tmp_path / "styles"
    write_photo(styles / "great_wave.jpg")
    dev = tmp_path / "dev"
    argv = ["--dir", str(dev), "pack", "--data", str(photos), "--styles", str(styles), "--no-wheels",
            "--short-side", "100", "--min-photos", "1"]  # fmt: skip
    assert session.main(argv) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (dev / "heldout").iterdir()) == ["t0.jpg", "t1.jpg", "t2.jpg"]
    packed = sorted((dev / "photos").iterdir())
    assert len(packed) == 6  # every photo but the held-out ones
    assert all(min(Image.open(p).size) == 100 for p in packed)
    assert (dev / "styles" / "great_wave.jpg").is_file() and "-m fastnst.gpu_session train" in (
        dev / "run.sh"
    ).read_text()
    assert 'carry=[".devdata"]' in capsys.readouterr().out
    assert session.main(argv) == 1 and "--overwrite" in capsys.readouterr().err  # nothing rebuilt unasked
    assert session.main([*argv[:-2], "--min-photos", "50", "--overwrite"]) == 1
    assert "64 MiB" in capsys.readouterr().err


@pytest.fixture
def dev(tmp_path, photos):
    dev = tmp_path / "dev"
    (dev / "photos").mkdir(parents=True)
    for photo in (photos / "imagenet").iterdir():
        (dev / "photos" / photo.name).write_bytes(photo.read_bytes())
    (photos / "bsds500" / "test").rename(dev / "heldout")
    return dev


CPU_RUN = ["--device", "cpu", "--minutes", "1", "--eval-size", "48", "--gatys-steps", "3", "--override",
           "trainer.max_steps=2", "data.image_size=32", "data.num_workers=0", "style.size=64",
           "trainer.log_every_n_steps=1"]  # fmt: skip


@pytest.mark.slow
def test_train_on_cpu_exports_scores_and_packs_what_comes_back(tmp_path, dev, capsys):
    import fastnst.gpu_session as session

    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--dir", str(dev), "train", "--only", "starry_night", "--out", str(out), "--work", str(work), *CPU_RUN]
    assert session.main(argv) == 0, (work / "starry_night.log").read_text()[-2000:]
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| starry_night |"))
    assert row.split("|")[2].strip() == "2"  # steps of this run
    (tar_path,) = out.glob("gpu_session_*.tar")
    assert tar_path.stat().st_size < 15 * 2**20
    unpacked = tmp_path / "unpacked"
    assert session.main(["unpack", str(out), "-o", str(unpacked)]) == 0
    from fastnst.checkpoint import load_network

    new = load_network(unpacked / "networks" / "starry_night.safetensors")
    shipped = load_network(ROOT / "checkpoints" / "starry_night.safetensors")
    assert new.info.steps == 2 and new.info.style_image_sha256 == shipped.info.style_image_sha256
    changed = [k for k, v in new.net.state_dict().items() if not torch.equal(v, shipped.net.state_dict()[k])]
    assert changed  # trained, not copied
    report = json.loads((unpacked / "reports" / "starry_night" / "report.json").read_text())
    assert sorted(report["mean"]) == ["checkpoints/starry_night", "gatys", "networks/starry_night"]
    style_cell = row.split("|")[4].split(" / ")  # new / shipped / Gatys, as in the report
    assert [float(v) for v in style_cell] == [
        round(report["mean"][k]["style_distance"], 3)
        for k in ("networks/starry_night", "checkpoints/starry_night", "gatys")
    ]
    scalars = json.loads((unpacked / "reports" / "starry_night_scalars.json").read_text())
    assert [step for step, _ in scalars["train/loss"]] == [0, 1]
    with tarfile.open(tar_path) as tar:
        assert "logs/starry_night.log" in tar.getnames()
    assert session.main(["unpack", str(out), "-o", str(unpacked)]) == 1  # never over what is there


@pytest.mark.slow
def test_frontier_trains_every_ratio_and_draws_them_beside_gatys(tmp_path, dev, capsys):
    import fastnst.gpu_session as session

    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--dir", str(dev), "train", "--frontier", "starry_night", "--ratios", "2", "8.5",
            "--out", str(out), "--work", str(work), *CPU_RUN]  # fmt: skip
    assert session.main(argv) == 0, capsys.readouterr().out[-2000:]
    table = capsys.readouterr().out
    for method in ("starry_night_sw2", "starry_night_sw8.5", "starry_night", "gatys 2", "gatys 8.5"):
        assert f"| starry_night_frontier: {method} |" in table, table
    assert session.main(["unpack", str(out), "-o", str(tmp_path / "back")]) == 0
    from fastnst.checkpoint import load_network

    weights = [load_network(tmp_path / "back" / "networks" / f"starry_night_sw{r}.safetensors").info.loss["style_weight"]
               for r in ("2", "8.5")]  # fmt: skip
    assert weights == [2.0, 8.5]
    assert (tmp_path / "back" / "reports" / "starry_night_frontier" / "frontier.png").stat().st_size > 1000


def test_the_any_painting_network_trains_there_on_packed_paintings(
    tmp_path, photos, arbitrary_ckpt, multi_ckpt, capsys
):
    import fastnst.gpu_session as session

    paintings = tmp_path / "paintings"
    for index in range(4):
        write_photo(paintings / f"school{index % 2}" / f"a{index}.png", size=(600, 400), seed=40 + index)
    dev = tmp_path / "dev"
    argv = ["--dir", str(dev), "pack", "--data", str(photos), "--styles", str(tmp_path / "photos"), "--no-wheels",
            "--short-side", "100", "--min-photos", "1", "--paintings", str(paintings)]  # fmt: skip
    assert session.main(argv) == 0, capsys.readouterr().err
    packed = sorted((dev / "paintings").rglob("*.jpg"))
    assert len(packed) == 4 and all(min(Image.open(p).size) == 256 for p in packed)  # shrunk, folders kept
    assert session.session_env(dev)["FASTNST_PAINTINGS_DIR"] == str((dev / "paintings").resolve())
    jobs = {name: overrides for name, _, overrides in session.jobs_for(arbitrary_ckpt.parent, None)}
    assert "experiment=arbitrary" in jobs["arbitrary"] and "styles=[a,b]" in jobs["arbitrary"]
    assert f"named_share={session.GPU_NAMED_SHARE}" in jobs["arbitrary"]  # more than a CPU run's 0.2
    assert "experiment=multi_style" in session.jobs_for(multi_ckpt.parent, None)[0][2]


def test_the_any_painting_network_is_scored_on_paintings_its_training_never_saw(tmp_path, photos, arbitrary_ckpt):
    import argparse
    import shutil

    import fastnst.gpu_session as session
    from fastnst.data import is_held_out

    dev, work = tmp_path / "dev", tmp_path / "work"
    dev.mkdir()
    (photos / "bsds500" / "test").rename(dev / "heldout")
    candidates = [dev / "paintings" / "school" / f"p{index}.jpg" for index in range(300)]
    held = [p for p in candidates if is_held_out(p, dev / "paintings", session.held_out_share())][:2]
    trained = next(p for p in candidates if p not in held)
    for index, path in enumerate([*held, trained]):
        write_photo(path, size=(96, 64), seed=50 + index)
    for sub in ("networks", "reports", "export/arbitrary"):
        (work / sub).mkdir(parents=True)
    shutil.copy(arbitrary_ckpt, work / "export" / "arbitrary" / "arbitrary.safetensors")  # as a run exports it
    args = argparse.Namespace(device="cpu", eval_size=48, gatys_steps=0, work=str(work), frontier=None)
    facts, rows = {"arbitrary": {"seconds": 60.0}}, []
    jobs = session.jobs_for(arbitrary_ckpt.parent, None)
    scoring = session.export_and_plan(jobs, work, dev, args, facts, rows)
    planned = [entry for entry in scoring if entry[2] == "arbitrary_held_out"]
    assert len(planned) == 1
    session.score(planned, work, session.session_env(dev), rows)
    name, label, problem, mean = rows[-1]
    assert (label, problem) == ("arbitrary_held_out", "")
    shipped = f"{arbitrary_ckpt.parent.name}/arbitrary"
    assert sorted(mean) == sorted(["networks/arbitrary", shipped])  # the trained one beside the shipped one
    summary = json.loads((work / "reports" / label / "summary.json").read_text())
    assert sorted(Path(p["painting"]).name for p in summary["paintings"]) == sorted(p.name for p in held)
