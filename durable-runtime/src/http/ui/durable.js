// The durable web UI: plain browser JavaScript over the JSON API under
// <prefix>/api (every path relative to where the UI is mounted).
// Data is only ever put into the page as text (textContent), never as HTML.
"use strict";

const PHASES = [
  "running", "sleeping", "waiting_for_signal", "completed",
  "failed", "cancelled", "terminated", "parked",
];
const TERMINAL = new Set(["completed", "failed", "cancelled", "terminated"]);
const REFRESH_MS = 2000;
const TOKEN_KEY = "durable-token";
// Where the UI and the API are mounted: the page's <base>, which the
// server sets to the prefix the routes are nested under (`/` at the root).
const BASE = new URL(document.baseURI).pathname;

// A token given as #token=... is kept for this tab and removed from the address bar.
(function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "style") node.setAttribute("style", v);
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Calls the API with the tab's token; a 401 shows the token form.
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  // every POST says JSON: the service refuses form-like POSTs (CSRF)
  if (options.method === "POST") headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch (e) {
    throw new ApiError(0, "the service does not answer: " + e.message);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (response.status === 401) {
    $("token-form").hidden = false;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : (text || response.statusText);
    throw new ApiError(response.status, message);
  }
  $("token-form").hidden = true;
  return body;
}

function showError(e) {
  const box = $("error");
  if (!e) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = e.message || String(e);
}

function setupTokenForm(reload) {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value);
    $("token-input").value = "";
    reload();
  });
}

function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// "1h30m", "15m", "90s", "1d", "500ms" as milliseconds (0: not a duration).
function parseDuration(text) {
  const t = (text || "").replace(/\s+/g, "");
  if (!/^([0-9]+(ms|s|m|h|d))+$/.test(t)) return 0;
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };
  let total = 0;
  for (const [, n, u] of t.matchAll(/([0-9]+)(ms|s|m|h|d)/g)) total += Number(n) * unit[u];
  return total;
}

// Milliseconds as parseDuration reads them back ("1h30m").
function fmtInterval(ms) {
  const parts = [];
  for (const [u, n] of [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000], ["ms", 1]]) {
    if (ms >= n) { parts.push(`${Math.floor(ms / n)}${u}`); ms %= n; }
  }
  return parts.join("") || "0ms";
}

// ms since the epoch (text) as a datetime-local input's value, in the
// browser's zone ("" for none).
function toLocalInput(text) {
  if (!/^[0-9]+$/.test(text || "")) return "";
  const d = new Date(Number(text));
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// The browser's time zone: every time the UI shows is in it.
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

// "3 min ago", "in 2 h": how far `ms` is from now.
function fmtAgo(ms) {
  if (!ms) return "";
  const d = Date.now() - ms;
  const a = Math.abs(d);
  const amount = a < 45000 ? "moments"
    : a < 3600000 ? `${Math.round(a / 60000)} min`
      : a < 86400000 ? `${Math.round(a / 3600000)} h`
        : `${Math.round(a / 86400000)} d`;
  if (amount === "moments") return d >= 0 ? "just now" : "in moments";
  return d >= 0 ? `${amount} ago` : `in ${amount}`;
}

// `ms` as a wall-clock time in time zone `zone`, with the zone named.
function fmtTimeIn(ms, zone) {
  try {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(new Date(ms));
    const part = (type) => parts.find((p) => p.type === type).value;
    return `${part("year")}-${part("month")}-${part("day")} ` +
      `${part("hour")}:${part("minute")}:${part("second")} ${zone}`;
  } catch (_) {
    return fmtTime(ms);
  }
}

function fmtDuration(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// "timer until <ms> ms" reads better as a date.
function fmtWaiting(text) {
  return (text || "").replace(/timer until (\d+) ms/g, (_, ms) => "timer until " + fmtTime(Number(ms)));
}

function phaseLabel(phase) {
  return phase.replace(/_/g, " ");
}

function badge(phase) {
  return el("span", { class: `badge phase-${phase}`, "data-phase": phase }, phaseLabel(phase));
}

// Runs `load` now and every REFRESH_MS while the "live" box is ticked and
// `keepGoing()` holds; never two loads at once.
function poll(load, keepGoing = () => true) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      await load();
      showError(null);
      $("refreshed").textContent = `updated ${fmtTime(Date.now()).slice(11)} · times in ${ZONE}`;
    } catch (e) {
      showError(e);
    } finally {
      busy = false;
    }
  };
  tick();
  setInterval(() => { if ($("live").checked && keepGoing()) tick(); }, REFRESH_MS);
  return tick;
}

// ---- the instance list (/) ----

function listPage() {
  const params = new URLSearchParams(location.search);
  const status = $("f-status");
  for (const p of PHASES) status.append(el("option", { value: p }, phaseLabel(p)));
  $("f-workflow").value = params.get("workflow") || "";
  status.value = PHASES.includes(params.get("status")) ? params.get("status") : "";
  $("f-prefix").value = params.get("prefix") || "";
  $("f-attr").value = params.get("attr") || "";
  $("f-from").value = toLocalInput(params.get("started_from"));
  $("f-to").value = toLocalInput(params.get("started_to"));
  const limit = $("f-limit");
  const asked = params.get("limit");
  if (/^[1-9][0-9]{0,2}$/.test(asked || "")) {
    if (![...limit.options].some((o) => o.value === asked)) limit.append(el("option", {}, asked));
    limit.value = asked;
  }
  const workflows = new Set();
  // where each page starts, newest first: after the previous page's last
  // instance ({ id, started }); [null] is the first page
  let cursors = [null];

  // The search attribute as the list filter takes it: `name=value`, the
  // value as text, and as a number or a flag where it reads as one.
  const attributeFilter = () => {
    const text = $("f-attr").value.trim();
    if (!text) return null;
    const at = text.indexOf("=");
    if (at <= 0) throw new Error("a search attribute is name=value");
    const value = text.slice(at + 1);
    const values = [{ Str: value }];
    if (/^-?[0-9]+$/.test(value)) values.push({ Int: Number(value) });
    if (value === "true" || value === "false") values.push({ Bool: value === "true" });
    return [text.slice(0, at), values];
  };
  // The start-time range in ms; `until` takes in the whole minute it names.
  const startedRange = () => {
    const from = $("f-from").value ? new Date($("f-from").value).getTime() : null;
    const to = $("f-to").value ? new Date($("f-to").value).getTime() + 59999 : null;
    return [from, to];
  };

  const filterQuery = () => {
    const q = new URLSearchParams();
    if ($("f-workflow").value.trim()) q.set("workflow", $("f-workflow").value.trim());
    if (status.value) q.set("status", status.value);
    if ($("f-prefix").value) q.set("prefix", $("f-prefix").value);
    if ($("f-attr").value.trim()) q.set("attr", $("f-attr").value.trim());
    const [from, to] = startedRange();
    if (from !== null) q.set("started_from", String(from));
    if (to !== null) q.set("started_to", String(to));
    if (limit.value !== "50") q.set("limit", limit.value);
    return q;
  };

  const load = async () => {
    const q = filterQuery();
    const pageSize = Number(limit.value);
    q.set("limit", String(pageSize));
    const after = cursors[cursors.length - 1];
    if (after) {
      q.set("after", after.id);
      q.set("after_started", String(after.started));
    }
    // the chips count what the other filters match, whatever the status
    const counted = filterQuery();
    counted.delete("status");
    counted.delete("limit");
    const [counts, list, workers] = await Promise.all([
      api(BASE + "api/counts?" + counted.toString()),
      api(BASE + "api/instances?" + q.toString()),
      api(BASE + "api/workers"),
    ]);
    renderCounts(counts);
    renderWorkers(workers);
    renderRows(list);
    $("more").hidden = list.length < pageSize;
    const last = list[list.length - 1];
    $("more").dataset.last = last ? last.id : "";
    $("more").dataset.lastStarted = last ? String(last.created_ms) : "";
    $("prev").hidden = cursors.length < 2;
    $("page-no").textContent = cursors.length > 1 || list.length === pageSize
      ? `page ${cursors.length}` : "";
  };

  // workers sharing a PostgreSQL store (none on sled)
  const renderWorkers = (workers) => {
    const p = $("workers");
    p.hidden = workers.length === 0;
    p.replaceChildren("workers: ", ...workers.flatMap((w, i) => [
      i ? " · " : "",
      el("b", {}, w.name),
      ` ${w.instances} instances` + (w.queues.length ? `, queues ${w.queues.join(", ")}` : "") +
        (w.lapsed ? ", lease lapsed" : "") + (w.this_process ? " (this process)" : ""),
    ]));
  };

  // counts.exact false: counting stopped at its limit, so each is "at least"
  const renderCounts = (counts) => {
    const nav = $("counts");
    nav.replaceChildren();
    const byPhase = counts.by_phase;
    let total = 0;
    for (const p of PHASES) total += byPhase[p] || 0;
    const more = counts.exact ? "" : "+";
    const chip = (phase, n, label) => {
      const a = el("a", {
        href: "#", class: "count" + ((status.value === phase) ? " selected" : ""),
        "data-phase": phase,
      }, label + " ", el("b", {}, String(n) + more));
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        status.value = phase;
        changed();
      });
      return a;
    };
    nav.append(chip("", total, "all"));
    for (const p of PHASES) nav.append(chip(p, byPhase[p] || 0, phaseLabel(p)));
  };

  const renderRows = (list) => {
    const body = document.querySelector("#instances tbody");
    body.replaceChildren();
    for (const d of list) {
      if (!workflows.has(d.workflow)) {
        workflows.add(d.workflow);
        $("workflows").append(el("option", { value: d.workflow }));
      }
      const link = el("a", { href: BASE + "ui/instance?id=" + encodeURIComponent(d.id) }, d.id);
      body.append(el("tr", { "data-id": d.id },
        el("td", { class: "id" }, link),
        el("td", {}, d.workflow),
        el("td", { class: "status" }, badge(d.phase)),
        el("td", {}, fmtWaiting(d.waiting_for)),
        el("td", { class: "num" }, d.step),
        el("td", { class: "when", title: fmtTime(d.created_ms) }, fmtAgo(d.created_ms)),
        el("td", { class: "num duration" },
          fmtDuration((TERMINAL.has(d.phase) ? d.updated_ms : Date.now()) - d.created_ms)),
        el("td", { class: "when", title: fmtAgo(d.updated_ms) }, fmtTime(d.updated_ms)),
        el("td", { class: "err" }, d.error || d.last_error || ""),
      ));
    }
    $("empty").hidden = list.length > 0;
  };

  let tick;
  const changed = () => {
    cursors = [null];
    const q = filterQuery();
    history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q.toString() : ""));
    tick();
  };
  let typing;
  const debounced = () => { clearTimeout(typing); typing = setTimeout(changed, 250); };
  $("f-workflow").addEventListener("input", debounced);
  $("f-prefix").addEventListener("input", debounced);
  $("f-attr").addEventListener("input", debounced);
  for (const id of ["f-from", "f-to", "f-limit"]) $(id).addEventListener("change", changed);
  status.addEventListener("change", changed);
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); changed(); });
  $("f-clear").addEventListener("click", () => {
    for (const id of ["f-workflow", "f-prefix", "f-attr", "f-from", "f-to"]) $(id).value = "";
    status.value = "";
    changed();
  });
  $("more").addEventListener("click", () => {
    if (!$("more").dataset.last) return;
    cursors.push({ id: $("more").dataset.last, started: $("more").dataset.lastStarted });
    tick();
  });
  $("prev").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    tick();
  });
  // ---- start a workflow: the registered ones are offered ----
  const say = (node, text, ok) => { node.textContent = text; node.className = ok ? "ok" : "err"; };
  const offerWorkflows = async () => {
    const names = [...new Set((await api(BASE + "api/workflows")).map((w) => w.name))];
    // asked again when the form opens: what was chosen stays chosen
    const chosen = $("s-workflow").value;
    $("s-workflow").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(chosen)) $("s-workflow").value = chosen;
    for (const n of names) {
      if (!workflows.has(n)) {
        workflows.add(n);
        $("workflows").append(el("option", { value: n }));
      }
    }
  };
  $("start").addEventListener("toggle", () => {
    if ($("start").open) offerWorkflows().catch((e) => say($("s-result"), e.message, false));
  });
  // the workflow filter suggests every registered name as one types
  offerWorkflows().catch(() => {});
  $("s-start").addEventListener("click", async () => {
    const workflow = $("s-workflow").value;
    if (!workflow) return say($("s-result"), "no workflow is registered", false);
    let input;
    try {
      input = JSON.parse($("s-input").value.trim() || "null");
    } catch (e) {
      return say($("s-result"), "the input is not JSON: " + e.message, false);
    }
    const id = $("s-id").value.trim() || `${workflow}-${Date.now().toString(36)}`;
    try {
      await api(BASE + "api/instances", {
        method: "POST", body: JSON.stringify({ id, workflow, input }),
      });
      location.href = BASE + "ui/instance?id=" + encodeURIComponent(id);
    } catch (e) {
      say($("s-result"), "not started: " + e.message, false);
    }
  });

  // ---- a batch operation over what the filters match ----
  const batchSay = (text, ok) => {
    const p = $("b-result");
    p.textContent = text;
    p.className = ok ? "ok" : "err";
  };
  const batchRequest = (dryRun) => {
    const filter = {};
    if ($("f-workflow").value.trim()) filter.workflow = $("f-workflow").value.trim();
    if (status.value) filter.phase = status.value;
    if ($("f-prefix").value) filter.id_prefix = $("f-prefix").value;
    const attribute = attributeFilter();
    if (attribute) filter.search_attribute = attribute;
    const [from, to] = startedRange();
    if (from !== null || to !== null) filter.started = [from ?? 0, to ?? Number.MAX_SAFE_INTEGER];
    const reason = $("b-reason").value.trim() || "batch operation from the web UI";
    let action;
    switch ($("b-action").value) {
      case "terminate": action = { terminate: { reason } }; break;
      case "reset": action = { reset: { to: "latest", reason } }; break;
      case "signal": {
        const name = $("b-name").value.trim();
        if (!name) throw new Error("give the signal's name");
        let payload;
        try {
          payload = JSON.parse($("b-payload").value.trim() || "null");
        } catch (e) {
          throw new Error("the payload is not JSON: " + e.message);
        }
        action = { signal: { name, payload } };
        break;
      }
      default: action = "cancel";
    }
    return { filter, action, dry_run: dryRun };
  };
  const preview = async () => api(BASE + "api/batches", {
    method: "POST", body: JSON.stringify(batchRequest(true)),
  });
  $("b-preview").addEventListener("click", async () => {
    try {
      const r = await preview();
      batchSay(`would ${r.action} ${r.count} instances` +
        (r.count ? ": " + r.ids.slice(0, 10).join(", ") + (r.count > 10 ? ", …" : "") : ""), true);
    } catch (e) {
      batchSay("preview failed: " + e.message, false);
    }
  });
  $("b-run").addEventListener("click", async () => {
    let op;
    try {
      const r = await preview();
      if (!confirm(`${r.action} ${r.count} instances, every one these filters match? `
        + "This cannot be undone.")) return;
      op = await api(BASE + "api/batches", {
        method: "POST", body: JSON.stringify(batchRequest(false)),
      });
    } catch (e) {
      batchSay("batch failed: " + e.message, false);
      return;
    }
    const bar = $("b-progress");
    bar.hidden = false;
    for (;;) {
      try {
        op = await api(BASE + "api/batches/" + encodeURIComponent(op.id));
      } catch (e) {
        batchSay("cannot follow the batch: " + e.message, false);
        return;
      }
      bar.max = Math.max(op.matched, op.visited, 1);
      bar.value = op.visited;
      const counts = `${op.visited} of ${op.matched}: ${op.done} done, ${op.skipped} skipped, ${op.failed} failed`;
      if (op.state !== "running") {
        const errors = op.errors.map(([id, e]) => `${id}: ${e}`).join("; ");
        batchSay(`batch ${op.state}: ${counts}` + (errors ? ` (${errors})` : ""), op.failed === 0);
        tick();
        return;
      }
      batchSay(`batch running: ${counts}`, true);
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  tick = poll(load);
  setupTokenForm(() => tick());
}

// ---- one instance (/ui/instance?id=...) ----


// Values the history keeps (an activity's input and result, a signal's
// payload), each folded under its name: a one-line preview, and the JSON
// indented when opened. Text only, as everywhere.
function jsonViews(pairs) {
  const box = el("span", { class: "values" });
  for (const [name, text] of pairs) {
    let pretty = text;
    try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* shown as it is */ }
    const preview = text.length > 60 ? text.slice(0, 57) + "..." : text;
    box.append(el("details", { class: "value", "data-value": name },
      el("summary", {}, el("b", {}, name + " "), el("code", {}, preview)),
      el("pre", { class: "json" }, pretty)));
  }
  return box;
}

// The timeline: one row per history event; activity attempts are bars on a
// shared time axis, as long as the attempt ran, with their error text.
function renderTimeline(events, now) {
  const box = $("timeline");
  box.replaceChildren();
  if (!events.length) {
    box.append(el("p", { class: "muted" }, "No history recorded."));
    return;
  }
  const activityAt = new Map();
  for (const e of events) {
    const k = e.kind;
    if (k.Awaiting) {
      const m = /^activity (.+)$/.exec(k.Awaiting.command);
      if (m) activityAt.set(k.Awaiting.step, m[1]);
    }
    if (k.ActivityFinished) activityAt.set(k.ActivityFinished.step, k.ActivityFinished.activity);
  }
  const attemptStart = (e, a) => e.at_ms - a.duration_ms;
  let start = events[0].at_ms;
  let end = events[events.length - 1].at_ms;
  for (const e of events) {
    const a = e.kind.AttemptFailed || e.kind.ActivityFinished || e.kind.PartFinished;
    if (a) start = Math.min(start, attemptStart(e, a));
  }
  if (now) end = Math.max(end, now);
  const span = Math.max(end - start, 1);
  const pct = (ms) => ((ms - start) / span) * 100;

  box.append(el("div", { class: "axis" },
    el("span", {}, fmtTime(start)), el("span", {}, fmtDuration(end - start) + " in all"),
    el("span", {}, fmtTime(end))));

  for (const e of events) {
    const k = e.kind;
    const name = Object.keys(k)[0];
    const v = k[name];
    let label;
    let bar = null;
    let detail = null;
    let cls = "event";
    if (name === "AttemptFailed" || name === "ActivityFinished" || name === "PartFinished") {
      const activity = name === "AttemptFailed" ? (activityAt.get(v.step) || "activity") : v.activity;
      const failed = name === "AttemptFailed" || v.error;
      cls = "attempt " + (failed ? "failed" : "ok");
      label = name === "PartFinished"
        ? `step ${v.step} · part ${v.part} · ${v.activity}` +
          (v.attempts > 1 ? ` · ${v.attempts} attempts` : "")
        : `step ${v.step} · ${activity} · attempt ${v.attempt}`;
      const left = pct(attemptStart(e, v));
      const width = Math.max(pct(e.at_ms) - left, 0);
      bar = el("div", { class: "track" },
        el("div", {
          class: "bar " + (failed ? "failed" : "ok"),
          style: `left:${left.toFixed(3)}%;width:${width.toFixed(3)}%`,
          title: `${activity}, ${name === "PartFinished" ? `part ${v.part}` : `attempt ${v.attempt}`}: ${fmtDuration(v.duration_ms)}`,
        }));
      detail = el("span", { class: "detail" },
        el("span", { class: "duration" }, fmtDuration(v.duration_ms)),
        failed ? el("span", { class: "err" }, " " + (v.error || "")) : " done");
      if (name === "AttemptFailed") detail.append(el("span", { class: "muted" }, " (retried)"));
    } else {
      switch (name) {
        case "Started": label = `started ${v.workflow} (run ${v.run})`; break;
        case "Input": label = "input recorded"; break;
        case "Awaiting": label = `step ${v.step}: waits at ${v.variant} for ${fmtWaiting(v.command)}`; break;
        case "CancelDelivered": label = `step ${v.step}: cancellation delivered`; break;
        case "Upgraded": label = `upgraded at ${v.variant}`; break;
        case "TimerFired": label = `step ${v.step}: timer fired`; break;
        case "SignalReceived":
          label = v.name.startsWith("update/")
            ? `step ${v.step}: update ${v.name.slice(7)} received`
            : `step ${v.step}: signal ${v.name} received`;
          break;
        case "UpdateReplied":
          label = `step ${v.step}: replied to update ${v.update}`;
          detail = v.json;
          break;
        case "ActivityCalled":
          label = `step ${v.step}${v.part == null ? "" : ` · part ${v.part}`}: ${v.activity} called`;
          detail = jsonViews([["input", v.input], ["result", v.output]]);
          break;
        case "SignalPayload":
          label = `step ${v.step}: signal ${v.name} carried`;
          detail = jsonViews([["payload", v.json]]);
          break;
        case "RunFailed":
          label = `run ${v.run} (attempt ${v.attempt}) failed; the next run starts ${fmtTime(v.next_at_ms)}`;
          detail = el("span", { class: "err" }, v.error);
          cls = "event finished";
          break;
        case "Reset":
          label = `reset from step ${v.from_step} to step ${v.to_step}: run ${v.run} starts`;
          detail = v.reason;
          cls = "event reset";
          break;
        case "Migrated":
          label = `migrated from version ${v.from} (at ${v.from_variant}) to ${v.to} (at ${v.to_variant})`;
          break;
        case "Transcoded":
          label = "state read by its stored layout and rebuilt by name";
          detail = (v.changes || []).join("; ");
          break;
        case "Parked":
          label = "parked: the registered code cannot run it";
          detail = el("span", { class: "err" }, v.reason);
          break;
        case "Finished":
          label = `finished: ${v.status.toLowerCase()}`;
          if (v.error) detail = el("span", { class: "err" }, v.error);
          cls = "event finished";
          break;
        default: label = name; detail = JSON.stringify(v);
      }
      bar = el("div", { class: "track" },
        el("div", { class: "tick", style: `left:${pct(e.at_ms).toFixed(3)}%` }));
    }
    box.append(el("div", { class: "row " + cls, "data-kind": name },
      el("span", { class: "when" }, fmtTime(e.at_ms).slice(11)),
      el("span", { class: "what" }, label),
      bar,
      el("span", { class: "info" }, detail)));
  }
}

function instancePage() {
  const id = new URLSearchParams(location.search).get("id") || "";
  const path = BASE + "api/instances/" + encodeURIComponent(id);
  $("i-id").textContent = id;
  document.title = "durable · " + id;
  let phase = null;
  let inputShown = false;
  // an id the service does not know: said once, not polled again
  let unknown = false;
  // the run whose reset points the form lists
  let pointsOf = null;

  const load = async () => {
    if (!id) throw new Error("no instance id in the address (?id=...)");
    // the history read after the status: an ended status's last poll
    // always has the events of the checkpoint that ended it
    let d;
    try {
      d = await api(path);
    } catch (e) {
      if (e.status === 404) {
        unknown = true;
        for (const b of ["cancel", "terminate", "signal-send"]) $(b).disabled = true;
        throw new Error(`no instance with id "${id}" (it never existed, or retention deleted it)`);
      }
      throw e;
    }
    unknown = false;
    const events = await api(path + "/history");
    phase = d.phase;
    $("i-status").replaceWith(Object.assign(badge(d.phase), { id: "i-status" }));
    const rows = [
      ["workflow", `${d.workflow} (run ${d.run})`],
      ["at", `${d.variant} (step ${d.step})`],
      ["waiting for", fmtWaiting(d.waiting_for)],
      ["created", fmtTime(d.created_ms)],
      ["updated", fmtTime(d.updated_ms)],
      ["error", d.error],
      ["last attempt", d.last_error && `${d.last_error} (${d.failed_attempts} failed attempts)`],
      ["next attempt", d.next_attempt_ms ? `${fmtTime(d.next_attempt_ms)} (${fmtAgo(d.next_attempt_ms)})` : ""],
      ["version", d.version > 1 ? String(d.version) : ""],
      ["search attributes", Object.entries(d.search_attributes || {})
        .map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ")],
    ];
    const dl = $("summary");
    dl.replaceChildren();
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "") continue;
      dl.append(el("dt", {}, k), el("dd", { "data-field": k }, v));
    }
    const terminal = TERMINAL.has(d.phase);
    for (const b of ["cancel", "terminate", "signal-send"]) $(b).disabled = terminal || d.phase === "parked";
    // an ended or parked instance can go back to a kept step
    const resettable = terminal || d.phase === "parked";
    $("reset-box").hidden = !resettable;
    if (resettable && pointsOf !== d.run) {
      const points = await api(path + "/reset-points");
      pointsOf = d.run;
      const select = $("reset-step");
      select.replaceChildren(...points.map((p) => el("option", { value: String(p.step) },
        `step ${p.step}: ${p.variant}, waiting for ${fmtWaiting(p.awaiting)}`)));
      if (!points.length) select.append(el("option", { value: "" }, "no state kept"));
      $("reset").disabled = !points.length;
    }
    // the signal the instance waits for, unless the user is typing one
    const awaited = /^signal (\S+)/.exec(d.waiting_for || "");
    const name = $("signal-name");
    if (awaited && !name.value && document.activeElement !== name) name.value = awaited[1];

    if (!inputShown) {
      const input = events.find((e) => e.kind.Input);
      $("input").textContent = input
        ? JSON.stringify(JSON.parse(input.kind.Input.json), null, 2)
        : "(not recorded for this run)";
      inputShown = true;
    }
    // a finished instance's return value (`{"Ok": ..}` / `{"Err": ..}`)
    const hasOutput = d.output !== null && d.output !== undefined;
    $("output-section").hidden = !hasOutput;
    $("output").textContent = hasOutput ? JSON.stringify(d.output, null, 2) : "";
    // drawn with the status, before the next request: a reader never sees
    // a new status beside an old timeline
    renderTimeline(events, terminal ? null : Date.now());
    try {
      const s = await api(path + "/state");
      $("state").textContent = s.state === null
        ? "null (the instance has ended)"
        : JSON.stringify(s.state, null, 2);
    } catch (e) {
      $("state").textContent = "cannot show the state: " + e.message;
    }
  };

  const result = (text, ok) => {
    const p = $("action-result");
    p.textContent = text;
    p.className = ok ? "ok" : "err";
  };
  const act = async (what, request) => {
    try {
      await request();
      result(what + " accepted", true);
    } catch (e) {
      result(what + " failed: " + e.message, false);
    }
    tick();
  };

  $("signal-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    let payload;
    try {
      payload = JSON.parse($("signal-payload").value.trim() || "null");
    } catch (e) {
      result("the payload is not JSON: " + e.message, false);
      return;
    }
    const name = $("signal-name").value.trim();
    act(`signal ${name}`, () => api(path + "/signal", {
      method: "POST", body: JSON.stringify({ name, payload }),
    }));
  });
  // both end the instance for good: asked once more, naming what happens
  $("cancel").addEventListener("click", () => {
    if (!confirm(`Cancel ${id}? Its workflow sees the cancellation at its next step and ends `
      + "(running any compensations it has). This cannot be undone.")) return;
    act("cancel", () => api(path + "/cancel", { method: "POST" }));
  });
  $("terminate").addEventListener("click", () => {
    const reason = $("terminate-reason").value.trim();
    if (!reason) {
      result("give a reason to terminate: it is recorded in the history", false);
      return;
    }
    if (!confirm(`Terminate ${id} now, with reason "${reason}"? None of its code runs again `
      + "(no compensation either). This cannot be undone.")) return;
    act("terminate", () => api(path + "/terminate", {
      method: "POST", body: JSON.stringify({ reason }),
    }));
  });

  $("reset").addEventListener("click", () => {
    const step = Number($("reset-step").value);
    const reason = $("reset-reason").value.trim();
    if (!reason) {
      result("give a reason to reset: it is recorded in the history", false);
      return;
    }
    if (!confirm(`Reset ${id} to step ${step}? A new run goes on from the state kept for that step: `
      + "its awaited command and every step after it run again (under new idempotency keys).")) return;
    act(`reset to step ${step}`, () => api(path + "/reset", {
      method: "POST", body: JSON.stringify({ step, reason }),
    }));
  });

  // an ended instance does not change: stop polling it
  const tick = poll(load, () => !TERMINAL.has(phase) && !unknown);
  setupTokenForm(() => tick());
}

// One line for a schedule event (`{"started": {...}}`, `"created"`).
function scheduleEvent(kind) {
  if (typeof kind === "string") return kind.replace(/_/g, " ");
  const [name, f] = Object.entries(kind)[0];
  switch (name) {
    case "started":
      return `started ${f.workflow_id} (${f.trigger})`;
    case "skipped":
      return `skipped ${f.count} (${f.reason.replace(/_/g, " ")}): ` +
        (f.first_ms === f.last_ms ? fmtTime(f.first_ms) : `${fmtTime(f.first_ms)} .. ${fmtTime(f.last_ms)}`);
    case "buffered":
      return `buffered the run of ${fmtTime(f.nominal_ms)}`;
    case "paused":
    case "unpaused":
      return `${name}${f.note ? ": " + f.note : ""}`;
    default:
      return `${name.replace(/_/g, " ")} ${f.workflow_id || ""}`.trim();
  }
}

// A schedule's next run: in its own time zone (a cron in Europe/Berlin
// fires at 02:00 Berlin time), then in the browser's; none while paused.
function nextRun(s) {
  if (s.paused) return ["none (paused)"];
  if (!s.next_ms.length) return ["none"];
  const zone = s.schedule && s.schedule.time_zone;
  if (!zone || zone === ZONE) return [fmtTime(s.next_ms[0]), el("div", { class: "muted" }, fmtAgo(s.next_ms[0]))];
  return [fmtTimeIn(s.next_ms[0], zone),
    el("div", { class: "muted" }, `${fmtTime(s.next_ms[0])} ${ZONE}, ${fmtAgo(s.next_ms[0])}`)];
}

function schedulesPage() {
  let shown = null;
  // the rows are rebuilt only when a schedule changed: rebuilding them on
  // every refresh could swallow a click on one of their buttons
  let drawn = null;
  const result = (text, ok) => {
    $("action-result").textContent = text;
    $("action-result").className = ok ? "ok" : "err";
  };
  const act = async (what, call) => {
    try {
      await call();
      result(`${what}: done`, true);
    } catch (e) {
      result(`${what} failed: ${e.message}`, false);
    }
    await tick();
  };
  const path = (id) => BASE + "api/schedules/" + encodeURIComponent(id);

  const load = async () => {
    const list = await api(BASE + "api/schedules");
    const key = JSON.stringify(list);
    if (key === drawn) return;
    drawn = key;
    const body = $("schedules").querySelector("tbody");
    body.replaceChildren(...list.map((s) => {
      const pause = s.paused
        ? el("button", { type: "button", class: "unpause" }, "unpause")
        : el("button", { type: "button", class: "pause" }, "pause");
      pause.addEventListener("click", () => {
        const verb = s.paused ? "unpause" : "pause";
        const note = s.paused ? "" : (prompt(`Why pause ${s.id}?`, "") || "");
        act(`${verb} ${s.id}`, () => api(path(s.id) + "/" + verb, {
          method: "POST", body: JSON.stringify({ note }),
        }));
      });
      const trigger = el("button", { type: "button", class: "trigger" }, "run now");
      trigger.addEventListener("click", () =>
        act(`trigger ${s.id}`, () => api(path(s.id) + "/trigger", { method: "POST", body: "{}" })));
      const events = el("button", { type: "button", class: "events" }, "events");
      events.addEventListener("click", () => { shown = s.id; render(list); });
      const edit = el("button", { type: "button", class: "edit" }, "edit");
      edit.addEventListener("click", () => editing(s));
      return el("tr", { "data-id": s.id },
        el("td", { class: "id" }, s.id),
        el("td", {}, s.workflow),
        el("td", {}, s.spec, el("div", { class: "muted" }, `overlap ${s.overlap.replace(/_/g, " ")}`)),
        el("td", { class: "state" }, s.paused ? `paused${s.note ? ": " + s.note : ""}` : "active"),
        el("td", { class: "num runs" }, s.runs),
        el("td", { class: "when next" }, ...nextRun(s)),
        el("td", { class: "running" }, ...s.running.map((id) =>
          el("div", {}, el("a", { href: BASE + "ui/instance?id=" + encodeURIComponent(id) }, id)))),
        el("td", {}, pause, " ", trigger, " ", events, " ", edit));
    }));
    $("empty").hidden = list.length > 0;
    render(list);
  };
  // ---- create, edit, backfill, delete ----
  let edited = null; // the schedule the form edits; null: it creates one
  let shownSchedule = null; // the schedule whose events are shown
  const form = (s) => {
    edited = s;
    $("c-title").textContent = s ? `Edit ${s.id}` : "Create a schedule";
    $("c-save").textContent = s ? "Save" : "Create";
    $("c-new").hidden = !s;
    $("c-id").value = s ? s.id : "";
    for (const id of ["c-id", "c-workflow", "c-input"]) $(id).disabled = !!s;
    if (s) {
      $("c-workflow").value = s.workflow;
      $("c-input").value = JSON.stringify(s.input ?? null);
      $("c-kind").value = s.schedule.cron ? "cron" : "every";
      $("c-cron").value = s.schedule.cron || "";
      $("c-zone").value = s.schedule.time_zone || "";
      $("c-every").value = s.schedule.every_ms ? fmtInterval(s.schedule.every_ms) : "";
      $("c-overlap").value = s.schedule.overlap || "skip";
    }
  };
  const editing = (s) => { form(s); $("create").open = true; $("c-cron").focus(); };
  $("c-new").addEventListener("click", () => form(null));
  // When it runs, from the form: a cron expression (in a zone) or an interval.
  const timing = () => {
    if ($("c-kind").value === "cron") {
      const cron = $("c-cron").value.trim();
      if (!cron) throw new Error("give a cron expression, e.g. 0 2 * * *");
      return { cron, time_zone: $("c-zone").value.trim() || null, every_ms: null, offset_ms: null };
    }
    const every = parseDuration($("c-every").value);
    if (!every) throw new Error("give an interval such as 15m, 1h30m or 1d");
    return { cron: null, time_zone: null, every_ms: every, offset_ms: null };
  };
  $("c-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let schedule;
    let input;
    try {
      schedule = Object.assign({}, edited ? edited.schedule : {}, timing(), { overlap: $("c-overlap").value });
      input = JSON.parse($("c-input").value.trim() || "null");
    } catch (e) {
      return result(e.message, false);
    }
    if (edited) {
      const id = edited.id;
      await act(`update ${id}`, () => api(path(id) + "/update", {
        method: "POST", body: JSON.stringify({ schedule }),
      }));
    } else {
      const id = $("c-id").value.trim();
      await act(`create ${id}`, () => api(BASE + "api/schedules", {
        method: "POST", body: JSON.stringify({ id, workflow: $("c-workflow").value, input, schedule }),
      }));
    }
  });
  $("create").addEventListener("toggle", async () => {
    if (!$("create").open) return;
    try {
      const names = [...new Set((await api(BASE + "api/workflows")).map((w) => w.name))];
      const keep = $("c-workflow").value;
      $("c-workflow").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (keep) $("c-workflow").value = keep;
    } catch (e) {
      result(e.message, false);
    }
  });
  $("backfill").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!shownSchedule) return;
    const { id, overlap } = shownSchedule;
    const from = new Date($("bf-from").value).getTime();
    const to = new Date($("bf-to").value).getTime() + 59999;
    if (!(from <= to)) return result("the range ends before it starts", false);
    act(`backfill ${id}`, () => api(path(id) + "/backfill", {
      method: "POST", body: JSON.stringify({ from_ms: from, to_ms: to, overlap }),
    }));
  });
  $("delete").addEventListener("click", () => {
    const id = shown;
    if (!confirm(`Delete schedule ${id}? No run starts from it again; runs already started go on.`)) return;
    shown = null;
    if (edited && edited.id === id) form(null);
    act(`delete ${id}`, () => api(path(id), { method: "DELETE" }));
  });

  const render = (list) => {
    const s = list.find((x) => x.id === shown);
    shownSchedule = s || null;
    $("detail").hidden = !s;
    if (!s) return;
    $("detail-id").textContent = s.id;
    $("events").querySelector("tbody").replaceChildren(...s.recent.slice().reverse().map((e) =>
      el("tr", {}, el("td", { class: "when" }, fmtTime(e.at_ms)), el("td", {}, scheduleEvent(e.kind)))));
  };
  const tick = poll(load);
  setupTokenForm(() => tick());
}

if (document.body.dataset.page === "list") listPage();
else if (document.body.dataset.page === "instance") instancePage();
else if (document.body.dataset.page === "schedules") schedulesPage();
