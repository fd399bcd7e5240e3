"""fastnst serve's HTTP API through FastAPI's test client: every route, every bad input, batching."""

import io
import threading

import pytest

pytest.importorskip("fastapi", reason="fastnst serve is an optional extra: pip install 'fastnst[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from fastapi.testclient import TestClient
from PIL import Image

from fastnst.serve.app import Limits, create_app
from fastnst.stylize.stylizer import Stylizer

from conftest import png_bomb, write_photo


@pytest.fixture
def client(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    app = create_app({"tiny": stylizer}, Limits(max_pixels=100_000, max_upload_bytes=200_000), max_wait_ms=200)
    with TestClient(app) as c:
        c.stylizer = stylizer
        yield c


def photo_bytes(tmp_path, size=(64, 48), fmt="PNG"):
    path = write_photo(tmp_path / f"p.{fmt.lower()}", size=size)
    return path.read_bytes()


def post(client, data: bytes, name="p.png", **form):
    fields = {"style": "tiny", **{k: str(v) for k, v in form.items()}}
    headers = {"Accept": form.pop("accept", "image/jpeg")} if "accept" in form else {}
    return client.post("/v1/stylize", files={"image": (name, data)}, data=fields, headers=headers)


def test_styles_health_page_docs_and_thumbnail(client):
    assert client.get("/v1/styles").json() == [
        {"name": "tiny", "title": "tiny", "thumbnail": "/v1/styles/tiny/thumbnail.jpg"}
    ]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["device"] == "cpu" and health["styles"] == ["tiny"]
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external resources: works offline
    assert "/v1/stylize" in client.get("/openapi.json").text and client.get("/docs").status_code == 200
    thumb = client.get("/v1/styles/tiny/thumbnail.jpg")
    assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).size[0] <= 96


def test_stylize_same_size_jpeg_or_png_size_strength_color(client, tmp_path):
    data = photo_bytes(tmp_path)
    jpeg = post(client, data)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (64, 48)
    png = client.post(
        "/v1/stylize", files={"image": ("p.png", data)}, data={"style": "tiny"}, headers={"Accept": "image/png"}
    )
    assert png.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(png.content))
    expected = client.stylizer.stylize(Image.open(io.BytesIO(data)))
    import numpy as np

    assert np.abs(np.asarray(out, np.int16) - np.asarray(expected, np.int16)).max() <= 1  # the library's picture
    resized = post(client, data, size=32)
    assert Image.open(io.BytesIO(resized.content)).size == (32, 24)
    zero = client.post("/v1/stylize", files={"image": ("p.png", data)}, data={"style": "tiny", "strength": "0"},
                       headers={"Accept": "image/png"})  # fmt: skip
    assert (
        np.abs(
            np.asarray(Image.open(io.BytesIO(zero.content)), np.int16)
            - np.asarray(Image.open(io.BytesIO(data)), np.int16)
        ).max()
        <= 1
    )
    assert post(client, data, preserve_color="true").status_code == 200


@pytest.mark.parametrize(
    "case, status, words",
    [
        ("text", 415, "not an image"),
        ("truncated", 422, "cannot decode"),
        ("bomb", 422, "decompression bomb"),
        ("too many pixels", 413, "the limit is 0.1 MP"),
        ("too many bytes", 413, "upload larger than"),
        ("unknown style", 404, "available: tiny"),
        ("strength", 422, "strength"),
        ("size", 422, "size"),
    ],
)
def test_bad_input_is_a_one_line_4xx(client, tmp_path, case, status, words):
    data, form = photo_bytes(tmp_path), {}
    if case == "text":
        data = b"hello, not a picture"
    elif case == "truncated":
        data = photo_bytes(tmp_path, size=(200, 150), fmt="JPEG")[:400]
    elif case == "bomb":
        png_bomb(tmp_path / "bomb.png")
        data = (tmp_path / "bomb.png").read_bytes()
    elif case == "too many pixels":
        data = photo_bytes(tmp_path, size=(400, 300))
    elif case == "too many bytes":
        data = b"\x89PNG" + bytes(300_000)
    elif case == "unknown style":
        form = {"style": "nope"}
    elif case == "strength":
        form = {"strength": "1.5"}
    elif case == "size":
        form = {"size": "-3"}
    response = client.post("/v1/stylize", files={"image": ("../../etc/passwd", data)}, data={"style": "tiny", **form})
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and words in body["error"] and "\n" not in body["error"]
    assert "Traceback" not in response.text and "/etc" not in body["error"].replace("../../etc/passwd", "")
    assert post(client, photo_bytes(tmp_path)).status_code == 200  # and the next request is served


def test_concurrent_requests_share_forward_passes(client, tmp_path):
    data = photo_bytes(tmp_path)
    results, barrier = [], threading.Barrier(6)

    def one():
        barrier.wait()
        results.append(post(client, data).status_code)

    before = client.get("/healthz").json()["forward_passes"]
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    passes = client.get("/healthz").json()["forward_passes"] - before
    assert results == [200] * 6
    assert passes < 6, f"{passes} forward passes for 6 concurrent requests"


def test_a_request_that_fails_in_the_network_leaves_the_server_serving(client, tmp_path, monkeypatch):
    calls = {"n": 0}
    forward = client.stylizer.forward

    def flaky(x, weights=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return forward(x, weights)

    monkeypatch.setattr(client.stylizer, "forward", flaky)
    with TestClient(client.app, raise_server_exceptions=False) as c:
        assert post(c, photo_bytes(tmp_path)).status_code == 500
        assert post(c, photo_bytes(tmp_path)).status_code == 200


def test_a_multi_style_network_serves_each_of_its_styles(tiny_ckpt, tmp_path):
    import torch

    from fastnst.checkpoint import save_network
    from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig

    net = MultiStyleNet(MultiStyleNetConfig(width=0.25, num_residual_blocks=1, styles=("tiny", "other")))
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 2:
                p.add_(torch.randn_like(p))
    multi = save_network(net, tmp_path / "multi.safetensors", {"style": "multi"})
    stylizers = {name: Stylizer.from_checkpoint(path, backend="torch", device="cpu", precision="fp32")
                 for name, path in (("tiny", tiny_ckpt), ("multi", multi))}  # fmt: skip
    with TestClient(create_app(stylizers)) as c:
        names = [s["name"] for s in c.get("/v1/styles").json()]
        assert names == ["tiny", "multi/tiny", "other"]  # a clashing name gets its network's prefix
        data = photo_bytes(tmp_path)
        outs = [post(c, data, style=name) for name in ("other", "multi/tiny")]
        assert [o.status_code for o in outs] == [200, 200] and outs[0].content != outs[1].content
        assert c.get("/v1/styles/multi/tiny/thumbnail.jpg").status_code == 200


@pytest.fixture
def painting_client(arbitrary_ckpt, tiny_ckpt):
    painter = Stylizer.from_checkpoint(arbitrary_ckpt, backend="torch", device="cpu", precision="fp32")
    tiny = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    app = create_app({"arbitrary": painter, "tiny": tiny}, Limits(max_pixels=100_000, max_upload_bytes=200_000))
    with TestClient(app) as c:
        c.stylizer = painter
        yield c


def test_a_users_own_painting_beside_the_photo(painting_client, tmp_path):
    photo = photo_bytes(tmp_path)
    painting = write_photo(tmp_path / "painting.png", size=(80, 64), seed=9).read_bytes()
    assert painting_client.get("/healthz").json()["any_painting"]
    names = [s["name"] for s in painting_client.get("/v1/styles").json()]
    assert {"a", "b", "tiny"} <= set(names)  # the any-painting network's stored styles are styles too
    r = painting_client.post("/v1/stylize", files={"image": ("p.png", photo), "style_image": ("art.png", painting)},
                             headers={"Accept": "image/png"})  # fmt: skip
    assert r.status_code == 200, r.text
    import numpy as np

    expected = painting_client.stylizer.stylize(Image.open(io.BytesIO(photo)), style_image=painting)
    got = Image.open(io.BytesIO(r.content))
    assert np.abs(np.asarray(got, np.int16) - np.asarray(expected, np.int16)).max() <= 1
    assert post(painting_client, photo, style="a").status_code == 200


@pytest.mark.parametrize(
    "case, status, words",
    [("tiny painting", 422, "too small to read a style from"), ("text", 415, "not an image"),
     ("too many bytes", 413, "upload larger than"), ("too many pixels", 413, "the limit is 0.1 MP"),
     ("no style", 422, "give a style name, or a painting")],
)  # fmt: skip
def test_a_bad_painting_is_a_one_line_4xx(painting_client, tmp_path, case, status, words):
    painting = {
        "tiny painting": write_photo(tmp_path / "t.png", size=(16, 16)).read_bytes(),
        "text": b"not a painting",
        "too many bytes": b"\x89PNG" + bytes(300_000),
        "too many pixels": photo_bytes(tmp_path, size=(400, 300)),
    }.get(case)
    files = {"image": ("p.png", photo_bytes(tmp_path))} | ({"style_image": ("art.png", painting)} if painting else {})
    response = painting_client.post("/v1/stylize", files=files)
    assert response.status_code == status, response.text
    assert words in response.json()["error"] and "\n" not in response.json()["error"]


def test_a_painting_without_an_any_painting_network_is_refused(client, tmp_path):
    painting = write_photo(tmp_path / "painting.png", size=(80, 64)).read_bytes()
    r = client.post(
        "/v1/stylize", files={"image": ("p.png", photo_bytes(tmp_path)), "style_image": ("a.png", painting)}
    )
    assert r.status_code == 422 and "no any-painting network" in r.json()["error"]
