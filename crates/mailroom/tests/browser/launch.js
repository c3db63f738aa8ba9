// Starts Debian's Chromium headless through playwright-core (no browser download), with a
// fresh profile and nothing that phones home, and records what must never happen on the
// queue page: a dialog (alert() from injected markup) or an uncaught page error.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

// `token`, when given, is in the tab's sessionStorage before the page's own script runs (as
// if entered earlier in this tab): for a page whose listings need it (a node reached from
// another host).
async function open(url, viewport, token) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "mailroom-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: viewport || { width: 1400, height: 1000 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  context.setDefaultTimeout(90000);
  if (token) await context.addInitScript((t) => sessionStorage.setItem("mailroom.token", t), token);
  const page = context.pages()[0] || (await context.newPage());
  const trouble = [];
  page.on("dialog", (d) => { trouble.push("dialog: " + d.message()); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => trouble.push("page error: " + e.message));
  await page.goto(url);
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { page, trouble, close };
}

module.exports = { open };
