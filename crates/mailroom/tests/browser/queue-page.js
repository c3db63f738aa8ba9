// The queue page's end-to-end script (run by queue_page_in_a_browser_shows_and_steers_a_
// deferred_queue.rs): MODE=hold filters the list by DOMAIN, expects exactly EXPECT rows,
// opens message ID, checks its subject is shown as text (SUBJECT holds markup that must
// not run), and holds it with the button; MODE=release finds it in the hold queue and
// releases it; MODE=suspend suspends DEST for two hours with the form, MODE=resume resumes
// it with its button. Every step waits for its exact condition; prints "ok" at the end.
"use strict";
const { open } = require("./launch.js");

const env = (k) => {
  if (!process.env[k]) throw new Error("missing " + k);
  return process.env[k];
};

async function main() {
  const { page, trouble, close } = await open(env("PAGE_URL"));
  try {
    await page.fill("#token", env("TOKEN"));
    await page.click("#token-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("token-state").textContent === "token set");
    await { hold, release, suspend, resume }[env("MODE")](page);
    const injected = await page.evaluate(() => ({
      pwned: window.pwned === undefined ? null : String(window.pwned),
      scripts: [...document.scripts].map((s) => s.src),
      images: document.images.length,
    }));
    if (injected.pwned !== null || injected.scripts.length !== 1 || injected.images !== 0) {
      throw new Error("markup from the queue ran or was inserted: " + JSON.stringify(injected));
    }
    if (trouble.length) throw new Error(trouble.join("; "));
    console.log("ok");
  } finally {
    await close();
  }
}

// Waits until the list shows exactly `ids`-many rows and `check` holds for all of them.
async function listed(page, expect, text) {
  await page.waitForFunction(
    ([n, t]) => {
      const rows = [...document.querySelectorAll("#messages tbody tr[data-id]")];
      return rows.length === n && rows.every((r) => r.textContent.includes(t))
        && !document.getElementById("list-status").textContent.includes("loading");
    },
    [expect, text],
  );
}

async function detailState(page, id, state) {
  await page.waitForFunction(
    ([i, s]) => document.getElementById("detail-id").textContent === i
      && document.getElementById("detail-state").textContent === s
      && document.querySelector("#detail [data-verb=hold]") !== null,
    [id, state],
  );
}

async function hold(page) {
  const id = env("ID"), domain = env("DOMAIN");
  await page.fill("#filter input[name=domain]", domain);
  await page.click("#filter button[type=submit]");
  await listed(page, Number(env("EXPECT")), "@" + domain);
  await page.click(`#messages tr[data-id="${id}"]`);
  await detailState(page, id, "deferred");
  await page.waitForFunction((s) => {
    const dd = document.querySelector('#detail-facts [data-fact="subject"]');
    return dd !== null && dd.textContent === s;
  }, env("SUBJECT"));
  await page.waitForFunction(() => !document.querySelector("#detail [data-verb=hold]").disabled);
  await page.click("#detail [data-verb=hold]");
  await detailState(page, id, "hold");
  await page.waitForFunction(
    (i) => document.querySelector(`#messages tr[data-id="${i}"] .state`).textContent === "hold", id);
}

async function release(page) {
  const id = env("ID");
  await page.selectOption("#filter select[name=queue]", "hold");
  await page.click("#filter button[type=submit]");
  await listed(page, 1, id);
  await page.click(`#messages tr[data-id="${id}"]`);
  await detailState(page, id, "hold");
  await page.waitForFunction(() => !document.querySelector("#detail [data-verb=release]").disabled);
  await page.click("#detail [data-verb=release]");
  // Released mail is due again: deferred, or active for a moment while it is retried.
  await page.waitForFunction((i) => document.getElementById("detail-id").textContent === i
    && !["", "hold"].includes(document.getElementById("detail-state").textContent), id);
}

const suspendedRow = (dest) => `#suspended tr[data-destination="${dest}"]`;

async function suspend(page) {
  const dest = env("DEST");
  await page.fill("#suspend-form input[name=destination]", dest);
  await page.fill("#suspend-form input[name=for]", "2h");
  await page.fill("#suspend-form input[name=reason]", env("REASON"));
  await page.click("#suspend-form button[type=submit]");
  await page.waitForFunction(([sel, why]) => {
    const row = document.querySelector(sel);
    return row !== null && row.textContent.includes(why) && row.textContent.includes("(in ");
  }, [suspendedRow(dest), env("REASON")]);
}

async function resume(page) {
  const dest = env("DEST");
  await page.click(suspendedRow(dest) + " button");
  await page.waitForFunction((sel) => document.querySelector(sel) === null
    && document.querySelector("#suspended tbody td.empty") !== null, suspendedRow(dest));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
