"""The HTTP API and the page, built on the library's Stylizer and io (never on the CLI).

    GET  /                 the page (static, no external resources)
    GET  /v1/styles        style names, titles and a thumbnail URL each
    GET  /v1/styles/{name}/thumbnail.jpg
    POST /v1/stylize       multipart: image, style, strength, preserve_color, size -> JPEG or PNG
    GET  /healthz          device, backend and the loaded styles
    GET  /docs             the OpenAPI schema, browsable

Every refusal is a 4xx with ``{"error": "one line"}``. Uploads are read in memory only: nothing is
written to disk and no part of a request reaches the file system.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from fastnst.io import (
    ImageReadError,
    ImageTooLargeError,
    NotAnImageError,
    pil_to_tensor,
    read_image,
    resize_tensor,
    scaled_size,
    tensor_to_pil,
)
from fastnst.serve.batcher import Batcher

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class Limits:
    """What the server accepts."""

    max_pixels: int = 40_000_000
    max_upload_bytes: int = 25 * 1024 * 1024
    max_size: int = 4096  # largest ``size`` (long side) a request may ask for


def title(stylizer, style: str | None) -> str:
    """The painting's artist, title and year, from the network's model card ("" when it has none)."""
    card = stylizer.info.card or {}
    painting = (card.get("paintings") or {}).get(style) if style else card.get("painting")
    return f"{painting['artist']}, {painting['title']} ({painting['year']})" if painting else ""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def thumbnail(stylizer, side: int = 96, style: str | None = None) -> bytes:
    """A small sample of the style: the first bundled photo, stylized, as JPEG bytes."""
    from PIL import Image

    photo = sorted((Path(__file__).resolve().parents[1] / "assets" / "photos").glob("*.jpg"))[1]
    image = Image.open(photo).convert("RGB")
    image.thumbnail((side * 2, side * 2))
    out = stylizer.stylize(image, style=style)
    out.thumbnail((side, side))
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


async def read_upload(upload: UploadFile, limits: Limits) -> bytes:
    """An upload's bytes, in memory; 413 over the limit."""
    data = await upload.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise HTTPException(413, f"upload larger than {limits.max_upload_bytes / 2**20:g} MB")
    return data


def refusal(exc: ImageReadError) -> HTTPException:
    """413 too large, 415 not an image, 422 truncated, corrupt, a bomb, or no use as a painting."""
    status = 413 if isinstance(exc, ImageTooLargeError) else 415 if isinstance(exc, NotAnImageError) else 422
    return HTTPException(status, str(exc))


async def upload_image(upload: UploadFile, limits: Limits):
    """The uploaded photo as RGB; one-line 4xx for everything that is not a readable image within limits."""
    name = Path(upload.filename or "upload").name  # for messages only; never opened
    data = await read_upload(upload, limits)
    try:
        return read_image(name, data=io.BytesIO(data), max_pixels=limits.max_pixels)
    except ImageReadError as exc:
        raise refusal(exc) from None


def painting_weights(stylizers: dict, painting: bytes, limits: Limits):
    """(the any-painting network served, its style input for ``painting``); 422 when none is served."""
    found = next((s for s in stylizers.values() if getattr(s, "painter", None) is not None), None)
    if found is None:
        raise HTTPException(422, "style_image: this server has no any-painting network; use a named style")
    try:
        return found, found.style_weights(found.embed(painting, max_pixels=limits.max_pixels), 1)
    except ImageReadError as exc:
        raise refusal(exc) from None


def style_entries(stylizers: dict) -> dict[str, tuple]:
    """Style name -> (stylizer, style within a network of named styles or None); clashes get ``network/style``."""
    entries: dict[str, tuple] = {}
    for name, stylizer in stylizers.items():
        for style in stylizer.styles or [None]:
            key = style or name
            entries[key if key not in entries else f"{name}/{style}"] = (stylizer, style)
    return entries


def encoded(image, png: bool) -> Response:
    """The stylized image as a PNG or JPEG response."""
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, "PNG" if png else "JPEG", **({} if png else {"quality": 92}))
    return Response(buffer.getvalue(), media_type="image/png" if png else "image/jpeg")


def create_app(
    stylizers: dict, limits: Limits | None = None, max_batch: int = 8, max_wait_ms: float = 5.0, warmup=None
) -> FastAPI:
    """The FastAPI app serving ``stylizers`` (name -> :class:`~fastnst.stylize.stylizer.Stylizer`).

    A multi-style network contributes each of its styles under its own name. ``warmup``: a
    :class:`~fastnst.serve.warmup.WarmupStatus` while the backends are measured in the background.
    """
    limits = limits or Limits()
    entries = style_entries(stylizers)
    batcher = Batcher(max_batch, max_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(
        title="fastnst", version="1", description="Fast feed-forward neural style transfer.", lifespan=lifespan
    )
    app.state.batcher, app.state.limits = batcher, limits

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", [])[1:]) or "request"
        return _error(422, f"{field}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    add_info_routes(app, stylizers, entries, batcher, warmup)
    add_stylize_route(app, stylizers, entries, batcher, limits)
    return app


def add_info_routes(app: FastAPI, stylizers: dict, entries: dict, batcher: Batcher, warmup) -> None:
    """The page, the style list with thumbnails, and the health check."""
    thumbnails: dict[str, bytes] = {}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/v1/styles")
    async def styles() -> list[dict]:
        """Every style this server has: its name, the painting's title and a thumbnail."""
        return [
            {"name": name, "title": title(*entries[name]) or name, "thumbnail": f"/v1/styles/{name}/thumbnail.jpg"}
            for name in entries
        ]

    @app.get("/v1/styles/{name:path}/thumbnail.jpg", include_in_schema=False)
    async def style_thumbnail(name: str) -> Response:
        if name not in entries:
            raise HTTPException(404, f"unknown style {name!r}")
        if name not in thumbnails:
            thumbnails[name] = thumbnail(*entries[name][:1], style=entries[name][1])
        return Response(thumbnails[name], media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/healthz")
    async def health() -> dict:
        """200 while serving: the device, the backend, whether it is still being measured, the styles."""
        first = next(iter(stylizers.values()))
        return {
            "status": "ok", "device": str(first.device), "backend": first.backend.describe(),
            "measuring": bool(warmup and warmup.measuring), "backend_note": warmup.message if warmup else "",
            "any_painting": any(getattr(s, "painter", None) is not None for s in stylizers.values()),
            "styles": list(entries), "forward_passes": batcher.forward_passes, "images": batcher.images,
        }  # fmt: skip


def add_stylize_route(app: FastAPI, stylizers: dict, entries: dict, batcher: Batcher, limits: Limits) -> None:
    """``POST /v1/stylize``."""

    @app.post(
        "/v1/stylize",
        responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, 404: {}, 413: {}, 415: {}, 422: {}},
    )
    async def stylize(
        request: Request,
        image: Annotated[UploadFile, File(description="the photo (JPEG, PNG, WebP, BMP)")],
        style: Annotated[str | None, Form(description="a name from /v1/styles")] = None,
        style_image: Annotated[
            UploadFile | None, File(description="your own painting, instead of style (an any-painting network)")
        ] = None,
        strength: Annotated[float, Form(ge=0.0, le=1.0, description="0: the photo, 1: full style")] = 1.0,
        preserve_color: Annotated[bool, Form(description="keep the photo's colours")] = False,
        size: Annotated[int | None, Form(ge=16, description="long side of the result (px)")] = None,
    ) -> Response:
        """Stylize one photo in a named ``style`` or after your own ``style_image``; the result has the
        photo's size unless ``size`` is given. JPEG unless the ``Accept`` header asks for ``image/png``."""
        if style_image is None and style not in entries:
            raise HTTPException(404 if style else 422, f"unknown style {style!r}; available: {', '.join(entries)}"
                                if style else "style: give a style name, or a painting as style_image")  # fmt: skip
        if size is not None and size > limits.max_size:
            raise HTTPException(422, f"size: at most {limits.max_size} px")
        photo = await upload_image(image, limits)
        if style_image is not None:
            painting = await read_upload(style_image, limits)
            stylizer, weights = await run_in_threadpool(painting_weights, stylizers, painting, limits)
        else:
            stylizer, within = entries[style]
            weights = stylizer.style_weights(within, 1) if within else None
        x = resize_tensor(pil_to_tensor(photo).unsqueeze(0), scaled_size(*photo.size, size))  # (1, 3, H, W)
        y = stylizer.finish(await batcher.run(stylizer, x, weights), x, strength, preserve_color)
        return encoded(y, png="image/png" in request.headers.get("accept", ""))
