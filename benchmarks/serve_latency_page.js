// Injected by `benchmarks/serve_latency.py --client chromium` into the studio page before its own script runs.
// The page's camera becomes a 30 fps canvas stream whose frames carry their number in two bands (as the aiortc
// client draws them); each frame the page's <video> shows is read back: the band's block means, and when.
"use strict";
(() => {
  const bench = window.__bench;
  const { width: W, height: H, bits: BITS } = bench;
  bench.sent = []; // [number, performance.now() when drawn]
  bench.shown = []; // {t: performance.now() when shown, means: 2 bands x 2*BITS block means}
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext("2d");
  const background = new Image();
  background.src = bench.background;
  let number = 0;

  function draw() {
    number = (number + 1) % (1 << BITS);
    if (background.complete) ctx.drawImage(background, 0, 0, W, H);
    const band = Math.floor(H / 8);
    const block = Math.floor(W / (2 * BITS));
    for (const y of [0, H - band]) {
      for (let b = 0; b < BITS; b++) {
        const one = (number >> b) & 1;
        ctx.fillStyle = one ? "rgb(235,235,235)" : "rgb(20,20,20)";
        ctx.fillRect(2 * b * block, y, block, band);
        ctx.fillStyle = one ? "rgb(20,20,20)" : "rgb(235,235,235)";
        ctx.fillRect((2 * b + 1) * block, y, block, band);
      }
    }
    bench.sent.push([number, performance.now()]);
  }
  setInterval(draw, 1000 / 30);
  navigator.mediaDevices.getUserMedia = async () => canvas.captureStream(30);

  const reader = document.createElement("canvas");
  const rctx = reader.getContext("2d", { willReadFrequently: true });

  function blockMeans(y0, rows, w) {
    const block = Math.floor(w / (2 * BITS));
    const data = rctx.getImageData(0, y0, w, rows).data;
    const means = [];
    for (let k = 0; k < 2 * BITS; k++) {
      const x0 = k * block + Math.floor(block / 4);
      const x1 = (k + 1) * block - Math.floor(block / 4);
      let sum = 0;
      for (let y = 0; y < rows; y++) {
        for (let x = x0; x < x1; x++) {
          const i = (y * w + x) * 4;
          sum += data[i] + data[i + 1] + data[i + 2];
        }
      }
      means.push(sum / (3 * rows * (x1 - x0)));
    }
    return means;
  }

  function onFrame() {
    const video = document.getElementById("output");
    const t = performance.now();
    const w = video.videoWidth;
    const h = video.videoHeight;
    reader.width = w;
    reader.height = h;
    rctx.drawImage(video, 0, 0);
    const band = Math.floor(h / 8);
    const y0 = Math.floor(band / 4);
    const rows = Math.floor((band * 3) / 4) - y0;
    bench.shown.push({ t, means: [...blockMeans(y0, rows, w), ...blockMeans(h - band + y0, rows, w)] });
    video.requestVideoFrameCallback(onFrame);
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("output").requestVideoFrameCallback(onFrame);
  });
})();
