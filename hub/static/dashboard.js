"use strict";
// needs common.js (esc, cst, label tables)

async function api(path) {
  const r = await fetch(path, {credentials: "same-origin"});
  if (r.status === 401) { location.href = "/login"; throw new Error("login"); }
  if (!r.ok) throw new Error(path + " " + r.status);
  return r.json();
}
function dot(light) { return `<span class="light ${esc(light)}" title="${esc(label(LIGHT_ZH, light, "未知"))}"></span>`; }
function fmt(ts) { return esc(cst(ts)); }

async function refresh() {
  document.getElementById("now").textContent = cst(Date.now());
  const sites = await api("/api/sites");
  const sel = document.getElementById("f-site");
  if (sel.options.length <= 1) for (const s of sites) sel.add(new Option(`${s.code} ${s.name}`, s.code));
  let g = 0, y = 0, r = 0, online = 0;
  document.querySelector("#sites tbody").innerHTML = sites.map(s => {
    const c = s.open_cases || {};
    g += c.green || 0; y += c.yellow || 0; r += c.red || 0; if (s.online) online++;
    return `<tr><td><a href="/site?code=${encodeURIComponent(s.code)}">${esc(s.code)}</a></td><td>${esc(s.name)}</td>
      <td class="${s.online ? "online" : "offline"}">${s.revoked ? "已吊销" : (s.online ? "● 在线" : "○ 离线")}</td>
      <td>${fmt(s.last_seen)}</td><td>${s.acked_seq}</td><td>${s.backlog}</td>
      <td>${esc(s.clock_zh || label(CLOCK_ZH, s.clock, "未知"))}</td>
      <td>${c.green || 0} / ${c.yellow || 0} / ${c.red || 0}</td></tr>`;
  }).join("");
  document.getElementById("summary").innerHTML =
    `<span>站点在线 ${online}/${sites.length}</span><span>${dot("green")} 绿灯 ${g}</span>` +
    `<span>${dot("yellow")} 黄牌 ${y}</span><span>${dot("red")} 红牌 ${r}</span>`;
  const q = new URLSearchParams({limit: "300", order: "urgency"});
  const light = document.getElementById("f-light").value, site = sel.value;
  if (light) q.set("light", light);
  if (site) q.set("site", site);
  if (document.getElementById("f-open").checked) q.set("open", "1");
  const data = await api("/api/cases?" + q);
  document.getElementById("count").textContent = `共 ${data.total} 件`;
  document.querySelector("#cases tbody").innerHTML = data.cases.map(c => `<tr data-case="${esc(c.case_no)}" data-light="${esc(c.light)}">
      <td>${dot(c.light)}</td><td>${esc(c.case_no)}</td><td>${esc(c.item_name)}</td><td>${esc(c.department)}</td>
      <td>${esc(c.status_zh)}</td><td>${fmt(c.received_at)}</td>
      <td>${esc(c.due_date || "—")}${c.due_provisional ? '<span class="prov">*</span>' : ""}${
        ["received", "supplement_requested"].includes(c.status) ? ' <span class="muted">受理期限</span>' : ""}</td>
      <td>${esc(c.legal_due_date || "—")}</td><td>${esc(c.site)}</td></tr>`).join("");
}
for (const id of ["f-light", "f-site", "f-open"]) document.getElementById(id).addEventListener("change", refresh);
refresh();
setInterval(refresh, 3000);
