"use strict";
// Shared by the hub's pages: escaping, China time, and Chinese labels for every code the pages
// show (people read labels, never codes; an unknown code still gets a Chinese label).
function esc(s) { return String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c])); }

const TZ = "Asia/Shanghai";
// An ISO time (any offset) or epoch ms, shown in China time: 2026-09-29 10:30:00
function cst(t) {
  if (t === null || t === undefined || t === "") return "—";
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  const p = Object.fromEntries(new Intl.DateTimeFormat("zh-CN", {timeZone: TZ, hourCycle: "h23", year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"})
    .formatToParts(d).map(x => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

const LIGHT_ZH = {green: "绿灯", yellow: "黄牌", red: "红牌"};
const CLOCK_ZH = {ntp: "NTP 同步", hub: "按中心校时", untrusted: "不可信", unknown: "未知"};
const DEVICE_EVENT_ZH = {window_unattended: "窗口无人", window_attended: "人员返岗"};
const DEVICE_STATE_ZH = {ok: "正常", offline: "离线", "no driver": "无驱动程序", unknown: "未知"};
const MISUSE_ZH = {disarmed: "未办结时按键", repeat: "重复评价", burst: "连续乱按"};
const TICKET_ACTION_ZH = {open: "立案督办", reply: "部门回复", accept: "采纳回复", reject: "不予采纳",
                          no_reply: "逾期未回复", escalate: "升级督办"};

function label(table, code, other) { return table[code] ?? other ?? "其他"; }
// Device names in a box's heartbeat: keypad-1, camera-win1, sign, lamps, cameras, hall, ...
function deviceName(key) {
  const fixed = {sign: "显示屏", lamps: "窗口信号灯", cameras: "摄像机", hall: "大厅设备", keypads: "评价器"};
  if (fixed[key]) return fixed[key];
  let m;
  if ((m = /^keypad-(.+)$/.exec(key))) return `${m[1]}号窗口评价器`;
  if ((m = /^lamp-(.+)$/.exec(key))) return `${m[1]}号窗口信号灯`;
  if ((m = /^camera-(.+)$/.exec(key))) return `摄像机 ${m[1]}`;
  return `设备 ${key}`;
}
function deviceState(state) {
  const s = String(state ?? "unknown");
  if (s.startsWith("error:")) return `故障：${s.slice(6).trim()}`;
  return label(DEVICE_STATE_ZH, s, "状态异常");
}

// The logged-in account (GET /api/me): its CSRF token goes with every change our pages send
// (header X-CSRF-Token), and the header shows who is logged in with a logout button.
let ME = null;
async function me() {
  if (ME) return ME;
  const r = await fetch("/api/me", {credentials: "same-origin"});
  if (!r.ok) return null;
  ME = await r.json();
  return ME;
}
// fetch() for changes (POST, DELETE): the session's CSRF token added
async function send(path, opts) {
  const who = await me();
  const headers = Object.assign({}, (opts && opts.headers) || {}, who && who.csrf ? {"X-CSRF-Token": who.csrf} : {});
  return fetch(path, Object.assign({credentials: "same-origin"}, opts || {}, {headers}));
}
async function showAccount() {
  const nav = document.querySelector("header nav");
  if (!nav || location.pathname === "/public") return;
  const who = await me();
  if (!who || !who.session) return;
  const span = document.createElement("span");
  span.id = "account";
  span.textContent = ` ${who.login}（${who.role_zh}${who.scope ? "，" + who.scope : ""}） `;
  const b = document.createElement("button");
  b.id = "logout";
  b.textContent = "退出";
  b.addEventListener("click", async () => { await send("/logout", {method: "POST"}); location.href = "/login"; });
  span.appendChild(b);
  nav.appendChild(span);
}
showAccount();
