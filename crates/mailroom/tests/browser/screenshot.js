// The README's picture of the queue page (scripts/screenshot-queue-page.sh runs this):
// loads PAGE_URL with TOKEN, one-minute qshape buckets, a list filtered to DOMAIN, and
// writes a full-page PNG to OUT once the summaries and the list have been drawn.
"use strict";
const { open } = require("./launch.js");

async function main() {
  const { page, trouble, close } = await open(process.env.PAGE_URL, { width: 1440, height: 900 });
  try {
    await page.fill("#token", process.env.TOKEN);
    await page.click("#token-form button[type=submit]");
    await page.uncheck("#auto");
    await page.selectOption("#shape-tick", "1");
    await page.fill("#filter input[name=domain]", process.env.DOMAIN);
    await page.click("#filter button[type=submit]");
    await page.waitForFunction(() =>
      document.querySelectorAll("#shape tbody tr").length > 3
      && document.querySelectorAll("#reasons li .why").length > 1
      && document.querySelectorAll("#suspended tbody tr[data-destination]").length > 0
      && document.querySelectorAll("#chart polyline").length > 0
      && document.querySelectorAll("#messages tbody tr[data-id]").length > 5
      && !document.getElementById("list-status").textContent.includes("loading"));
    await page.evaluate(() => document.fonts.ready);
    await page.screenshot({ path: process.env.OUT, fullPage: true });
    if (trouble.length) throw new Error(trouble.join("; "));
    console.log("wrote " + process.env.OUT);
  } finally {
    await close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
