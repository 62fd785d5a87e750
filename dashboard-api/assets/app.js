// The dashboard's pages: the operators' console, the ward unit's work list and the citizen's
// status page. Plain browser JavaScript, no library; every text from the server is put in the
// page as text, never as markup.
"use strict";

const ZONE = document.querySelector('meta[name="ioc-time-zone"]')?.content || "Asia/Ho_Chi_Minh";
const STATUSES = ["new", "verified", "unassigned", "assigned", "acknowledged", "in_progress",
  "resolved", "reopened", "closed", "duplicate", "cancelled"];
const PRIORITIES = ["low", "normal", "high", "urgent"];

const TEXT = {
  vi: {
    "lang.switch": "English", "signout": "Đăng xuất", "signin.title": "Đăng nhập",
    "signin.token": "Mã truy cập", "signin.go": "Đăng nhập", "signin.bad": "Mã truy cập không đúng.",
    "console.title": "Bàn điều hành IOC", "ward.title": "Việc của đơn vị", "citizen.title": "Phản ánh của bạn",
    "tab.queue": "Hàng đợi", "tab.figures": "Số liệu", "tab.violations": "Vi phạm", "any": "Tất cả",
    "v.counts": "Ghi nhận vi phạm theo phường/xã và camera", "v.latest": "Ghi nhận mới nhất", "v.camera": "Camera",
    "v.type": "Loại", "v.count": "Số lần", "v.last": "Gần nhất", "v.plate": "Biển số", "v.hidden": "(không có quyền xem)",
    "v.lane": "Làn", "v.confidence": "Độ tin cậy", "v.none": "Chưa có ghi nhận vi phạm.",
    "f.ward": "Phường/xã", "f.category": "Lĩnh vực", "f.status": "Trạng thái", "f.source": "Nguồn",
    "f.since": "Từ", "f.until": "Đến", "f.clear": "Xoá lọc",
    "source.report": "Người dân", "source.camera": "Camera",
    "queue.title": "Hàng đợi", "queue.order": "Mới và chưa giao trước, rồi quá hạn, rồi còn lại.",
    "queue.empty": "Không có sự việc nào khớp bộ lọc.",
    "col.incident": "Sự việc", "col.status": "Trạng thái", "col.ward": "Phường/xã", "col.when": "Thời điểm", "col.due": "Hạn xử lý",
    "detail.none": "Chọn một sự việc trong hàng đợi.", "detail.where": "Vị trí", "detail.photos": "Ảnh",
    "detail.history": "Lịch sử xử lý", "detail.clocks": "Thời hạn", "detail.ack_due": "Hạn tiếp nhận",
    "detail.sla_due": "Hạn giải quyết", "detail.overdue": "quá hạn", "detail.left": "còn",
    "detail.escalations": "Đã quá hạn", "detail.result": "Kết quả", "detail.unit": "Đơn vị",
    "detail.actions": "Thao tác", "detail.camera": "Camera", "detail.address": "Địa chỉ",
    "detail.nearby": "Có thể trùng lặp", "detail.no_nearby": "Không có sự việc đang mở nào gần đây", "a.same_as": "Trùng với sự việc này",
    "detail.seen": "Ghi nhận", "detail.detections": "lần phát hiện", "detail.peak": "độ tin cậy cao nhất", "detail.ongoing": "đang diễn ra", "detail.over": "đã kết thúc",
    "no.ward": "chưa giao",
    "a.verify": "Xác minh", "a.assign": "Giao / chuyển", "a.merge": "Gộp vào", "a.split": "Tách khỏi sự việc gốc", "detail.duplicate_of": "Trùng với", "a.cancel": "Huỷ", "a.close": "Đóng",
    "a.acknowledge": "Tiếp nhận", "a.start": "Bắt đầu xử lý", "a.resolve": "Báo kết quả", "a.reject": "Trả lại",
    "a.priority": "Mức ưu tiên", "a.ward": "Phường/xã", "a.of": "Mã sự việc gốc", "a.reason": "Lý do",
    "a.result": "Kết quả xử lý", "a.photos": "Liên kết ảnh (mỗi dòng một)", "a.belongs": "Thuộc phường/xã (nếu biết)",
    "a.done": "Đã lưu.", "a.refused": "Không thực hiện được:",
    "p.low": "thấp", "p.normal": "bình thường", "p.high": "cao", "p.urgent": "khẩn",
    "fig.month": "Tháng", "fig.show": "Xem", "fig.csv": "Tải CSV",
    "fig.ward": "Phường/xã", "fig.category": "Lĩnh vực", "fig.unit": "Đơn vị xử lý", "fig.verified": "Đã xác minh",
    "fig.confirmed": "Người dân đồng ý", "fig.received": "Tiếp nhận", "fig.open": "Đang mở",
    "fig.resolved": "Đã xử lý", "fig.on_time": "Đúng hạn", "fig.ack_on_time": "Tiếp nhận đúng hạn",
    "fig.overdue": "Quá hạn", "fig.escalations": "Cảnh báo", "fig.rejected": "Bị trả lại", "fig.rerouted": "Chuyển lại",
    "fig.reopened": "Mở lại (khiếu nại)", "fig.duplicates": "Trùng", "fig.cancelled": "Huỷ", "fig.total": "Tổng",
    "ward.none": "Không có việc đang mở.", "ward.count": "việc đang mở, hạn sớm nhất trước.", "ward.due": "Hạn",
    "c.status": "Trạng thái", "c.submitted": "Gửi lúc", "c.expected": "Dự kiến xong", "c.ward": "Phường/xã",
    "c.result": "Kết quả", "c.timeline": "Tiến trình", "c.confirm": "Tôi đồng ý với kết quả",
    "c.dispute": "Chưa được giải quyết", "c.reason": "Vì sao chưa được giải quyết?", "c.thanks": "Cảm ơn bạn.",
    "c.merged": "Phản ánh này được gộp vào một phản ánh khác cùng nội dung:", "c.notfound": "Không tìm thấy phản ánh với mã này.",
    "s.new": "mới", "s.verified": "đã xác minh", "s.unassigned": "chờ phân loại", "s.assigned": "đã giao",
    "s.acknowledged": "đã tiếp nhận", "s.in_progress": "đang xử lý", "s.resolved": "đã có kết quả",
    "s.reopened": "mở lại", "s.closed": "đã đóng", "s.duplicate": "trùng", "s.cancelled": "đã huỷ",
  },
  en: {
    "lang.switch": "Tiếng Việt", "signout": "Sign out", "signin.title": "Sign in",
    "signin.token": "Access token", "signin.go": "Sign in", "signin.bad": "That token is not valid.",
    "console.title": "IOC operators' console", "ward.title": "Our unit's work", "citizen.title": "Your report",
    "tab.queue": "Queue", "tab.figures": "Figures", "tab.violations": "Violations", "any": "Any",
    "v.counts": "Enforcement records by ward and camera", "v.latest": "Latest records", "v.camera": "Camera",
    "v.type": "Type", "v.count": "Count", "v.last": "Latest", "v.plate": "Plate", "v.hidden": "(not yours to see)",
    "v.lane": "Lane", "v.confidence": "Confidence", "v.none": "No enforcement records yet.",
    "f.ward": "Ward", "f.category": "Category", "f.status": "Status", "f.source": "Source",
    "f.since": "From", "f.until": "To", "f.clear": "Clear filters",
    "source.report": "Citizen", "source.camera": "Camera",
    "queue.title": "Queue", "queue.order": "New and unassigned first, then overdue, then the rest.",
    "queue.empty": "No incident matches the filters.",
    "col.incident": "Incident", "col.status": "Status", "col.ward": "Ward", "col.when": "When", "col.due": "Due",
    "detail.none": "Pick an incident in the queue.", "detail.where": "Where", "detail.photos": "Photos",
    "detail.history": "History", "detail.clocks": "Service levels", "detail.ack_due": "Acknowledge by",
    "detail.sla_due": "Resolve by", "detail.overdue": "overdue", "detail.left": "left",
    "detail.escalations": "Missed targets", "detail.result": "Result", "detail.unit": "Unit",
    "detail.actions": "Actions", "detail.camera": "Camera", "detail.address": "Address",
    "detail.nearby": "Possible duplicates", "detail.no_nearby": "No open incident nearby", "a.same_as": "Same as this one",
    "detail.seen": "Seen", "detail.detections": "detections", "detail.peak": "peak confidence", "detail.ongoing": "ongoing", "detail.over": "over",
    "no.ward": "unassigned",
    "a.verify": "Verify", "a.assign": "Assign / re-route", "a.merge": "Merge into", "a.split": "Split from the original", "detail.duplicate_of": "Duplicate of", "a.cancel": "Cancel", "a.close": "Close",
    "a.acknowledge": "Acknowledge", "a.start": "Start work", "a.resolve": "Resolve", "a.reject": "Reject",
    "a.priority": "Priority", "a.ward": "Ward", "a.of": "Original incident id", "a.reason": "Reason",
    "a.result": "Result", "a.photos": "Photo links (one per line)", "a.belongs": "Belongs to ward (if known)",
    "a.done": "Saved.", "a.refused": "Not done:",
    "p.low": "low", "p.normal": "normal", "p.high": "high", "p.urgent": "urgent",
    "fig.month": "Month", "fig.show": "Show", "fig.csv": "Download CSV",
    "fig.ward": "Ward", "fig.category": "Category", "fig.unit": "Handling unit", "fig.verified": "Verified",
    "fig.confirmed": "Confirmed by citizens", "fig.received": "Received", "fig.open": "Open",
    "fig.resolved": "Resolved", "fig.on_time": "On time", "fig.ack_on_time": "Acknowledged on time",
    "fig.overdue": "Overdue", "fig.escalations": "Escalations", "fig.rejected": "Rejected", "fig.rerouted": "Rerouted",
    "fig.reopened": "Reopened (disputes)", "fig.duplicates": "Duplicates", "fig.cancelled": "Cancelled", "fig.total": "Total",
    "ward.none": "No open work.", "ward.count": "open, earliest due first.", "ward.due": "Due",
    "c.status": "Status", "c.submitted": "Sent", "c.expected": "Expected by", "c.ward": "Ward",
    "c.result": "Result", "c.timeline": "Progress", "c.confirm": "I accept the result",
    "c.dispute": "Not solved", "c.reason": "Why is it not solved?", "c.thanks": "Thank you.",
    "c.merged": "This report was merged into another one about the same thing:", "c.notfound": "No report has this tracking id.",
    "s.new": "new", "s.verified": "verified", "s.unassigned": "awaiting triage", "s.assigned": "assigned",
    "s.acknowledged": "acknowledged", "s.in_progress": "in progress", "s.resolved": "resolved",
    "s.reopened": "reopened", "s.closed": "closed", "s.duplicate": "duplicate", "s.cancelled": "cancelled",
  },
};

let lang = localStorage.getItem("ioc-lang") === "en" ? "en" : "vi";
const t = (key) => TEXT[lang][key] ?? TEXT.vi[key] ?? key;

function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
}

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

// Whether a camera situation is still going on: not ended by its source, and its gap not passed.
function situationActive(sit) {
  return !sit.ended && Date.now() <= Date.parse(sit.last_seen) + sit.gap_seconds * 1000;
}

function when(ts) {
  if (!ts) return "–";
  return new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: ZONE, dateStyle: "short", timeStyle: "short",
  }).format(new Date(ts));
}

/** The instant the city's clocks show midnight on the first of a month (`month` from 0; 12 is
 * January of the next year). */
function zoneMidnight(year, month) {
  const guess = Date.UTC(year, month, 1);
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: ZONE, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  }).formatToParts(new Date(guess)).map((p) => [p.type, Number(p.value)]));
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return new Date(guess - (wall - guess));
}

function span(seconds) {
  const s = Math.abs(Math.round(seconds));
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : `${m}m`;
}

/** An incident as the API sends it, with the lists it leaves out when empty filled in. */
function full(i) {
  for (const k of ["escalations", "media_urls", "history", "merged"]) i[k] = i[k] || [];
  if (i.resolution) i.resolution.photo_urls = i.resolution.photo_urls || [];
  return i;
}

function status(s) { return h("span", { class: `badge ${s}`, text: t(`s.${s}`) }); }

// ---- The token: kept in this tab's session storage, never in the address bar. ----

function token() { return sessionStorage.getItem("ioc-token") || ""; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data?.error?.message || `HTTP ${resp.status}`);
  return data;
}

/** Shows the sign-in form until a token the server accepts is given; then runs `start`. */
function signedIn(start) {
  const form = document.getElementById("signin");
  const app = document.getElementById("app");
  const out = document.getElementById("signout");
  // A link of the form …#token=… (as `ioc demo` prints) signs in once, and the token leaves the
  // address bar at once.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("ioc-token", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  out.addEventListener("click", () => {
    sessionStorage.removeItem("ioc-token");
    location.reload();
  });
  const open = async () => {
    try {
      await start();
      form.hidden = true; app.hidden = false; out.hidden = false;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        sessionStorage.removeItem("ioc-token");
        form.hidden = false; app.hidden = true;
        document.getElementById("signin-error").textContent = token() ? t("signin.bad") : "";
        document.getElementById("token").focus();
      } else {
        throw e;
      }
    }
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const given = document.getElementById("token").value.trim();
    sessionStorage.setItem("ioc-token", given);
    document.getElementById("token").value = "";
    await open();
    if (!token()) document.getElementById("signin-error").textContent = t("signin.bad");
  });
  if (token()) open(); else { form.hidden = false; document.getElementById("token").focus(); }
}

/** A live stream of incident changes (EventSource cannot send headers; the streams alone take
 *  the token in their query). `reload` reads the page's lists again: once the stream is open
 *  (so nothing falls between the first reading and the stream), after the browser opened it
 *  anew following a break, and when the stream says the page fell behind. */
function live(onIncident, reload) {
  const source = new EventSource(`/v1/stream?access_token=${encodeURIComponent(token())}`);
  source.addEventListener("incident", (ev) => onIncident(JSON.parse(ev.data)));
  // A failed reading is left to the next opening (the stream itself shows the changes).
  const again = () => Promise.resolve().then(reload).catch(() => null);
  source.addEventListener("open", again);
  source.addEventListener("lagged", again);
  return source;
}

function refusal(e) { return `${t("a.refused")} ${e.message}`; }

/** Runs `render`, which rebuilds what is inside `box`, without taking from the user what they
 *  were doing there: text typed into a form, a changed picker, an opened <details>, the focus.
 *  A live update must not empty the form an operator is filling in. Fields are matched by the
 *  card they sit in (`data-id`), their form's label and their name. */
function keepingInput(box, render) {
  const key = (el) => [el.closest("[data-id]")?.dataset.id, el.closest("form")?.getAttribute("aria-label"),
    el.name || el.querySelector?.("summary")?.textContent].join("|");
  const changed = (el) => (el.tagName === "SELECT"
    ? [...el.options].some((o) => o.selected !== o.defaultSelected) : el.value !== el.defaultValue);
  const typed = new Map();
  for (const el of box.querySelectorAll("input[name], textarea[name], select[name]")) if (changed(el)) typed.set(key(el), el.value);
  const open = new Set([...box.querySelectorAll("details[open]")].map(key));
  const focused = box.contains(document.activeElement) && document.activeElement.name ? key(document.activeElement) : null;
  render();
  for (const el of box.querySelectorAll("input[name], textarea[name], select[name]")) {
    const k = key(el);
    if (typed.has(k)) el.value = typed.get(k);
    if (k === focused) el.focus();
  }
  for (const d of box.querySelectorAll("details")) if (open.has(key(d))) d.open = true;
}

/** Makes `nodes` the children of `box`, in order, moving only what is out of place: a node
 *  already where it belongs is not touched (a click on it, or the focus in it, survives). */
function place(box, nodes) {
  nodes.forEach((n, k) => { if (box.children[k] !== n) box.insertBefore(n, box.children[k] || null); });
  while (box.children.length > nodes.length) box.lastElementChild.remove();
}

// ---- Wards (for pickers and maps) ----

/** A name without diacritics, in lower case: "Phường Sài Gòn" and "phuong sai gon" fold alike. */
function fold(s) {
  return (s || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/[đĐ]/g, "d")
    .toLowerCase().replace(/\s+/g, " ").trim();
}

let wards = null;
async function loadWards() {
  if (!wards) {
    const fc = await api("/v1/wards");
    wards = new Map(fc.features.map((f) => [f.properties.id, f]));
    const list = document.getElementById("ward-list");
    if (list) {
      // The label carries the name without diacritics too, so typing "sai gon" suggests "Sài Gòn".
      list.replaceChildren(...[...wards.values()].map((f) => {
        const { id, name } = f.properties;
        const bare = fold(name) === name.toLowerCase() ? "" : ` · ${fold(name)}`;
        return h("option", { value: id, label: `${name} (${id})${bare}` });
      }));
    }
  }
  return wards;
}

/** The ward id a picker's text names: an id as it is, else the ward whose name is the text, else
 *  the one ward whose name contains it, all without diacritics ("phuong sai gon" → the id of
 *  "Phường Sài Gòn"). Anything else is left as typed, for the server to refuse with its reason. */
function wardId(text) {
  const v = (text || "").trim();
  if (!v || v === "unassigned" || !wards || wards.has(v)) return v;
  const all = [...wards.values()];
  const exact = all.filter((f) => fold(f.properties.name) === fold(v));
  const hits = exact.length ? exact : all.filter((f) => fold(f.properties.name).includes(fold(v)));
  return hits.length === 1 ? hits[0].properties.id : v;
}

function wardName(ref) { return ref ? `${ref.name} (${ref.id})` : t("no.ward"); }

/** The ward's outline with the incident's position, drawn in SVG (no tiles needed). */
function wardMap(incident) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "wardmap");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${t("detail.where")}: ${incident.location.lat.toFixed(5)}, ${incident.location.lon.toFixed(5)}`);
  const feature = incident.ward && wards?.get(incident.ward.id);
  const rings = feature ? feature.geometry.coordinates.flat() : [];
  const pts = rings.flat().concat([[incident.location.lon, incident.location.lat]]);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const [minx, maxx, miny, maxy] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const k = Math.cos(((miny + maxy) / 2) * Math.PI / 180);
  const w = Math.max((maxx - minx) * k, 1e-4), hgt = Math.max(maxy - miny, 1e-4);
  const scale = Math.min(400 / w, 220 / hgt);
  const proj = ([x, y]) => [10 + (x - minx) * k * scale, 230 - (y - miny) * scale];
  svg.setAttribute("viewBox", "0 0 420 240");
  if (rings.length) {
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", rings.map((r) => "M" + r.map((c) => proj(c).map((v) => v.toFixed(1)).join(",")).join("L") + "Z").join(""));
    path.setAttribute("fill-rule", "evenodd");
    svg.append(path);
  }
  const [cx, cy] = proj([incident.location.lon, incident.location.lat]);
  const dot = document.createElementNS(NS, "circle");
  dot.setAttribute("cx", cx.toFixed(1)); dot.setAttribute("cy", cy.toFixed(1)); dot.setAttribute("r", "6");
  svg.append(dot);
  return svg;
}

// ---- The operators' console ----

function consolePage() {
  const incidents = new Map();
  const filters = document.getElementById("filters");
  let selected = new URLSearchParams(location.search).get("incident");
  let categories = new Set();

  const q = () => Object.fromEntries(new FormData(filters).entries());
  const toIso = (local) => (local ? new Date(local).toISOString() : "");

  function matches(i) {
    const f = q();
    const ward = wardId(f.ward);
    if (ward && (ward === "unassigned" ? i.ward : i.ward?.id !== ward)) return false;
    if (f.category && i.category !== f.category) return false;
    if (f.status && i.status !== f.status) return false;
    if (f.source && i.source.kind !== f.source) return false;
    if (f.since && new Date(i.occurred_at) < new Date(f.since)) return false;
    if (f.until && new Date(i.occurred_at) >= new Date(f.until)) return false;
    return true;
  }

  const overdue = (i) => i.escalations.length > 0 ||
    (!["resolved", "closed", "cancelled", "duplicate"].includes(i.status) && new Date(i.sla_due_at) < new Date());
  const rank = (i) => (["new", "verified", "unassigned", "reopened"].includes(i.status) || !i.ward ? 0 : overdue(i) ? 1 : 2);

  const drawnRows = new Map(); // incident id → { key: what the row shows, el: the row }

  function renderQueue() {
    const rows = [...incidents.values()].filter(matches)
      .sort((a, b) => rank(a) - rank(b) || new Date(b.occurred_at) - new Date(a.occurred_at));
    document.getElementById("queue-count").textContent = `(${rows.length})`;
    const body = document.querySelector("#queue tbody");
    if (!rows.length) {
      drawnRows.clear();
      body.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "muted", text: t("queue.empty") })));
      return;
    }
    const shown = rows.slice(0, 300).map((i) => {
      // A row is drawn again only when what it shows changed: a stream of updates to other
      // incidents must not take the row under the operator's click or keyboard focus away.
      const key = `${i.revision}|${i.id === selected}|${overdue(i)}`;
      const was = drawnRows.get(i.id);
      if (was && was.key === key) return was.el;
      const el = row(i);
      drawnRows.set(i.id, { key, el });
      return el;
    });
    const kept = new Set(shown);
    for (const [id, { el }] of drawnRows) if (!kept.has(el)) drawnRows.delete(id);
    place(body, shown);
  }

  function row(i) {
    const open = () => select(i.id);
    return h("tr", {
      tabindex: "0", "data-id": i.id, class: i.id === selected ? "selected" : null,
      "aria-selected": i.id === selected ? "true" : "false",
      onclick: open, onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } },
    },
    h("td", {}, h("strong", { text: i.category }), h("br"), h("span", { class: "muted", text: i.id.slice(0, 13) })),
    h("td", {}, status(i.status)),
    h("td", { text: wardName(i.ward) }),
    h("td", { text: when(i.occurred_at) }),
    h("td", { class: overdue(i) ? "late" : null, text: when(i.sla_due_at) }));
  }

  function syncUrl() {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q())) if (v) params.set(k, v);
    if (selected) params.set("incident", selected);
    history.replaceState(null, "", `${location.pathname}?${params}`);
  }

  async function load() {
    const f = q();
    const params = new URLSearchParams({ limit: "500" });
    if (f.ward) params.set("ward", wardId(f.ward));
    for (const k of ["category", "status"]) if (f[k]) params.set(k, f[k]);
    if (f.since) params.set("since", toIso(f.since));
    if (f.until) params.set("until", toIso(f.until));
    const page = await api(`/v1/incidents?${params}`);
    // A newer revision the live stream brought meanwhile is kept.
    for (const i of page.items) if (!(incidents.get(i.id)?.revision > i.revision)) incidents.set(i.id, full(i));
    renderQueue();
  }

  function showDetail(box, i) {
    box.dataset.shown = i.id;
    box.dataset.revision = i.revision;
    box.replaceChildren(...detail(i).filter(Boolean));
  }

  async function select(id) {
    selected = id;
    syncUrl();
    renderQueue();
    const box = document.getElementById("detail");
    try {
      const i = full(await api(`/v1/incidents/${encodeURIComponent(id)}`));
      incidents.set(i.id, i);
      if (selected !== id) return; // another incident was picked meanwhile
      if (box.dataset.shown !== id) {
        showDetail(box, i);
      } else if (!(Number(box.dataset.revision) > i.revision)) {
        // Drawn again after an action, the live stream may have drawn it already and the
        // operator begun the next form: keep what they typed, and never show an older revision.
        keepingInput(box, () => showDetail(box, i));
      }
    } catch (e) {
      delete box.dataset.shown;
      delete box.dataset.revision;
      box.replaceChildren(h("p", { class: "error", role: "alert", text: e.message }));
    }
  }

  function clocks(i) {
    const now = Date.now();
    const line = (label, due) => {
      if (!due) return null;
      const left = (new Date(due) - now) / 1000;
      return h("li", {}, `${label}: ${when(due)} `,
        h("span", { class: left < 0 ? "late" : "ok", text: `(${left < 0 ? t("detail.overdue") : t("detail.left")} ${span(left)})` }));
    };
    const done = ["resolved", "closed", "cancelled", "duplicate"].includes(i.status);
    return h("ul", {}, done ? null : line(t("detail.ack_due"), ["assigned"].includes(i.status) ? i.ack_due_at : null),
      done ? null : line(t("detail.sla_due"), i.sla_due_at),
      i.escalations.length ? h("li", { class: "late", text: `${t("detail.escalations")}: ${i.escalations.map((e) => e.target).join(", ")}` }) : null);
  }

  function actionForm(label, fields, build) {
    const msg = h("span", { role: "status" });
    const form = h("form", {
      "aria-label": label,
      onsubmit: async (ev) => {
        ev.preventDefault();
        msg.className = ""; msg.textContent = "…";
        try {
          const next = await api(`/v1/incidents/${encodeURIComponent(selected)}/actions`, {
            method: "POST", body: build(Object.fromEntries(new FormData(form).entries())),
          });
          incidents.set(next.id, full(next));
          renderQueue();
          // Done with: the form starts empty again (a live update may have redrawn it meanwhile).
          for (const done of document.querySelectorAll(`#detail form[aria-label="${CSS.escape(label)}"]`)) done.reset();
          await select(next.id);
          document.getElementById("detail").prepend(h("p", { class: "ok", role: "status", text: t("a.done") }));
        } catch (e) {
          msg.className = "error"; msg.setAttribute("role", "alert"); msg.textContent = refusal(e);
        }
      },
    }, fields, h("button", { type: "submit", class: "primary", text: label }), msg);
    return form;
  }

  const prioritySelect = (current) => h("label", {}, t("a.priority"),
    h("select", { name: "priority" }, PRIORITIES.map((p) => h("option", { value: p, selected: p === current, text: t(`p.${p}`) }))));
  const text = (name, label, required = true) => h("label", {}, label, h("input", { name, required, autocomplete: "off" }));

  // Open incidents that may be the same thing: one click marks this one as a duplicate of one.
  function nearby(i) {
    const list = h("ul", { "aria-live": "polite" }, h("li", { class: "muted", text: "…" }));
    api(`/v1/incidents/${encodeURIComponent(i.id)}/nearby`).then((found) => {
      if (!found.length) { list.replaceChildren(h("li", { class: "muted", text: t("detail.no_nearby") })); return; }
      list.replaceChildren(...found.map((n) => h("li", {},
        h("a", { href: `#${n.id}`, text: n.id, onclick: (ev) => { ev.preventDefault(); select(n.id); } }),
        ` · ${n.source} · ${n.why} `,
        h("button", { type: "button", text: t("a.same_as"), onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api(`/v1/incidents/${encodeURIComponent(i.id)}/actions`, { method: "POST", body: { action: "mark_duplicate", of: n.id } });
            select(i.id);
          } catch (e) {
            ev.target.disabled = false;
            list.append(h("li", { class: "error", role: "alert", text: e.message }));
          }
        } }))));
    }).catch((e) => list.replaceChildren(h("li", { class: "error", role: "alert", text: e.message })));
    return h("section", { class: "card" }, h("h3", { text: t("detail.nearby") }), list);
  }

  function detail(i) {
    const src = i.source.kind === "camera"
      ? `${t("detail.camera")} ${i.source.camera_id} · ${i.source.event_type} · ${Math.round(i.source.confidence * 100)}%`
      : `${t("source.report")} (${i.source.channel})`;
    const photos = i.media_urls.filter((u) => /^https?:\/\//.test(u));
    const sit = i.situation;
    const seen = sit ? h("p", { class: "situation", text: `${t("detail.seen")} ${when(sit.first_seen)} – ${when(sit.last_seen)} · ${sit.detections} ${t("detail.detections")} · ${t("detail.peak")} ${Math.round(sit.peak_confidence * 100)}% · ${t(situationActive(sit) ? "detail.ongoing" : "detail.over")}` }) : null;
    return [
      h("h2", { id: "detail-title" }, `${i.category} `, status(i.status)),
      h("p", { class: "muted", text: `${i.id} · ${src} · ${t("a.priority")}: ${t(`p.${i.priority}`)}` }),
      i.text ? h("p", { text: i.text }) : null,
      i.duplicate_of ? h("p", {}, `${t("detail.duplicate_of")} `,
        h("a", { href: `#${i.duplicate_of}`, text: i.duplicate_of, onclick: (ev) => { ev.preventDefault(); select(i.duplicate_of); } })) : null,
      seen,
      i.address ? h("p", { text: `${t("detail.address")}: ${i.address}` }) : null,
      h("section", { class: "card" }, h("h3", { text: `${t("detail.where")}: ${wardName(i.ward)}` }),
        wardMap(i), i.unit ? h("p", { text: `${t("detail.unit")}: ${i.unit}` }) : null),
      photos.length ? h("section", { class: "card photos" }, h("h3", { text: t("detail.photos") }),
        photos.map((u) => h("a", { href: u, target: "_blank", rel: "noopener noreferrer" }, h("img", { src: u, alt: t("detail.photos"), loading: "lazy" })))) : null,
      h("section", { class: "card" }, h("h3", { text: t("detail.clocks") }), clocks(i)),
      ["closed", "cancelled", "duplicate"].includes(i.status) ? null : nearby(i),
      i.resolution ? h("section", { class: "card" }, h("h3", { text: t("detail.result") }), h("p", { text: i.resolution.text })) : null,
      h("section", { class: "card" }, h("h3", { text: t("detail.actions") }), h("div", { class: "actions" },
        // A duplicate is finished: the one thing left to do is to undo the merge.
        i.status === "duplicate"
          ? actionForm(t("a.split"), [text("reason", t("a.reason"))], (f) => ({ action: "split", reason: f.reason }))
          : [
            actionForm(t("a.verify"), [prioritySelect(i.priority)], (f) => ({ action: "verify", priority: f.priority })),
            actionForm(t("a.assign"), [h("label", {}, t("a.ward"), h("input", { name: "ward_id", list: "ward-list", required: true, autocomplete: "off" })), prioritySelect(i.priority)],
              (f) => ({ action: "assign", ward_id: wardId(f.ward_id), priority: f.priority })),
            actionForm(t("a.merge"), [text("of", t("a.of"))], (f) => ({ action: "mark_duplicate", of: f.of.trim() })),
            actionForm(t("a.cancel"), [text("reason", t("a.reason"))], (f) => ({ action: "cancel", reason: f.reason })),
            actionForm(t("a.close"), [], () => ({ action: "close" })),
          ])),
      h("section", { class: "card" }, h("h3", { text: t("detail.history") }), h("table", {},
        h("thead", {}, h("tr", {}, h("th", { text: t("col.when") }), h("th", { text: "" }), h("th", { text: t("col.status") }), h("th", { text: "" }))),
        h("tbody", {}, i.history.map((s) => h("tr", {},
          h("td", { text: when(s.at) }), h("td", { text: `${s.actor.role}: ${s.actor.name}` }),
          h("td", {}, s.from ? status(s.from) : "", " → ", status(s.to)),
          h("td", { text: [s.action, s.note].filter(Boolean).join(" · ") })))))),
    ];
  }

  // Figures of a month, per ward and category, and the same as CSV.
  const COLUMNS = ["ward", "category", "unit", "received", "verified", "open", "resolved", "resolved_on_time_rate",
    "acknowledged_on_time_rate", "overdue_now", "escalations", "rejected", "rerouted", "confirmed", "reopened",
    "duplicates", "cancelled"];
  const HEAD = { ward: "fig.ward", category: "fig.category", unit: "fig.unit", received: "fig.received", verified: "fig.verified",
    confirmed: "fig.confirmed", open: "fig.open", resolved: "fig.resolved",
    resolved_on_time_rate: "fig.on_time", acknowledged_on_time_rate: "fig.ack_on_time", overdue_now: "fig.overdue",
    escalations: "fig.escalations", rejected: "fig.rejected", rerouted: "fig.rerouted", reopened: "fig.reopened",
    duplicates: "fig.duplicates", cancelled: "fig.cancelled" };
  let figureRows = [];
  const monthForm = document.getElementById("figures-form");
  const cell = (row, c) => {
    const v = row[c];
    if (c.endsWith("_rate")) return v === null || v === undefined ? "" : `${Math.round(v * 100)}%`;
    if (c === "ward" && wards?.get(v)) return wardName({ id: v, name: wards.get(v).properties.name });
    return v ?? "";
  };
  async function figures() {
    const month = monthForm.month.value;
    const [y, m] = month.split("-").map(Number);
    const since = zoneMidnight(y, m - 1).toISOString();
    const until = zoneMidnight(y, m).toISOString();
    const err = document.getElementById("figures-error");
    err.textContent = "";
    try {
      const f = await api(`/v1/figures?since=${since}&until=${until}`);
      figureRows = [...f.rows, { ...f.total, ward: t("fig.total"), category: "" }];
      const table = document.getElementById("figures");
      table.tHead.replaceChildren(h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col", text: t(HEAD[c]) }))));
      table.tBodies[0].replaceChildren(...figureRows.map((r) => h("tr", {}, COLUMNS.map((c) => h("td", { text: String(cell(r, c)) })))));
    } catch (e) { err.textContent = e.message; }
  }
  const now = new Date();
  monthForm.month.value = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
  monthForm.addEventListener("submit", (ev) => { ev.preventDefault(); figures(); });
  document.getElementById("csv").addEventListener("click", () => {
    const quote = (v) => `"${String(v).replaceAll('"', '""')}"`;
    const lines = [COLUMNS.join(","), ...figureRows.map((r) => COLUMNS.map((c) => quote(r[c] ?? "")).join(","))];
    const a = h("a", { href: URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" })), download: `ioc-figures-${monthForm.month.value}.csv` });
    document.body.append(a); a.click(); a.remove();
  });
  // Enforcement records (red-light and crossing captures, ANPR reads): counts per ward and
  // camera, and the latest, with plates only where the token may read them. While the tab is
  // shown, its own live stream brings each new record with its row of counts.
  const LATEST = 50;
  const vio = { counts: new Map(), latest: [], source: null, loaded: false, waiting: [] };
  const countKey = (c) => `${c.ward?.id ?? ""}|${c.camera_id}|${c.event_type}`;

  function takeViolation({ record, count }) {
    // Counts only grow, so the larger of two rows is the later; a record seen before replaces
    // its older version (a plate read later in its track).
    const had = vio.counts.get(countKey(count));
    if (!had || had.count <= count.count) vio.counts.set(countKey(count), count);
    vio.latest = [record, ...vio.latest.filter((r) => r.id !== record.id)]
      .sort((a, b) => new Date(b.detected_at) - new Date(a.detected_at)).slice(0, LATEST);
  }

  function drawViolations() {
    const table = (id, head, rows) => document.getElementById(id).replaceChildren(
      h("thead", {}, h("tr", {}, head.map((k) => h("th", { scope: "col", text: t(k) })))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((v) => h("td", { text: String(v ?? "") }))))));
    const counts = [...vio.counts.values()].sort((a, b) => b.count - a.count || new Date(b.last_at) - new Date(a.last_at));
    table("violation-counts", ["col.ward", "v.camera", "v.type", "v.count", "v.last"],
      counts.map((c) => [wardName(c.ward), c.camera_id, c.event_type, c.count, when(c.last_at)]));
    table("violation-latest", ["col.when", "v.camera", "v.type", "col.ward", "v.lane", "v.plate", "v.confidence"],
      vio.latest.map((r) => [when(r.detected_at), r.camera_id, r.event_type, wardName(r.ward), r.lane,
        r.plate ?? t("v.hidden"), `${Math.round(r.confidence * 100)}%`]));
    document.getElementById("violations-error").textContent = counts.length ? "" : t("v.none");
  }

  async function loadViolations() {
    vio.loaded = false;
    try {
      const [counts, latest] = await Promise.all([api("/v1/violations/counts"), api(`/v1/violations?limit=${LATEST}`)]);
      vio.counts = new Map(counts.map((c) => [countKey(c), c]));
      vio.latest = latest;
      // What the stream brought while the lists were read, applied on top (twice is harmless).
      for (const change of vio.waiting.splice(0)) takeViolation(change);
      vio.loaded = true;
      drawViolations();
    } catch (e) { document.getElementById("violations-error").textContent = e.message; }
  }

  function followViolations(on) {
    vio.source?.close();
    vio.source = null;
    if (!on) return;
    vio.waiting = [];
    vio.source = new EventSource(`/v1/violations/stream?access_token=${encodeURIComponent(token())}`);
    vio.source.addEventListener("violation", (ev) => {
      const change = JSON.parse(ev.data);
      if (!vio.loaded) { vio.waiting.push(change); return; }
      takeViolation(change);
      drawViolations();
    });
    // The lists are read once the stream is open (so nothing falls between the two), again
    // after the browser opened it anew following a break, and when it fell behind.
    vio.source.addEventListener("open", () => loadViolations());
    vio.source.addEventListener("lagged", () => loadViolations());
  }

  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => {
      followViolations(tab.id === "tab-violations");
      for (const other of document.querySelectorAll('[role="tab"]')) {
        const on = other === tab;
        other.setAttribute("aria-selected", String(on));
        document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
      }
      if (tab.id === "tab-figures") figures();
    });
  }

  signedIn(async () => {
    const stats = await api("/v1/stats");
    await loadWards();
    for (const byStatus of Object.values(stats.by_ward)) for (const cats of Object.values(byStatus)) for (const c of Object.keys(cats)) categories.add(c);
    filters.category.append(...[...categories].sort().map((c) => h("option", { value: c, text: c })));
    filters.status.append(...STATUSES.map((s) => h("option", { value: s, text: t(`s.${s}`) })));
    const params = new URLSearchParams(location.search);
    for (const el of filters.elements) {
      const v = params.get(el.name);
      // A value a picker does not offer (an edited address) leaves it at "any".
      if (el.name && v !== null && (el.tagName !== "SELECT" || [...el.options].some((o) => o.value === v))) el.value = v;
    }
    await load();
    if (selected) await select(selected);
    filters.addEventListener("change", () => { syncUrl(); load(); });
    filters.addEventListener("reset", () => setTimeout(() => { syncUrl(); load(); }));
    live((i) => {
      if (incidents.get(i.id)?.revision >= i.revision) return; // shown already, or newer shown
      full(i);
      incidents.set(i.id, i);
      renderQueue();
      // The detail is redrawn only for a newer revision than the one shown (the answer to an
      // action has usually drawn it already), and keeps what the operator is typing.
      const box = document.getElementById("detail");
      if (i.id === selected && !(Number(box.dataset.revision) >= i.revision)) {
        keepingInput(box, () => showDetail(box, i));
      }
    }, load);
  });
}

// ---- The ward unit's work list ----

function wardPage() {
  const tasks = new Map();
  const OPEN = ["assigned", "acknowledged", "in_progress", "reopened"];

  // Cards drawn, by incident id, with the revision each shows: a card is drawn again only when
  // its incident changed, so a live update of one task never swaps the button under a click on
  // another (or on the same task, when the stream repeats what an action's answer showed).
  const drawn = new Map();

  /** Keeps `i` unless an equal or newer revision of it is already known; true when kept. */
  function learn(i) {
    const known = tasks.get(i.id);
    if (known && known.revision >= i.revision) return false;
    tasks.set(i.id, full(i));
    return true;
  }

  function render() {
    const list = [...tasks.values()].filter((i) => OPEN.includes(i.status))
      .sort((a, b) => new Date(a.sla_due_at) - new Date(b.sla_due_at));
    document.getElementById("summary").textContent = list.length ? `${list.length} ${t("ward.count")}` : t("ward.none");
    const box = document.getElementById("tasks");
    const cards = list.map((i) => {
      const was = drawn.get(i.id);
      if (was && was.revision === i.revision) return was.el;
      const el = card(i);
      drawn.set(i.id, { revision: i.revision, el });
      return el;
    });
    for (const id of drawn.keys()) if (!list.some((i) => i.id === id)) drawn.delete(id);
    keepingInput(box, () => place(box, cards));
  }

  function act(i, build, form) {
    return async (ev) => {
      ev.preventDefault();
      const msg = form.querySelector("[data-msg]");
      msg.textContent = "…"; msg.className = "";
      try {
        const next = await api(`/v1/incidents/${encodeURIComponent(i.id)}/actions`, {
          method: "POST", body: build(Object.fromEntries(new FormData(form).entries())),
        });
        if (learn(next)) render();
      } catch (e) { msg.className = "error"; msg.setAttribute("role", "alert"); msg.textContent = refusal(e); }
    };
  }

  function card(i) {
    const late = new Date(i.sla_due_at) < new Date();
    const box = h("article", { class: "task", "aria-labelledby": `t-${i.id}`, "data-id": i.id });
    const button = (label, build) => {
      const f = h("form", {}, h("button", { type: "submit", class: "primary", text: label }), h("span", { "data-msg": "" }));
      f.addEventListener("submit", act(i, build, f));
      return f;
    };
    const resolve = h("form", { "aria-label": t("a.resolve") },
      h("label", {}, t("a.result"), h("textarea", { name: "result", required: true, rows: "3" })),
      h("label", {}, t("a.photos"), h("textarea", { name: "photos", rows: "2" })),
      h("button", { type: "submit", class: "primary", text: t("a.resolve") }), h("span", { "data-msg": "" }));
    resolve.addEventListener("submit", act(i, (f) => ({
      action: "resolve", result: f.result, photo_urls: f.photos.split(/\s+/).filter(Boolean),
    }), resolve));
    const reject = h("form", { "aria-label": t("a.reject") },
      h("label", {}, t("a.reason"), h("input", { name: "reason", required: true })),
      h("label", {}, t("a.belongs"), h("input", { name: "ward_id", list: "ward-list", autocomplete: "off" })),
      h("button", { type: "submit", text: t("a.reject") }), h("span", { "data-msg": "" }));
    reject.addEventListener("submit", act(i, (f) => ({
      action: "reject", reason: f.reason, ward_id: wardId(f.ward_id) || undefined,
    }), reject));
    box.append(...[
      h("h2", { id: `t-${i.id}` }, `${i.category} `, status(i.status)),
      h("p", { class: `due ${late ? "late" : ""}`, text: `${t("ward.due")}: ${when(i.sla_due_at)}` }),
      i.text ? h("p", { text: i.text }) : null,
      i.address ? h("p", { class: "muted", text: i.address }) : null,
      h("p", { class: "muted", text: `${i.location.lat.toFixed(5)}, ${i.location.lon.toFixed(5)} · ${i.id}` }),
      h("div", { class: "row" },
        i.status === "assigned" || i.status === "reopened" ? button(t("a.acknowledge"), () => ({ action: "acknowledge" })) : null,
        i.status === "acknowledged" ? button(t("a.start"), () => ({ action: "start" })) : null),
      h("details", {}, h("summary", { text: t("a.resolve") }), resolve),
      h("details", {}, h("summary", { text: t("a.reject") }), reject),
    ].filter(Boolean));
    return box;
  }

  document.body.append(h("datalist", { id: "ward-list" }));
  signedIn(async () => {
    const list = await api("/v1/assignments");
    await loadWards().catch(() => null);
    tasks.clear();
    for (const i of list) learn(i);
    render();
    live((i) => { if (learn(i)) render(); }, async () => {
      for (const i of await api("/v1/assignments")) learn(i);
      render();
    });
  });
}

// ---- The citizen's status page (public: no token, nothing about anyone else) ----

function citizenPage() {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const box = document.getElementById("report");
  const error = document.getElementById("error");

  function show(r) {
    const parts = [
      h("h2", {}, `${r.category} `, status(r.status)),
      h("dl", {},
        h("dt", { text: t("c.submitted") }), h("dd", { text: when(r.submitted_at) }),
        h("dt", { text: t("c.ward") }), h("dd", { text: r.ward ? r.ward.name : t("no.ward") }),
        r.unit ? [h("dt", { text: t("detail.unit") }), h("dd", { text: r.unit })] : null,
        ["resolved", "closed", "cancelled", "duplicate"].includes(r.status) ? null
          : [h("dt", { text: t("c.expected") }), h("dd", { text: when(r.expected_by) })]),
    ];
    if (r.result) {
      parts.push(h("section", { class: "card" }, h("h3", { text: t("c.result") }), h("p", { text: r.result.text }),
        h("div", { class: "photos" }, (r.result.photo_urls || []).filter((u) => /^https?:\/\//.test(u))
          .map((u) => h("a", { href: u, target: "_blank", rel: "noopener noreferrer" }, h("img", { src: u, alt: t("c.result"), loading: "lazy" }))))));
    }
    if (r.status === "resolved") {
      const msg = h("p", { role: "status" });
      const answer = (path, body) => async (ev) => {
        ev?.preventDefault();
        try {
          await api(`/v1/reports/${encodeURIComponent(id)}/${path}`, { method: "POST", body, auth: false });
          msg.className = "ok"; msg.textContent = t("c.thanks");
          await refresh();
        } catch (e) { msg.className = "error"; msg.setAttribute("role", "alert"); msg.textContent = refusal(e); }
      };
      const dispute = h("form", { "aria-label": t("c.dispute") },
        h("label", {}, t("c.reason"), h("textarea", { name: "reason", required: true, rows: "3" })),
        h("button", { type: "submit", text: t("c.dispute") }));
      dispute.addEventListener("submit", (ev) => answer("dispute", { reason: new FormData(dispute).get("reason") })(ev));
      parts.push(h("section", { class: "card" },
        h("button", { type: "button", class: "primary", onclick: answer("confirm", {}), text: t("c.confirm") }),
        h("details", {}, h("summary", { text: t("c.dispute") }), dispute), msg));
    }
    parts.push(h("section", { class: "card" }, h("h3", { text: t("c.timeline") }),
      h("ol", { class: "timeline" }, (r.history || []).map((s) => h("li", {}, `${when(s.at)} `, status(s.status))))));
    if (r.merged_into) {
      parts.push(h("p", { text: t("c.merged") }), h("a", { href: `/r/${encodeURIComponent(r.merged_into.tracking_id)}`, text: r.merged_into.tracking_id }));
    }
    box.replaceChildren(...parts.filter(Boolean));
  }

  async function refresh() {
    try {
      show(await api(`/v1/reports/${encodeURIComponent(id)}`, { auth: false }));
      error.textContent = "";
    } catch (e) {
      error.textContent = e.status === 404 ? t("c.notfound") : e.message;
    }
  }
  refresh();
  setInterval(refresh, 30000);
}

document.getElementById("lang")?.addEventListener("click", () => {
  lang = lang === "vi" ? "en" : "vi";
  localStorage.setItem("ioc-lang", lang);
  location.reload();
});
translate();
({ console: consolePage, ward: wardPage, citizen: citizenPage })[document.body.dataset.page]?.();
