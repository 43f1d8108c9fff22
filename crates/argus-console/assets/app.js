// The supervision console: one small module over Argus's own API (same origin, the session
// cookie of /api/login). Pages: the alert console (/console/), the ticket inbox
// (/console/inbox), a ticket (/console/tickets/{id}) and an enterprise
// (/console/enterprises/{id}). Every visible string comes from the catalogue of the chosen
// language (/console/assets/i18n/{lang}.json); what Argus stores (names, notes) is shown as
// text, never as markup. Times are shown in the county's zone, UTC+8.

const ZONE = "Asia/Shanghai";
const LANGS = ["zh-CN", "en"];
const SEVERITY = { red: 4, orange: 3, yellow: 2, blue: 1 };
const OPEN_STATES = "new,dispatched,accepted,inspecting,rectification_ordered";

let lang = LANGS.includes(localStorage.getItem("argus.lang")) ? localStorage.getItem("argus.lang") : "zh-CN";
let strings = {};
let me = null;
let registry = null;
let stream = null;

// ---- strings, times, elements ----

function t(key, vars = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
}

async function loadStrings() {
  const r = await fetch(`/console/assets/i18n/${lang}.json`);
  strings = await r.json();
  document.documentElement.lang = lang;
  document.title = t("app.title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Intl.DateTimeFormat(lang, {
    timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(d);
}

// An element: el("td", {class: "x", "data-label": "..."}, child, "text", ...).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function say(text) {
  const status = document.getElementById("status");
  status.textContent = text;
  if (text) setTimeout(() => { if (status.textContent === text) status.textContent = ""; }, 4000);
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

// ---- the API ----

class Failed extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  let r;
  try {
    r = await fetch(path, { credentials: "same-origin", ...options });
  } catch {
    throw new Failed(0, t("error.network"));
  }
  if (r.status === 401 && path !== "/api/login") {
    me = null;
    await route("/console/login");
    throw new Failed(401, "");
  }
  if (!r.ok) {
    const text = (await r.text()).replace(/^error: /, "").trim();
    throw new Failed(r.status, text);
  }
  const type = r.headers.get("content-type") || "";
  return type.includes("json") ? r.json() : r.text();
}

function post(path, body, headers = {}) {
  return api(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

function problem(e) {
  if (e.status === 401) return;
  if (e.status === 404) say(t("error.not_found"));
  else if (e.status === 403) say(t("error.forbidden"));
  else say(t("error.other", { message: e.message }));
}

// ---- who is here ----

function named(list, id) {
  return (list || []).find((x) => x.id === id)?.name ?? id;
}

function jurisdiction(user) {
  const dept = named(registry?.departments, user.department);
  if (user.town) return t("who.team", { town: named(registry?.towns, user.town), department: dept });
  if (user.department) return t("who.department", { department: dept });
  return t("who.county");
}

function header() {
  const signedIn = Boolean(me);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("logout").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn
    ? `${me.display_name} · ${t("role." + me.role)} · ${jurisdiction(me)}`
    : "";
}

// ---- pages ----

function loginPage() {
  const failed = el("p", { role: "alert", class: "overdue" });
  const form = el("form", { class: "stack", id: "login" },
    el("h1", {}, t("login.title")),
    el("label", {}, t("login.name"), el("input", { name: "name", autocomplete: "username", required: true })),
    el("label", {}, t("login.password"),
      el("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    el("button", { type: "submit" }, t("login.submit")),
    failed);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      const answer = await post("/api/login", { name: data.get("name"), password: data.get("password") });
      me = answer.user;
      await start(location.pathname.startsWith("/console/login") ? "/console/" : location.pathname);
    } catch (e) {
      failed.textContent = e.status === 429 ? t("login.locked") : t("login.failed");
    }
  });
  show(form);
  form.querySelector("input").focus();
}

function severityCell(severity) {
  return el("span", { class: `sev sev-${severity}` }, t("severity." + severity));
}

function options(name, label, values, selected) {
  return el("label", {}, label,
    el("select", { name },
      el("option", { value: "" }, t("filter.all")),
      values.map(([value, text]) => el("option", { value, selected: value === selected }, text))));
}

function count(list, key) {
  const counts = new Map();
  for (const item of list) counts.set(key(item), (counts.get(key(item)) || 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}

async function alertsPage() {
  const filters = JSON.parse(sessionStorage.getItem("argus.filters") || '{"status":"firing"}');
  let alerts = [];
  const state = el("span", { class: "live" });
  const counts = el("div", { class: "counts" });
  const body = el("tbody");
  const enterprises = (await api("/api/enterprises")).enterprises;
  const form = el("form", { class: "filters", "aria-label": t("alerts.title") },
    options("town", t("filter.town"), registry.towns.map((x) => [x.id, x.name]), filters.town),
    options("department", t("filter.department"), registry.departments.map((x) => [x.id, x.name]), filters.department),
    options("enterprise", t("filter.enterprise"), enterprises.map((x) => [x.id, x.name]), filters.enterprise),
    options("kind", t("filter.kind"), [...new Set(["threshold", "average", "missing_data", "constant_value",
      "zero_while_operating", "out_of_range", "sudden_jump", "flag_duration", "treatment_stopped",
      "power_cut_failure", "data_integrity", "insufficient_data", "inconsistent_average",
      "unregistered_source"])].map((k) => [k, k]), filters.kind),
    options("severity", t("filter.severity"), ["red", "orange", "yellow", "blue"].map((s) => [s, t("severity." + s)]), filters.severity),
    options("status", t("filter.status"), ["firing", "resolved"].map((s) => [s, t("status." + s)]), filters.status),
    options("muted", t("filter.muted"), [["true", t("filter.yes")], ["false", t("filter.no")]], filters.muted));
  const matches = (a) => ["town", "enterprise", "kind", "severity", "status"]
    .every((k) => !filters[k] || (k === "enterprise" ? a.enterprise : a[k]) === filters[k])
    && (!filters.muted || String(a.muted) === filters.muted);
  const draw = () => {
    alerts.sort((a, b) => (SEVERITY[b.severity] - SEVERITY[a.severity]) || b.started_at.localeCompare(a.started_at));
    counts.replaceChildren(
      el("dl", { "aria-label": t("alerts.by_town") }, el("dt", {}, t("alerts.by_town")),
        count(alerts, (a) => a.town || "").map(([k, n]) => [el("dt", {}, named(registry.towns, k) || "-"), el("dd", {}, n)])),
      el("dl", { "aria-label": t("alerts.by_kind") }, el("dt", {}, t("alerts.by_kind")),
        count(alerts, (a) => a.kind).map(([k, n]) => [el("dt", {}, k), el("dd", {}, n)])));
    body.replaceChildren(...(alerts.length ? alerts.map(alertRow) : [el("tr", {}, el("td", { colspan: 8 }, t("alerts.none")))]));
  };
  const alertRow = (a) => el("tr", { "data-alert": a.alert_id },
    el("td", { "data-label": t("alerts.started") }, when(a.started_at)),
    el("td", { "data-label": t("alerts.severity") }, severityCell(a.severity)),
    el("td", { "data-label": t("alerts.enterprise") },
      a.enterprise ? el("a", { href: `/console/enterprises/${a.enterprise}` }, named(enterprises, a.enterprise)) : "-"),
    el("td", { "data-label": t("alerts.point") }, a.point),
    el("td", { "data-label": t("alerts.kind") }, a.kind, a.metric ? ` · ${a.metric}` : ""),
    el("td", { "data-label": t("alerts.value") }, `${a.value}${a.limit != null ? ` / ${a.limit}` : ""}`),
    el("td", { "data-label": t("alerts.status") }, t("status." + a.status), a.muted ? ` · ${t("alerts.muted")}` : ""),
    el("td", {}, a.acknowledged_by ? t("alerts.acked_by", { who: a.acknowledged_by })
      : me.role === "monitor" ? el("button", { type: "button", class: "ack", onclick: () => acknowledge(a) }, t("alerts.ack")) : ""));
  const acknowledge = async (a) => {
    const note = prompt(t("alerts.ack_note"), "") ?? null;
    if (note === null) return;
    try {
      const updated = await post(`/api/alerts/${a.alert_id}/ack`, { note }, { "idempotency-key": `ack-${a.alert_id}` });
      alerts = alerts.map((x) => (x.alert_id === updated.alert_id ? updated : x));
      draw();
    } catch (e) { problem(e); }
  };
  const load = async () => {
    const q = new URLSearchParams({ limit: "500" });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    alerts = (await api(`/api/alerts?${q}`)).alerts;
    draw();
  };
  form.addEventListener("change", async () => {
    for (const [k, v] of new FormData(form)) filters[k] = v;
    sessionStorage.setItem("argus.filters", JSON.stringify(filters));
    await load().catch(problem);
  });
  const parts = [
    el("h1", {}, t("alerts.title"), " ", state),
    counts, form,
    el("table", { class: "cards" },
      el("thead", {}, el("tr", {}, ["alerts.started", "alerts.severity", "alerts.enterprise", "alerts.point",
        "alerts.kind", "alerts.value", "alerts.status", ""].map((k) => el("th", { scope: "col" }, k ? t(k) : "")))),
      body),
  ];
  if (me.role === "monitor") parts.push(silenceForm(enterprises));
  show(...parts);
  await load();
  // Live: each stored transition replaces (or adds) its alert; no polling.
  listen((event) => {
    if (event.type !== "alert") return;
    const a = JSON.parse(event.data);
    delete a.transition;
    alerts = alerts.filter((x) => x.alert_id !== a.alert_id);
    if (matches(a)) alerts.push(a);
    draw();
  }, state);
}

function silenceForm(enterprises) {
  const points = el("select", { name: "points", multiple: true, size: 4 });
  const enterprise = el("select", { name: "enterprise", required: true },
    enterprises.map((e) => el("option", { value: e.id }, `${e.name} (${e.id})`)));
  const fill = () => {
    const chosen = enterprises.find((e) => e.id === enterprise.value);
    points.replaceChildren(...(chosen?.points || []).map((p) => el("option", { value: p.mn }, `${p.name} (${p.mn})`)));
  };
  enterprise.addEventListener("change", fill);
  fill();
  const form = el("form", { class: "stack", id: "silence" },
    el("h2", {}, t("silence.title")),
    el("label", {}, t("filter.enterprise"), enterprise),
    el("label", {}, t("silence.points"), points),
    el("label", {}, t("silence.from"), el("input", { type: "datetime-local", name: "from", required: true })),
    el("label", {}, t("silence.to"), el("input", { type: "datetime-local", name: "to", required: true })),
    el("label", {}, t("silence.reason"), el("input", { name: "reason", required: true })),
    el("button", { type: "submit" }, t("silence.submit")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    // The inputs are the county's local time (UTC+8).
    const at = (v) => `${v}:00+08:00`;
    try {
      await post("/api/silences", {
        enterprise: data.get("enterprise"), points: data.getAll("points"),
        from: at(data.get("from")), to: at(data.get("to")), reason: data.get("reason"),
      });
      say(t("silence.done"));
      form.reset();
    } catch (e) { problem(e); }
  });
  return form;
}

function listen(onEvent, state) {
  if (stream) stream.close();
  stream = new EventSource("/api/stream");
  const live = () => { state.className = "live"; state.textContent = t("alerts.live"); };
  stream.onopen = live;
  stream.onerror = () => { state.className = "offline"; state.textContent = t("alerts.offline"); };
  stream.addEventListener("alert", onEvent);
  stream.addEventListener("ticket", onEvent);
  stream.addEventListener("reload", () => route(location.pathname));
}

async function inboxPage() {
  const tickets = (await api(`/api/tickets?order=deadline&state=${OPEN_STATES}&limit=1000`)).tickets;
  const now = new Date().toISOString();
  const rows = tickets.map((k) => el("tr", { "data-ticket": k.ticket_id },
    el("td", { "data-label": t("inbox.deadline") },
      k.deadline && k.deadline < now ? el("span", { class: "overdue" }, `${t("inbox.overdue")} · ${when(k.deadline)}`) : when(k.deadline)),
    el("td", { "data-label": "ID" }, el("a", { href: `/console/tickets/${k.ticket_id}` }, k.ticket_id)),
    el("td", { "data-label": t("alerts.enterprise") }, el("a", { href: `/console/enterprises/${k.enterprise}` }, k.enterprise)),
    el("td", { "data-label": t("ticket.state") }, t("state." + k.state)),
    el("td", { "data-label": t("alerts.severity") }, severityCell(k.severity)),
    el("td", { "data-label": t("inbox.created") }, when(k.created_at))));
  show(el("h1", {}, t("inbox.title")),
    el("table", { class: "cards", id: "inbox" },
      el("thead", {}, el("tr", {}, ["inbox.deadline", "", "alerts.enterprise", "ticket.state", "alerts.severity", "inbox.created"]
        .map((k) => el("th", { scope: "col" }, k ? t(k) : "ID")))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6 }, t("inbox.none"))))));
}

// A chart of a series with the limit line and, where given, the violating span shaded.
function chart(series, limit, span) {
  const box = el("div", { class: "chart" });
  const points = series.readings
    ? series.readings.map((r) => [Date.parse(r.at) / 1000, r.value])
    : (series.hours || []).map((h) => [Date.parse(h.hour) / 1000, h.avg]);
  if (!points.length || typeof uPlot === "undefined") return box;
  const xs = points.map((p) => p[0]);
  const data = [xs, points.map((p) => p[1])];
  const lines = [{}, { label: `${series.metric} ${t("chart.value")}`, stroke: "#0b57d0", width: 2 }];
  if (limit != null) { data.push(xs.map(() => limit)); lines.push({ label: t("chart.limit"), stroke: "#b3261e", dash: [6, 4] }); }
  const shade = (u) => {
    if (!span) return;
    const left = u.valToPos(span[0], "x", true);
    const right = u.valToPos(span[1] ?? xs[xs.length - 1], "x", true);
    u.ctx.save();
    u.ctx.fillStyle = "rgba(179, 38, 30, 0.12)";
    u.ctx.fillRect(left, u.bbox.top, Math.max(right - left, 2), u.bbox.height);
    u.ctx.restore();
  };
  const width = Math.min(900, (document.getElementById("main").clientWidth || 600) - 16);
  new uPlot({
    width, height: 240, series: lines, hooks: { drawClear: [shade] },
    scales: { x: { time: true } }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), ZONE),
  }, data, box);
  return box;
}

async function ticketPage(id) {
  let answer;
  try {
    answer = await api(`/api/tickets/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404) { show(el("h1", { id: "not-found" }, t("ticket.not_found"))); return; }
    throw e;
  }
  const { ticket, record, next, chain_head } = answer;
  const note = el("input", { name: "note", "aria-label": t("ticket.note_input") });
  const outcome = el("select", { name: "outcome", "aria-label": t("ticket.outcome") },
    ["violation_confirmed", "false_alarm", "equipment_fault"].map((o) => el("option", { value: o }, t("outcome." + o))));
  const move = async (to) => {
    const body = { to, note: note.value };
    if (to === "closed") body.outcome = outcome.value;
    try {
      await post(`/api/tickets/${ticket.ticket_id}/state`, body, { "idempotency-key": `${ticket.ticket_id}-${record.length}-${to}` });
      say(t("ticket.changed"));
      await ticketPage(id);
    } catch (e) { problem(e); }
  };
  const actions = next.length
    ? el("section", { "aria-label": t("ticket.next") }, el("h2", {}, t("ticket.next")),
      el("div", { class: "filters" }, el("label", {}, t("ticket.note_input"), note),
        next.includes("closed") ? el("label", {}, t("ticket.outcome"), outcome) : "",
        next.map((to) => el("button", { type: "button", "data-to": to, onclick: () => move(to) }, t("state." + to)))))
    : "";
  const charts = el("section", {}, el("h2", {}, t("ticket.alerts")));
  show(
    el("h1", {}, t("ticket.title", { id: ticket.ticket_id })),
    el("p", {}, el("a", { href: `/console/enterprises/${ticket.enterprise}` }, ticket.enterprise), " · ",
      `${t("ticket.state")}: `, el("strong", { id: "ticket-state" }, t("state." + ticket.state)), " · ",
      `${t("ticket.team")}: ${ticket.team || "-"} · `, severityCell(ticket.severity), " · ",
      `${t("inbox.deadline")}: ${when(ticket.deadline) || "-"}`),
    actions,
    charts,
    el("h2", {}, t("ticket.record")),
    el("table", { class: "cards", id: "record" },
      el("thead", {}, el("tr", {}, ["ticket.at", "ticket.actor", "ticket.event", "ticket.note", "ticket.evidence", "ticket.hash"]
        .map((k) => el("th", { scope: "col" }, t(k))))),
      el("tbody", {}, record.map((line) => el("tr", {},
        el("td", { "data-label": t("ticket.at") }, when(line.at)),
        el("td", { "data-label": t("ticket.actor") }, line.actor),
        el("td", { "data-label": t("ticket.event") }, `${line.event}: ${line.from ? t("state." + line.from) + " → " : ""}${t("state." + line.to)}`,
          line.outcome ? ` (${t("outcome." + line.outcome)})` : ""),
        el("td", { "data-label": t("ticket.note") }, line.note),
        el("td", { "data-label": t("ticket.evidence") }, line.alert_ids.join(", ")),
        el("td", { "data-label": t("ticket.hash"), class: "hash" }, line.hash))))),
    el("p", { class: "hash" }, `chain head ${chain_head}`),
    el("p", {}, el("a", { href: `/api/tickets/${ticket.ticket_id}/record.html` }, t("ticket.print"))));
  for (const alertId of ticket.alert_ids) {
    try {
      const { alert, readings } = await api(`/api/alerts/${alertId}`);
      const span = [Date.parse(alert.started_at) / 1000, alert.ended_at ? Date.parse(alert.ended_at) / 1000 : null];
      charts.append(el("h3", {}, `${alert.point} · ${alert.metric ?? alert.kind} · ${when(alert.started_at)}`),
        readings ? chart(readings, alert.limit, span) : "");
    } catch (e) { problem(e); }
  }
}

async function enterprisePage(id, range = "24h") {
  let enterprise;
  try {
    enterprise = (await api(`/api/enterprises/${encodeURIComponent(id)}`)).enterprise;
  } catch (e) {
    if (e.status === 404) { show(el("h1", { id: "not-found" }, t("error.not_found"))); return; }
    throw e;
  }
  const hours = { "6h": 6, "24h": 24, "7d": 168, "30d": 720 }[range];
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600e3);
  const dayStart = new Date(Math.floor((to.getTime() + 8 * 3600e3) / 86400e3) * 86400e3 - 8 * 3600e3);
  const picker = el("select", { "aria-label": t("enterprise.range") },
    ["6h", "24h", "7d", "30d"].map((r) => el("option", { value: r, selected: r === range }, t("range." + r))));
  picker.addEventListener("change", () => enterprisePage(id, picker.value).catch(problem));
  const today = (await api(`/api/alerts?enterprise=${enterprise.id}&from=${dayStart.toISOString()}&limit=200`)).alerts;
  const sections = [];
  for (const point of enterprise.points) {
    const metrics = [...new Map(point.limits.map((l) => [l.metric, l])).values()];
    const rows = [];
    const charts = [];
    for (const limit of metrics) {
      const q = `metric=${encodeURIComponent(limit.metric)}&from=${from.toISOString()}&to=${to.toISOString()}`;
      const series = await api(`/api/points/${encodeURIComponent(point.mn)}/readings?${q}`).catch(() => null);
      if (!series) continue;
      const last = series.readings?.[series.readings.length - 1];
      const lastHour = series.hours?.[series.hours.length - 1];
      rows.push(el("tr", {},
        el("td", { "data-label": t("alerts.metric") }, `${limit.metric} (${limit.unit})`),
        el("td", { "data-label": t("enterprise.latest") }, last ? `${last.value} · ${when(last.at)}` : lastHour ? `${lastHour.avg.toFixed(3)} · ${when(lastHour.hour)}` : "-"),
        el("td", { "data-label": t("enterprise.flag") }, last?.flag ?? ""),
        el("td", { "data-label": t("alerts.limit") }, [limit.min, limit.max, limit.alarm, limit.level1].filter((v) => v != null).join(" / "))));
      charts.push(el("h4", {}, `${limit.metric} (${limit.unit})`), chart(series, limit.max ?? limit.alarm ?? limit.level1, null));
    }
    sections.push(el("section", {}, el("h3", {}, `${point.name} (${point.mn})`),
      el("table", { class: "cards" }, el("tbody", {}, rows)), ...charts));
  }
  show(
    el("h1", {}, `${enterprise.name} (${enterprise.id})`),
    el("p", {}, `${named(registry.towns, enterprise.town)} · ${enterprise.industry}`),
    el("h2", {}, t("enterprise.today")),
    el("ul", {}, today.map((a) => el("li", {}, `${when(a.started_at)} · `, severityCell(a.severity), ` · ${a.point} · ${a.kind} · ${t("status." + a.status)}`))),
    el("h2", {}, t("enterprise.points"), " ", el("label", {}, t("enterprise.range"), " ", picker)),
    ...sections);
}

// ---- routing ----

async function route(path) {
  if (stream && !path.match(/^\/console\/?$/)) { stream.close(); stream = null; }
  if (!me || path.startsWith("/console/login")) { header(); loginPage(); return; }
  header();
  const ticket = path.match(/^\/console\/tickets\/([^/]+)$/);
  const enterprise = path.match(/^\/console\/enterprises\/([^/]+)$/);
  try {
    if (ticket) await ticketPage(decodeURIComponent(ticket[1]));
    else if (enterprise) await enterprisePage(decodeURIComponent(enterprise[1]));
    else if (path.startsWith("/console/inbox") || (me.role === "team" && !path.match(/^\/console\/alerts/))) await inboxPage();
    else await alertsPage();
  } catch (e) { problem(e); }
  document.getElementById("main").focus({ preventScroll: true });
}

async function start(path) {
  if (me) registry = await api("/api/registry");
  history.replaceState(null, "", path);
  await route(path);
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[href^='/console/']");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  ev.preventDefault();
  history.pushState(null, "", a.getAttribute("href"));
  route(location.pathname);
});
window.addEventListener("popstate", () => route(location.pathname));
document.getElementById("language").addEventListener("click", async () => {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("argus.lang", lang);
  await loadStrings();
  await route(location.pathname);
});
document.getElementById("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  me = null;
  history.pushState(null, "", "/console/login");
  await route("/console/login");
});

(async () => {
  await loadStrings();
  try {
    me = (await api("/api/me")).user;
  } catch { me = null; }
  if (me) await start(location.pathname); else { header(); loginPage(); }
})();
