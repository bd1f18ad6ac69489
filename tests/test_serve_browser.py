"""`stylestream serve` in a real browser: Debian's chromium driven by Playwright (never downloads a browser).

Chromium's fake camera plays a y4m written here from the generated demo clip. The page's own controls are used
(Start, the gallery, the strength slider, the upload field); frames are measured as the page shows them, drawn
from its <video> element onto a canvas. The server is a real `stylestream serve` subprocess on loopback, CPU,
with a small network size (--size 90) so that a frame takes well under a second on 2 cores.
"""

from __future__ import annotations

import base64
import re
import shutil
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="serve extra not installed: pip install -e '.[serve]'")
pytest.importorskip("aiortc", reason="serve extra not installed: pip install -e '.[serve]'")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (dev extra)")

from serve_util import halves, mean_abs_diff, serve, write_y4m  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (.ci/run does)")]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def server():
    with serve("--size", "90", "--max-sessions", "2", "--style", "mondrian") as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    clip = write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}",
            "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(accept_downloads=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def open_tab(context, url):
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.studio.session || document.getElementById('message').textContent")
    return page


def start(page):
    page.click("#start")
    page.wait_for_function("document.getElementById('output').videoWidth > 0")


def frame(page, skip: int = 0) -> np.ndarray:
    """The next frame the page's video shows, after `skip` more (BGR, as the server sent it)."""
    url = page.evaluate("""async (skip) => {
        const v = document.getElementById("output");
        for (let i = 0; i <= skip; i++) await new Promise((r) => v.requestVideoFrameCallback(() => r()));
        const c = document.createElement("canvas");
        c.width = v.videoWidth; c.height = v.videoHeight;
        c.getContext("2d").drawImage(v, 0, 0);
        return c.toDataURL("image/png");
    }""", skip)
    return cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def settled(page, **expected) -> np.ndarray:
    """Once the server has confirmed the state, a frame made under it (frames in flight are skipped)."""
    for key, value in expected.items():
        page.wait_for_function(f"window.studio.lastState && window.studio.lastState[{key!r}] === {value!r}"
                               .replace("True", "true").replace("False", "false"))
    return frame(page, skip=4)


def status(page) -> dict:
    return page.evaluate("fetch('/api/status').then((r) => r.json())")


def set_alpha(page, value: float) -> None:
    page.eval_on_selector("#alpha", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)


def test_page_needs_the_token_and_its_own_origin(context, server):
    page = open_tab(context, server)
    assert page.title() == "stylestream studio"
    page.wait_for_function("[...document.querySelectorAll('#gallery img')].every((i) => i.naturalWidth > 0)")
    assert page.locator("#gallery button").count() == 12
    assert re.search(r"(torch|onnxruntime|openvino) on cpu", page.inner_text("#engine"))  # what auto chose here
    # without the token (no cookie in a fresh context), or with a wrong one: refused
    other = context.browser.new_context()
    bare = other.new_page()
    response = bare.goto(server.split("?")[0])
    assert response.status == 403 and "access token" in bare.inner_text("body")
    assert bare.goto(server[:-4] + "abcd").status == 403
    # a page of another origin (here about:blank, Origin "null"), even holding the token, cannot open the socket
    bare.goto("about:blank")
    ws_url = server.replace("http://", "ws://").replace("/?token=", "/ws?token=")
    opened = bare.evaluate("""(url) => new Promise((resolve) => {
        const ws = new WebSocket(url);
        ws.onopen = () => resolve(true);
        ws.onerror = () => resolve(false);
    })""", ws_url)
    assert opened is False
    other.close()
    assert page.evaluate("window.studio.ws.readyState") == 1  # the studio's own page is connected


def test_stylized_video_follows_the_strength_slider(context, server):
    page = open_tab(context, server)
    start(page)
    page.check("#side_by_side")
    page.uncheck("#smooth")
    full = settled(page, side_by_side=True, smooth=False, alpha=1)
    original, stylized = halves(full)
    assert full.shape[1] == 2 * original.shape[1]
    strong = mean_abs_diff(original, stylized)
    set_alpha(page, 0.5)
    original, stylized = halves(settled(page, alpha=0.5))
    half = mean_abs_diff(original, stylized)
    set_alpha(page, 0)
    original, stylized = halves(settled(page, alpha=0))
    none = mean_abs_diff(original, stylized)
    print(f"mean |original - stylized| at strength 1 / 0.5 / 0: {strong:.1f} / {half:.1f} / {none:.1f}")
    assert strong > 25  # stylized, not the input
    assert strong > half > none and strong > none + 15
    # the snapshot button saves the frame shown as a PNG
    with page.expect_download() as download:
        page.click("#snapshot")
    png = cv2.imread(str(download.value.path()))
    assert png is not None and png.shape == full.shape


def test_uploading_a_style_changes_the_output(context, server, tmp_path):
    page = open_tab(context, server)
    start(page)
    page.uncheck("#smooth")
    before = settled(page, smooth=False)
    # a bad file: one clear message, nothing else changes
    (tmp_path / "notes.png").write_text("these are notes, not an image")
    page.set_input_files("#file", str(tmp_path / "notes.png"))
    page.wait_for_function("document.getElementById('message').textContent.startsWith('Cannot read image')")
    assert "notes.png" in page.inner_text("#message")
    assert page.evaluate("window.studio.style") == "mondrian"
    # a red-striped image as the style
    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[::12] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / "red-lines.png"), stripes)
    page.set_input_files("#file", str(tmp_path / "red-lines.png"))
    after = settled(page, style="upload:red-lines")
    assert page.inner_text("#message") == ""
    assert page.locator('#gallery button[data-style="upload:red-lines"]').count() == 1
    change = mean_abs_diff(before, after)
    redness = lambda im: float(im[..., 2].mean() - im[..., :2].mean())  # noqa: E731
    print(f"upload: mean change {change:.1f}, redness {redness(before):.1f} -> {redness(after):.1f}")
    assert change > 15 and redness(after) > redness(before) + 10


def test_two_tabs_keep_their_own_styles_and_closing_one_frees_it(context, server):
    a, b = open_tab(context, server), open_tab(context, server)
    for page, style in ((a, "the-scream"), (b, "water-lilies")):
        start(page)
        page.uncheck("#smooth")
        page.click(f'#gallery button[data-style="{style}"]')
    frame_a, frame_b = settled(a, style="the-scream"), settled(b, style="water-lilies")
    sessions = {s["id"]: s for s in status(a)["sessions"]}
    ids = (a.evaluate("window.studio.session"), b.evaluate("window.studio.session"))
    assert sessions[ids[0]]["style"] == "the-scream" and sessions[ids[1]]["style"] == "water-lilies"
    assert mean_abs_diff(frame_a, frame_b) > 15
    # a change in one tab leaves the other alone
    a.click('#gallery button[data-style="udnie"]')
    settled(a, style="udnie")
    assert {s["id"]: s["style"] for s in status(a)["sessions"]}[ids[1]] == "water-lilies"
    # the limit is 2: a third tab is told so
    c = open_tab(context, server)
    c.wait_for_function("document.getElementById('message').textContent.includes('studio is full')")
    assert c.is_disabled("#start")
    c.close()
    # closing a tab frees its session, its peer connection with it; then a new tab fits again
    b.close()
    deadline = time.monotonic() + 30
    while len(status(a)["sessions"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [s["id"] for s in status(a)["sessions"]] == [ids[0]]
    d = open_tab(context, server)
    assert d.evaluate("window.studio.session")


def test_server_survives_a_tab_that_disappears_mid_negotiation(context, server):
    a = open_tab(context, server)
    start(a)
    for _ in range(2):
        gone = open_tab(context, server)
        # close the tab the moment its offer has left, while the server is making the answer
        gone.evaluate("""() => {
            const send = window.studio.ws.send.bind(window.studio.ws);
            window.studio.ws.send = (m) => { send(m); window.offerSent ||= JSON.parse(m).type === 'offer'; };
        }""")
        gone.click("#start")
        gone.wait_for_function("window.offerSent === true")
        gone.close()
    deadline = time.monotonic() + 30
    while len(status(a)["sessions"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(status(a)["sessions"]) == 1
    frame(a, skip=2)  # the first tab's stream goes on
    b = open_tab(context, server)
    start(b)
    assert frame(b).shape[0] > 0


def test_the_servers_own_source(browser, tmp_path):
    """A tab that chooses the server's source (a video file played as a camera) sends no camera, only receives."""
    from conftest import write_video

    clip = write_video(tmp_path / "clip.mp4", frames=20, fps=10, size=(160, 96), audio=False)
    with serve("--size", "96", "--source", str(clip)) as url:
        ctx = browser.new_context()
        ctx.set_default_timeout(TIMEOUT_MS)
        page = open_tab(ctx, url)
        page.select_option("#source", "server")
        start(page)
        assert frame(page).shape == (96, 160, 3)
        assert page.evaluate("window.studio.pc.getSenders().filter((s) => s.track).length") == 0
        ctx.close()
