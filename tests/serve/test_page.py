"""The page in a real browser (Debian's chromium driven by Playwright) against a real `fastnst serve`."""

import io
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastnst serve is an optional extra: pip install 'fastnst[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="page tests need Playwright: make install")
CHROMIUM = Path("/usr/bin/chromium")

from conftest import free_port, start_server, write_photo  # noqa: E402


def browse(port: int, photo: Path, style: str, screenshot: Path | None = None, bad: Path | None = None):
    """Upload ``photo`` with ``style`` in the page; returns (response bytes, error text for ``bad``)."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 820})
        page.goto(f"http://127.0.0.1:{port}/")
        page.set_input_files("#file", str(photo))
        page.click(f".style[data-style={style}]")
        with page.expect_response("**/v1/stylize") as response:
            page.click("#go")
        assert response.value.status == 200
        page.wait_for_function("document.getElementById('after').naturalWidth > 0", timeout=60_000)
        page.wait_for_selector("#download:not([hidden])")
        # The picture the page shows (its blob URL), read back from inside the page.
        body = bytes(page.evaluate(
            "async () => Array.from(new Uint8Array(await (await fetch(document.getElementById('after').src)).arrayBuffer()))"
        ))  # fmt: skip
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=True)
        error = None
        if bad:
            page.set_input_files("#file", str(bad))
            page.click("#go")
            page.wait_for_selector("#status.error", timeout=30_000)
            error = page.inner_text("#status")
        browser.close()
        return body, error


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make install)")
def test_page_uploads_a_photo_and_shows_the_stylized_result(tiny_ckpt, tmp_path):
    import numpy as np
    from PIL import Image

    photo = write_photo(tmp_path / "photo.png", size=(120, 90))
    (tmp_path / "notes.png").write_text("not a picture")
    port = free_port()
    server = start_server([tiny_ckpt], port, "--backend", "torch")
    try:
        body, error = browse(port, photo, "tiny", tmp_path / "page.png", bad=tmp_path / "notes.png")
    finally:
        server.terminate()
        server.wait(30)
    out = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), np.int16)
    original = np.asarray(Image.open(photo).convert("RGB"), np.int16)
    assert out.shape == original.shape and np.abs(out - original).mean() > 5  # it came back, and it changed
    assert "not an image Pillow can read" in error  # the server's refusal, shown in the page
    assert (tmp_path / "page.png").stat().st_size > 10_000


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make install)")
def test_page_takes_the_users_own_painting(arbitrary_ckpt, tmp_path):
    import numpy as np
    from PIL import Image

    photo = write_photo(tmp_path / "photo.png", size=(120, 90))
    painting = write_photo(tmp_path / "my painting.png", size=(96, 96), seed=8)
    port = free_port()
    server = start_server([arbitrary_ckpt], port, "--backend", "torch")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 820})
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("#own-painting")  # offered because an any-painting network is served
            page.set_input_files("#painting-file", str(painting))
            with page.expect_response("**/v1/stylize") as response:
                page.click("#go")
            assert response.value.status == 200
            page.wait_for_function("document.getElementById('after').naturalWidth > 0", timeout=60_000)
            status = page.inner_text("#status")
            download = page.get_attribute("#download", "download")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    assert "my painting" in status and download == "photo_my painting.jpg"
    shot = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    assert shot.shape[0] > 300
