// The operator's console: polls /api/status once a second, draws the charts with uPlot, and
// sends every change with the page's CSRF token (the server refuses writes without it).
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);

async function post(path, body, contentType = "application/json") {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": contentType, "X-CSRF-Token": csrf },
    body: contentType === "application/json" ? JSON.stringify(body) : body,
    credentials: "same-origin",
  });
  let reply = {};
  try { reply = await response.json(); } catch (e) { reply = { error: `HTTP ${response.status}` }; }
  return { ok: response.ok && reply.ok !== false, status: response.status, reply };
}

function show(element, ok, text) {
  element.textContent = text;
  element.className = "result " + (ok ? "good" : "bad");
}

// --- status and charts -----------------------------------------------------------------

function chart(id, label, colour) {
  const element = $(id);
  return new uPlot({
    width: element.clientWidth || 320, height: 120, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: true } },
    axes: [{ stroke: "#9aa4b2", grid: { stroke: "#2a3140" } }, { stroke: "#9aa4b2", grid: { stroke: "#2a3140" }, size: 44 }],
    series: [{}, { label, stroke: colour, width: 2, fill: colour + "22" }],
  }, [[], []], element);
}

const charts = { latency: chart("chart-latency", "latency", "#f5a524"), fps: chart("chart-fps", "fps", "#4cc38a") };

function duration(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

let trimTouched = false;
let previewTimer = null;

function render(s) {
  $("state").textContent = s.fps > 0 ? "showing frames" : "stalled";
  $("state").className = "pill " + (s.fps > 0 ? "good" : "bad");
  $("mode").textContent = s.mode;
  $("provenance").textContent = s.provenance ? "on" : "off (files unsigned)";
  $("backend").textContent = s.backend || "–";
  $("uptime").textContent = duration(s.uptime_s);
  $("fps").textContent = s.fps.toFixed(1);
  $("latency").textContent = `${s.latency_ms.toFixed(0)} ms`;
  $("av-offset").textContent = s.passthrough.on ? `${s.av_offset_ms.toFixed(0)} ms` : "off";
  $("face").textContent = s.face_present ? "in view" : "none";
  $("memory").textContent = `${s.memory_mb.toFixed(0)} MiB`;
  $("restarts").textContent = Object.entries(s.restarts).map(([part, n]) => `${part} ${n}`).join("\n");
  $("passthrough-delay").textContent = s.passthrough.on ? `${s.passthrough.delay_ms.toFixed(0)} ms` : "off (audio.passthrough: false)";
  $("trim").disabled = !s.passthrough.on;
  if (!trimTouched) {
    $("trim").value = s.passthrough.trim_ms;
    $("trim-value").textContent = `${s.passthrough.trim_ms.toFixed(0)} ms`;
  }
  $("portrait-now").hidden = !s.face_pack;
  if (s.face_pack) {
    const { name, enrolled, consent } = s.face_pack;
    $("portrait-now").textContent = `Speaking with the face pack ${name} (enrolled ${enrolled.slice(0, 10)}); consent: \u201c${consent}\u201d`;
  }
  const errors = $("errors");
  errors.replaceChildren(...(s.errors.length ? s.errors : [null]).map((e) => {
    const item = document.createElement("li");
    if (e === null) { item.textContent = "none"; item.className = "quiet"; return item; }
    item.className = e.level;
    item.textContent = `${new Date(e.time * 1000).toLocaleTimeString()} ${e.level}: ${e.message}`;
    return item;
  }));
  const h = s.history;
  charts.latency.setData([h.t, h.latency_ms]);
  charts.fps.setData([h.t, h.fps]);
  setPreview(s.preview);
}

async function poll() {
  try {
    const response = await fetch("/api/status", { credentials: "same-origin" });
    if (response.ok) render(await response.json());
    else $("state").textContent = `HTTP ${response.status}`;
  } catch (e) {
    $("state").textContent = "no connection";
    $("state").className = "pill bad";
  }
  setTimeout(poll, 1000);
}

// --- preview ---------------------------------------------------------------------------

function setPreview(on) {
  $("preview").hidden = !on;
  $("preview-off").hidden = on;
  if (on && previewTimer === null) previewTimer = setInterval(refreshPreview, 250);
  if (!on && previewTimer !== null) { clearInterval(previewTimer); previewTimer = null; }
}

async function refreshPreview() {
  const response = await fetch("/api/preview.jpg", { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) return;
  const old = $("preview").src;
  $("preview").src = URL.createObjectURL(await response.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

// --- configuration ---------------------------------------------------------------------

let loadedText = "";

async function loadConfig() {
  const reply = await (await fetch("/api/config", { credentials: "same-origin" })).json();
  $("config-path").textContent = reply.path || "(built-in defaults: start with --config FILE to edit)";
  loadedText = reply.text;
  $("config-text").value = reply.text;
}

$("config-check").addEventListener("click", async () => {
  const { ok, reply } = await post("/api/config/check", { text: $("config-text").value });
  show($("config-result"), ok, ok ? reply.summary : reply.error);
});

$("config-apply").addEventListener("click", async () => {
  const { ok, reply } = await post("/api/config/apply", { text: $("config-text").value });
  show($("config-result"), ok, ok ? `Applied; the kiosk is reloading (previous file kept as ${reply.backup}).` : reply.error);
  if (ok) loadedText = $("config-text").value;
});

$("config-revert").addEventListener("click", loadConfig);

// --- A/V trim --------------------------------------------------------------------------

let trimSending = null;

async function sendTrim(save) {
  const ms = Number($("trim").value);
  const { ok, reply } = await post("/api/trim", { ms, save });
  show($("trim-result"), ok, ok ? (save ? `${ms} ms, saved to the config` : `${ms} ms (live)`) : reply.error);
  if (ok && save && $("config-text").value === loadedText) loadConfig();
}

$("trim").addEventListener("input", () => {
  trimTouched = true;
  $("trim-value").textContent = `${$("trim").value} ms`;
  clearTimeout(trimSending);
  trimSending = setTimeout(() => sendTrim(false), 100);
});

$("trim").addEventListener("change", async () => {
  clearTimeout(trimSending);
  await sendTrim(true);
  trimTouched = false;
});

// --- portrait --------------------------------------------------------------------------

$("portrait-upload").addEventListener("click", async () => {
  const file = $("portrait-file").files[0];
  if (!file) { show($("portrait-result"), false, "Choose a file first."); return; }
  show($("portrait-result"), true, `Checking ${file.name}…`);
  const { ok, reply } = await post("/api/portrait", file, "application/octet-stream");
  show($("portrait-result"), ok, ok ? `${file.name}: ${reply.summary}; the kiosk is reloading.` : reply.error);
  if (ok) loadConfig();
});

loadConfig();
poll();
