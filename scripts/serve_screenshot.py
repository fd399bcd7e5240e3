"""docs/images/serve.jpg: the page of a real ``fastnst serve`` in headless Chromium, after stylizing a photo.

python scripts/serve_screenshot.py          # make docs runs it (needs Debian's chromium and Playwright)
"""

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def main() -> int:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("serve_screenshot: Playwright is not installed (make install); the picture is left as it is")
        return 0
    if not CHROMIUM.exists():
        print("serve_screenshot: no /usr/bin/chromium (make install); the picture is left as it is")
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    names = ("starry_night", "great_wave", "the_scream", "udnie", "arbitrary")  # the last offers "your painting"
    ckpts = [p for p in (ROOT / "checkpoints" / f"{n}.safetensors" for n in names) if p.is_file()]
    server = subprocess.Popen([sys.executable, "-m", "fastnst.cli", "serve", "--port", str(port), "--backend", "torch",
                               "--ckpt", *map(str, ckpts)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(ROOT / "fastnst" / "assets" / "photos" / "chelsea.jpg"))
            page.click(".style[data-style=starry_night]")
            page.click("#go")
            page.wait_for_function("document.getElementById('after').naturalWidth > 0", timeout=120_000)
            page.screenshot(path=f"{tmp}/page.png", full_page=True)
            browser.close()
            Image.open(f"{tmp}/page.png").convert("RGB").save(ROOT / "docs" / "images" / "serve.jpg", quality=80)
    finally:
        server.terminate()
        server.wait(30)
    print(f"wrote {ROOT / 'docs' / 'images' / 'serve.jpg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
