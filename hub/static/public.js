"use strict";
document.getElementById("f").addEventListener("submit", async ev => {
  ev.preventDefault();
  const no = document.getElementById("case_no").value.trim(), code = document.getElementById("code").value.trim();
  const r = await fetch(`/api/public/cases/${encodeURIComponent(no)}?code=${encodeURIComponent(code)}`);
  const out = document.getElementById("result");
  out.hidden = false;
  const body = await r.json();
  if (!r.ok) { out.innerHTML = `<p>${esc(body.error)}</p>`; return; }
  out.innerHTML = `<h2>${esc(body.item_name)}</h2>
    <p>办件编号：${esc(body.case_no)}　办理部门：${esc(body.department)}</p>
    <p>当前状态：<b>${esc(body.status_zh)}</b>　收件日期：${esc(body.received_on)}
       　承诺办结日期：${esc(body.due_date || "—")}${body.due_provisional ? "（暂定）" : ""}</p>
    <table><thead><tr><th>时间</th><th>环节</th></tr></thead><tbody>
    ${body.events.map(e => `<tr><td>${esc(cst(e.at).slice(0, 16))}</td><td>${esc(e.type_zh)}</td></tr>`).join("")}
    </tbody></table>`;
});
// the receipt's QR code opens /public?case_no=…&code=…: fill the form and look the case up at once
{
  const q = new URLSearchParams(location.search), no = q.get("case_no"), code = q.get("code");
  if (no) document.getElementById("case_no").value = no.slice(0, 64);
  if (code) document.getElementById("code").value = code.slice(0, 32);
  if (no && code) document.getElementById("f").requestSubmit();
}
