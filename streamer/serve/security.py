"""Who may talk to the studio: a random token on every request, same-origin browsers only, a sane bind.

The token goes in the printed URL (`?token=...`, as Jupyter does). The page, once opened with it, gets it
as an HttpOnly SameSite=Strict cookie so that its scripts, images and WebSocket carry it too; scripts may
also send it as a query parameter or an `Authorization: token ...` header. Every route checks it, also the
WebSocket (which carries the WebRTC signalling) and the uploads.

A request that names an Origin (every WebSocket and POST from a browser does) must come from the page's own
origin (scheme and the Host it was sent to), or from one given with --allow-origin: another site in the
same browser cannot drive the studio even if it guessed the port.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import ssl
from pathlib import Path

from aiohttp import web

from engines.errors import ConfigError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning for a bind address other than loopback (None for loopback)."""
    if is_loopback(host):
        return None
    return (f"--host {host}: the studio is reachable from other machines. Anyone who has the printed URL (it "
            "holds the access token) can use it and its camera feeds. Browsers allow the camera away from "
            "localhost only over HTTPS: add --cert/--key.")


def ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("HTTPS needs both --cert FILE and --key FILE (PEM)")
    for path in (cert, key):
        if not Path(path).is_file():
            raise ConfigError(f"Not found: {path} (give a PEM certificate and its private key)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"Cannot use {cert} / {key} for HTTPS: {e}") from None
    return ctx


class Guard:
    """The checks every request passes, as an aiohttp middleware."""

    def __init__(self, token: str, cookie_name: str, allowed_origins: tuple[str, ...] = ()):
        self.token = token
        self.cookie_name = cookie_name
        self.allowed_origins = {o.rstrip("/") for o in allowed_origins}

    def token_of(self, request: web.Request) -> tuple[str, bool]:
        """(the token the request carries, whether it came in the URL)."""
        if "token" in request.query:
            return request.query["token"], True
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("token "):
            return auth[6:].strip(), False
        return request.cookies.get(self.cookie_name, ""), False

    def origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # not from a script in a browser (a navigation, curl, OBS, an aiortc client)
            return True
        return origin == f"{request.scheme}://{request.host}" or origin in self.allowed_origins

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        token, in_url = self.token_of(request)
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            log.info("refused %s %s from %s: no valid token", request.method, request.path, request.remote)
            raise web.HTTPForbidden(text="403: this needs the access token: open the URL that "
                                         "`stylestream serve` printed (it ends in ?token=...)\n")
        if not self.origin_ok(request):
            log.warning("refused %s %s: Origin %s is not this page's", request.method, request.path,
                        request.headers.get("Origin"))
            raise web.HTTPForbidden(text="403: requests from another site are refused (Origin check)\n")
        response = await handler(request)
        if response.prepared:  # a WebSocket or a stream: its headers are gone already
            return response
        if in_url and request.path == "/":
            response.set_cookie(self.cookie_name, self.token, httponly=True, samesite="Strict",
                                secure=request.secure)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")  # the URL holds the token
        return response
