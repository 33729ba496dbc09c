"use strict";
function expand(text) {
  const out = [];
  for (const line of text.split(/\n|,|，/).map(s => s.trim()).filter(Boolean)) {
    const [a, b] = line.split(/~|至/).map(s => s.trim());
    if (!b) { out.push(a); continue; }
    for (let d = new Date(a + "T00:00:00Z"); d <= new Date(b + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1))
      out.push(d.toISOString().slice(0, 10));
  }
  return out;
}
async function load() {
  const r = await fetch("/api/calendar");
  if (r.status === 401) { location.href = "/login"; return; }
  const c = await r.json();
  document.querySelector("#years tbody").innerHTML = c.years.map(y =>
    `<tr><td>${y.year}</td><td>${y.holidays}</td><td>${y.workdays}</td><td>${esc(y.source)}</td></tr>`).join("");
  document.querySelector("#log tbody").innerHTML = c.imports.map(i =>
    `<tr><td>${cst(i.at_ms)}</td><td>${i.version}</td><td>${esc(i.actor)}</td><td>${esc(i.detail)}</td></tr>`).join("");
}
document.getElementById("f").addEventListener("submit", async ev => {
  ev.preventDefault();
  const body = {year: +document.getElementById("year").value, source: document.getElementById("source").value,
                actor: document.getElementById("actor").value,
                holidays: expand(document.getElementById("holidays").value),
                workdays: expand(document.getElementById("workdays").value)};
  const r = await send("/api/calendar", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const res = await r.json();
  document.getElementById("msg").textContent = r.ok ? `已载入 ${res.year} 年（版本 ${res.version}）` : `失败：${res.error}`;
  load();
});
load();
