// vigil dashboard: reads the query API (the same endpoints any client uses), polls about
// once a second, draws the device series with uPlot and the episode timeline as SVG.
// No build step, no framework; every listing it asks for is paged or top-k on the server.
"use strict";

const POLL_MS = 1000;
const PAGE = 50;
const TIMELINE_EPISODES = 2000;
const SEVERITY_COLOR = { low: "#7c8aa5", medium: "#d79b00", high: "#e0601b", critical: "#c4213a" };
const PALETTE = ["#2957c4", "#c4213a", "#2f9e44", "#d79b00", "#7b3fc4", "#0c8599", "#e0601b"];

const $ = (id) => document.getElementById(id);
const state = { features: null, page: 0, lastHealth: null, rate: null, charts: [], device: null, busy: false };

// ---- HTTP -------------------------------------------------------------------------------

function token() { return sessionStorage.getItem("vigil-token") || ""; }

async function api(path) {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  const res = await fetch(path, { headers, cache: "no-store" });
  const body = await res.json().catch(() => ({ error: "not JSON", status: res.status }));
  if (res.status === 401) {
    askToken(body.error);
    throw new Error("token needed");
  }
  if (!res.ok) { const e = new Error(body.error || res.statusText); e.status = res.status; throw e; }
  return body;
}

function askToken(why) {
  const d = $("token-dialog");
  if (why) $("token-why").textContent = why;
  if (!d.open) d.showModal();
}

// ---- formatting -------------------------------------------------------------------------

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
// An episode's end: "open", the time of day when on the start's day, else in full.
function fmtEnd(start, end) {
  if (end === null) return "open";
  const s = fmtTime(start), e = fmtTime(end);
  return s.slice(0, 10) === e.slice(0, 10) ? e.slice(11) : e;
}
function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 1 : 2) + "k";
  return Number.isInteger(v) ? String(v) : v.toPrecision(digits);
}
function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return ms + " ms";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
  return (ms / 60000).toFixed(1) + " min";
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}
function sev(s) { return el("span", { class: "sev " + s }, s); }
function kvRows(table, pairs) {
  table.replaceChildren(...pairs.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
}
function deviceLink(id) { return "#/device/" + encodeURIComponent(id); }

// ---- overview ---------------------------------------------------------------------------

function card(label, value, title = "") {
  return el("div", { class: "card", title }, el("b", {}, value), el("span", {}, label));
}

async function renderHealth() {
  const h = await api("/health");
  const now = performance.now();
  if (state.lastHealth && now > state.lastHealth.at) {
    const dt = (now - state.lastHealth.at) / 1000;
    state.rate = Math.max(0, (h.events_read - state.lastHealth.read) / dt);
  }
  state.lastHealth = { at: now, read: h.events_read };
  const open = Object.values(h.anomalies_open_by_detector || {}).reduce((a, b) => a + b, 0);
  $("fleet").replaceChildren(
    card("events/s now", fmtNum(state.rate ?? 0), "events read per second over the last poll"),
    card("events/s since start", fmtNum(h.events_per_s)),
    card("event-time lag", fmtDuration(h.event_time_lag_ms), "highest event time seen minus the frontier"),
    card("devices", fmtNum(h.devices), "devices this process's workers hold"),
    card("rejected", fmtNum(h.events_rejected)),
    card("open anomalies", fmtNum(open)),
    card("phase", h.phase),
  );
  kvRows($("rejects"), Object.entries(h.rejected_by_reason).filter(([, n]) => n > 0).map(([r, n]) => [r, fmtNum(n)]));
  kvRows($("open-by-detector"), Object.entries(h.anomalies_open_by_detector || {}).map(([d, n]) => [d, fmtNum(n)]));
  $("asof").textContent = "as of " + fmtTime(h.as_of_ms);
  return h;
}

function anomalyRow(a, start, end) {
  return el("tr", { "data-device": a.device_id, "data-detector": a.detector, "data-ts": start },
    el("td", { class: "nowrap" }, fmtTime(start) + (end === undefined ? "" : " → " + fmtEnd(start, end))),
    el("td", {}, a.detector), el("td", { class: "nowrap" }, a.device_id), el("td", {}, sev(a.severity)),
    el("td", { class: "num" }, a.score === null ? "–" : a.score.toFixed(3)), el("td", {}, a.reason));
}

async function renderAnomalies() {
  const detector = $("f-detector").value, severity = $("f-severity").value, all = $("f-state").value === "all";
  const q = new URLSearchParams({ offset: state.page * PAGE });
  if (detector) q.set("detector", detector);
  if (severity) q.set("severity", severity);
  let rows, more, asOf, total;
  if (all) {
    q.set("limit", PAGE);
    const r = await api("/episodes?" + q);
    rows = r.episodes.map((e) => anomalyRow(e, e.start_ms, e.end_ms));
    more = (state.page + 1) * PAGE < r.total; asOf = r.as_of_ms; total = r.total;
  } else {
    q.set("limit", PAGE + 1); // one more than shown: is there a next page?
    const r = await api("/anomalies?" + q);
    // First look after a replay, with every episode closed: show them all rather than none.
    if (!state.chosen && state.page === 0 && !detector && !severity && !r.anomalies.length) {
      state.chosen = true;
      const any = await api("/episodes?limit=1");
      if (any.total > 0) { $("f-state").value = "all"; return renderAnomalies(); }
    }
    state.chosen = true;
    more = r.anomalies.length > PAGE;
    rows = r.anomalies.slice(0, PAGE).map((a) => anomalyRow(a, a.ts_ms));
    asOf = r.as_of_ms;
  }
  const body = $("anomaly-table").tBodies[0];
  body.replaceChildren(...rows);
  if (!rows.length) {
    const none = all ? "no episodes match" : "no open anomalies at this time; the episodes that closed are under \u201call episodes\u201d and on the timeline";
    body.append(el("tr", {}, el("td", { colSpan: 6, class: "muted" }, none)));
  }
  $("anomalies-asof").textContent = "as of " + fmtTime(asOf);
  const first = state.page * PAGE + (rows.length ? 1 : 0);
  $("a-page").textContent = `${first}–${state.page * PAGE + rows.length}` + (total !== undefined ? ` of ${total}` : "");
  $("a-prev").disabled = state.page === 0;
  $("a-next").disabled = !more;
}

function renderTimeline(r, asOfMs) {
  const eps = r.episodes;
  const box = $("timeline");
  $("timeline-note").textContent = `${eps.length} most recent of ${r.total} (${r.scope})`;
  const detectors = [...new Set([...(state.features?.detectors || []), ...eps.map((e) => e.detector)])];
  const W = Math.max(box.clientWidth, 400), lane = 20, left = 110, top = 4, H = top + detectors.length * lane + 22;
  const starts = eps.map((e) => e.start_ms);
  const end = Math.max(asOfMs ?? 0, ...eps.map((e) => e.end_ms ?? 0), ...starts);
  const begin = starts.length ? Math.min(...starts) : end - 3600e3;
  const span = Math.max(end - begin, 60e3);
  const x = (t) => left + ((t - begin) / span) * (W - left - 10);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("height", H);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  detectors.forEach((d, i) => {
    add("text", { x: 4, y: top + i * lane + 14 }, d);
    add("line", { x1: left, x2: W - 10, y1: top + (i + 1) * lane, y2: top + (i + 1) * lane, stroke: "#eef0f4" });
  });
  for (let k = 0; k <= 4; k++) {
    const t = begin + (span * k) / 4;
    add("text", { x: x(t), y: H - 6, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, fmtTime(t).slice(5));
  }
  for (const e of eps) {
    const i = detectors.indexOf(e.detector);
    const x0 = x(e.start_ms), x1 = Math.max(x(e.end_ms ?? end), x0 + 2);
    const rect = add("rect", { x: x0, y: top + i * lane + 3, width: x1 - x0, height: lane - 6, rx: 2,
      fill: SEVERITY_COLOR[e.severity] || "#888", "fill-opacity": e.end_ms === null ? 0.95 : 0.55, class: "episode" });
    const title = document.createElementNS(ns, "title");
    title.textContent = `${e.detector} ${e.device_id} ${e.severity}: ${e.reason}`;
    rect.append(title);
    rect.addEventListener("click", () => { location.hash = deviceLink(e.device_id); });
  }
  box.replaceChildren(svg);
}

async function refreshOverview() {
  const h = await renderHealth();
  await renderAnomalies();
  renderTimeline(await api("/episodes?limit=" + TIMELINE_EPISODES), h.as_of_ms);
}

// ---- top --------------------------------------------------------------------------------

async function refreshTop() {
  const feature = $("top-feature").value;
  if (!feature) return;
  const r = await api(`/top?feature=${encodeURIComponent(feature)}&k=${$("top-k").value}`);
  const f = state.features.features.find((x) => x.name === feature);
  $("top-description").textContent = f ? f.description : "";
  $("top-asof").textContent = "as of " + fmtTime(r.as_of_ms);
  $("top-table").tBodies[0].replaceChildren(...r.devices.map((d, i) =>
    el("tr", { "data-device": d.device_id }, el("td", {}, i + 1), el("td", {}, d.device_id), el("td", { class: "num" }, fmtNum(d.value)))));
  $("asof").textContent = "as of " + fmtTime(r.as_of_ms);
}

// ---- device -----------------------------------------------------------------------------

const CHARTS = [
  { title: "events per 1-minute window", series: [["events", (r) => r.count]] },
  { title: "bytes out", series: [["all", (r) => r.bytes_out], ["to external addresses", (r) => r.bytes_out_external]] },
  { title: "distinct destinations and ports", series: [["destinations", (r) => r.distinct_dst], ["ports", (r) => r.distinct_ports]] },
  { title: "value (mean, min, max)", series: [
    ["mean", (r) => (r.value_count ? r.value_mean : null)],
    ["min", (r) => (r.value_count ? r.value_min : null)],
    ["max", (r) => (r.value_count ? r.value_max : null)]] },
];

// Draws the device's episodes as bands behind the series.
function bandsPlugin(getBands) {
  return { hooks: { drawClear: [(u) => {
    const ctx = u.ctx, { left, top, width, height } = u.bbox;
    ctx.save();
    for (const b of getBands()) {
      const x0 = Math.max(u.valToPos(b.from / 1000, "x", true), left);
      const x1 = Math.min(u.valToPos(b.to / 1000, "x", true), left + width);
      if (x1 <= left || x0 >= left + width) continue;
      ctx.fillStyle = (SEVERITY_COLOR[b.severity] || "#888") + "33";
      ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
    }
    ctx.restore();
  }] } };
}

function buildCharts() {
  const box = $("d-charts");
  box.replaceChildren();
  state.charts = CHARTS.map((spec) => {
    const holder = el("div", { class: "chart", "data-chart": spec.title });
    box.append(holder);
    holder.append(el("h3", {}, spec.title));
    const target = el("div");
    holder.append(target);
    const width = Math.max(holder.clientWidth - 14, 300);
    const opts = {
      width, height: 180,
      plugins: [bandsPlugin(() => state.bands || [])],
      // The x range runs to the answer's as_of, so an episode still open shows past the
      // last closed window; times in UTC, as everywhere on the page.
      scales: { x: { time: true, range: () => state.range || [0, 1] } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => fmtNum(v)) }],
      series: [{}, ...spec.series.map(([label], i) => ({ label, stroke: PALETTE[i], width: 1.5, points: { size: 4 } }))],
    };
    const plot = new uPlot(opts, [[], ...spec.series.map(() => [])], target);
    return { spec, plot, holder };
  });
}

function episodesOverlapping(eps, from, to, asOfMs) {
  return eps
    .map((e) => ({ from: e.start_ms, to: e.end_ms ?? asOfMs, severity: e.severity }))
    .filter((b) => b.to >= from && b.from <= to);
}

async function refreshDevice(id) {
  const enc = encodeURIComponent(id);
  let d;
  try {
    d = await api(`/devices/${enc}`);
  } catch (e) {
    if (e.status === 404) {
      $("d-error").hidden = false;
      $("d-error").textContent = e.message;
      return "device-missing:" + id;
    }
    throw e;
  }
  $("d-error").hidden = true;
  const [hist, eps] = await Promise.all([
    api(`/devices/${enc}/history?window=1m&limit=1000`),
    api(`/episodes?device=${enc}&limit=1000`),
  ]);
  $("d-asof").textContent = "as of " + fmtTime(d.as_of_ms);
  $("asof").textContent = "as of " + fmtTime(d.as_of_ms);
  const m = d.model;
  $("d-summary").replaceChildren(
    card("last seen", fmtTime(d.last_seen_ms)),
    card("open anomalies", d.anomalies.length),
    card("model score", m ? m.score.toFixed(3) : "–", m ? `model v${m.model_version}` : "no model yet"),
    card("cluster", m ? m.cluster : "–", m ? `distance ${fmtNum(m.distance)} (spread ${fmtNum(m.spread)})` : ""),
    card("most deviating", m && Object.keys(m.top_deviations).length
      ? Object.entries(m.top_deviations).map(([k, v]) => `${k} ${v.toFixed(1)}σ`).join(", ") : "–"),
  );
  // Charts: one point per closed window, at its start.
  const rows = hist.rows;
  const xs = rows.map((r) => r.window_start_ms / 1000);
  const from = rows.length ? rows[0].window_start_ms : d.as_of_ms - 3600e3;
  const to = d.as_of_ms;
  state.range = [from / 1000, to / 1000];
  state.bands = episodesOverlapping(eps.episodes, from, to, d.as_of_ms);
  for (const c of state.charts) {
    c.plot.setData([xs, ...c.spec.series.map(([, f]) => rows.map(f))]);
    c.holder.dataset.points = String(xs.length);
    c.holder.dataset.bands = String(state.bands.length);
  }
  $("d-episodes").tBodies[0].replaceChildren(...eps.episodes.map((e) => el("tr", { "data-detector": e.detector },
    el("td", { class: "nowrap" }, fmtTime(e.start_ms)), el("td", { class: "nowrap" }, fmtEnd(e.start_ms, e.end_ms)),
    el("td", {}, e.detector), el("td", {}, sev(e.severity)),
    el("td", { class: "num" }, e.score === null ? "–" : e.score.toFixed(3)), el("td", {}, e.reason))));
  kvRows($("d-features"), Object.entries(d.features).map(([k, v]) => [k, fmtNum(v)]));
  return "device:" + id;
}

// ---- routing and the poll loop ----------------------------------------------------------

function route() {
  const hash = location.hash || "#/";
  if (hash.startsWith("#/device/")) return { view: "device", id: decodeURIComponent(hash.slice(9)) };
  if (hash === "#/top") return { view: "top" };
  return { view: "overview" };
}

function show(r) {
  for (const v of ["overview", "top", "device"]) $("view-" + v).hidden = v !== r.view;
  $("nav-overview").classList.toggle("active", r.view === "overview");
  $("nav-top").classList.toggle("active", r.view === "top");
  if (r.view === "device") {
    $("d-id").textContent = r.id;
    document.title = "vigil — " + r.id;
    if (state.device !== r.id) { state.device = r.id; state.bands = []; buildCharts(); }
  } else {
    document.title = "vigil — SOC dashboard";
    state.device = null;
  }
}

async function tick() {
  if (state.busy) return;
  state.busy = true;
  const r = route();
  try {
    if (!state.features) {
      state.features = await api("/features");
      for (const d of state.features.detectors) $("f-detector").append(el("option", { value: d }, d));
      for (const f of state.features.features) $("top-feature").append(el("option", { value: f.name }, f.name));
      const ext = state.features.features.find((f) => f.name.startsWith("bytes_out_ext"));
      if (ext) $("top-feature").value = ext.name;
    }
    let ready = r.view;
    if (r.view === "overview") await refreshOverview();
    else if (r.view === "top") await refreshTop();
    else ready = await refreshDevice(r.id);
    $("conn").textContent = "live";
    $("conn").classList.remove("bad");
    // For tests and tools: the view shown has been drawn from the server at least once.
    document.body.dataset.ready = ready;
  } catch (e) {
    $("conn").textContent = "⚠ " + e.message;
    $("conn").classList.add("bad");
  } finally {
    state.busy = false;
  }
}

function init() {
  $("goto").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("goto-device").value.trim();
    if (id) location.hash = deviceLink(id);
  });
  document.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-device]");
    if (tr) location.hash = deviceLink(tr.dataset.device);
  });
  for (const id of ["f-state", "f-detector", "f-severity"]) {
    $(id).addEventListener("change", () => { state.page = 0; state.chosen = true; tick(); });
  }
  for (const id of ["top-feature", "top-k"]) $(id).addEventListener("change", tick);
  $("a-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); tick(); });
  $("a-next").addEventListener("click", () => { state.page += 1; tick(); });
  $("token-open").addEventListener("click", () => askToken());
  $("token-form").addEventListener("submit", (e) => {
    const v = e.submitter && e.submitter.value === "clear" ? "" : $("token-input").value.trim();
    if (v) sessionStorage.setItem("vigil-token", v); else sessionStorage.removeItem("vigil-token");
    $("token-input").value = "";
    state.features = null;
    setTimeout(tick, 0);
  });
  window.addEventListener("hashchange", () => { delete document.body.dataset.ready; show(route()); tick(); });
  show(route());
  tick();
  setInterval(tick, POLL_MS);
}

init();
