"""docs/serve.png: the studio page in headless Chromium (Debian's), the fake camera playing the demo clip.

    PYTHONPATH=tests python scripts/serve_screenshot.py [--out docs/serve.png] [--style the-scream] [--model auto]

Uses the browser tests' helpers (tests/serve_util.py): the same `stylestream serve` subprocess (CPU) and y4m.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from serve_util import serve, write_y4m

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs/serve.png")
    ap.add_argument("--style", default="the-scream")
    ap.add_argument("--size", default="360")
    ap.add_argument("--model", default="auto", help="full | lite | auto (serve's default)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with (tempfile.TemporaryDirectory() as tmp, serve("--size", args.size, "--model", args.model) as url,
          sync_playwright() as p):
        clip = write_y4m(Path(tmp) / "camera.y4m", frames=48, width=640, height=360, fps=24)
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}", "--disable-features=WebRtcHideLocalIpsWithMdns"])
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function("window.studio.session")
        page.click("#start")
        page.wait_for_function("document.getElementById('output').videoWidth > 0")
        page.click(f'#gallery button[data-style="{args.style}"]')
        page.check("#side_by_side")
        page.wait_for_function("[...document.querySelectorAll('#gallery img')].every((i) => i.naturalWidth > 0)")
        page.wait_for_function("window.studio.lastState.side_by_side && "
                               "document.getElementById('output').videoWidth > 2 * "
                               "document.getElementById('output').videoHeight")
        page.wait_for_function("document.getElementById('stats').textContent.includes('latency')")
        page.wait_for_timeout(3000)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
