"""A user's own painting as a style: refused in one line when it cannot be one, embedded once, kept by name."""

import pytest
import torch
from PIL import Image

from fastnst.cli import main
from fastnst.stylize.paintings import PaintingError
from fastnst.stylize.stylizer import Stylizer

from conftest import write_photo


@pytest.fixture
def stylizer(arbitrary_ckpt, tmp_path):
    return Stylizer.from_checkpoint(arbitrary_ckpt, backend="torch", cache_dir=tmp_path / "cache")


def test_a_painting_is_embedded_once_and_paints_differently_from_another(stylizer, tmp_path, monkeypatch):
    a = write_photo(tmp_path / "a.png", size=(64, 48), seed=1)
    b = write_photo(tmp_path / "b.png", size=(64, 48), seed=2)
    calls = []
    real = stylizer.painter.embed
    monkeypatch.setattr(stylizer.painter, "embed", lambda x: calls.append(1) or real(x))
    photo = Image.open(write_photo(tmp_path / "photo.png", size=(40, 32), seed=5))
    first = stylizer.stylize(photo, style_image=a)
    again = stylizer.stylize(photo, style_image=str(a))
    assert len(calls) == 1 and first.tobytes() == again.tobytes()  # the same painting: one prediction
    other = stylizer.stylize(photo, style_image=Image.open(b))
    assert len(calls) == 2 and other.tobytes() != first.tobytes()
    assert list((tmp_path / "cache" / "embeddings").rglob("*.json"))  # kept on disk by content hash too


def test_a_large_jpeg_is_decoded_small_and_a_file_seen_before_is_not_decoded_again(stylizer, tmp_path, monkeypatch):
    from fastnst.models.arbitrary import PAINTING_SIZE
    from fastnst.stylize import paintings

    big = tmp_path / "scan.jpg"
    Image.open(write_photo(tmp_path / "scan.png", size=(4 * PAINTING_SIZE, 3 * PAINTING_SIZE), seed=3)).save(big)
    pixels = paintings.read_painting(big.read_bytes(), big.name, short_side=PAINTING_SIZE)
    assert pixels.shape[-2:] == (3 * PAINTING_SIZE // 2, 2 * PAINTING_SIZE)  # the DCT's 1/2: still >= 256 px
    assert paintings.read_painting(big.read_bytes(), big.name).shape[-2:] == (3 * PAINTING_SIZE, 4 * PAINTING_SIZE)
    decoded = []
    real = paintings.read_painting
    monkeypatch.setattr(paintings, "read_painting", lambda *a, **k: decoded.append(1) or real(*a, **k))
    first = stylizer.embed(big)
    again = stylizer.embed(str(big))
    assert len(decoded) == 1 and torch.equal(first, again)


def test_bad_paintings_get_one_line_naming_them(stylizer, tmp_path):
    write_photo(tmp_path / "tiny.png", size=(20, 30))
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(write_photo(tmp_path / "full.png", size=(64, 64)).read_bytes()[:200])
    for name, message in [("tiny.png", "too small to read a style from"), ("moving.gif", "animated image"),
                          ("notes.jpg", "not an image"), ("cut.png", "cannot decode"), ("missing.png", "no such painting")]:  # fmt: skip
        with pytest.raises(PaintingError if name != "notes.jpg" and name != "cut.png" else ValueError) as err:
            stylizer.embed(tmp_path / name)
        assert message in str(err.value) and name in str(err.value) and "\n" not in str(err.value)
    grey = write_photo(tmp_path / "grey.png", size=(64, 48), mode="L")  # converted, not refused
    assert stylizer.embed(grey).shape == (8,)


def test_styles_mix_as_embeddings(stylizer):
    x = torch.rand(1, 3, 24, 24)
    half = stylizer.style_weights("a=0.5,b=0.5", 1)
    assert torch.allclose(half[0], 0.5 * (stylizer.embeddings["a"] + stylizer.embeddings["b"]))
    assert stylizer.stylize_tensor(x, style="a").shape == x.shape
    with pytest.raises(ValueError, match="unknown style 'c'"):
        stylizer.stylize_tensor(x, style="c")


def test_cli_stylizes_with_a_painting_and_names_the_output_after_it(arbitrary_ckpt, tmp_path, capsys):
    painting = write_photo(tmp_path / "My Painting.png", size=(64, 64), seed=7)
    for i in range(2):
        write_photo(tmp_path / "in" / f"p{i}.png", size=(40, 30), seed=i)
    out = tmp_path / "out"
    args = ["stylize", "--ckpt", str(arbitrary_ckpt), str(tmp_path / "in"), "-o", str(out), "--backend", "torch"]
    assert main([*args, "--style-image", str(painting), "--strength", "0.5", "--preserve-color"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0_My_Painting.png", "p1_My_Painting.png"]
    assert main([*args, "--style-image", str(painting), "--style", "a"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*args, "--style-image", str(tmp_path / "nope.png")]) == 2
    assert "nope.png: no such painting" in capsys.readouterr().err


def test_a_single_style_network_refuses_a_painting(tiny_ckpt, tmp_path, capsys):
    painting = write_photo(tmp_path / "painting.png", size=(64, 64))
    photo = write_photo(tmp_path / "photo.png", size=(40, 30))
    args = ["stylize", "--ckpt", str(tiny_ckpt), str(photo), "-o", str(tmp_path), "--backend", "torch"]
    assert main([*args, "--style-image", str(painting)]) == 2
    assert "paints its own styles only" in capsys.readouterr().err


def test_styles_add_then_use_it_by_name(arbitrary_ckpt, tmp_path, capsys):
    painting = write_photo(tmp_path / "mine.png", size=(64, 64), seed=11)
    assert main(["styles", "add", "mine", str(painting), "--ckpt", str(arbitrary_ckpt)]) == 0
    assert "added style 'mine'" in capsys.readouterr().out
    assert main(["styles", "list", "--ckpt", str(arbitrary_ckpt)]) == 0
    listing = capsys.readouterr().out
    assert "a " in listing and "stored in the network" in listing and "mine" in listing and str(painting) in listing
    photo = write_photo(tmp_path / "photo.png", size=(40, 30))
    assert main(["stylize", "--ckpt", str(arbitrary_ckpt), str(photo), "-o", str(tmp_path / "out"), "--style", "mine",
                 "--backend", "torch"]) == 0  # fmt: skip
    assert (tmp_path / "out" / "photo_mine.png").is_file()
    direct = Stylizer.from_checkpoint(arbitrary_ckpt, backend="torch").stylize(Image.open(photo), style_image=painting)
    assert Image.open(tmp_path / "out" / "photo_mine.png").tobytes() == direct.tobytes()
    assert main(["styles", "add", "bad name!", str(painting), "--ckpt", str(arbitrary_ckpt)]) == 2
    assert main(["styles", "add", "x", str(painting), "--ckpt", str(tmp_path / "photo.png")]) == 2


def test_a_damaged_styles_file_leaves_the_added_styles_out_in_one_line(arbitrary_ckpt, monkeypatch, tmp_path):
    broken = tmp_path / "styles.json"
    broken.write_text("{not json")
    monkeypatch.setenv("FASTNST_STYLES", str(broken))
    with pytest.warns(UserWarning, match="styles file cannot be read"):
        stylizer = Stylizer.from_checkpoint(arbitrary_ckpt, backend="torch")
    assert stylizer.styles == ("a", "b")  # the network's own styles still work


def fit_objective(net, painting, photos, embedding):
    """The fit's own loss on fixed photos: Gram distance to the painting over the photos' own, plus content."""
    from fastnst.losses import gram_matrix

    with torch.no_grad():
        grams = {t: gram_matrix(f) for t, f in net.style_encoder(painting).items()}
        own, out = net.style_encoder(photos), net.style_encoder(net(photos, embedding))
        distance = lambda f: sum((gram_matrix(f[t]) - g).pow(2).mean((1, 2)) for t, g in grams.items())  # noqa: E731
        content = (out["relu4_1"] - own["relu4_1"]).pow(2).mean() / own["relu4_1"].pow(2).mean()
        return float((distance(out) / distance(own)).mean() + content)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fitting_a_style_lowers_its_loss_and_leaves_the_network_alone(stylizer, tmp_path, precision):
    from fastnst.backends.machine import emulated_precisions
    from fastnst.io import load_image
    from fastnst.stylize.paintings import fit_embedding

    if precision in emulated_precisions():
        pytest.skip("this CPU would emulate bf16 (no AVX512-BF16 or AMX): a fit never runs in it here")

    painting = load_image(write_photo(tmp_path / "painting.png", size=(96, 80), seed=21))
    photos = [load_image(write_photo(tmp_path / f"p{i}.png", size=(60, 48), seed=30 + i)) for i in range(3)]
    net = stylizer.painter
    before = {k: v.clone() for k, v in net.state_dict().items()}
    start = stylizer.embed(tmp_path / "painting.png")
    steps = []
    fitted = fit_embedding(
        net,
        painting,
        start,
        photos,
        steps=25,
        lr=0.05,
        crop=40,
        style_weight=1.0,
        on_step=lambda s, n: steps.append(s),
        precision=precision,
    )
    assert steps == list(range(1, 26)) and not torch.equal(fitted, start)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # only the embedding moved
    fixed = torch.cat([p[..., :40, :40] for p in photos])  # photos the fit never saw whole, one batch
    target = load_image(tmp_path / "painting.png", 512)  # the painting at the fit's scale
    assert fit_objective(net, target, fixed, fitted) < 0.9 * fit_objective(net, target, fixed, start)
    photo = Image.open(tmp_path / "p0.png")
    assert stylizer.stylize(photo, style=fitted).tobytes() != stylizer.stylize(photo, style=start).tobytes()


def test_a_fit_runs_in_bf16_only_where_a_measured_bf16_step_was_faster(monkeypatch):
    from fastnst.stylize.paintings import fit_precision
    from fastnst.training import precision

    for measured, expected in (("bf16-mixed", "bf16"), ("32-true", "fp32")):
        monkeypatch.setattr(precision, "cpu_training_precision", lambda measured=measured: measured)
        assert fit_precision(torch.device("cpu")) == expected
    assert fit_precision(torch.device("cuda")) == "fp32"


def test_styles_add_fit_keeps_the_fitted_style_and_says_so(arbitrary_ckpt, tmp_path, capsys, monkeypatch):
    import json
    import os

    painting = write_photo(tmp_path / "mine.png", size=(64, 64), seed=11)
    for i in range(2):
        write_photo(tmp_path / "photos" / f"p{i}.png", size=(200, 180), seed=i)
    args = ["styles", "add", "mine", str(painting), "--ckpt", str(arbitrary_ckpt)]
    assert main([*args, "--fit", "--fit-steps", "3", "--fit-photos", str(tmp_path / "photos")]) == 0
    entry = json.loads(open(os.environ["FASTNST_STYLES"]).read())["mine"]
    assert entry["fit_steps"] == 3
    predicted = Stylizer.from_checkpoint(arbitrary_ckpt, backend="torch").embed(painting)
    stored = torch.tensor(next(iter(entry["embeddings"].values())))
    assert not torch.allclose(stored, predicted)
    assert main(["styles", "list", "--ckpt", str(arbitrary_ckpt)]) == 0
    assert "fitted 3 steps" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main([*args, "--fit", "--fit-photos", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "empty: no photos to fit the style on" in err and err.count("\n") == 1
    assert main([*args, "--fit", "--fit-steps", "0"]) == 2
    assert "--fit-steps 0" in capsys.readouterr().err


def test_stylize_fit_paints_with_the_fitted_style_and_fits_a_painting_once(
    arbitrary_ckpt, tmp_path, capsys, monkeypatch
):
    from fastnst.stylize import paintings

    painting = write_photo(tmp_path / "mine.png", size=(64, 64), seed=11)
    photo = write_photo(tmp_path / "photo.png", size=(40, 30))
    fits, decoded = [], []
    real, real_read = paintings.fit_embedding, paintings.read_painting
    monkeypatch.setattr(paintings, "fit_embedding", lambda *a, **k: fits.append(1) or real(*a, **k))
    monkeypatch.setattr(paintings, "read_painting", lambda *a, **k: decoded.append(1) or real_read(*a, **k))

    def stylize(out: str, *extra: str) -> bytes:
        args = ["stylize", "--ckpt", str(arbitrary_ckpt), str(photo), "-o", str(tmp_path / out), "--backend", "torch",
                "--style-image", str(painting), "--quiet", *extra]  # fmt: skip
        assert main(args) == 0
        return Image.open(tmp_path / out / "photo_mine.png").tobytes()

    predicted = stylize("plain")
    fitted = stylize("fitted", "--fit", "--fit-steps", "3")
    assert fitted != predicted and len(fits) == 1
    seen = len(decoded)
    again = stylize("again", "--fit", "--fit-steps", "3")
    assert again == fitted and len(fits) == 1 and len(decoded) == seen  # kept: neither fitted nor decoded again
    assert stylize("more", "--fit", "--fit-steps", "4") != fitted and len(fits) == 2  # other steps: another fit
    assert main(["stylize", "--ckpt", str(arbitrary_ckpt), "--fit", str(photo), "-o", str(tmp_path)]) == 2
    assert "give --style-image too" in capsys.readouterr().err
