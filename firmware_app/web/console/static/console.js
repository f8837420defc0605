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
// uPlot draws at a fixed width: follow the card's when the window (a phone turned, a narrow screen) changes
window.addEventListener("resize", () => {
  for (const [name, plot] of Object.entries(charts)) {
    plot.setSize({ width: $(`chart-${name}`).clientWidth || 320, height: 120 });
  }
});

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
  $("face").textContent = (s.face_present ? "in view" : "none") + (s.own_exemplars ? ` (own mouth: ${s.own_exemplars} exemplar${s.own_exemplars === 1 ? "" : "s"})` : "");
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
  const b = s.build, host = s.host;
  $("build").textContent = b.commit ? `${b.version} (${b.commit})` : b.version;
  $("host-load").textContent = `${host.load_1m.toFixed(2)} / ${host.cpus}`;
  $("host-temperature").textContent = host.temperature_c === null ? "not reported" : `${host.temperature_c.toFixed(0)} °C`;
  $("host-disk").textContent = `${(host.disk_free_mb / 1024).toFixed(1)} GiB`;
  $("host-memory").textContent = `${(host.memory_available_mb / 1024).toFixed(1)} GiB`;
  $("snapshot").hidden = !s.preview;
  const h = s.history;
  charts.latency.setData([h.t, h.latency_ms]);
  charts.fps.setData([h.t, h.fps]);
  setPreview(s.preview);
}

// A kiosk that does not answer shows no numbers rather than its last ones.
function down(why) {
  $("state").textContent = why;
  $("state").className = "pill bad";
  for (const id of ["fps", "latency", "av-offset", "face", "memory"]) $(id).textContent = "–";
}

async function poll() {
  try {
    const response = await fetch("/api/status", { credentials: "same-origin" });
    if (response.ok) render(await response.json());
    else down(`HTTP ${response.status}`);
  } catch (e) {
    down("no connection");
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

function applied(ok, reply, restored) {
  const note = ok && reply.note ? ` ${reply.note}.` : "";
  show($("config-result"), ok, ok ? `Applied; the kiosk is reloading (previous file kept as ${reply.backup}).${note}` : reply.error);
  if (!ok) return;
  if (restored) loadConfig(); else loadedText = $("config-text").value;
  showDiff("");
  loadHistory();
}

$("config-apply").addEventListener("click", async () => {
  const { ok, reply } = await post("/api/config/apply", { text: $("config-text").value });
  applied(ok, reply, false);
});

$("config-revert").addEventListener("click", loadConfig);

// --- what Apply would change, and the files applied before ------------------------------

function showDiff(diff) {
  $("config-diff").hidden = !diff;
  $("config-diff").textContent = diff;
}

let diffing = null;
$("config-text").addEventListener("input", () => {
  clearTimeout(diffing);
  diffing = setTimeout(async () => {
    const { ok, reply } = await post("/api/config/diff", { text: $("config-text").value });
    if (ok) showDiff(reply.diff);
  }, 300);
});

async function loadHistory() {
  const response = await fetch("/api/config/history", { credentials: "same-origin" });
  if (!response.ok) return;
  const { entries } = await response.json();
  const options = entries.map((e) => {
    const option = document.createElement("option");
    option.value = e.id;
    option.textContent = `applied ${new Date(e.applied).toLocaleString()}`;
    return option;
  });
  const first = document.createElement("option");
  first.value = "";
  first.textContent = entries.length ? "history (last 10 applied)" : "history: nothing applied yet";
  $("history").replaceChildren(first, ...options);
}

$("history").addEventListener("change", async () => {
  if (!$("history").value) { showDiff(""); return; }
  const response = await fetch(`/api/config/history/${$("history").value}`, { credentials: "same-origin" });
  const reply = await response.json();
  showDiff(response.ok ? reply.diff || "(the same as the running file)" : reply.error);
});

$("history-restore").addEventListener("click", async () => {
  if (!$("history").value) { show($("config-result"), false, "Choose a file from the history first."); return; }
  const { ok, reply } = await post("/api/config/restore", { id: $("history").value });
  applied(ok, reply, true);
});

// --- the appliance: check then restart, the log -----------------------------------------

$("restart").addEventListener("click", async () => {
  show($("restart-result"), true, "Checking the config file…");
  const { ok, reply } = await post("/api/restart", {});
  show($("restart-result"), ok, ok ? `The config file ${reply.summary}` : `Not restarted: ${reply.error}`);
});

async function pollLog() {
  try {
    const response = await fetch("/api/log", { credentials: "same-origin" });
    if (response.ok) {
      const { lines } = await response.json();
      const view = $("log-lines"), atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
      view.textContent = lines.map((l) => `${new Date(l.time * 1000).toLocaleTimeString()} ${l.level} ${l.logger}: ${l.message}`).join("\n");
      if (atEnd) view.scrollTop = view.scrollHeight;
    }
  } catch (e) { /* the status pill says the kiosk is down */ }
  setTimeout(pollLog, 3000);
}

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
loadHistory();
poll();
pollLog();

$("sign-out").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
  window.location.reload();
});
