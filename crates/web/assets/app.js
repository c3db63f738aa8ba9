// The queue page: plain JavaScript over the daemon's /api/v1 (no framework, no build step).
//
// Safety rule: everything that comes from the queue (senders, recipients, subjects,
// reasons, destinations: attacker-controlled) enters the page as text nodes or
// textContent, never as markup; the element helper below is the only way nodes are
// made. The admin token lives in sessionStorage (this tab only) and is sent as
// `Authorization: Bearer`; no cookie is ever set, so another site cannot make a change.
"use strict";

const TOKEN_KEY = "mailroom.token";
const STATES = ["deferred", "active", "incoming", "hold", "maildrop"];
const PAGE = 50;
const $ = (id) => document.getElementById(id);

const ui = {
  view: "recipients",
  filter: {},
  cursor: null,
  rows: new Map(),
  selected: null,
  timer: null,
};

// el("td", {class: "x"}, "text", child): attributes are the page's own constants.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, options = {}) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "omit",
    cache: "no-store",
  });
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) {
    let why = (data && data.error) || res.statusText;
    if (res.status === 401) why = "this needs the admin token (enter it at the top)";
    if (res.status === 403) why = "the admin token was refused: " + why;
    const err = new Error(why);
    err.status = res.status;
    throw err;
  }
  return data;
}

function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 6000 : 3000);
}

// ---- formatting ----
const nf = new Intl.NumberFormat();
function age(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return seconds + "s";
  const m = Math.floor(seconds / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (m < 60) return m + "m";
  if (h < 24) return h + "h " + (m % 60) + "m";
  return d + "d " + (h % 24) + "h";
}
function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
const now = () => Date.now() / 1000;
const when = (t) => new Date(t * 1000).toLocaleString();
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const sender = (s) => (s === "" ? "<>" : s);
// "2h", "90m", "3600", "1d": seconds, or NaN.
function seconds(text) {
  const m = /^\s*(\d+)\s*([smhdw]?)\s*$/.exec(text || "");
  if (!m) return NaN;
  return Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
}
const regexEscape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// ---- header: health and token ----
async function loadHealth() {
  const box = $("health");
  try {
    const h = await api("/api/v1/health");
    const parts = [
      el("span", { class: h.status === "ok" ? "" : "bad" }, h.status),
      " · " + nf.format(h.messages) + " messages · disk free " + bytes(h.disk_free_bytes),
      " · up " + age(h.uptime_seconds) + " · mailroom " + h.version,
    ];
    if (h.intake !== "open") parts.push(" · ", el("span", { class: "bad" }, "intake " + h.intake));
    for (const d of h.dead_destinations || []) parts.push(" · ", el("span", { class: "bad" }, "dead: " + d.destination));
    box.replaceChildren(...parts);
  } catch (e) {
    box.replaceChildren(el("span", { class: "bad" }, "daemon unreachable: " + e.message));
  }
}

function showToken() {
  const pill = $("token-state");
  pill.textContent = token() ? "token set" : "read-only";
  pill.className = token() ? "pill ok" : "pill";
}

// ---- counts over time ----
async function loadHistory() {
  const h = await api("/api/v1/history");
  const span = 6 * 3600;
  const samples = h.samples.filter((s) => s.t >= h.now.t - span);
  const points = samples.concat([h.now]);
  const first = samples.length ? samples[0] : null;
  $("tiles").replaceChildren(...STATES.map((s) => tile(s, h.now[s], first)));
  $("history-note").textContent = samples.length
    ? "last " + age(h.now.t - samples[0].t) + " (" + samples.length + " samples)"
    : "history fills in as the daemon samples the queue (doctor_history_interval)";
  drawChart(points);
}

function tile(state, count, first) {
  const delta = first ? count - first[state] : 0;
  const node = el("div", { class: "tile " + state, title: "list the " + state + " messages" },
    el("div", { class: "l" }, state),
    el("div", { class: "n" }, nf.format(count)),
    el("div", { class: delta > 0 ? "d up" : "d" },
      first ? (delta > 0 ? "+" : delta < 0 ? "−" : "±") + nf.format(Math.abs(delta)) + " since " + clock(first.t) : "\u00a0"));
  node.addEventListener("click", () => search({ queue: state }));
  return node;
}

function drawChart(points) {
  const chart = $("chart");
  const W = 1000, H = 160;
  const nodes = [];
  for (let i = 1; i < 4; i++) nodes.push(svg("line", { class: "grid", x1: 0, x2: W, y1: (H * i) / 4, y2: (H * i) / 4 }));
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const max = Math.max(1, ...points.flatMap((p) => STATES.map((s) => p[s])));
  if (points.length > 1 && t1 > t0) {
    for (const s of STATES) {
      const xy = points.map((p) => [((p.t - t0) / (t1 - t0)) * W, H - 4 - (p[s] / max) * (H - 12)]);
      const color = getComputedStyle(document.documentElement).getPropertyValue("--" + s).trim();
      nodes.push(svg("polyline", { points: xy.map((q) => q.map((v) => v.toFixed(1)).join(",")).join(" "), stroke: color }));
    }
  }
  chart.replaceChildren(...nodes);
  $("chart-from").textContent = points.length > 1 ? clock(t0) : "";
  $("chart-max").textContent = "max " + nf.format(max);
  $("chart-to").textContent = "now";
}

// ---- qshape heat map ----
async function loadShape() {
  const queue = $("shape-queue").value;
  const q = new URLSearchParams({ queue, senders: String(ui.view === "senders"), tick: $("shape-tick").value, limit: "20" });
  const shape = await api("/api/v1/qshape?" + q);
  const head = el("tr", {}, el("th", {}, ui.view === "senders" ? "sender domain" : "destination"));
  shape.headings.forEach((h, i) => head.append(el("th", { title: i ? "younger than " + h + " minutes" : "total" }, i ? h : "total")));
  const body = el("tbody");
  const max = Math.max(1, ...shape.rows.slice(1).flatMap((r) => r.counts.slice(1)));
  for (const [i, row] of shape.rows.entries()) body.append(shapeRow(row, i === 0, max, queue));
  if (shape.domains > shape.rows.length - 1) {
    body.append(el("tr", {}, el("td", { class: "dom muted", colspan: String(shape.headings.length + 1) },
      "… and " + nf.format(shape.domains - shape.rows.length + 1) + " more domains")));
  }
  $("shape").replaceChildren(el("thead", {}, head), body);
}

function shapeRow(row, total, max, queue) {
  const tr = el("tr", { class: total ? "total" : "" }, el("td", { class: "dom", title: row.domain }, total ? "all" : row.domain));
  row.counts.forEach((c, i) => {
    const td = el("td", { class: i === 0 ? "tot" : c ? "cell" : "cell zero" }, c ? nf.format(c) : "·");
    if (i > 0 && c && !total) {
      const k = Math.log1p(c) / Math.log1p(max);
      td.style.backgroundColor = "rgba(224, 120, 47, " + (0.1 + 0.8 * k).toFixed(2) + ")";
      if (k > 0.55) td.style.color = "#fff";
    }
    tr.append(td);
  });
  if (!total) {
    tr.addEventListener("click", () => {
      const f = queue.includes(",") ? {} : { queue };
      if (ui.view === "senders") f.from = row.domain === "MAILER-DAEMON" ? "<>" : "@" + row.domain;
      else f.domain = row.domain.replace(/^\./, "");
      search(f);
    });
  }
  return tr;
}

// ---- deferral reasons ----
async function loadReasons() {
  const { reasons } = await api("/api/v1/reasons");
  const list = $("reasons");
  if (!reasons.length) {
    list.replaceChildren(el("li", { class: "empty" }, "No deferred mail."));
    return;
  }
  const max = reasons[0].recipients;
  list.replaceChildren(...reasons.map((r) => {
    const why = el("div", { class: "why", title: "list the messages deferred for this reason" }, el("span", { class: "count" }, nf.format(r.recipients)), r.reason);
    why.addEventListener("click", () => search({ queue: "deferred", reason: regexEscape(r.reason) }));
    const bar = el("div", { class: "bar" });
    bar.style.width = Math.max(2, (100 * r.recipients) / max) + "%";
    const chips = el("div", { class: "chips" }, ...r.destinations.map(([dest, n]) => {
      const chip = el("button", { type: "button", class: "chip", title: "list the deferred mail to " + dest }, dest + " " + nf.format(n));
      chip.addEventListener("click", () => search({ queue: "deferred", domain: dest }));
      return chip;
    }));
    return el("li", {}, why, bar, chips);
  }));
}

// ---- the fleet (fleet_redis_url): the panel is shown only on a node in one ----
const FLEET_QUEUES = ["incoming", "active", "deferred", "hold"];

async function loadFleet() {
  const f = await api("/api/v1/fleet");
  const card = $("fleet-card");
  card.dataset.fleet = f.fleet ? "yes" : "no";
  card.hidden = !f.fleet;
  if (!f.fleet) return;
  $("fleet-note").replaceChildren(...fleetNote(f));
  const rows = f.nodes.map((n) => fleetNode(n, f.node));
  if (!rows.length) rows.push(el("tr", {}, el("td", { class: "empty", colspan: "8" }, "No node's heartbeat is in Redis yet.")));
  $("fleet-nodes").tBodies[0].replaceChildren(...rows);
  const live = f.nodes.filter((n) => n.live).length;
  $("fleet-nodes").tFoot.replaceChildren(el("tr", {},
    el("td", {}, "total"), el("td", {}, live + " of " + f.nodes.length + " live"), el("td", {}),
    ...FLEET_QUEUES.map((q) => el("td", { class: "n", "data-queue": q }, nf.format(f.totals[q] || 0))),
    el("td", {})));
  const suspended = f.suspensions.map((s) => el("tr", { "data-destination": s.destination },
    el("td", { class: "mono" }, s.destination),
    el("td", { class: "node" }, s.node || "not recorded"),
    el("td", {}, when(s.since)),
    el("td", {}, s.until ? when(s.until) : "until resumed"),
    el("td", {}, s.reason || "—")));
  if (!suspended.length) suspended.push(el("tr", {}, el("td", { class: "empty", colspan: "5" }, "None.")));
  $("fleet-suspended").tBodies[0].replaceChildren(...suspended);
  const dead = Object.entries(f.dead).map(([dest, d]) => el("tr", { "data-destination": dest },
    el("td", { class: "mono" }, dest),
    el("td", { class: "node" }, d.node || "not recorded"),
    el("td", {}, when(d.until_ms / 1000)),
    el("td", { class: "reason", title: d.reason }, d.reason)));
  if (!dead.length) dead.push(el("tr", {}, el("td", { class: "empty", colspan: "4" }, "None.")));
  $("fleet-dead").tBodies[0].replaceChildren(...dead);
}

function fleetNote(f) {
  const parts = ["this node: " + f.node + " · "];
  const r = f.redis;
  if (r.reachable) {
    parts.push("Redis answers; destination limits are shared");
  } else {
    parts.push(el("span", { class: "bad" }, "Redis unreachable" + (r.error ? ": " + r.error : "")),
      " · this node applies its share of each limit (1/" + r.fallback_nodes + ")");
    parts.push(r.status_age_seconds === null ? " · nothing read from Redis yet"
      : " · showing what Redis said " + age(r.status_age_seconds) + " ago");
  }
  return parts;
}

function fleetNode(n, me) {
  const page = nodePage(n.api);
  let link = "—";
  if (page) {
    link = el("a", {}, n.api);
    link.href = page;
  }
  return el("tr", { "data-node": n.name, class: n.live ? "" : "stale" },
    el("td", { class: "mono" }, n.name, n.name === me ? el("span", { class: "muted" }, " (this page)") : null),
    el("td", {}, el("span", { class: n.live ? "live" : "live stale" }, n.live ? "live" : "stale")),
    el("td", { class: "seen" }, age(n.seen_seconds_ago) + " ago"),
    ...FLEET_QUEUES.map((q) => el("td", { class: "n", "data-queue": q }, nf.format(n.queues[q] || 0))),
    el("td", {}, link));
}

// A heartbeat's API address as a link to that node's page: http or https only, so an
// address written into Redis cannot become a javascript: link.
function nodePage(address) {
  if (typeof address !== "string") return null;
  try {
    const u = new URL(address);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin + "/" : null;
  } catch (_) {
    return null;
  }
}

// ---- suspended destinations ----
async function loadSuspended() {
  const { suspended } = await api("/api/v1/destinations/suspended");
  const body = $("suspended").tBodies[0];
  if (!suspended.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: "5" }, "None: every destination is being delivered to.")));
    return;
  }
  body.replaceChildren(...suspended.map((s) => {
    const resume = el("button", { type: "button" }, "Resume");
    resume.addEventListener("click", () => change("/api/v1/destinations/" + encodeURIComponent(s.destination) + "/resume",
      undefined, "resumed " + s.destination));
    return el("tr", { "data-destination": s.destination },
      el("td", { class: "mono" }, s.destination),
      el("td", {}, when(s.since)),
      el("td", {}, s.until ? when(s.until) + " (in " + age(s.until - now()) + ")" : "until resumed"),
      el("td", {}, s.reason || "—"),
      el("td", {}, resume));
  }));
}

async function suspendSubmit(ev) {
  ev.preventDefault();
  const form = ev.target;
  const dest = form.destination.value.trim();
  const body = { reason: form.reason.value.trim() };
  if (form.for.value.trim()) {
    body.for_seconds = seconds(form.for.value);
    if (!(body.for_seconds > 0)) return toast("for: a duration such as 30m, 2h or 1d", true);
  }
  if (await change("/api/v1/destinations/" + encodeURIComponent(dest) + "/suspend", body, "suspended " + dest)) form.reset();
}

// A change (POST): a toast saying what happened, then everything shown is refreshed.
async function change(path, body, done) {
  try {
    const out = await api(path, { method: "POST", body: body === undefined ? {} : body });
    let text = done;
    if (out && typeof out.count === "number") text += ": " + out.count + (out.count === 1 ? " message" : " messages");
    if (out && out.warnings && out.warnings.length) text += " (" + out.warnings.join("; ") + ")";
    toast(text);
    await Promise.allSettled([refresh(), loadList(false)]);
    return true;
  } catch (e) {
    toast(e.message, true);
    return false;
  }
}

// ---- the message list ----
function search(filter) {
  const form = $("filter");
  for (const name of ["queue", "domain", "from", "to", "reason", "older_than"]) form.elements[name].value = filter[name] || "";
  readFilter();
  loadList(false);
  $("list-card").scrollIntoView({ behavior: "smooth", block: "start" });
}

function readFilter() {
  const f = {};
  for (const [k, v] of new FormData($("filter")).entries()) if (String(v).trim()) f[k] = String(v).trim();
  ui.filter = f;
}

async function loadList(more) {
  const q = new URLSearchParams({ ...ui.filter, limit: String(PAGE) });
  if (more && ui.cursor) q.set("cursor", ui.cursor);
  const status = $("list-status");
  status.textContent = "loading…";
  try {
    const page = await api("/api/v1/queue?" + q);
    const body = $("messages").tBodies[0];
    if (!more) { body.replaceChildren(); ui.rows.clear(); }
    for (const row of page.messages) { ui.rows.set(row.queue_id, row); body.append(messageRow(row)); }
    if (!ui.rows.size) body.append(el("tr", {}, el("td", { class: "empty", colspan: "7" }, "No message matches.")));
    ui.cursor = page.next_cursor;
    $("more").hidden = !ui.cursor;
    status.textContent = nf.format(ui.rows.size) + (ui.cursor ? "+ messages" : ui.rows.size === 1 ? " message" : " messages");
  } catch (e) {
    status.textContent = e.message;
  }
}

function messageRow(row) {
  const open = row.recipients;
  const reason = (open.find((r) => r.delay_reason) || {}).delay_reason || "";
  const to = open.slice(0, 2).map((r) => r.address).join(", ") + (open.length > 2 ? " +" + (open.length - 2) : "");
  const tr = el("tr", { "data-id": row.queue_id, class: row.queue_id === ui.selected ? "sel" : "" },
    el("td", { class: "mono" }, row.queue_id),
    el("td", {}, el("span", { class: "state " + row.queue_name }, row.queue_name)),
    el("td", {}, age(now() - row.arrival_time)),
    el("td", {}, bytes(row.message_size)),
    el("td", { class: "addr", title: sender(row.sender) }, sender(row.sender)),
    el("td", { class: "addr", title: open.map((r) => r.address).join(", ") }, to),
    el("td", { class: "reason", title: reason }, reason));
  tr.addEventListener("click", () => openDetail(row.queue_id));
  return tr;
}

// ---- message detail ----
async function openDetail(id) {
  ui.selected = id;
  for (const tr of $("messages").tBodies[0].rows) tr.classList.toggle("sel", tr.dataset.id === id);
  $("detail").hidden = false;
  $("detail-id").textContent = id;
  const row = ui.rows.get(id);
  if (row) showDetail(row, null);
  if (!token()) {
    note("The headers and the buttons need the admin token: enter it at the top of the page.");
    return;
  }
  try {
    const d = await api("/api/v1/queue/" + encodeURIComponent(id));
    if (ui.selected === id) { note(""); showDetail(d, d); }
  } catch (e) {
    if (ui.selected !== id) return;
    if (e.status === 404) { note("This message is no longer queued."); enable(null); return; }
    note(e.message);
  }
}

function note(text) {
  $("detail-note").textContent = text;
  $("detail-note").hidden = !text;
}

function showDetail(row, d) {
  const state = $("detail-state");
  state.textContent = row.queue_name;
  state.className = "state " + row.queue_name;
  const facts = [
    ["arrived", when(row.arrival_time) + " (" + age(now() - row.arrival_time) + " ago)"],
    ["size", bytes(row.message_size)],
    ["sender", sender(row.sender)],
    ["attempts", String(row.attempts)],
  ];
  if (d) {
    const subject = (d.headers.find(([n]) => n.toLowerCase() === "subject") || [, ""])[1];
    facts.splice(0, 0, ["subject", subject || "—"]);
    facts.push(["origin", d.origin]);
    facts.push(["next retry", d.next_retry === null ? "not scheduled" : d.next_retry === 0 || d.next_retry <= now() ? "due now" : when(d.next_retry)]);
  }
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)]));
  const rcpts = d ? d.envelope_recipients : row.recipients.map((r) => ({ address: r.address, state: r.delay_reason ? "deferred" : "pending", reason: r.delay_reason || "" }));
  $("detail-rcpts").tBodies[0].replaceChildren(...rcpts.map((r) => el("tr", {},
    el("td", { class: "addr" }, r.address), el("td", {}, r.state), el("td", { class: "mono" }, [r.status, r.reason].filter(Boolean).join(" ")))));
  const headers = d ? d.headers : [];
  $("detail-headers").tBodies[0].replaceChildren(...headers.map(([n, v]) => el("tr", {}, el("td", {}, n), el("td", {}, v))));
  enable(d ? row.queue_name : null);
}

function enable(state) {
  const allowed = {
    hold: state && state !== "hold",
    release: state === "hold",
    flush: state === "deferred" || state === "incoming",
    requeue: state && state !== "maildrop",
    delete: !!state,
  };
  for (const b of $("detail").querySelectorAll("[data-verb]")) b.disabled = !allowed[b.dataset.verb];
}

async function act(verb) {
  const id = ui.selected;
  if (!id) return;
  if (verb === "delete" && !confirm("Delete " + id + "? It is removed from the queue for good.")) return;
  const words = { hold: "placed on hold", release: "released from hold", flush: "retry now", requeue: "requeued", delete: "deleted" };
  if (await change("/api/v1/queue/" + encodeURIComponent(id) + "/" + verb, undefined, id + " " + words[verb])) {
    if (verb === "delete") closeDetail(); else await openDetail(id);
  }
}

function closeDetail() {
  ui.selected = null;
  $("detail").hidden = true;
  for (const tr of $("messages").tBodies[0].rows) tr.classList.remove("sel");
}

// ---- refresh ----
async function refresh() {
  const jobs = [loadHealth(), loadHistory(), loadShape(), loadReasons(), loadSuspended(), loadFleet()];
  for (const r of await Promise.allSettled(jobs)) if (r.status === "rejected") console.warn(r.reason);
}

// Every 5 s, or ten times as long as the last refresh took: on a huge queue each summary is
// a walk of the store, and the page must not keep the daemon busy.
function schedule(wait) {
  clearTimeout(ui.timer);
  if (!$("auto").checked) return;
  ui.timer = setTimeout(async () => {
    const started = performance.now();
    if (!document.hidden) await refresh();
    schedule(Math.max(5000, 10 * (performance.now() - started)));
  }, wait === undefined ? 5000 : wait);
}

function start() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    showToken();
    if (ui.selected) openDetail(ui.selected);
  });
  $("token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showToken(); });
  $("auto").addEventListener("change", () => schedule());
  $("shape-queue").addEventListener("change", loadShape);
  $("shape-tick").addEventListener("change", loadShape);
  for (const b of $("shape-view").querySelectorAll("button")) {
    b.addEventListener("click", () => {
      ui.view = b.dataset.view;
      for (const o of $("shape-view").querySelectorAll("button")) o.classList.toggle("on", o === b);
      loadShape();
    });
  }
  $("filter").addEventListener("submit", (ev) => { ev.preventDefault(); readFilter(); loadList(false); });
  $("filter-clear").addEventListener("click", () => search({}));
  $("more").addEventListener("click", () => loadList(true));
  $("suspend-form").addEventListener("submit", suspendSubmit);
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDetail(); });
  for (const b of $("detail").querySelectorAll("[data-verb]")) b.addEventListener("click", () => act(b.dataset.verb));
  showToken();
  refresh();
  loadList(false);
  schedule();
}

start();
