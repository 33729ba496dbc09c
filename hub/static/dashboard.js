"use strict";
// The wall (监察大屏): needs common.js (esc, cst, label tables). Data from GET /api/wall (scoped
// by the server) and GET /api/cases; live through server-sent events (GET /api/events/wall): each
// "change" refetches, without reloading the page. If the stream drops, a slow poll takes over.

const FALLBACK_POLL_MS = 30000;
let live = false;
let siteNames = {};

async function api(path) {
  const r = await fetch(path, {credentials: "same-origin"});
  if (r.status === 401) { location.href = "/login"; throw new Error("login"); }
  if (!r.ok) throw new Error(path + " " + r.status);
  return r.json();
}
function dot(light) { return `<span class="light ${esc(light)}" title="${esc(label(LIGHT_ZH, light, "未知"))}"></span>`; }
function fmt(ts) { return esc(cst(ts)); }
function caseLink(no) { return `<a href="/cases/${encodeURIComponent(no)}">${esc(no)}</a>`; }
function windowName(w) { return w ? (/窗口$/.test(w) ? w : w + "号窗口") : "—"; }
function siteName(code) { return siteNames[code] || code; }

function renderSummary(w) {
  const c = w.counts, sites = w.sites.filter(s => s.online !== undefined);
  const online = sites.filter(s => s.online).length;
  const tiles = [
    `<div class="tile green">${dot("green")} 绿灯<b id="n-green">${c.green}</b></div>`,
    `<div class="tile yellow">${dot("yellow")} 黄牌<b id="n-yellow">${c.yellow}</b></div>`,
    `<div class="tile red">${dot("red")} 红牌<b id="n-red">${c.red}</b></div>`,
  ];
  if (sites.length) tiles.push(`<div class="tile sites">站点在线<b>${online}/${sites.length}</b></div>`);
  document.getElementById("summary").innerHTML = tiles.join("");
}

function overdueText(c) {
  if (c.days_overdue > 0) return `<span class="late-days">超期 ${c.days_overdue} 个工作日</span>`;
  if (c.remaining_days !== null && c.remaining_days !== undefined) return `剩余 ${c.remaining_days} 个工作日`;
  return "—";
}

function renderLate(w) {
  document.getElementById("late-count").textContent =
    w.late.length < w.late_total ? `共 ${w.late_total} 件，显示最紧急的 ${w.late.length} 件` : `共 ${w.late_total} 件`;
  document.getElementById("late-empty").hidden = w.late.length > 0;
  document.querySelector("#late tbody").innerHTML = w.late.map(c => `<tr class="late-${esc(c.light)}" data-case="${esc(c.case_no)}" data-light="${esc(c.light)}">
    <td>${dot(c.light)}</td><td>${caseLink(c.case_no)}</td><td>${esc(c.item_name || "—")}</td>
    <td>${esc(c.site_name)}</td><td>${esc(windowName(c.window))}</td><td>${esc(c.clerk || "—")}</td>
    <td>${esc(c.department || "—")}</td><td>${esc(c.head || "未登记")}</td>
    <td>${esc(c.due_date || "—")}${c.due_provisional ? '<span class="prov">*</span>' : ""}</td>
    <td>${overdueText(c)}</td>
    <td>${c.reasons_zh.map(r => `<span class="reason${c.light === "yellow" ? " soon" : ""}">${esc(r)}</span>`).join("")}</td></tr>`).join("");
}

function renderLateFollowups(w) {
  const rows = w.late_followups || [];
  document.getElementById("late-followups-section").hidden = rows.length === 0;
  document.getElementById("late-followups-count").textContent = `共 ${rows.length} 件`;
  document.querySelector("#late-followups tbody").innerHTML = rows.map(f => `<tr class="late-red" data-followup="${esc(f.id)}" data-light="red">
    <td>${dot("red")}</td><td><a href="/followups#f${encodeURIComponent(f.id)}">回访件 #${esc(f.id)}</a>${f.case_no ? `<br>${caseLink(f.case_no)}` : ""}</td>
    <td>${esc(f.rating_zh)}</td><td>${esc(f.site_name || "—")}</td><td>${esc(windowName(f.window))}</td>
    <td>${esc(f.department || "未确定")}</td><td>${esc(f.head || "未登记")}</td>
    <td>${esc(f.due_date || "—")}</td><td>${overdueText(f)}</td>
    <td>${f.reasons_zh.map(r => `<span class="reason">${esc(r)}</span>`).join("")}</td></tr>`).join("");
}

let siteLinks = false;  // the site page is for admins and supervisors (hub/access.py)
function siteCell(s) {
  const name = esc(s.name);
  return siteLinks ? `<a href="/site?code=${encodeURIComponent(s.code)}">${name}</a>` : name;
}

function renderSites(w) {
  siteNames = Object.fromEntries(w.sites.map(s => [s.code, s.name]));
  const sel = document.getElementById("f-site");
  if (sel.options.length <= 1) for (const s of w.sites) sel.add(new Option(s.name, s.code));
  document.querySelector("#sites tbody").innerHTML = w.sites.map(s => `<tr data-site="${esc(s.code)}">
    <td>${siteCell(s)}<span class="code">${esc(s.code)}</span></td>
    <td class="${s.online ? "online" : "offline"}">${s.online === undefined ? "—" : (s.online ? "● 在线" : "○ 离线")}</td>
    <td>${s.online === undefined ? "—" : fmt(s.last_seen)}</td>
    <td class="num">${s.green}</td><td class="num">${s.yellow}</td><td class="num">${s.red}</td></tr>`).join("");
  document.querySelector("#departments tbody").innerHTML = w.departments.map(d => `<tr>
    <td>${esc(d.department)}</td><td>${esc(d.head || "未登记")}</td>
    <td class="num">${d.green}</td><td class="num">${d.yellow}</td><td class="num">${d.red}</td></tr>`).join("");
}

async function renderCases() {
  const q = new URLSearchParams({limit: "300", order: "urgency"});
  const light = document.getElementById("f-light").value, site = document.getElementById("f-site").value;
  if (light) q.set("light", light);
  if (site) q.set("site", site);
  if (document.getElementById("f-open").checked) q.set("open", "1");
  const data = await api("/api/cases?" + q);
  document.getElementById("count").textContent = `共 ${data.total} 件`;
  document.querySelector("#cases tbody").innerHTML = data.cases.map(c => `<tr data-case="${esc(c.case_no)}" data-light="${esc(c.light)}">
      <td>${dot(c.light)}</td><td>${caseLink(c.case_no)}</td><td>${esc(c.item_name)}</td><td>${esc(c.department)}</td>
      <td>${esc(c.status_zh)}</td><td>${fmt(c.received_at)}</td>
      <td>${esc(c.due_date || "—")}${c.due_provisional ? '<span class="prov">*</span>' : ""}${
        ["received", "supplement_requested"].includes(c.status) ? ' <span class="muted">受理期限</span>' : ""}</td>
      <td>${esc(c.legal_due_date || "—")}</td><td>${esc(siteName(c.site))}</td></tr>`).join("");
}

// one refresh at a time; changes arriving meanwhile make exactly one more
let busy = false, again = false;
async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  try {
    const w = await api("/api/wall");
    const who = await me();  // (cached) whether site names link to the site page
    siteLinks = !!who && ["admin", "supervisor"].includes(who.role);
    renderSummary(w); renderLate(w); renderLateFollowups(w); renderSites(w);
    await renderCases();
    document.body.dataset.version = String(w.version);
  } catch (e) {
    if (e.message !== "login") setLive(false, "数据刷新失败，稍后重试");
  } finally {
    busy = false;
    if (again) { again = false; refresh(); }
  }
}

function setLive(on, text) {
  live = on;
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = text || (on ? "● 实时" : "○ 实时推送已断开，每 30 秒刷新");
}

let source = null;
function connect() {
  if (source) source.close();
  source = new EventSource("/api/events/wall");
  source.addEventListener("hello", () => { setLive(true); refresh(); });  // also after a reconnect
  source.addEventListener("change", () => refresh());
  source.addEventListener("end", e => {
    source.close(); source = null; setLive(false);
    const why = JSON.parse(e.data || "{}").reason;
    if (why === "shutdown") setTimeout(connect, 5000);
    else location.href = "/login";  // logged out or the session ended
  });
  source.onerror = () => {
    setLive(false);
    // the browser reconnects by itself; a refused stream (401, 429, 503) is closed for good: try later
    if (source && source.readyState === EventSource.CLOSED) { source = null; setTimeout(connect, 60000); }
  };
}

for (const id of ["f-light", "f-site", "f-open"]) document.getElementById(id).addEventListener("change", refresh);
function tick() { document.getElementById("now").textContent = "北京时间 " + cst(Date.now()); }
tick();
setInterval(tick, 1000);
setInterval(() => { if (!live) refresh(); }, FALLBACK_POLL_MS);
refresh();
if (window.EventSource) connect(); else setLive(false);
