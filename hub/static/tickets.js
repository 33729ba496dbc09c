"use strict";
async function load() {
  const st = document.getElementById("f-status").value;
  const r = await fetch("/api/tickets" + (st ? "?status=" + encodeURIComponent(st) : ""));
  if (r.status === 401) { location.href = "/login"; return; }
  const ts = await r.json();
  document.querySelector("#t tbody").innerHTML = ts.map(t => `<tr data-ticket="${t.id}" data-status="${esc(t.status)}">
    <td>${t.id}</td><td>${esc(t.case_no)}</td><td>${esc(t.department)}</td><td>${esc(t.title)}</td>
    <td>${esc(t.status_zh)}</td><td>${esc(t.reply_due)}</td><td>${esc(t.reason)}</td>
    <td>${t.documents.map(d => d.document_id ? `<a href="/api/documents/${d.document_id}.pdf">${esc(d.title)}</a>` : esc(d.title) + "（生成中）").join(" ")}</td>
    <td class="btn-row">${t.status === "replied" ? `<button data-review="accept" data-id="${t.id}">采纳</button><button data-review="reject" data-id="${t.id}">不予采纳</button>` : ""}
        <button data-show="${t.id}">详情</button></td></tr>`).join("");
}
async function review(id, decision) {
  const text = prompt(decision === "accept" ? "审核意见（采纳）" : "不予采纳的理由") ?? "";
  const r = await send(`/api/tickets/${id}/review`, {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({decision, actor: "监察员", text})});
  if (!r.ok) alert((await r.json()).error);
  load(); show(id);
}
async function show(id) {
  const t = await (await fetch(`/api/tickets/${id}`)).json();
  const d = document.getElementById("detail");
  d.hidden = false;
  d.innerHTML = `<h2>${esc(t.title)} · ${esc(t.case_no)}</h2><table><thead><tr><th>时间</th><th>操作人</th><th>动作</th><th>内容</th></tr></thead><tbody>
    ${t.events.map(e => `<tr><td>${cst(e.at_ms)}</td><td>${esc(e.actor)}</td><td>${esc(label(TICKET_ACTION_ZH, e.action, "其他"))}</td><td>${esc(e.text)}</td></tr>`).join("")}
    </tbody></table>`;
}
document.querySelector("#t tbody").addEventListener("click", ev => {   // no inline handlers (CSP)
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.review) review(+b.dataset.id, b.dataset.review);
  else if (b.dataset.show) show(+b.dataset.show);
});
document.getElementById("f-status").addEventListener("change", load);
load(); setInterval(load, 5000);
