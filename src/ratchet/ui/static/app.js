/* ratchet ui: every page drawn from the JSON endpoints; live updates from /api/events. */
"use strict";

const S = { tags: [], tag: null, metric: "metric", goal: "minimize", page: null, onLedger: null,
  onLive: null, plots: [] };
const ROW_H = 26;
const STATUS_COLOUR = { baseline: "#5f3dc4", keep: "#2f9e44", discard: "#adb5bd", crash: "#e03131",
  timeout: "#c92a2a", pruned: "#e8590c", rejected: "#f783ac", interrupted: "#fd7e14",
  remeasure: "#74c0fc", unconfirmed: "#ffa8a8", running: "#1c7ed6" };

// --- helpers ---------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function num(v, digits = 6) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return Number(v).toPrecision(digits).replace(/(\.\d*?)0+(e|$)/, "$1$2").replace(/\.(e|$)/, "$1");
}
function secs(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
const pill = (status) => `<span class="pill ${esc(status)}">${esc(status)}</span>`;
const tagQuery = () => (S.tag ? `?tag=${encodeURIComponent(S.tag)}` : "");
const link = (path) => path + tagQuery();
async function api(path) {
  const res = await fetch(path, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
function destroyPlots() { S.plots.forEach((p) => p.destroy()); S.plots = []; }
function debounce(fn, ms) {  // for background refreshes: a failed one waits for the next event
  let timer = null;
  const run = () => Promise.resolve().then(fn).catch((err) => console.warn("refresh failed:", err));
  return () => { clearTimeout(timer); timer = setTimeout(run, ms); };
}
const better = (a, b) => (S.goal === "maximize" ? a > b : a < b);

// --- shell: tags, navigation, live connection -----------------------------------------
async function boot() {
  const params = new URLSearchParams(location.search);
  const info = await api(`/api/tags${params.get("tag") ? `?tag=${encodeURIComponent(params.get("tag"))}` : ""}`);
  S.tags = info.tags; S.tag = info.default; S.metric = info.metric; S.goal = info.goal;
  $("#study").textContent = `${info.study} · ${info.metric} (${info.goal})`;
  const select = $("#tag");
  fillTags();
  select.onchange = () => { S.tag = select.value; navigate(location.pathname); };
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest("a[href^='/']");
    if (!a || ev.ctrlKey || ev.metaKey || ev.button !== 0) return;
    ev.preventDefault();
    navigate(new URL(a.href).pathname);
  });
  window.onpopstate = () => route();
  steering();
  connect();
  route();
}
// --- steering: the only requests that change anything (they carry the write token) -----
async function steer(path, body) {
  const token = document.querySelector("meta[name='ratchet-write-token']").content;
  const res = await fetch(path, { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Ratchet-Token": token },
    body: JSON.stringify({ tag: S.tag, ...body }) });
  const answer = await res.json().catch(() => ({ error: `${res.status}` }));
  if (!res.ok) throw new Error(answer.error || `${res.status}`);
  return answer;
}
function steering() {
  const said = $("#steer-said");
  const show = (text) => { said.textContent = text; };
  $("#note-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const box = $("#note-text");
    try {
      const note = await steer("/api/steer/note", { text: box.value });
      box.value = "";
      show(`note #${note.id} recorded for tag ${note.tag}`);
    } catch (err) { show(`note not recorded: ${err.message}`); }
  };
  document.querySelectorAll("#steer button[data-action]").forEach((b) => {
    b.onclick = async () => {
      try {
        const r = await steer(`/api/steer/${b.dataset.action}`, {});
        show(`tag ${r.tag}: ${r.state}`);
      } catch (err) { show(`${b.dataset.action}: ${err.message}`); }
    };
  });
}
function fillTags() {
  $("#tag").innerHTML = (S.tags.length ? S.tags : ["—"]).map((t) =>
    `<option ${t === S.tag ? "selected" : ""}>${esc(t)}</option>`).join("");
}
const refreshTags = debounce(async () => {  // a run may start a new tag while the page is open
  const info = await api("/api/tags");
  if (info.tags.join("\n") === S.tags.join("\n")) return;
  S.tags = info.tags;
  if (!S.tag) S.tag = info.default;
  fillTags();
}, 300);
function navigate(path) { history.pushState(null, "", link(path)); route(); }
function connect() {
  const source = new EventSource("/api/events");
  const conn = $("#conn");
  source.onopen = () => conn.classList.add("ok");
  source.onerror = () => conn.classList.remove("ok");
  source.addEventListener("ledger", () => {
    refreshTags();
    if (S.onLedger) S.onLedger();
  });
  source.addEventListener("live", (ev) => { if (S.onLive) S.onLive(JSON.parse(ev.data)); });
}
function route() {
  const path = location.pathname;
  destroyPlots();
  S.onLedger = null; S.onLive = null;
  $("#tip").hidden = true;
  const m = path.match(/^\/experiments\/(\d+)$/);
  const page = m ? "experiment" : { "/": "overview", "/experiments": "experiments",
    "/lineage": "lineage", "/live": "live" }[path] || "overview";
  document.querySelectorAll("#nav a").forEach((a) => {
    a.classList.toggle("on", a.dataset.page === page || (page === "experiment" && a.dataset.page === "experiments"));
    a.setAttribute("href", link(new URL(a.href).pathname));
  });
  document.body.dataset.page = page;
  S.page = page;
  const view = { overview: Overview, experiments: Table, experiment: () => Detail(Number(m[1])),
    lineage: Lineage, live: Live }[page];
  view().catch((err) => { $("#main").innerHTML = `<div class="panel bad">${esc(err.message)}</div>`; });
}

// --- overview --------------------------------------------------------------------------
async function Overview() {
  const main = $("#main");
  const draw = async () => {
    const [o, c] = await Promise.all([api(`/api/overview${tagQuery()}`), api(`/api/chart${tagQuery()}`)]);
    if (S.page !== "overview") return;
    const old = S.plots[0];
    const zoom = old && old.zoomed ? { x: [old.scales.x.min, old.scales.x.max], y: [old.scales.y.min, old.scales.y.max] } : null;
    main.innerHTML = overviewHtml(o);
    destroyPlots();
    const plot = progressChart($("#chart"), c);
    if (plot && zoom) {  // a live update keeps the user's zoom
      plot.zoomed = true;
      plot.batch(() => { plot.setScale("x", { min: zoom.x[0], max: zoom.x[1] }); plot.setScale("y", { min: zoom.y[0], max: zoom.y[1] }); });
    }
  };
  await draw();
  S.onLedger = debounce(draw, 400);
}
function card(k, v, s = "", cls = "") {
  return `<div class="card"><div class="k">${k}</div><div class="v ${cls}">${v}</div><div class="s" title="${esc(s)}">${esc(s)}</div></div>`;
}
function overviewHtml(o) {
  if (!o.total) return `<h1>${esc(o.tag || "")}</h1><div class="panel empty">No experiments yet for this tag — run <code>ratchet run</code>; this page updates by itself.</div>`;
  const imp = o.improvement_pct;
  const rate = o.keep_rate === null ? "—" : `${(100 * o.keep_rate).toFixed(1)}%`;
  const cards = [
    card("baseline", num(o.baseline?.metric), o.baseline ? `#${o.baseline.id}` : "not measured"),
    card("best", num(o.best?.metric), o.best ? `#${o.best.id} ${o.best.description}` : "", "good"),
    card("improvement", imp === null ? "—" : `${imp >= 0 ? "+" : ""}${imp.toFixed(2)}%`, "vs baseline, in the goal's direction", imp > 0 ? "good" : ""),
    card("keep rate", rate, `${o.keeps} of ${o.after_baseline} after the baseline`),
    card("experiments", o.total, Object.entries(o.counts).map(([k, v]) => `${k} ${v}`).join(", ")),
    card("per hour", o.per_hour === null ? "—" : o.per_hour >= 100 ? Math.round(o.per_hour) : o.per_hour.toFixed(1), "finished experiments per hour"),
    card("failed runs", secs(o.failed_s), "spent on crash, timeout, pruned", o.failed_s ? "bad" : ""),
    card("running", o.running.length, o.runner_pid ? `ratchet run pid ${o.runner_pid}` : "no ratchet run holds this tag", o.running.length ? "" : "muted"),
  ].join("");
  const total = Object.values(o.counts).reduce((a, b) => a + b, 0) || 1;
  const bar = Object.entries(o.counts).map(([k, v]) =>
    `<span style="width:${(100 * v) / total}%;background:${STATUS_COLOUR[k] || "#999"}" title="${esc(k)} ${v}"></span>`).join("");
  const legend = Object.entries(o.counts).map(([k, v]) =>
    `<span><i style="background:${STATUS_COLOUR[k] || "#999"}"></i>${esc(k)} ${v}</span>`).join("");
  const spend = o.proposers.map((p) => `<tr><td>${esc(p.proposer)}</td><td class="num">${p.experiments}</td>
    <td class="num">${p.input_tokens.toLocaleString()}</td><td class="num">${p.output_tokens.toLocaleString()}</td>
    <td class="num">$${p.cost_usd.toFixed(4)}</td></tr>`).join("");
  return `<h1>${esc(o.study)} <span class="muted">· tag ${esc(o.tag || "all")}</span></h1>
  <div class="cards">${cards}</div>
  <div class="panel"><div class="chartbar"><h2 style="margin:0">Progress</h2>
    <span class="legend"><span><i style="background:#adb5bd"></i>discarded</span>
    <span><i style="background:#2f9e44"></i>baseline and kept</span><span><i style="background:#e8590c"></i>pruned</span>
    <span><i style="background:#e03131"></i>no metric (crash…)</span><span><i style="background:#1b6e35"></i>running best</span></span>
    <span class="spacer"></span><span>drag to zoom · double-click to reset · click a point to open it</span></div>
    <div id="chart"></div></div>
  <div class="grid2">
    <div class="panel"><h2>Outcomes</h2><div class="bar">${bar}</div><div class="legend">${legend}</div></div>
    <div class="panel"><h2>Budget</h2><pre id="budget">${esc(o.budget.join("\n"))}</pre></div>
  </div>
  <div class="panel"><h2>Proposers: tokens and cost</h2><table class="kv" id="spend">
    <tr><td>proposer</td><td class="num muted">experiments</td><td class="num muted">tokens in</td><td class="num muted">tokens out</td><td class="num muted">cost</td></tr>${spend}</table></div>`;
}

// --- the progress chart (progress.png's semantics) ------------------------------------
function progressChart(el, c) {
  const n = c.id.length;
  if (!n) { el.innerHTML = `<div class="empty">no experiments yet</div>`; return null; }
  const [lo0, hi0] = c.range;
  const measured = c.metric.filter((v) => v !== null);
  const lo = lo0 ?? (measured.length ? Math.min(...measured) : 0);
  const hi = hi0 ?? (measured.length ? Math.max(...measured) : 1);
  const bottom = c.log ? lo * Math.pow(hi / lo, 0.02) : lo + (hi - lo) * 0.02;
  const top = c.log ? hi / Math.pow(hi / lo, 0.02) : hi - (hi - lo) * 0.02;
  const x = c.id.map((_, i) => i);
  const pick = (kinds, f) => c.kind.map((k, i) => (kinds.includes(k) ? f(i) : null));
  const inRange = (v) => (v === null ? bottom : Math.min(top, Math.max(bottom, v)));
  const data = [
    x,
    pick(["other"], (i) => c.metric[i]),
    pick(["off"], (i) => inRange(c.metric[i])),
    pick(["pruned"], (i) => inRange(c.metric[i])),
    pick(["failed"], () => bottom),
    pick(["kept"], (i) => c.metric[i]),
    c.best.map((v) => v),
  ];
  const pts = (fill, stroke, size) => ({ show: true, size, fill, stroke, width: 1 });
  const tip = $("#tip");
  let plot = null;  // plot.zoomed: the user zoomed; until then the frontier frames it, as in progress.png
  el.addEventListener("dblclick", () => { plot.zoomed = false; }, true);
  el.addEventListener("mousedown", () => { plot.zoomed = true; }, true);
  const opts = {
    width: el.clientWidth || 1000, height: 380,
    scales: { x: { time: false }, y: { distr: c.log ? 3 : 1, range: (u, a, b) => (u.zoomed ? [a, b] : [lo, hi]) } },
    cursor: { drag: { x: true, y: true, uni: 20 }, points: { size: 8 } },
    legend: { show: false },
    axes: [{ label: "experiment #", stroke: "#6b7385", grid: { stroke: "#eef0f3" } },
      { label: `${c.metric_name} (${c.goal === "maximize" ? "higher" : "lower"} is better)`, stroke: "#6b7385", grid: { stroke: "#eef0f3" }, size: 70 }],
    series: [
      {},
      { label: "discarded", stroke: "#adb5bd", paths: () => null, points: pts("#ced4da", "#adb5bd", 5) },
      { label: "off scale", stroke: "#868e96", paths: () => null, points: pts("#fff", "#868e96", 6) },
      { label: "pruned", stroke: "#e8590c", paths: () => null, points: pts("#fff", "#e8590c", 7) },
      { label: "no metric", stroke: "#e03131", paths: () => null, points: pts("#e03131", "#e03131", 5) },
      { label: "kept", stroke: "#2f9e44", paths: () => null, points: pts("#40c057", "#1d2330", 9) },
      { label: "running best", stroke: "#1b6e35", width: 2, alpha: 0.75, spanGaps: true,
        paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
    ],
    hooks: {
      draw: [(u) => drawLabels(u, c)],
      setCursor: [(u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined || u.cursor.left < 0) { tip.hidden = true; return; }
        const rect = u.over.getBoundingClientRect();
        tip.innerHTML = `<b>#${c.id[i]}</b> ${esc(c.status[i])} · ${esc(c.metric_name)} <b>${num(c.metric[i])}</b>` +
          `${c.best[i] !== null ? ` · best ${num(c.best[i])}` : ""}<br>${esc(c.description[i])}`;
        tip.hidden = false;
        tip.style.left = `${Math.min(rect.left + u.cursor.left + 14, window.innerWidth - 440)}px`;
        tip.style.top = `${rect.top + u.cursor.top + 14}px`;
      }],
    },
  };
  plot = new uPlot(opts, data, el);
  plot.over.addEventListener("mouseleave", () => { tip.hidden = true; });
  let opening = null;  // a click opens the point, unless it was the first half of a double-click
  plot.over.addEventListener("click", () => {
    const i = plot.cursor.idx;
    if (i === null || i === undefined || plot.select.width) return;
    clearTimeout(opening);
    opening = setTimeout(() => navigate(`/experiments/${c.id[i]}`), 300);
  });
  plot.over.addEventListener("dblclick", () => clearTimeout(opening));
  S.plots.push(plot);
  const resize = () => plot.setSize({ width: el.clientWidth, height: 380 });
  window.addEventListener("resize", resize, { once: true });
  return plot;
}
function drawLabels(u, c) {
  const ctx = u.ctx;
  ctx.save();
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.fillStyle = "#1b6e35";
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  let lastX = -1e9;
  const [x0, x1] = [u.scales.x.min, u.scales.x.max];
  c.kind.forEach((k, i) => {
    if (k !== "kept" || i < x0 || i > x1) return;
    const px = u.valToPos(i, "x", true);
    const py = u.valToPos(c.metric[i], "y", true);
    if (px - lastX < 40 * devicePixelRatio || py < u.bbox.top || py > u.bbox.top + u.bbox.height) return;
    lastX = px;
    ctx.save();
    ctx.translate(px + 5 * devicePixelRatio, py - 5 * devicePixelRatio);
    ctx.rotate(-Math.PI / 6);
    ctx.fillText(c.label[i] || c.status[i], 0, 0);
    ctx.restore();
  });
  ctx.restore();
}

// --- experiments table: client-side filter/sort/search, only visible rows rendered ----
const COLUMNS = [
  ["id", "id", "56px", (r) => `<span class="num">${r.id}</span>`],
  ["tag", "tag", "90px", (r) => esc(r.tag)],
  ["status", "status", "96px", (r) => pill(r.status)],
  ["metric", null, "100px", (r) => `<span class="num">${num(r.metric)}</span>`],
  ["samples", "n", "34px", (r) => `<span class="num">${r.samples.length}</span>`],
  ["duration_s", "time", "70px", (r) => `<span class="num">${secs(r.duration_s)}</span>`],
  ["commit", "commit", "70px", (r) => `<span class="mono">${esc((r.commit || "").slice(0, 7))}</span>`],
  ["tokens", "tokens", "70px", (r) => `<span class="num">${r.input_tokens + r.output_tokens || ""}</span>`],
  ["cost_usd", "cost", "64px", (r) => `<span class="num">${r.cost_usd ? `$${r.cost_usd.toFixed(4)}` : ""}</span>`],
  ["description", "description", "minmax(200px, 1fr)", (r) => `<span title="${esc(r.description)}">${esc(r.description)}${r.reason && !["keep", "discard", "baseline"].includes(r.status) ? ` <span class="muted">(${esc(r.reason.split("\n")[0])})</span>` : ""}</span>`],
];
async function Table() {
  const main = $("#main");
  const state = { rows: [], view: [], sort: "id", asc: true, statuses: new Set(), tag: S.tag || "", q: "" };
  const cols = COLUMNS.map((c) => c[2]).join(" ");
  main.innerHTML = `<div class="filters">
      <input type="search" id="q" placeholder="search descriptions and reasons">
      <select id="ftag"></select><span id="chips"></span><span class="spacer"></span>
      <span class="muted" id="count"></span></div>
    <div class="vt" style="--cols:${cols}"><div class="head">${COLUMNS.map((c) =>
      `<span data-key="${c[0]}" class="${["id", "metric", "samples", "duration_s", "tokens", "cost_usd"].includes(c[0]) ? "num" : ""}">${esc(c[1] || S.metric)}</span>`).join("")}</div>
    <div class="body" id="tbody"><div class="rows" id="rows"></div></div></div>`;
  const body = $("#tbody"); const rowsEl = $("#rows");
  const render = () => {
    const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 10);
    const count = Math.ceil(body.clientHeight / ROW_H) + 20;
    const slice = state.view.slice(first, first + count);
    rowsEl.style.height = `${state.view.length * ROW_H}px`;
    rowsEl.innerHTML = slice.map((r, k) => `<div class="row" data-id="${r.id}" style="position:absolute;left:0;right:0;top:${(first + k) * ROW_H}px">${COLUMNS.map((c) => `<span>${c[3](r)}</span>`).join("")}</div>`).join("");
  };
  const key = (r, k) => (k === "tokens" ? r.input_tokens + r.output_tokens : k === "samples" ? r.samples.length : r[k]);
  const apply = () => {
    const q = state.q.toLowerCase();
    state.view = state.rows.filter((r) => (!state.tag || r.tag === state.tag) &&
      (!state.statuses.size || state.statuses.has(r.status)) &&
      (!q || r.description.toLowerCase().includes(q) || (r.reason || "").toLowerCase().includes(q)));
    const dir = state.asc ? 1 : -1;
    state.view.sort((a, b) => {
      const x = key(a, state.sort); const y = key(b, state.sort);
      if (x === y) return (a.id - b.id) * dir;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    $("#count").textContent = `${state.view.length.toLocaleString()} of ${state.rows.length.toLocaleString()} experiments`;
    main.querySelectorAll(".head span").forEach((s) => {
      s.classList.toggle("sorted", s.dataset.key === state.sort);
      s.classList.toggle("asc", state.asc);
    });
    render();
  };
  const load = async () => {
    // After the first load only rows that can have changed are fetched: those from the
    // first one still running (finished rows never change), or else the new ones.
    const open = state.rows.find((r) => r.status === "running");
    const since = state.rows.length ? (open ? open.id : state.rows[state.rows.length - 1].id + 1) : 0;
    const fresh = await api(`/api/experiments?fields=table&since=${since}`);
    if (S.page !== "experiments") return;
    state.rows = state.rows.filter((r) => r.id < since).concat(fresh);
    const tags = [...new Set(state.rows.map((r) => r.tag))];
    $("#ftag").innerHTML = `<option value="">all tags</option>` + tags.map((t) => `<option ${t === state.tag ? "selected" : ""}>${esc(t)}</option>`).join("");
    const statuses = [...new Set(state.rows.map((r) => r.status))];
    $("#chips").innerHTML = statuses.map((s) => `<span class="chip ${state.statuses.has(s) ? "on" : ""}" data-status="${esc(s)}">${esc(s)}</span>`).join(" ");
    apply();
  };
  $("#q").oninput = (ev) => { state.q = ev.target.value; apply(); };
  $("#ftag").onchange = (ev) => { state.tag = ev.target.value; apply(); };
  $("#chips").onclick = (ev) => {
    const s = ev.target.dataset.status; if (!s) return;
    if (state.statuses.has(s)) state.statuses.delete(s); else state.statuses.add(s);
    ev.target.classList.toggle("on"); apply();
  };
  main.querySelector(".head").onclick = (ev) => {
    const k = ev.target.dataset.key; if (!k) return;
    // a second click reverses; the metric starts best first, everything else ascending
    state.asc = state.sort === k ? !state.asc : k !== "metric" || S.goal === "minimize";
    state.sort = k; apply();
  };
  body.onscroll = () => requestAnimationFrame(render);
  rowsEl.onclick = (ev) => { const row = ev.target.closest(".row"); if (row) navigate(`/experiments/${row.dataset.id}`); };
  await load();
  S.onLedger = debounce(load, 100);
}

// --- one experiment ---------------------------------------------------------------------
const PY_KEYWORDS = new Set("False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(" "));
function highlightPython(code) {
  const re = /(#.*$)|("""[\s\S]*?"""|'''[\s\S]*?'''|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|(\b\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?\b)|([A-Za-z_]\w*)/g;
  let out = ""; let last = 0; let m;
  while ((m = re.exec(code))) {
    out += esc(code.slice(last, m.index));
    const [t] = m;
    if (m[1]) out += `<span class="tk-c">${esc(t)}</span>`;
    else if (m[2]) out += `<span class="tk-s">${esc(t)}</span>`;
    else if (m[3]) out += `<span class="tk-n">${esc(t)}</span>`;
    else if (PY_KEYWORDS.has(t)) out += `<span class="tk-k">${t}</span>`;
    else if (code[re.lastIndex] === "(") out += `<span class="tk-f">${t}</span>`;
    else out += esc(t);
    last = re.lastIndex;
  }
  return out + esc(code.slice(last));
}
function diffHtml(diff) {
  if (!diff) return `<div class="muted">no code change (rejected before it ran, or the baseline)</div>`;
  let py = false;
  const lines = diff.replace(/\n$/, "").split("\n").map((line) => {
    if (line.startsWith("diff --git")) { py = /\.py$/.test(line); return `<div class="meta">${esc(line)}</div>`; }
    if (/^(index |--- |\+\+\+ |new file|deleted file|similarity|rename )/.test(line)) return `<div class="meta">${esc(line)}</div>`;
    if (line.startsWith("@@")) return `<div class="hunk">${esc(line)}</div>`;
    const cls = line[0] === "+" ? "add" : line[0] === "-" ? "del" : "";
    const body = py ? highlightPython(line.slice(1)) : esc(line.slice(1));
    return `<div class="${cls}">${esc(line[0] || " ")}${body}</div>`;
  });
  return `<div class="diff" id="diff">${lines.join("")}</div>`;
}
function samplesSvg(d) {
  const inc = d.incumbent; const cand = d.candidate;
  const all = [...(inc?.samples || []), ...(cand?.samples || [])];
  if (!all.length) return `<div class="muted">no samples measured</div>`;
  const band = inc && inc.mean !== null ? [inc.mean - 2 * inc.spread, inc.mean + 2 * inc.spread] : null;
  const vals = band ? [...all, ...band] : all;
  let lo = Math.min(...vals); let hi = Math.max(...vals);
  if (hi === lo) { lo -= Math.abs(lo) * 0.01 || 1; hi += Math.abs(hi) * 0.01 || 1; }
  const W = 520; const X0 = 110; const X1 = W - 20;
  const px = (v) => X0 + ((v - lo) / (hi - lo)) * (X1 - X0);
  const row = (y, label, s, colour) => `<text x="0" y="${y + 4}" font-size="12" fill="#6b7385">${label}</text>` +
    (s?.samples || []).map((v) => `<circle cx="${px(v)}" cy="${y}" r="5" fill="${colour}" fill-opacity=".75"><title>${num(v)}</title></circle>`).join("") +
    (s && s.mean !== null ? `<line x1="${px(s.mean)}" x2="${px(s.mean)}" y1="${y - 10}" y2="${y + 10}" stroke="${colour}" stroke-width="2"/>` : "");
  return `<svg width="100%" viewBox="0 0 ${W} 110" id="samples">
    ${band ? `<rect x="${px(band[0])}" y="10" width="${Math.max(1, px(band[1]) - px(band[0]))}" height="70" fill="#2f9e44" fill-opacity=".12"><title>incumbent mean ± 2σ</title></rect>` : ""}
    ${row(30, inc ? `incumbent #${inc.id}` : "no incumbent", inc, "#2f9e44")}
    ${row(62, `this #${cand.id}`, cand, STATUS_COLOUR[d.status] || "#1c7ed6")}
    <line x1="${X0}" x2="${X1}" y1="92" y2="92" stroke="#cfd4dc"/>
    <text x="${X0}" y="106" font-size="11" fill="#6b7385">${num(lo, 5)}</text>
    <text x="${X1}" y="106" font-size="11" fill="#6b7385" text-anchor="end">${num(hi, 5)}</text>
    <text x="${(X0 + X1) / 2}" y="106" font-size="11" fill="#6b7385" text-anchor="middle">${esc(S.metric)} · band: incumbent mean ± 2σ</text></svg>`;
}
function curvesChart(el, curves) {
  if (!curves.key) { el.innerHTML = `<div class="muted">no progress lines in the run logs</div>`; return; }
  const xs = [...new Set([...curves.candidate, ...curves.incumbent].map((p) => p[0]))].sort((a, b) => a - b);
  const at = (pts) => { const m = new Map(pts.map((p) => [p[0], p[1]])); return xs.map((x) => (m.has(x) ? m.get(x) : null)); };
  const plot = new uPlot({
    width: el.clientWidth || 600, height: 220, legend: { show: true },
    scales: { x: { time: false } },
    axes: [{ label: "progress (fraction of the budget)", stroke: "#6b7385", grid: { stroke: "#eef0f3" } },
      { label: curves.key, stroke: "#6b7385", grid: { stroke: "#eef0f3" }, size: 60 }],
    series: [{}, { label: "incumbent", stroke: "#2f9e44", width: 2, spanGaps: true },
      { label: "this experiment", stroke: "#1c7ed6", width: 2, spanGaps: true }],
  }, [xs, at(curves.incumbent), at(curves.candidate)], el);
  S.plots.push(plot);
}
async function Detail(id) {
  const main = $("#main");
  const draw = async () => {
    const d = await api(`/api/experiments/${id}`);
    if (S.page !== "experiment") return;
    destroyPlots();
    const tokens = d.input_tokens + d.output_tokens;
    main.innerHTML = `<h1>#${d.id} ${pill(d.status)} <span class="muted">${esc(S.metric)}</span> ${num(d.metric)}
      <span class="muted" style="font-weight:400">· tag ${esc(d.tag)}</span></h1>
      <div class="panel"><div style="font-size:14px" id="desc">${esc(d.description)}</div>
      ${d.rationale ? `<div class="muted" style="margin-top:4px">${esc(d.rationale)}</div>` : ""}</div>
      <div class="grid2"><div class="panel"><h2>Outcome</h2><table class="kv">
        <tr><td>judge</td><td id="reason">${esc(d.reason || "—")}</td></tr>
        <tr><td>lesson</td><td id="lesson">${esc(d.lesson)}</td></tr>
        <tr><td>samples</td><td class="mono">${d.samples.map((v) => num(v)).join(", ") || "—"}</td></tr>
        <tr><td>parent</td><td>${d.parent_id ? `<a href="/experiments/${d.parent_id}">#${d.parent_id}</a> ` : ""}<span class="mono">${esc((d.parent || "—").slice(0, 10))}</span></td></tr>
        <tr><td>commit</td><td class="mono">${esc(d.commit || "—")}</td></tr>
        <tr><td>duration</td><td>${secs(d.duration_s)} · started ${new Date(d.created_at * 1000).toLocaleString()}</td></tr>
        ${d.confirmed !== null ? `<tr><td>confirm</td><td>${d.confirmed ? "confirmed" : "did not confirm"}</td></tr>` : ""}
        ${tokens ? `<tr><td>proposer spend</td><td>${tokens.toLocaleString()} tokens · $${d.cost_usd.toFixed(4)}</td></tr>` : ""}
        ${Object.keys(d.extras).length ? `<tr><td>extras</td><td class="mono">${Object.entries(d.extras).map(([k, v]) => `${esc(k)}=${num(v)}`).join("  ")}</td></tr>` : ""}
      </table></div>
      <div class="panel"><h2>Samples against the incumbent</h2>${samplesSvg(d)}
        <h2 style="margin-top:10px">Progress against the incumbent</h2><div id="curves"></div></div></div>
      <div class="panel"><h2>Diff against its parent</h2>${diffHtml(d.diff)}</div>
      <div class="panel" id="logs"><h2>Logs (tail first)</h2>${d.logs.length ? d.logs.map((l) => `
        <div class="logname"><b class="mono">${esc(l.name)}</b><span class="muted">${l.size.toLocaleString()} bytes
        ${l.truncated ? ` · <a href="#" data-log="${esc(l.name)}">show the whole log</a>` : ""}</span></div>
        <div class="log" data-name="${esc(l.name)}">${esc(l.text)}</div>`).join("") : `<div class="muted">no logs</div>`}</div>`;
    main.querySelectorAll(".log").forEach((el) => { el.scrollTop = el.scrollHeight; });
    main.querySelectorAll("a[data-log]").forEach((a) => { a.onclick = async (ev) => {
      ev.preventDefault();
      const res = await fetch(`/api/experiments/${id}/logs/${encodeURIComponent(a.dataset.log)}`);
      const el = main.querySelector(`.log[data-name="${CSS.escape(a.dataset.log)}"]`);
      el.textContent = await res.text(); el.scrollTop = el.scrollHeight;
    }; });
    curvesChart($("#curves"), d.curves);
    return d.status;
  };
  const status = await draw();
  if (status === "running") S.onLedger = debounce(draw, 200);
}

// --- lineage: kept experiments as a tree, the rest as squares under their parent --------
async function Lineage() {
  const main = $("#main");
  const draw = async () => {
    const { nodes, tag } = await api(`/api/lineage${tagQuery()}`);
    if (S.page !== "lineage") return;
    const kids = new Map(); const roots = [];
    nodes.forEach((n) => { if (n.parent_id === null) roots.push(n); else { if (!kids.has(n.parent_id)) kids.set(n.parent_id, []); kids.get(n.parent_id).push(n); } });
    const square = (n) => `<a class="sq ${esc(n.status)}" href="/experiments/${n.id}" title="#${n.id} ${esc(n.status)} ${num(n.metric)} — ${esc(n.description)}"></a>`;
    const line = (n) => `<div class="node">${pill(n.status)}<a href="/experiments/${n.id}">#${n.id}</a><span class="num">${num(n.metric)}</span><span>${esc(n.description)}</span></div>`;
    const grow = (n) => {
      const children = kids.get(n.id) || [];
      const kept = children.filter((k) => kids.has(k.id) || k.status === "keep" || k.status === "baseline");
      const rest = children.filter((k) => !kept.includes(k));
      let html = line(n) + (rest.length ? `<div class="strip" style="margin-left:18px">${rest.map(square).join("")}<span class="muted" style="margin-left:6px">${rest.length} tried</span></div>` : "");
      if (kept.length === 1) return html + grow(kept[0]);  // a chain stays flat
      return html + kept.map((k) => `<div class="kids">${grow(k)}</div>`).join("");
    };
    const keptRoots = roots.filter((r) => kids.has(r.id) || ["baseline", "keep"].includes(r.status));
    const loose = roots.filter((r) => !keptRoots.includes(r));
    main.innerHTML = `<h1>Lineage <span class="muted">· tag ${esc(tag || "all")}</span></h1>
      <div class="panel tree" id="tree">${keptRoots.map(grow).join("") || `<div class="empty">no measured baseline yet</div>`}
      ${loose.length ? `<div class="node muted">without a recorded parent</div><div class="strip">${loose.map(square).join("")}</div>` : ""}</div>
      <div class="legend">${Object.entries(STATUS_COLOUR).map(([k, v]) => `<span><i style="background:${v}"></i>${k}</span>`).join("")}</div>`;
  };
  await draw();
  S.onLedger = debounce(draw, 200);
}

// --- live: running experiments, pushed by the event stream -----------------------------
async function Live() {
  const main = $("#main");
  main.innerHTML = `<h1>Live <span class="muted">· running experiments</span></h1><div id="running"></div>
    <div class="panel"><h2>Just finished</h2><div id="recent"></div></div>`;
  const show = ({ running }) => {
    const el = $("#running"); if (!el) return;
    el.innerHTML = running.length ? running.map((r) => `<div class="panel" data-id="${r.id}">
      <div style="display:flex;gap:10px;align-items:center">${pill("running")}<a href="/experiments/${r.id}"><b>#${r.id}</b></a>
      <span>${esc(r.description)}</span><span class="spacer"></span><span class="muted">tag ${esc(r.tag)} · ${secs(r.elapsed_s)}${r.samples.length ? ` · ${r.samples.length} samples` : ""}</span></div>
      <div class="progress"><span style="width:${Math.round(100 * (r.progress || 0))}%"></span></div>
      <div class="muted">${r.progress !== null ? `${Math.round(100 * r.progress)}% of the budget · ${Object.entries(r.progress_values).map(([k, v]) => `${esc(k)} ${num(v, 5)}`).join(" · ")}` : "no progress lines yet"}</div>
      ${r.logs.map((l) => `<div class="logname"><b class="mono">${esc(l.name)}</b></div><div class="log">${esc(l.text)}</div>`).join("")}</div>`).join("")
      : `<div class="panel empty">nothing running right now — this page updates by itself</div>`;
    el.querySelectorAll(".log").forEach((x) => { x.scrollTop = x.scrollHeight; });
  };
  const recent = async () => {
    const rows = await api(`/api/experiments?fields=table${S.tag ? `&tag=${encodeURIComponent(S.tag)}` : ""}`);
    const el = $("#recent"); if (!el) return;
    const done = rows.filter((r) => r.status !== "running").slice(-10).reverse();
    el.innerHTML = done.length ? `<table class="kv">${done.map((r) => `<tr><td>${pill(r.status)} <a href="/experiments/${r.id}">#${r.id}</a></td><td class="num" style="width:110px">${num(r.metric)}</td><td>${esc(r.description)}</td></tr>`).join("")}</table>` : `<div class="muted">none yet</div>`;
  };
  show(await api(`/api/live${tagQuery()}`));
  await recent();
  S.onLive = (msg) => show({ running: msg.running.filter((r) => !S.tag || r.tag === S.tag) });
  S.onLedger = debounce(recent, 150);
}

boot();
