"""`stylestream serve`: a browser studio (aiohttp + aiortc).

    security.py  token, Origin and Host checks (one aiohttp middleware), TLS, the bind address
    render.py    one frame through the shared engine with a tab's style state (strength, colour, smoothing)
    studio.py    the sessions (one per tab) around one engine on one worker thread, and the server's own source
    track.py     the WebRTC video track that stylizes the newest frame it has
    app.py       routes (page, WebSocket controls + signalling, uploads, thumbnails, MJPEG for OBS)
    command.py   the command: options, engine, socket, TLS, the printed URL (run_serve)
    client.py    a client without a browser (aiortc), for scripts, the benchmark and the tests
    static/      the page: plain HTML/JS/CSS, no build step, nothing from a CDN

aiohttp and aiortc are the optional extra `stylestream[serve]`; nothing here is imported by the other commands.
"""
