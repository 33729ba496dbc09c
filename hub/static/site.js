"use strict";
// The site page: name, health in Chinese, devices, votes (评价) by window and staff over a
// period, signs and window attendance. Needs common.js. Dates and times are China time.
const code = new URLSearchParams(location.search).get("code") || "";
const LEVELS = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"];

function windowName(w) { return w ? (/窗口$/.test(w) ? w : w + "号窗口") : "未登记窗口"; }
function kv(name, value, cls) { return `<div><span>${esc(name)}</span><b class="${cls || ""}">${value}</b></div>`; }
function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%"; }

async function load() {
  const r = await fetch(`/api/sites/${encodeURIComponent(code)}`, {credentials: "same-origin"});
  if (r.status === 401) { location.href = "/login"; return; }
  if (!r.ok) {
    document.getElementById("health").textContent =
      r.status === 403 ? "您的角色无权查看站点详情" : "站点不存在，或不在您的管辖范围内";
    return;
  }
  const s = await r.json();
  document.title = `${s.name} — 电子监察平台`;
  document.getElementById("title").textContent = s.name;
  document.getElementById("code").textContent = `站点编码 ${s.code}`;
  const hb = s.heartbeat;
  const items = [
    kv("连接状态", s.revoked ? "已吊销" : (s.online ? "● 在线" : "○ 离线"), s.online ? "online" : "offline"),
    kv("最后联系", esc(cst(s.last_seen))),
    kv("时钟", esc(label(CLOCK_ZH, s.clock, "未知"))),
    kv("待同步记录", esc(s.backlog)),
    kv("已确认记录序号", esc(s.acked_seq)),
    kv("软件版本", esc(s.software || "—")),
    kv("记录链断裂", esc(s.chain_breaks), s.chain_breaks ? "bad" : ""),
  ];
  if (hb) {
    items.push(kv("最近心跳", esc(cst(hb.at))));
    if (hb.cpu_temp_mc != null) items.push(kv("CPU 温度", `${(hb.cpu_temp_mc / 1000).toFixed(1)} ℃`));
    if (hb.load1_x100 != null) items.push(kv("系统负载", (hb.load1_x100 / 100).toFixed(2)));
    if (hb.disk_free_kb != null) items.push(kv("磁盘剩余", `${(hb.disk_free_kb / 1048576).toFixed(1)} GB` +
      (hb.disk_total_kb ? ` / ${(hb.disk_total_kb / 1048576).toFixed(1)} GB` : "")));
    if (hb.mem_available_kb != null) items.push(kv("内存可用", `${(hb.mem_available_kb / 1024).toFixed(0)} MB`));
    items.push(kv("运行状况", (hb.problems || []).length ? `问题：${hb.problems.map(esc).join("；")}` : "运行正常",
      (hb.problems || []).length ? "bad" : "online"));
  } else {
    items.push(kv("最近心跳", "尚无心跳"));
  }
  document.getElementById("health").innerHTML = items.join("");
  const devs = Object.entries(hb?.devices || {}).filter(([k]) => !k.startsWith("sign-"));
  document.getElementById("devices-none").hidden = devs.length > 0;
  document.querySelector("#devices tbody").innerHTML = devs.map(([k, v]) =>
    `<tr data-device="${esc(k)}"><td>${esc(deviceName(k))}</td><td>${esc(deviceState(v))}</td></tr>`).join("");
  const signs = Object.keys(hb?.devices || {}).filter(k => k.startsWith("sign-lines-")).map(k => k.slice(11));
  document.getElementById("signs").innerHTML = signs.map(w =>
    `<p>${esc(windowName(w))}<br><img alt="${esc(windowName(w))}显示屏" src="/api/sites/${encodeURIComponent(code)}/signs/${encodeURIComponent(w)}.png?t=${Date.now()}"></p>`).join("") || "无";
  document.querySelector("#events tbody").innerHTML = s.device_events.map(e => `<tr data-event="${esc(e.event)}">
    <td>${esc(cst(e.at))}</td><td>${esc(deviceName("camera-" + e.device))}</td><td>${esc(windowName(e.window))}</td>
    <td>${esc(label(DEVICE_EVENT_ZH, e.event, "其他设备事件"))}</td><td>${e.detail?.unattended_s != null ? esc(e.detail.unattended_s) + " 秒" : ""}</td>
    <td>${e.snapshot ? `<a href="${esc(e.snapshot)}"><img class="snap" src="${esc(e.snapshot)}" alt="抓拍"></a>` : ""}</td></tr>`).join("");
}

function levelCells(v) { return v.levels.map(n => `<td class="num">${n}</td>`).join("") +
  `<td class="num">${v.total}</td><td class="num">${pct(v.satisfaction)}</td>`; }

async function loadVotes(first) {
  // the first time without dates: the hub's default period (the last 30 days by the hub's clock)
  const q = first ? new URLSearchParams() :
    new URLSearchParams({from: document.getElementById("from").value, to: document.getElementById("to").value});
  const r = await fetch(`/api/sites/${encodeURIComponent(code)}/votes?${q}`, {credentials: "same-origin"});
  const note = document.getElementById("votes-note");
  if (r.status === 401) { location.href = "/login"; return; }
  const v = await r.json();
  if (!r.ok) { note.textContent = v.error || "查询失败"; note.className = "bad"; return; }
  note.className = "muted";
  document.getElementById("from").value = v.from;
  document.getElementById("to").value = v.to;
  note.textContent = `${v.from} 至 ${v.to}，有效评价 ${v.total.total} 条，误按等已标记 ${v.misuse} 条、经申诉复核认定误评或恶意差评 ${v.marked ?? 0} 条（均不计入）`;
  document.getElementById("votes-total").innerHTML =
    LEVELS.map((name, i) => `<div class="tile"><span>${name}</span><b>${v.total.levels[i]}</b></div>`).join("") +
    `<div class="tile green"><span>满意率</span><b id="satisfaction">${pct(v.total.satisfaction)}</b></div>`;
  // keypad (评价器) and portal (网上评价) apart, then both together (hub/votes.py by_channel)
  document.querySelector("#by-channel tbody").innerHTML = (v.by_channel || []).map(c =>
    `<tr data-channel="${esc(c.channel)}"><td>${esc(c.channel_zh)}</td>${levelCells(c)}</tr>`).join("") +
    `<tr class="sum" data-channel="all"><td><b>合计</b></td>${levelCells(v.total)}</tr>`;
  document.querySelector("#by-window tbody").innerHTML = v.by_window.map(w =>
    `<tr><td>${esc(windowName(w.window))}</td>${levelCells(w)}<td class="num">${w.portal ?? 0}</td></tr>`).join("") ||
    `<tr><td colspan="9" class="muted">该期间没有评价</td></tr>`;
  document.querySelector("#by-staff tbody").innerHTML = v.by_staff.map(s =>
    `<tr><td>${esc(s.staff || "未登记")}</td><td>${esc(windowName(s.window))}</td>${levelCells(s)}<td class="num">${s.portal ?? 0}</td></tr>`).join("") ||
    `<tr><td colspan="10" class="muted">该期间没有评价</td></tr>`;
}

document.getElementById("period").addEventListener("submit", e => { e.preventDefault(); loadVotes(false); });
load(); loadVotes(true); setInterval(load, 10000);
