// Drives the durable web UI in Debian's Chromium with playwright-core and
// asserts on what the pages show. Never downloads a browser.
//
//   node e2e.mjs http://127.0.0.1:PORT TOKEN SCREENSHOT_DIR
//
// Started by tests/tests/ui_browser.rs, which sets up the instances:
// checkout-1 completed, payment-1 failed: it returned the card's error after
// two failed attempts, invoice-1 failed (a panic in workflow code), approval-1
// and approval-2 waiting for the `approve` signal, reminder-1 sleeping (its
// search attribute customer=acme).
// A schedule `nightly-checkout` (02:00 Berlin) is paused and run from its page.
// Prints `SCREENSHOT <path>` for each screenshot it saves.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

// axe-core, the accessibility engine browsers' own audits use, run in the page
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const [base, token, shotDir] = process.argv.slice(2);
if (!base || !token || !shotDir) {
  console.error("usage: node e2e.mjs BASE_URL TOKEN SCREENSHOT_DIR");
  process.exit(2);
}
const executablePath = process.env.DURABLE_CHROMIUM || "/usr/bin/chromium";
// Waiting is bounded so a broken page fails the run instead of hanging it;
// nothing asserts on how long anything took.
const PATIENCE_MS = 30_000;

async function waitUntil(what, check) {
  const giveUp = Date.now() + PATIENCE_MS;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > giveUp) {
      throw new Error(`gave up waiting until ${what}${last ? `: ${last.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rows(page) {
  return page.$$eval("#instances tbody tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.id,
    phase: tr.querySelector(".badge").dataset.phase,
    error: tr.querySelector("td.err").textContent,
  })));
}

async function rowIds(page) {
  return (await rows(page)).map((r) => r.id).sort().join(",");
}

async function shot(page, name) {
  const file = path.join(shotDir, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`SCREENSHOT ${file}`);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "durable-ui-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
const pageErrors = [];
try {
  const page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));

  // ---- the list, with the token handed over in the fragment ----
  await page.goto(`${base}#token=${encodeURIComponent(token)}`);
  await waitUntil("the list shows six instances", async () => (await rows(page)).length === 6);
  assert.equal(new URL(page.url()).hash, "", "the token is removed from the address bar");
  const phases = Object.fromEntries((await rows(page)).map((r) => [r.id, r.phase]));
  assert.deepEqual(phases, {
    "approval-1": "waiting_for_signal",
    "approval-2": "waiting_for_signal",
    "checkout-1": "completed",
    "invoice-1": "failed",
    "payment-1": "failed",
    "reminder-1": "sleeping",
  });
  assert.equal((await rows(page)).map((r) => r.id).join(","),
    "reminder-1,approval-2,approval-1,invoice-1,payment-1,checkout-1", "newest start first");
  const failedRow = (await rows(page)).find((r) => r.id === "invoice-1");
  assert.match(failedRow.error, /a reservation is a number/);
  const count = (phase) => page.textContent(`#counts a[data-phase="${phase}"] b`);
  assert.equal(await count("waiting_for_signal"), "2");
  assert.equal(await count("sleeping"), "1");
  assert.equal(await count("failed"), "2");
  assert.equal(await count("completed"), "1");
  assert.equal(await count(""), "6");

  // the workflow box offers every registered name, which the browser
  // matches as one types (a prefix search on workflow names)
  await waitUntil("the workflow box offers the registered names", async () => {
    const offered = await page.$$eval("#workflows option", (os) => os.map((o) => o.value));
    return ["approval", "checkout", "invoice", "payment", "reminder"].every((w) => offered.includes(w));
  });

  // filters: status, then id prefix, then workflow
  await page.selectOption("#f-status", "sleeping");
  await waitUntil("the status filter leaves the sleeper", async () => (await rowIds(page)) === "reminder-1");
  assert.match(page.url(), /status=sleeping/);
  await page.click("#f-clear");
  await waitUntil("clearing shows all again", async () => (await rows(page)).length === 6);
  await page.fill("#f-prefix", "approval-");
  await waitUntil("the prefix filter leaves the approvals",
    async () => (await rowIds(page)) === "approval-1,approval-2");
  // the status chips count what the other filters match
  await waitUntil("the chips follow the prefix filter",
    async () => (await count("")) === "2" && (await count("waiting_for_signal")) === "2"
      && (await count("failed")) === "0");
  await page.click("#f-clear");
  await page.fill("#f-workflow", "payment");
  await waitUntil("the workflow filter leaves the payment", async () => (await rowIds(page)) === "payment-1");
  await waitUntil("the chips follow the workflow filter",
    async () => (await count("")) === "1" && (await count("failed")) === "1"
      && (await count("waiting_for_signal")) === "0");
  await page.click("#f-clear");
  await waitUntil("clearing shows all again", async () => (await rows(page)).length === 6);
  await page.click('#counts a[data-phase="failed"]');
  await waitUntil("the failed chip filters",
    async () => (await rowIds(page)) === "invoice-1,payment-1");
  const returned = (await rows(page)).find((r) => r.id === "payment-1");
  assert.match(returned.error, /card declined/, "a returned error shows as the failure");
  await page.click("#f-clear");
  await waitUntil("clearing shows all again", async () => (await rows(page)).length === 6);

  // a search attribute, then the start-time range
  await page.fill("#f-attr", "customer=acme");
  // (a refresh may apply the typed filter before the pause after typing
  // puts it in the address)
  await waitUntil("the attribute filter leaves the reminder and is kept in the address",
    async () => (await rowIds(page)) === "reminder-1" && /attr=customer%3Dacme/.test(page.url()));
  await page.click("#f-clear");
  const minute = (offsetMs) => {
    const d = new Date(Date.now() + offsetMs);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };
  await page.fill("#f-from", minute(2 * 3600_000));
  await waitUntil("nothing started in two hours' time, and the address says so",
    async () => (await page.isVisible("#empty")) && /started_from=\d+/.test(page.url()));
  await page.fill("#f-from", minute(-2 * 3600_000));
  await page.fill("#f-to", minute(2 * 3600_000));
  await waitUntil("everything started within the range", async () => (await rows(page)).length === 6);
  await page.click("#f-clear");
  await waitUntil("clearing shows all again", async () => (await rows(page)).length === 6);

  // paging: four per page (the page size from the address), forward and back
  await page.goto(`${base}?limit=4`);
  await waitUntil("the first page holds four", async () => (await rows(page)).length === 4);
  const firstPage = await rowIds(page);
  assert.ok(await page.isHidden("#prev"), "no previous page on the first");
  await page.click("#more");
  await waitUntil("the second page holds the other two", async () => (await rows(page)).length === 2);
  const secondPage = (await rowIds(page)).split(",");
  assert.ok(secondPage.every((id) => !firstPage.split(",").includes(id)), "no id on both pages");
  assert.equal(await page.textContent("#page-no"), "page 2");
  await page.click("#prev");
  await waitUntil("back on the first page", async () => (await rowIds(page)) === firstPage);
  await page.selectOption("#f-limit", "50");
  await waitUntil("one page holds all", async () => (await rows(page)).length === 6);
  assert.ok(await page.isHidden("#more"), "no next page when all fit");
  await shot(page, "list.png");
  // times say their zone, and how long ago
  assert.match(await page.textContent("#refreshed"), /times in \S+/);
  const startedAgo = await page.textContent('#instances tr[data-id="checkout-1"] td.when');
  assert.match(startedAgo, /just now|min ago|h ago/);

  // ---- an unknown id: said once, not polled ----
  let asks = 0;
  const counting = (r) => { if (r.url().includes("/api/instances/nope-404")) asks += 1; };
  page.on("request", counting);
  await page.goto(`${base}/ui/instance?id=nope-404`);
  await waitUntil("the page says the id is unknown",
    async () => /no instance with id "nope-404"/.test(await page.textContent("#error")));
  assert.ok(await page.isDisabled("#cancel"), "nothing to cancel");
  // more than two refresh periods (2 s each): a page still polling asks again
  await new Promise((r) => setTimeout(r, 4500));
  assert.equal(asks, 1, "an unknown id is not polled");
  page.off("request", counting);
  await page.goto(base);
  await waitUntil("the list is back", async () => (await rows(page)).length === 6);

  // ---- failed attempts: timeline bars with durations and the error ----
  await page.click('#instances tr[data-id="payment-1"] a');
  await page.waitForURL(/\/ui\/instance\?id=payment-1/);
  await waitUntil("the page loads",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "failed");
  await waitUntil("the timeline shows the attempts",
    async () => (await page.$$(".timeline .row.attempt")).length > 0);
  const bars = await page.$$eval(".timeline .row.attempt", (rs) => rs.map((r) => ({
    failed: r.classList.contains("failed"),
    hasBar: !!r.querySelector(".bar"),
    label: r.querySelector(".what").textContent,
    duration: r.querySelector(".duration").textContent,
    error: (r.querySelector(".err") || { textContent: "" }).textContent,
  })));
  assert.equal(bars.length, 2, `two attempts: ${JSON.stringify(bars)}`);
  for (const [i, bar] of bars.entries()) {
    assert.ok(bar.hasBar && bar.failed, `attempt ${i + 1} is a failed bar`);
    assert.match(bar.label, new RegExp(`charge_card · attempt ${i + 1}`));
    assert.match(bar.duration, /\d+(\.\d+)? (ms|s)/);
    assert.match(bar.error, /^ ?error: card declined: insufficient funds for 420$/, "the kind named once");
  }
  assert.equal(await page.textContent("#input"), "420");
  // what the activity was called with and returned, folded until opened
  const called = await page.$$eval('.timeline .row[data-kind="ActivityCalled"]', (rs) => rs.map((r) => ({
    label: r.querySelector(".what").textContent,
    names: [...r.querySelectorAll("details summary b")].map((b) => b.textContent.trim()),
    values: [...r.querySelectorAll("details pre")].map((p) => p.textContent),
    open: r.querySelector("details").open,
  })));
  assert.equal(called.length, 1, `one call ended the activity: ${JSON.stringify(called)}`);
  assert.match(called[0].label, /step \d+: charge_card called/);
  assert.deepEqual(called[0].names, ["input", "result"]);
  assert.equal(called[0].open, false, "folded until opened");
  assert.equal(JSON.parse(called[0].values[0]), 420);
  assert.match(JSON.stringify(JSON.parse(called[0].values[1])), /"Err":.*card declined: insufficient funds for 420/);
  await waitUntil("the state shows the instance ended",
    async () => /^null/.test(await page.textContent("#state")));
  assert.ok(await page.isDisabled("#cancel"), "an ended instance cannot be cancelled");
  await shot(page, "attempts-instance.png");

  // ---- a failed instance shows why ----
  await page.goto(`${base}/ui/instance?id=invoice-1`);
  await waitUntil("the status badge says failed",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "failed");
  assert.match(await page.textContent('#summary dd[data-field="error"]'), /a reservation is a number/);
  await waitUntil("the timeline shows the end",
    async () => /finished: failed/.test(await page.textContent("#timeline")));
  assert.equal(await page.$$eval(".timeline .bar.ok", (b) => b.length), 1, "reserve succeeded once");

  // ---- a waiting instance: its state, then a signal through the form ----
  await page.goto(`${base}/ui/instance?id=approval-1`);
  await waitUntil("the state JSON shows the request",
    async () => /"request": "approval-1 laptop"/.test(await page.textContent("#state")));
  assert.equal(await page.getAttribute("#i-status", "data-phase"), "waiting_for_signal");
  assert.match(await page.textContent('#summary dd[data-field="waiting for"]'), /signal approve/);
  await waitUntil("the awaited signal's name is filled in",
    async () => (await page.inputValue("#signal-name")) === "approve");
  await page.fill("#signal-name", "approve");
  await page.fill("#signal-payload", "{by: dana}");
  await page.click("#signal-send");
  await waitUntil("a malformed payload is refused in the page",
    async () => /not JSON/.test(await page.textContent("#action-result")));
  await page.fill("#signal-payload", '{"by": "dana"}');
  await page.click("#signal-send");
  await waitUntil("a payload of the wrong shape is refused by the service",
    async () => /failed: .*missing field `amount`/.test(await page.textContent("#action-result")));
  await page.fill("#signal-payload", '{"by": "dana", "amount": 3}');
  await page.click("#signal-send");
  await waitUntil("the signal is accepted",
    async () => /signal approve accepted/.test(await page.textContent("#action-result")));
  await waitUntil("the instance completes",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "completed");
  await waitUntil("the timeline shows the end",
    async () => /finished: completed/.test(await page.textContent("#timeline")));
  await waitUntil("the output is shown",
    async () => /"Ok": "approval-1 laptop approved by dana for 3"/.test(await page.textContent("#output")));
  // the payload the signal carried, in the timeline: opened, it is the JSON sent
  const carried = '.timeline .row[data-kind="SignalPayload"]';
  await waitUntil("the signal's payload is in the timeline", async () => (await page.$$(carried)).length === 1);
  assert.match(await page.textContent(`${carried} .what`), /step \d+: signal approve carried/);
  assert.equal(await page.isVisible(`${carried} details pre`), false, "folded until opened");
  await page.click(`${carried} summary`);
  assert.ok(await page.isVisible(`${carried} details pre`), "shown once opened");
  assert.deepEqual(JSON.parse(await page.textContent(`${carried} details pre`)), { by: "dana", amount: 3 });
  await shot(page, "signalled-instance.png");

  // ---- cancel through the button: asked first, and "no" sends nothing ----
  await page.goto(`${base}/ui/instance?id=approval-2`);
  await waitUntil("the page loads",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "waiting_for_signal");
  const asked = [];
  page.once("dialog", (d) => { asked.push(d.message()); d.dismiss(); });
  await page.click("#cancel");
  await waitUntil("the cancel is asked about", async () => asked.length === 1);
  assert.match(asked[0], /^Cancel approval-2\? .*cannot be undone/);
  assert.equal(await page.textContent("#action-result"), "", "a dismissed cancel sends nothing");
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await page.click("#cancel");
  await waitUntil("the instance is cancelled",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "cancelled");

  // ---- terminate: a reason is required, then asked about ----
  await page.goto(`${base}/ui/instance?id=reminder-1`);
  await waitUntil("the sleeper loads",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "sleeping");
  await page.fill("#terminate-reason", " ");
  await page.click("#terminate");
  await waitUntil("an empty reason is refused in the page",
    async () => /give a reason/.test(await page.textContent("#action-result")));
  await page.fill("#terminate-reason", "customer left");
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await page.click("#terminate");
  await waitUntil("the instance is terminated",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "terminated");
  assert.match(asked[2], /^Terminate reminder-1 now, with reason "customer left"\?/);
  await waitUntil("the reason is in the summary",
    async () => /customer left/.test(await page.textContent("#summary")));

  // ---- reset: the failed payment goes back to the await of its charge ----
  await page.goto(`${base}/ui/instance?id=payment-1`);
  await page.waitForSelector("#reset-box:not([hidden])");
  await waitUntil("the kept steps are offered",
    async () => /step 1: .*activity charge_card/.test(await page.textContent("#reset-step")));
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await page.fill("#reset-reason", "card limit raised");
  await page.click("#reset");
  await waitUntil("the reset is accepted",
    async () => /reset to step 1 accepted/.test(await page.textContent("#action-result")));
  assert.match(asked[3], /^Reset payment-1 to step 1\?/);
  await waitUntil("the timeline shows the reset and the new run's end",
    async () => /reset from step 2 to step 1: run 2 starts/.test(await page.textContent("#timeline"))
      && (await page.getAttribute("#i-status", "data-phase")) === "failed");
  assert.match(await page.textContent('#summary dd[data-field="workflow"]'), /run 2/);

  // ---- a batch from the list: what the filters match, previewed, asked, run ----
  await page.goto(`${base}?workflow=invoice`);
  await waitUntil("the list shows the invoice", async () => (await rowIds(page)) === "invoice-1");
  await page.click("#batch summary");
  await page.selectOption("#b-action", "reset");
  await page.click("#b-preview");
  await waitUntil("the preview names it",
    async () => /would reset to the latest kept step 1 instances: invoice-1/.test(await page.textContent("#b-result")));
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await page.click("#b-run");
  await waitUntil("the batch ends",
    async () => /batch done: 1 of 1: 1 done, 0 skipped, 0 failed/.test(await page.textContent("#b-result")));
  assert.match(asked[4], /^reset to the latest kept step 1 instances, every one these filters match\?/);

  // ---- contrast (WCAG AA, 4.5:1) of every text, and axe-core's WCAG 2.1
  // A and AA rules, on every page in both colour schemes ----
  // The colours the page computes: each element's text against the first
  // opaque background behind it.
  const contrastFailures = () => page.evaluate(() => {
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b]
      .map((c) => c / 255)
      .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
      .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const behind = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
      }
      return rgb(getComputedStyle(document.documentElement).backgroundColor);
    };
    const failures = [];
    for (const el of document.querySelectorAll("body *")) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      const box = el.getBoundingClientRect();
      if (!own || box.width === 0 || getComputedStyle(el).visibility === "hidden") continue;
      const style = getComputedStyle(el);
      if (style.opacity !== "1" || el.closest("button:disabled")) continue;
      const [a, b] = [lum(rgb(style.color)), lum(behind(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) failures.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
    }
    return failures;
  });
  // axe-core's WCAG 2.1 A and AA rules, run in the page
  const axeViolations = async () => {
    await page.evaluate(axeSource);
    return page.evaluate(async () => {
      const r = await globalThis.axe.run(document, {
        runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
      });
      return r.violations.map((v) => `${v.id} (${v.impact}): ${v.help}: ` +
        v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "));
    });
  };
  const pageBackground = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const url of [base, `${base}/ui/instance?id=payment-1`, `${base}/ui/schedules`]) {
      await page.goto(url);
      await waitUntil(`${url} renders`, async () =>
        (await page.$$("#instances tbody tr, .timeline .row, #schedules tbody tr")).length > 0);
      assert.deepEqual(await contrastFailures(), [], `${scheme}: ${url}`);
      assert.deepEqual(await axeViolations(), [], `axe, ${scheme}: ${url}`);
    }
    const bg = await pageBackground();
    if (scheme === "dark") assert.notEqual(bg, "rgb(247, 248, 250)", "the dark scheme has a dark page");
  }
  await page.emulateMedia({ colorScheme: "light" });

  // ---- a phone's width (390 px): nothing wider than the screen ----
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [url, name] of [[base, "list-390-dark.png"],
    [`${base}/ui/instance?id=payment-1`, "instance-390-dark.png"]]) {
    await page.goto(url);
    await waitUntil(`${url} renders`, async () =>
      (await page.$$("#instances tbody tr, .timeline .row")).length > 0);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${url} is ${wide} px wide at 390 px`);
    await shot(page, name);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 900 });

  // ---- a new tab has no token: the page asks for it ----
  const fresh = await context.newPage();
  fresh.on("pageerror", (e) => pageErrors.push(e.message));
  await fresh.goto(`${base}`);
  await fresh.waitForSelector("#token-form:not([hidden])");
  assert.match(await fresh.textContent("#error"), /bearer token/);
  await fresh.fill("#token-input", token);
  await fresh.click("#token-form button");
  await waitUntil("the list loads with the typed token", async () => (await rows(fresh)).length === 6);
  assert.ok(await fresh.isHidden("#token-form"));
  const after = Object.fromEntries((await rows(fresh)).map((r) => [r.id, r.phase]));
  assert.equal(after["approval-1"], "completed");
  assert.equal(after["approval-2"], "cancelled");
  assert.equal(after["reminder-1"], "terminated");

  // ---- schedules: listed, paused with a note, run now, its events ----
  page.on("dialog", (d) => d.accept("holiday freeze"));
  await page.goto(`${base}/ui/schedules`);
  const srow = '#schedules tr[data-id="nightly-checkout"]';
  await waitUntil("the schedule is listed", async () => (await page.$$(srow)).length === 1);
  assert.match(await page.textContent(`${srow} td:nth-child(3)`), /cron "0 2 \* \* \*" in Europe\/Berlin/);
  assert.equal(await page.textContent(`${srow} td.state`), "active");
  // the next run in the schedule's own zone (02:00 Berlin), then in the browser's
  assert.match(await page.textContent(`${srow} td.next`), /\d{4}-\d\d-\d\d 02:00:00 Europe\/Berlin/);
  await page.click(`${srow} button.pause`);
  await waitUntil("it shows paused with the note",
    async () => /paused: holiday freeze/.test(await page.textContent(`${srow} td.state`)));
  assert.equal(await page.textContent(`${srow} td.next`), "none (paused)", "a paused schedule has no next run");
  await page.click(`${srow} button.trigger`);
  await waitUntil("the run is counted", async () => (await page.textContent(`${srow} td.runs`)) === "1");
  await page.click(`${srow} button.events`);
  await waitUntil("the events show the manual run",
    async () => /started nightly-checkout@\S+ \(manual\)/.test(await page.textContent("#events")));
  assert.match(await page.textContent("#events"), /paused: holiday freeze/);
  await shot(page, "schedules.png");

  // ---- a schedule created, backfilled, edited and deleted from the page ----
  await page.click("#create summary");
  await waitUntil("the registered workflows are offered", async () =>
    (await page.$$eval("#c-workflow option", (os) => os.map((o) => o.value))).includes("checkout"));
  await page.fill("#c-id", "hourly-report");
  await page.selectOption("#c-workflow", "checkout");
  await page.fill("#c-input", '"report"');
  await page.selectOption("#c-kind", "every");
  await page.fill("#c-every", "1h");
  await page.selectOption("#c-overlap", "allow_all");
  await page.click("#c-save");
  const hrow = '#schedules tr[data-id="hourly-report"]';
  await waitUntil("the new schedule is listed", async () => (await page.$$(hrow)).length === 1);
  assert.match(await page.textContent(`${hrow} td:nth-child(3)`), /every 1h/);
  assert.match(await page.textContent(`${hrow} td:nth-child(3)`), /overlap allow all/);
  await page.click(`${hrow} button.events`);
  await page.waitForSelector("#detail:not([hidden])");
  const local = (offsetMs) => {
    const d = new Date(Date.now() + offsetMs);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };
  await page.fill("#bf-from", local(-3 * 3600_000));
  await page.fill("#bf-to", local(0));
  await page.click("#bf-run");
  await waitUntil("three hours' runs are backfilled",
    async () => ((await page.textContent("#events")).match(/\(backfill\)/g) || []).length >= 3);
  // edited: a cron in a zone instead of the interval
  await page.click(`${hrow} button.edit`);
  assert.equal(await page.inputValue("#c-every"), "1h", "the form holds the schedule");
  assert.ok(await page.isDisabled("#c-id"), "an edit keeps the id");
  await page.selectOption("#c-kind", "cron");
  await page.fill("#c-cron", "30 6 * * *");
  await page.fill("#c-zone", "Europe/Berlin");
  await page.click("#c-save");
  await waitUntil("the schedule runs on the cron now", async () =>
    /cron "30 6 \* \* \*" in Europe\/Berlin/.test(await page.textContent(`${hrow} td:nth-child(3)`)));
  // a bad interval is said, nothing sent
  await page.click("#c-new");
  await page.fill("#c-id", "bad-interval");
  await page.selectOption("#c-kind", "every");
  await page.fill("#c-every", "soon");
  await page.click("#c-save");
  await waitUntil("the form says what an interval is",
    async () => /interval such as 15m/.test(await page.textContent("#action-result")));
  // deleted, after the question (accepted)
  await page.click(`${hrow} button.events`);
  await page.click("#delete");
  await waitUntil("the deleted schedule is gone", async () => (await page.$$(hrow)).length === 0);
  assert.equal(await page.$$eval('#schedules tr[data-id="bad-interval"]', (r) => r.length), 0);

  // ---- a workflow started from the list page ----
  await page.goto(base);
  await page.click("#start summary");
  await waitUntil("the registered workflows are offered", async () =>
    (await page.$$eval("#s-workflow option", (os) => os.map((o) => o.value))).includes("checkout"));
  await page.selectOption("#s-workflow", "checkout");
  await page.fill("#s-id", "checkout-ui");
  await page.fill("#s-input", "{ not json");
  await page.click("#s-start");
  await waitUntil("bad input is said", async () => /the input is not JSON/.test(await page.textContent("#s-result")));
  await page.fill("#s-input", '"lamp"');
  await page.click("#s-start");
  await page.waitForURL(/\/ui\/instance\?id=checkout-ui/);
  await waitUntil("the started instance completes with its output",
    async () => (await page.getAttribute("#i-status", "data-phase")) === "completed"
      && /reserved lamp/.test(await page.textContent("#output")));

  assert.deepEqual(pageErrors, [], "no script errors in the pages");
  console.log("ui e2e: all checks passed");
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
