"""A studio client without a browser (aiohttp + aiortc): for scripts, the latency benchmark and the tests.

    async with StudioClient(url) as client:          # url as printed by `stylestream serve`
        await client.set(style="mondrian", alpha=0.5)
        received = await client.start(track)           # an aiortc video track to send; returns the stylized track
        frame = await received.recv()
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import aiohttp


class StudioClient:
    def __init__(self, url: str, origin: str | None = None):
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = parse_qs(parts.query).get("token", [""])[0]
        self.origin = origin
        self.http: aiohttp.ClientSession | None = None
        self.ws = None
        self.pc = None
        self.hello: dict = {}
        self.stats: dict = {}
        self._replies: asyncio.Queue = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> StudioClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> dict:
        """Open the tab's WebSocket; the server's hello (raises RuntimeError with its message if refused)."""
        self.http = aiohttp.ClientSession()
        headers = {"Origin": self.origin} if self.origin else {}
        scheme = "wss" if self.base.startswith("https") else "ws"
        try:
            self.ws = await self.http.ws_connect(f"{scheme}{self.base[self.base.index(':'):]}/ws",
                                                 params={"token": self.token}, headers=headers)
        except aiohttp.ClientError:
            await self.close()
            raise
        self.hello = await self.ws.receive_json(timeout=30)
        if self.hello.get("type") != "hello":  # refused (the studio is full)
            await self.close()
            raise RuntimeError(self.hello.get("message", str(self.hello)))
        self._reader = asyncio.ensure_future(self._read())
        return self.hello

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "stats":
                self.stats = data
            else:
                await self._replies.put(data)

    async def _reply(self, timeout: float = 60) -> dict:
        reply = await asyncio.wait_for(self._replies.get(), timeout)
        if reply.get("type") == "error":
            raise RuntimeError(reply["message"])
        return reply

    async def set(self, **changes) -> dict:
        await self.ws.send_json({"type": "set", **changes})
        return (await self._reply())["state"]

    async def offer(self, track=None, source: str = "browser"):
        """Make the peer connection and send its offer (with its ICE candidates); returns it, unanswered."""
        from aiortc import RTCPeerConnection

        self.pc = pc = RTCPeerConnection()
        self._received: asyncio.Future = asyncio.get_running_loop().create_future()
        pc.on("track", lambda t: self._received.done() or self._received.set_result(t))
        if track is not None:
            pc.addTrack(track)
        else:
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
        await self.ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp,
                                 "sdp_type": pc.localDescription.type, "source": source})
        return pc

    async def start(self, track=None, source: str = "browser"):
        """Offer, take the answer; the stylized track coming back."""
        from aiortc import RTCSessionDescription

        pc = await self.offer(track, source)
        answer = await self._reply()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["sdp_type"]))
        return await asyncio.wait_for(self._received, 30)

    async def upload(self, data: bytes, filename: str, content_type: str) -> tuple[int, dict]:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type=content_type)
        url = f"{self.base}/api/sessions/{self.hello['session']}/style"
        async with self.http.post(url, data=form, params={"token": self.token}) as r:
            return r.status, await r.json(content_type=None)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.http is not None:
            await self.http.close()
