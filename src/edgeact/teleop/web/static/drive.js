// edgeact drive page: video, overlay, inputs (keys, touch joystick, browser gamepad), state.
// The rover holds the state; this page shows it and sends what a person does.
"use strict";

const CONTROL_PERIOD_MS = 100;   // heartbeat: the rover goes neutral after 250 ms of silence
const LATENCY_REPORT_MS = 2000;
const DEADZONE = 0.08;
const $ = (id) => document.getElementById(id);

const state = {
  ws: null, source: null, status: null,
  keys: new Set(), pad: null /* {x, y} while touched */, gp: {x: 0, y: 0, active: false, buttons: []},
  framesShown: 0, latencies: [], pendingLatency: [], decoding: false, nextBlob: null,
  imgW: 640, imgH: 360, lastFrameAt: 0, fps: 0, wakeLock: null,
};
window.edgeact = state;  // read by the tests and handy in the console

// ---------------------------------------------------------------- socket
// The token travels in the page's cookie (HttpOnly: this script never sees it), not in any URL.
let failedOpens = 0;  // sockets in a row that closed without ever opening
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onJson(JSON.parse(ev.data)) : onVideo(ev.data));
  ws.onclose = () => { if (state.ws !== ws) failedOpens++;
                       state.ws = null; state.source = null;
                       if (failedOpens < 3) banner("connection lost — reconnecting…", true);
                       setTimeout(reconnect, 1000); };
  ws.onopen = () => { state.ws = ws; failedOpens = 0; };
}
function reconnect() {
  fetch("static/drive.css", {method: "HEAD", cache: "no-store"}).then((r) => {
    // a drive restarted with a new token refuses this page's cookie: say so, do not loop
    if (r.status === 401) { banner("this page's token is no longer valid (the drive restarted): open the new URL or scan the new QR code", false); return; }
    // the page loads but its socket never opens: Safari refuses sockets to a self-signed certificate it let the page use
    if (location.protocol === "https:" && failedOpens >= 3) banner("this browser refuses the page's socket over the rover's self-signed certificate (Safari does): restart edgeact drive with --no-https (docs/drive.md)", false);
    connect();
  }).catch(() => setTimeout(reconnect, 1000));
}
// Keep the phone's screen on while the page is shown (a sleeping phone stops the heartbeat: the rover
// goes neutral). The Screen Wake Lock API exists only in secure contexts: over HTTPS, not plain HTTP.
async function keepAwake() {
  if (!("wakeLock" in navigator) || document.hidden || state.wakeLock) return;
  try { state.wakeLock = await navigator.wakeLock.request("screen");
        state.wakeLock.addEventListener("release", () => { state.wakeLock = null; }); }
  catch (e) { state.wakeLock = null; }  // refused (battery saver, no user gesture yet): try again on the next touch
}
document.addEventListener("visibilitychange", keepAwake);
addEventListener("pointerdown", keepAwake);
function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
}
function onJson(msg) {
  if (msg.type === "hello") state.source = msg.source;
  else if (msg.type === "status") { state.status = msg; render(msg); }
  else if (msg.type === "error") toast(msg.message);
}

// ---------------------------------------------------------------- video: newest frame only
function onVideo(buf) {
  send({type: "frame"});  // received: the rover sends the next (newest) frame only now
  const view = new DataView(buf);
  const frame = {wallMs: view.getFloat64(0, true), index: view.getUint32(8, true),
                 blob: new Blob([new Uint8Array(buf, 12)], {type: "image/jpeg"})};
  if (state.decoding) { state.nextBlob = frame; return; }  // a newer one replaces any waiting one
  decode(frame);
}
function decode(frame) {
  state.decoding = true;
  createImageBitmap(frame.blob).then((bmp) => requestAnimationFrame(() => {
    const c = $("video");
    if (c.width !== bmp.width || c.height !== bmp.height) {
      c.width = $("overlay").width = bmp.width; c.height = $("overlay").height = bmp.height;
      state.imgW = bmp.width; state.imgH = bmp.height;
    }
    c.getContext("2d").drawImage(bmp, 0, 0);
    bmp.close();
    const now = Date.now();
    state.framesShown++;
    state.pendingLatency.push(now - frame.wallMs);
    state.latencies.push(now - frame.wallMs);
    if (state.latencies.length > 300) state.latencies.shift();
    if (state.lastFrameAt) state.fps = 0.9 * state.fps + 0.1 * (1000 / Math.max(1, now - state.lastFrameAt));
    state.lastFrameAt = now;
    drawOverlay();
    next();
  })).catch(next);
  function next() {
    state.decoding = false;
    const n = state.nextBlob; state.nextBlob = null;
    if (n) decode(n);
  }
}
function flushLatency() {  // the rover keeps what the page measured (edgeact bench-drive reports it)
  while (state.pendingLatency.length) send({type: "latency", ms: state.pendingLatency.splice(0, 256)});
}
state.flushLatency = flushLatency;
setInterval(flushLatency, LATENCY_REPORT_MS);

// ---------------------------------------------------------------- overlay: the policy's next second
function drawOverlay() {
  const c = $("overlay"), g = c.getContext("2d"), W = c.width, H = c.height, s = state.status;
  g.clearRect(0, 0, W, H);
  if (!s) return;
  if (s.chunk && s.chunk.length > 1) {
    const dt = 1 / (s.chunk.length - 1);
    let x = W / 2, y = H * 0.97, heading = -Math.PI / 2;
    g.beginPath(); g.moveTo(x, y);
    for (const [st, th] of s.chunk) {
      heading += st * 1.4 * dt;
      const d = Math.max(0.15, Math.abs(th)) * Math.sign(th || 1) * H * 0.75 * dt;
      x += Math.cos(heading) * d; y += Math.sin(heading) * d;
      g.lineTo(x, y);
    }
    g.lineWidth = Math.max(3, W / 120); g.strokeStyle = s.mode === "user" ? "rgba(63,182,255,.45)" : "rgba(63,182,255,.95)";
    g.lineCap = "round"; g.lineJoin = "round"; g.stroke();
    g.fillStyle = g.strokeStyle; g.beginPath(); g.arc(x, y, g.lineWidth * 1.3, 0, 2 * Math.PI); g.fill();
  }
  // the command actually sent: a steering bar and a throttle bar, bottom left
  const [st, th] = s.sent, u = Math.max(24, W / 18), bx = 10 + u, by = H - 10 - u;
  g.fillStyle = "rgba(0,0,0,.45)"; g.fillRect(10, H - 10 - 2 * u, 2 * u, 2 * u);
  g.fillStyle = s.neutral ? "#8d98a6" : (s.intervention ? "#fbbf24" : "#4ade80");
  g.fillRect(bx, by - 3, st * u, 6);
  g.fillRect(bx - 3, by, 6, -th * u);
  g.fillStyle = "#fff"; g.font = `${Math.max(10, W / 60)}px system-ui`;
  g.fillText(s.neutral ? "neutral" : "sent", 14, H - 14 - 2 * u + 12);
}

// ---------------------------------------------------------------- inputs
const KEYMAP = {ArrowUp: "up", KeyW: "up", ArrowDown: "down", KeyS: "down",
                ArrowLeft: "left", KeyA: "left", ArrowRight: "right", KeyD: "right"};
addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement && e.code !== "Space") return;
  if (KEYMAP[e.code]) { e.preventDefault(); if (!state.keys.has(KEYMAP[e.code])) { state.keys.add(KEYMAP[e.code]); sendControl(); } return; }
  if (e.repeat) return;
  if (e.code === "Space") { e.preventDefault(); send({type: "estop_toggle"}); }
  else if (e.code === "KeyR") send({type: "record"});
  else if (e.code === "KeyM") send({type: "mode", mode: "next"});
});
addEventListener("keyup", (e) => { if (KEYMAP[e.code]) { state.keys.delete(KEYMAP[e.code]); sendControl(); } });
addEventListener("blur", () => { state.keys.clear(); state.pad = null; sendControl(); });

const pad = $("pad"), knob = $("knob");
function padMove(e) {
  const r = pad.getBoundingClientRect();
  let x = (e.clientX - r.left) / r.width * 2 - 1, y = (e.clientY - r.top) / r.height * 2 - 1;
  const n = Math.hypot(x, y); if (n > 1) { x /= n; y /= n; }
  state.pad = {x, y};
  knob.style.left = `${33 + x * 33}%`; knob.style.top = `${33 + y * 33}%`;
  sendControl();
}
pad.addEventListener("pointerdown", (e) => { pad.setPointerCapture(e.pointerId); pad.classList.add("active"); padMove(e); });
pad.addEventListener("pointermove", (e) => { if (state.pad) padMove(e); });
const padEnd = () => { state.pad = null; pad.classList.remove("active"); knob.style.left = knob.style.top = "33%"; sendControl(); };
pad.addEventListener("pointerup", padEnd);
pad.addEventListener("pointercancel", padEnd);

// browser Gamepad API (standard mapping): left stick X steers, right stick Y throttles
const GP_BUTTONS = {0: {type: "record"}, 1: {type: "estop_toggle"}, 2: {type: "mode", mode: "next"},
                    3: {type: "rerecord"}, 8: {type: "erase_last"}};
function pollGamepad() {
  const gp = [...(navigator.getGamepads ? navigator.getGamepads() : [])].find((g) => g);
  if (!gp) { state.gp.active = false; return; }
  const dz = (v) => (Math.abs(v) < DEADZONE ? 0 : v);
  state.gp.x = dz(gp.axes[0] || 0); state.gp.y = dz(gp.axes[3] || 0);
  state.gp.active = state.gp.x !== 0 || state.gp.y !== 0;
  gp.buttons.forEach((b, i) => {
    const was = state.gp.buttons[i]; state.gp.buttons[i] = b.pressed;
    if (!b.pressed || was) return;
    if (GP_BUTTONS[i]) send(GP_BUTTONS[i]);
    else if ((i === 5 || i === 4) && state.status) {
      const v = Math.min(1, Math.max(0, state.status.max_throttle + (i === 5 ? 0.05 : -0.05)));
      send({type: "max_throttle", value: Math.round(v * 100) / 100});
    }
  });
}
setInterval(pollGamepad, 30);

function command() {
  const k = state.keys;
  if (state.pad) return {steering: state.pad.x, throttle: -state.pad.y, active: true};
  if (k.size) return {steering: (k.has("right") ? 1 : 0) - (k.has("left") ? 1 : 0),
                      throttle: (k.has("up") ? 1 : 0) - (k.has("down") ? 1 : 0), active: true};
  if (state.gp.active) return {steering: state.gp.x, throttle: -state.gp.y, active: true};
  return {steering: 0, throttle: 0, active: false};
}
function sendControl() {
  if (document.hidden) return;  // a hidden page says nothing: the rover goes neutral
  const c = command();
  const r = (v) => Math.round(Math.max(-1, Math.min(1, v)) * 1000) / 1000;
  send({type: "control", steering: r(c.steering), throttle: r(c.throttle), active: c.active});
}
setInterval(sendControl, CONTROL_PERIOD_MS);

// ---------------------------------------------------------------- buttons
$("stop").onclick = () => send({type: "estop_toggle"});
$("record").onclick = () => send({type: "record"});
$("rerecord").onclick = () => send({type: "rerecord"});
$("erase").onclick = () => { if (confirm("Erase the last episode recorded?")) send({type: "erase_last"}); };
$("maxthrottle").oninput = (e) => { $("mt-out").textContent = Number(e.target.value).toFixed(2);
                                    send({type: "max_throttle", value: Number(e.target.value)}); };

// ---------------------------------------------------------------- render the rover's state
function render(s) {
  const modes = $("modes");
  if (modes.dataset.modes !== s.modes.join()) {
    modes.dataset.modes = s.modes.join(); modes.innerHTML = "";
    for (const m of s.modes) {
      const b = document.createElement("button"); b.textContent = m; b.dataset.mode = m;
      b.onclick = () => send({type: "mode", mode: m}); modes.appendChild(b);
    }
  }
  for (const b of modes.children) b.classList.toggle("on", b.dataset.mode === s.mode);
  $("b-mode").textContent = s.mode;
  $("b-rec").hidden = !s.recording;
  $("record").classList.toggle("on", s.recording);
  $("record").disabled = !s.record_available;
  $("rerecord").disabled = $("erase").disabled = !s.record_available;
  $("record").textContent = s.recording ? "■ Save" : "● Record";
  $("episodes").textContent = `${s.episodes} saved` + (s.recording ? ` · ${s.steps} steps` : "");
  $("b-int").hidden = !s.intervention;
  const ctl = $("b-ctl");
  ctl.textContent = s.you ? "you drive" : (s.controller ? `watching (${s.controller} drives)` : "nobody drives");
  ctl.classList.toggle("you", s.you);
  $("stop").classList.toggle("latched", s.estop);
  $("stop").textContent = s.estop ? "STOPPED — release" : "STOP";
  if (document.activeElement !== $("maxthrottle")) {
    $("maxthrottle").value = s.max_throttle; $("mt-out").textContent = s.max_throttle.toFixed(2);
  }
  if (s.estop) banner("EMERGENCY STOP — press STOP again to release", false);
  else if (s.record_error && !s.recording)  // the disk filled or failed: say why, and whether the rover holds
    banner(!s.controller && s.held ? `${s.held} — touch the joystick or press a key` : s.record_error, false);
  else if (!s.controller && s.held && s.mode !== "auto") banner(`${s.held} — touch the joystick or press a key`, true);
  else banner(null);
  const t = s.telemetry, f = (v, u = "") => (v === null || v === undefined ? "–" : `${v}${u}`);
  $("t-rate").textContent = t.rate_hz === null ? "–" : `${t.rate_hz.toFixed(0)} Hz ±${t.jitter_p99_ms.toFixed(1)}`;
  $("t-missed").textContent = f(t.missed);
  $("t-inf").textContent = t.inference_p50_ms === null ? "–" : `${t.inference_p50_ms.toFixed(0)} / ${t.inference_p99_ms.toFixed(0)} ms`;
  $("t-age").textContent = t.chunk_age_ms === null ? "–" : `${t.chunk_age_ms.toFixed(0)} ms`;
  $("t-sent").textContent = s.neutral ? "neutral" : `${s.sent[0].toFixed(2)}, ${s.sent[1].toFixed(2)}`;
  $("t-serial").textContent = t.serial.connected ? `${t.serial.acked}/${t.serial.sent} acked` : "LOST";
  const lat = [...state.latencies].sort((a, b) => a - b);
  const p50 = lat.length ? lat[Math.floor(lat.length / 2)].toFixed(0) : "–";
  $("t-video").textContent = `${state.fps.toFixed(0)} fps · ${p50} ms`;
  $("vstat").textContent = `${state.fps.toFixed(0)} fps · ${p50} ms`;
  $("t-int").textContent = s.interventions;
  $("faults").textContent = t.faults.length ? `⚠ ${t.faults.join(" · ")}` : (s.neutral && s.why && s.you ? s.why : "");
  if (!state.decoding) drawOverlay();
}
function banner(text, info) {
  const b = $("banner");
  b.hidden = !text; if (text) { b.textContent = text; b.classList.toggle("info", !!info); }
}
let toastTimer = 0;
function toast(text) {
  const t = $("toast"); t.textContent = text; t.hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => (t.hidden = true), 3000);
}
document.addEventListener("visibilitychange", () => { if (document.hidden) { state.keys.clear(); state.pad = null; } });

connect();
keepAwake();
