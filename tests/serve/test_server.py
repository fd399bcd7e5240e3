"""A real `fastnst serve` on loopback: clients that go away, and a hundred at once."""

import concurrent.futures
import socket
import time

import pytest

pytest.importorskip("fastapi", reason="fastnst serve is an optional extra: pip install 'fastnst[serve]'")
httpx = pytest.importorskip("httpx")

from conftest import free_port, start_server, write_photo  # noqa: E402


def test_disconnects_and_a_hundred_requests_leave_it_serving(tiny_ckpt, tmp_path):
    port = free_port()
    server = start_server([tiny_ckpt], port, "--backend", "torch")
    base = f"http://127.0.0.1:{port}"
    photo = write_photo(tmp_path / "p.png", size=(64, 48)).read_bytes()
    try:
        # Clients that hang up: half a multipart body, then a full request with no one left to read the answer.
        for body_bytes in (200, None):
            with socket.create_connection(("127.0.0.1", port)) as raw:
                boundary = "fastnstboundary"
                body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"style\"\r\n\r\ntiny\r\n"
                        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n"
                        "Content-Type: image/png\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
                head = (f"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
                raw.sendall(head + (body[:body_bytes] if body_bytes else body))
        with httpx.Client(base_url=base, timeout=120) as http:

            def one(_):
                # One connection per client: a pool shared by 100 threads can close a socket another is reading
                # (httpx.ReadError: Bad file descriptor, on the client's side).
                with httpx.Client(base_url=base, timeout=120) as own:
                    r = own.post("/v1/stylize", files={"image": ("p.png", photo)}, data={"style": "tiny"})
                return r.status_code

            with concurrent.futures.ThreadPoolExecutor(100) as pool:
                codes = list(pool.map(one, range(100)))
            assert codes == [200] * 100
            health = http.get("/healthz").json()
            assert health["status"] == "ok" and health["forward_passes"] < 100  # batched
            assert (
                http.post("/v1/stylize", files={"image": ("p.png", photo)}, data={"style": "tiny"}).status_code == 200
            )
    finally:
        server.terminate()
        server.wait(30)
    assert server.returncode in (0, -15)


def test_serve_answers_at_once_and_switches_to_the_measured_backend_under_load(tiny_ckpt, tmp_path):
    """An empty cache: /healthz answers while the backends are still being measured; requests sent during
    the measuring and the switch all succeed."""
    port = free_port()
    server = start_server([tiny_ckpt], port)  # --backend auto (the default), FASTNST_CACHE_DIR empty
    base = f"http://127.0.0.1:{port}"
    photo = write_photo(tmp_path / "p.png", size=(64, 48)).read_bytes()

    def one(_):
        with httpx.Client(base_url=base, timeout=120) as own:
            return own.post("/v1/stylize", files={"image": ("p.png", photo)}, data={"style": "tiny"}).status_code

    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            first = http.get("/healthz").json()
            assert first["measuring"] and first["backend"] == "torch fp32"  # serving before any measurement
            codes, seen = [], [first["backend"]]
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                deadline = time.time() + 120
                while time.time() < deadline:
                    codes += list(pool.map(one, range(16)))
                    health = http.get("/healthz").json()
                    seen.append(health["backend"])
                    if not health["measuring"]:
                        break
            assert not health["measuring"] and "serving on" in health["backend_note"]
            assert codes and set(codes) == {200}
            assert one(0) == 200
            page = http.get("/").text
            assert 'id="backend"' in page  # the page shows which backend serves
    finally:
        server.terminate()
        server.wait(30)
