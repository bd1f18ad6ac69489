// stylestream studio: the page. Plain script, no build step, nothing fetched from elsewhere.
// One WebSocket per tab carries its session: controls, WebRTC signalling, stats. Video goes over WebRTC.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token") || "";
const studio = { session: null, pc: null, ws: null, stats: null, style: null, lastState: null, closed: false };
window.studio = studio; // for the browser tests and the console

function withToken(path) {
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

function send(msg) {
  if (studio.ws && studio.ws.readyState === WebSocket.OPEN) studio.ws.send(JSON.stringify(msg));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(withToken(`${scheme}//${location.host}/ws`));
  studio.ws = ws;
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = () => {
    studio.closed = true;
    if (!$("message").textContent) showMessage("The connection to the server is closed: reload the page.");
    $("start").disabled = true;
  };
}

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      studio.session = msg.session;
      $("engine").textContent = msg.engine + " · network at " + msg.size + "p";
      buildGallery(msg.presets);
      applyState(msg.state);
      if (msg.server_source) {
        const opt = $("source").querySelector('option[value="server"]');
        opt.disabled = false;
        opt.textContent = "the server's source: " + msg.server_source;
      }
      break;
    case "answer":
      studio.pc.setRemoteDescription({ type: msg.sdp_type, sdp: msg.sdp });
      break;
    case "state":
      applyState(msg.state);
      break;
    case "stats":
      studio.stats = msg;
      showStats(msg);
      break;
    case "error":
      showMessage(msg.message);
      if (msg.fatal) $("start").disabled = true;
      break;
  }
}

function applyState(state) {
  studio.lastState = state;
  studio.style = state.style;
  $("alpha").value = state.alpha;
  $("alpha-value").textContent = Number(state.alpha).toFixed(2);
  for (const flag of ["preserve_color", "smooth", "side_by_side"]) $(flag).checked = state[flag];
  for (const b of $("gallery").querySelectorAll("button")) {
    b.classList.toggle("selected", b.dataset.style === state.style);
  }
}

function galleryButton(style, label, title, imageUrl) {
  const b = document.createElement("button");
  b.dataset.style = style;
  b.title = title;
  const img = document.createElement("img");
  img.src = imageUrl;
  img.alt = label;
  const span = document.createElement("span");
  span.textContent = label;
  b.append(img, span);
  b.onclick = () => send({ type: "set", style });
  return b;
}

function buildGallery(presets) {
  const gallery = $("gallery");
  gallery.replaceChildren();
  for (const p of presets) {
    gallery.append(galleryButton(p.name, p.name, p.work || p.name, withToken(`/api/presets/${p.name}.jpg`)));
  }
}

async function start() {
  $("start").disabled = true;
  showMessage("");
  const pc = new RTCPeerConnection(); // no STUN/TURN: works offline, on this machine or a LAN
  studio.pc = pc;
  pc.ontrack = (event) => {
    $("output").srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  const source = $("source").value;
  try {
    if (source === "browser") {
      const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
      for (const track of camera.getVideoTracks()) pc.addTrack(track, camera);
    } else {
      pc.addTransceiver("video", { direction: "recvonly" });
    }
  } catch (err) {
    showMessage("No camera: " + err.message + " (allow the camera, or choose the server's source)");
    $("start").disabled = false;
    return;
  }
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc); // the server takes the offer with every candidate in it (no trickle ICE)
  send({ type: "offer", sdp: pc.localDescription.sdp, sdp_type: pc.localDescription.type, source });
  $("snapshot").disabled = false;
  const obs = $("obs");
  obs.href = withToken(`/api/sessions/${studio.session}/mjpeg`);
  obs.hidden = false;
}

function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000); // use what was gathered by then
  });
}

// End-to-end latency as the page can see it: the server's time per frame (arrival to stylized) plus the
// network round trip plus the receiving jitter buffer. benchmarks/serve_latency.py measures it end to end.
async function showStats(msg) {
  let rtt = null;
  let jitter = null;
  if (studio.pc) {
    const report = await studio.pc.getStats();
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
        rtt = s.currentRoundTripTime * 1000;
      }
      if (s.type === "inbound-rtp" && s.kind === "video" && s.jitterBufferEmittedCount) {
        jitter = (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
      }
    });
  }
  const parts = [`${msg.fps.toFixed(1)} fps`];
  if (msg.working_size) parts.push(`network at ${msg.working_size}`);
  if (msg.server_ms !== null) {
    const total = msg.server_ms + (rtt || 0) + (jitter || 0);
    parts.push(`latency ≈ ${Math.round(total)} ms (server ${Math.round(msg.server_ms)}` +
      (rtt !== null ? ` + network ${Math.round(rtt)}` : "") +
      (jitter !== null ? ` + jitter buffer ${Math.round(jitter)}` : "") + ")");
  }
  $("stats").textContent = parts.join(" · ");
  $("engine").textContent = msg.engine;
}

async function uploadStyle(file) {
  if (!file) return;
  if (!studio.session) return showMessage("Not connected yet: wait a moment and try again.");
  const form = new FormData();
  form.append("file", file, file.name);
  showMessage(`Reading ${file.name}...`, "info");
  let reply;
  try {
    const response = await fetch(withToken(`/api/sessions/${studio.session}/style`), { method: "POST", body: form });
    reply = await response.json();
  } catch (err) {
    reply = { error: "Upload failed: " + err.message };
  }
  if (reply.error) return showMessage(reply.error);
  showMessage("");
  const label = reply.style.replace(/^upload:/, "");
  $("gallery").prepend(galleryButton(reply.style, label, "uploaded: " + file.name, URL.createObjectURL(file)));
  applyState(reply.state);
}

function snapshot() {
  const video = $("output");
  if (!video.videoWidth) return showMessage("No frame yet to save.");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `stylestream-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
    a.click();
  }, "image/png");
}

function wireControls() {
  $("alpha").oninput = () => {
    $("alpha-value").textContent = Number($("alpha").value).toFixed(2);
    send({ type: "set", alpha: Number($("alpha").value) });
  };
  for (const flag of ["preserve_color", "smooth", "side_by_side"]) {
    $(flag).onchange = () => send({ type: "set", [flag]: $(flag).checked });
  }
  $("start").onclick = start;
  $("snapshot").onclick = snapshot;
  $("file").onchange = () => uploadStyle($("file").files[0]);
  const drop = $("drop");
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadStyle(e.dataTransfer.files[0]);
  };
}

wireControls();
connect();
