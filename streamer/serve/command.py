"""`stylestream serve`: its options, the engine and sessions they ask for, the socket, and the server's run."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from aiohttp import web
from pydantic import Field

from engines.errors import ConfigError
from engines.presets import load_preset
from streamer.config import EngineConfig, Strict
from streamer.pipeline import build_engine
from streamer.serve.app import make_app
from streamer.serve.security import Guard, exposure_warning, new_token, ssl_context
from streamer.serve.studio import SourceHub, Studio

log = logging.getLogger(__name__)


class ServeOptions(Strict):
    """What `stylestream serve` is told; its engine settings are the config's (streamer.config.EngineConfig)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    cert: Path | None = None
    key: Path | None = None
    source: str | None = None          # the server's own source (camera index, file, URL), offered beside the tab's
    style: str | None = None           # preset a new tab starts with
    size: int = Field(default=360, ge=0)  # shorter side of each tab's stream
    fps: float | None = Field(default=None, gt=0, le=240)  # the rate each tab is held at (default 30)
    adaptive_size: bool = True         # lower the network's working size to hold it; False: always `size`
    max_sessions: int = Field(default=4, ge=1)
    engine: EngineConfig = Field(default_factory=EngineConfig)  # model auto: lite on a CPU, full on a GPU
    allow_origins: list[str] = Field(default_factory=list)
    token: str | None = None           # default: a new random one per run


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"Cannot listen on {host}:{port}: {e.strerror}; choose another --port or --host") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _urls(host: str, port: int, scheme: str, token: str) -> list[str]:
    if host in ("0.0.0.0", "::", ""):
        hosts = ["127.0.0.1", socket.gethostname()]
    else:
        hosts = [f"[{host}]" if ":" in host else host]
    return [f"{scheme}://{h}:{port}/?token={token}" for h in hosts]


def build_studio(options: ServeOptions) -> Studio:
    from streamer.sources import open_source

    default_style = options.style or "starry-night"
    load_preset(default_style)  # an unknown name fails now, with the list of presets
    hub = SourceHub(open_source(options.source, live=True)) if options.source else None
    # auto: the lite model on a CPU, the full one on a GPU (engines/models.py); 16:9 frames at --size
    frame_pixels = options.size * options.size * 16 // 9 if options.size else None
    engine = build_engine(options.engine, "serve", frame_pixels)
    return Studio(engine, size=options.size, max_sessions=options.max_sessions, default_style=default_style,
                  source_hub=hub, fps=options.fps, adaptive_size=options.adaptive_size)


def run_serve(options: ServeOptions) -> None:
    """Serve the studio until Ctrl-C. Prints the URL (with its token) on stdout."""
    if not log.isEnabledFor(logging.DEBUG):  # ICE's per-candidate INFO lines would bury ours
        for noisy in ("aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    tls = ssl_context(options.cert, options.key)
    warning = exposure_warning(options.host)
    sock = _bind(options.host, options.port)  # before the engine loads: a taken port fails at once
    studio = build_studio(options)
    port = sock.getsockname()[1]
    token = options.token or new_token()
    guard = Guard(token, f"stylestream-token-{port}", tuple(options.allow_origins))
    app = make_app(studio, guard)
    if warning:
        log.warning(warning)
    urls = _urls(options.host, port, "https" if tls else "http", token)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=tls).start()
        log.info("stylestream studio: open this URL in a browser (it holds the access token)")
        for url in urls:
            print(url, flush=True)  # stdout: the line a script reads
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        studio.close()
