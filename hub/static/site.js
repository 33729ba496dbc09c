"use strict";
const code = new URLSearchParams(location.search).get("code");
async function load() {
  const r = await fetch(`/api/sites/${encodeURIComponent(code)}`);
  if (r.status === 401) { location.href = "/login"; return; }
  if (!r.ok) { document.getElementById("health").textContent = "站点不存在"; return; }
  const s = await r.json();
  document.getElementById("title").textContent = `站点 ${code}`;
  const hb = s.heartbeat;
  document.getElementById("health").innerHTML = hb ? [
    `最近心跳 ${esc(cst(hb.at))}`,
    hb.cpu_temp_mc != null ? `CPU ${(hb.cpu_temp_mc / 1000).toFixed(1)}℃` : "",
    hb.load1_x100 != null ? `负载 ${(hb.load1_x100 / 100).toFixed(2)}` : "",
    hb.disk_free_kb != null ? `磁盘剩余 ${(hb.disk_free_kb / 1048576).toFixed(1)} GB` : "",
    hb.mem_available_kb != null ? `内存可用 ${(hb.mem_available_kb / 1024).toFixed(0)} MB` : "",
    `积压 ${esc(hb.backlog ?? "—")}`, `时钟 ${esc(label(CLOCK_ZH, hb.clock, "未知"))}`,
    (hb.problems || []).length ? `<b class="bad">问题：${hb.problems.map(esc).join("；")}</b>` : "运行正常",
  ].filter(Boolean).map(x => `<span>${x}</span>`).join("") : "尚无心跳";
  const devs = Object.entries(hb?.devices || {}).filter(([k]) => !k.startsWith("sign-"));
  document.querySelector("#devices tbody").innerHTML = devs.map(([k, v]) =>
    `<tr data-device="${esc(k)}"><td>${esc(deviceName(k))}</td><td>${esc(deviceState(v))}</td></tr>`).join("");
  const signs = Object.keys(hb?.devices || {}).filter(k => k.startsWith("sign-lines-")).map(k => k.slice(11));
  document.getElementById("signs").innerHTML = signs.map(w =>
    `<p>${esc(w)}号窗口<br><img alt="${esc(w)}号窗口显示屏" src="/api/sites/${encodeURIComponent(code)}/signs/${encodeURIComponent(w)}.png?t=${Date.now()}"></p>`).join("") || "无";
  document.getElementById("votes").innerHTML = s.votes.map(v => `<span>${esc(v.level_name)} ${v.n}</span>`).join("　") +
    `　<span class="muted">误按（已标记，不计入）${s.votes_misuse}</span>`;
  document.querySelector("#events tbody").innerHTML = s.device_events.map(e => `<tr data-event="${esc(e.event)}">
    <td>${esc(cst(e.at))}</td><td>${esc(deviceName("camera-" + e.device))}</td><td>${esc(e.window)}号窗口</td>
    <td>${esc(label(DEVICE_EVENT_ZH, e.event, "其他设备事件"))}</td><td>${e.detail?.unattended_s != null ? esc(e.detail.unattended_s) + " 秒" : ""}</td>
    <td>${e.snapshot ? `<a href="${esc(e.snapshot)}"><img class="snap" src="${esc(e.snapshot)}" alt="抓拍"></a>` : ""}</td></tr>`).join("");
}
load(); setInterval(load, 5000);
