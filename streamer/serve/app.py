"""Routes of the studio (the aiohttp application; streamer/serve/command.py runs it).

    GET  /                       the page (static/index.html); opened with ?token=, it sets the token cookie
    GET  /static/...             its script and style sheet
    GET  /ws                     WebSocket, one per tab: its session, controls, WebRTC signalling and stats
    GET  /api/status             the engine and every session's settings (JSON)
    GET  /api/presets/NAME.jpg   a preset's thumbnail
    POST /api/sessions/ID/style  upload an image as the tab's new style (multipart field "file")
    GET  /api/sessions/ID/mjpeg  the tab's stylized stream as MJPEG: a plain URL for OBS (media or browser source)

WebSocket messages, tab -> server: {"type": "offer", "sdp", "sdp_type", "source": "browser" | "server"},
{"type": "set", style?, alpha?, preserve_color?, smooth?, side_by_side?}; server -> tab: "hello", "answer",
"state", "stats" (once a second) and "error" {"message"}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
from pathlib import Path

import cv2
from aiohttp import WSMsgType, web

from engines.backends.base import STYLE_SIZE
from engines.errors import InputError, StylestreamError
from engines.presets import load_preset, preset_names
from streamer.alpha import check_alpha
from streamer.mjpeg import stream as stream_mjpeg
from streamer.serve.security import Guard
from streamer.serve.studio import Session, Studio, StudioFull

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_TYPES = {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff"}
UPLOAD_MAX_PIXELS = 40_000_000
STUDIO = web.AppKey("studio", Studio)


class UploadTooLarge(InputError):
    """An upload over MAX_UPLOAD_BYTES."""


# -- handlers ------------------------------------------------------------------------------------------

async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def status(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    return web.json_response({"engine": studio.engine.describe_model(), "size": studio.size,
                              "max_sessions": studio.max_sessions,
                              "sessions": [s.describe() for s in studio.sessions.values()]})


async def preset_thumbnail(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in preset_names():
        raise web.HTTPNotFound(text=f"no preset {name!r}\n")
    return web.Response(body=await request.app[STUDIO].thumbnail(name), content_type="image/jpeg")


def _session(request: web.Request) -> Session:
    session = request.app[STUDIO].sessions.get(request.match_info["sid"])
    if session is None:
        raise web.HTTPNotFound(text="no such session: its tab was closed (reload the page)\n")
    return session


async def upload_style(request: web.Request) -> web.Response:
    """An image as a new style, validated as --style images are: one clear message for a bad file."""
    session = _session(request)
    try:
        name, rgb = await _read_upload(request)
    except InputError as e:
        return web.json_response({"error": str(e)}, status=413 if isinstance(e, UploadTooLarge) else 400)
    code = await request.app[STUDIO].encode_style(rgb, name)
    key = f"upload:{name}"
    session.uploads[key] = code
    session.update(style=key, code=code)
    log.info("session %s: style %s uploaded (%dx%d)", session.id, name, rgb.shape[1], rgb.shape[0])
    return web.json_response({"style": key, "state": session.describe()})


async def _read_upload(request: web.Request):
    from engines.images import load_image

    if not request.content_type.startswith("multipart/"):
        raise InputError("Send the image as multipart/form-data (field 'file')")
    reader = await request.multipart()
    part = await reader.next()
    while part is not None and part.name != "file":
        part = await reader.next()
    if part is None:
        raise InputError("No file in the upload (field 'file')")
    filename = Path(part.filename or "style").name
    ctype = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype not in UPLOAD_TYPES:
        raise InputError(f"{filename} is {ctype or 'of no stated type'}, not an image: use a JPEG, PNG, WebP, BMP, "
                         "GIF or TIFF file")
    data = bytearray()
    while chunk := await part.read_chunk():  # client_max_size does not cover a multipart reader: count here
        data += chunk
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"{filename} is over {MAX_UPLOAD_BYTES // 2**20} MB: use a smaller image "
                                 "(a style is read at 512 px anyway)")
    with tempfile.TemporaryDirectory(prefix="stylestream-upload-") as tmp:
        path = Path(tmp) / "upload"  # never the sender's name as a path; the image format is read from the bytes
        path.write_bytes(data)
        try:
            rgb = await asyncio.to_thread(load_image, path, UPLOAD_MAX_PIXELS)
        except InputError as e:
            raise InputError(str(e).replace(str(path), filename)) from None
    return re.sub(r"[^\w.-]+", "-", Path(filename).stem)[:60] or "style", _shrink(rgb)


def _shrink(rgb, shorter: int = 2 * STYLE_SIZE):
    """A large image down to twice the size a style is encoded at (the engine resizes it once more), so that a
    40 MP upload does not become a 480 MB float tensor."""
    h, w = rgb.shape[:2]
    k = shorter / min(h, w)
    return rgb if k >= 1 else cv2.resize(rgb, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)


async def mjpeg(request: web.Request) -> web.StreamResponse:
    """The tab's stylized frames as multipart JPEG, newest first (a slow viewer skips frames)."""
    return await stream_mjpeg(request, _session(request).output)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    studio = request.app[STUDIO]
    ws = web.WebSocketResponse(heartbeat=10)  # a tab that vanishes without closing is noticed within ~20 s
    await ws.prepare(request)
    try:
        session = studio.open_session()
    except StudioFull as e:
        await ws.send_json({"type": "error", "fatal": True, "message": str(e)})
        await ws.close()
        return ws
    stats = asyncio.ensure_future(_send_stats(ws, session, studio))
    try:
        await ws.send_json({"type": "hello", "session": session.id, "engine": studio.engine.describe_model(),
                            "size": studio.size, "presets": _presets(),
                            "server_source": studio.source_hub.name if studio.source_hub else None,
                            "state": session.describe()})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                reply = await _handle(studio, session, json.loads(msg.data))
            except (StylestreamError, ValueError, KeyError, TypeError) as e:
                reply = {"type": "error", "message": str(e) or e.__class__.__name__}
            if reply is not None and not ws.closed:
                await ws.send_json(reply)
    finally:
        stats.cancel()
        await studio.close_session(session)
    return ws


def _presets() -> list[dict]:
    return [{"name": n, "work": load_preset(n).meta.get("work", "")} for n in preset_names()]


async def _handle(studio: Studio, session: Session, msg: dict) -> dict | None:
    kind = msg.get("type")
    if kind == "offer":
        return await _answer(studio, session, msg)
    if kind == "set":
        changes = {}
        if "style" in msg:
            name = str(msg["style"])
            if name in session.uploads:
                changes["style"], changes["code"] = name, session.uploads[name]
            else:
                changes["style"], changes["code"] = name, load_preset(name)  # InputError lists the presets
        if "alpha" in msg:
            changes["alpha"] = check_alpha(float(msg["alpha"]))
        for flag in ("preserve_color", "smooth", "side_by_side"):
            if flag in msg:
                changes[flag] = bool(msg[flag])
        session.update(**changes)
        return {"type": "state", "state": session.describe()}
    raise InputError(f"unknown message type {kind!r}")


async def _answer(studio: Studio, session: Session, msg: dict) -> dict:
    """WebRTC signalling: the tab's offer in, the answer (with every ICE candidate: no trickle) out."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from streamer.serve.track import BrowserFrames, StylizedTrack

    if session.pc is not None:
        raise InputError("this tab is already connected; reload the page to start again")
    source = msg.get("source", "browser")
    if source == "server" and studio.source_hub is None:
        raise InputError("the server has no source of its own (start it with --source)")
    pc = RTCPeerConnection()
    session.pc = pc
    incoming: list = []
    pc.on("track", lambda track: incoming.append(track) if track.kind == "video" else None)

    @pc.on("connectionstatechange")
    async def _state() -> None:
        log.info("session %s: WebRTC %s", session.id, pc.connectionState)

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type=msg.get("sdp_type", "offer")))
        if source == "browser":
            if not incoming:
                raise InputError("the offer has no video track: allow the camera, or choose the server's source")
            track = StylizedTrack(studio, session, browser=BrowserFrames(incoming[0]))
        else:
            track = StylizedTrack(studio, session, hub=studio.source_hub)
        pc.addTrack(track)
        await pc.setLocalDescription(await pc.createAnswer())
    except BaseException:  # a bad offer: nothing of it stays, and the tab may offer again
        await pc.close()
        session.pc = None
        raise
    if session.closed:  # the tab went away while the answer was being made: nothing of it may stay
        await pc.close()
        return None
    return {"type": "answer", "sdp": pc.localDescription.sdp, "sdp_type": pc.localDescription.type}


async def _send_stats(ws: web.WebSocketResponse, session: Session, studio: Studio) -> None:
    try:
        while not ws.closed:
            await asyncio.sleep(1.0)
            await ws.send_json({"type": "stats", "engine": studio.engine.describe_model(), **session.describe()})
    except (ConnectionResetError, RuntimeError):
        pass


# -- the application -------------------------------------------------------------------

def make_app(studio: Studio, guard: Guard) -> web.Application:
    app = web.Application(middlewares=[guard.middleware], client_max_size=MAX_UPLOAD_BYTES)
    app[STUDIO] = studio
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/presets/{name}.jpg", preset_thumbnail)
    app.router.add_post("/api/sessions/{sid}/style", upload_style)
    app.router.add_get("/api/sessions/{sid}/mjpeg", mjpeg)

    async def _close_all(app: web.Application) -> None:
        for session in list(studio.sessions.values()):
            await studio.close_session(session)

    app.on_shutdown.append(_close_all)
    return app
