// The queue page's Fleet panel, end to end (run by queue_page_shows_the_fleet_and_a_
// suspension_made_on_one_node_on_the_others.rs). Modes:
//   nodes      NODES (JSON: [{name, deferred, link}]) are the panel's rows, all live, with
//              exactly those deferred counts and links, TOTAL the live nodes' deferred
//              total; then DEST is suspended with the page's form (TOKEN, REASON) and the
//              panel's shared suspensions show it made on ME.
//   suspended  the panel shows DEST suspended on SETBY with REASON (as text), and the
//              node's own "Suspended destinations" card lists it.
//   stale      node STALE is marked stale, node LIVE live, "1 of 2 live" in the totals.
//   single     the page of a node alone: once its answer to /api/v1/fleet is in, the panel
//              stays hidden.
// With READ_TOKEN (the nodes are reached from another host: their listings need the token)
// the tab holds that token from the start. Every step waits for its exact condition; prints
// "ok" at the end. With SHOT=DIR in the
// environment, each mode leaves DIR/MODE.png (a full-page screenshot, to look at).
"use strict";
const { open } = require("./launch.js");

const env = (k) => {
  if (!process.env[k]) throw new Error("missing " + k);
  return process.env[k];
};

async function main() {
  const { page, trouble, close } = await open(env("PAGE_URL"), undefined, process.env.READ_TOKEN);
  try {
    await { nodes, suspended, stale, single }[env("MODE")](page);
    const injected = await page.evaluate(() => ({
      pwned: window.pwned === undefined ? null : String(window.pwned),
      scripts: [...document.scripts].map((s) => s.src),
      images: document.images.length,
    }));
    if (injected.pwned !== null || injected.scripts.length !== 1 || injected.images !== 0) {
      throw new Error("markup from the data ran or was inserted: " + JSON.stringify(injected));
    }
    if (trouble.length) throw new Error(trouble.join("; "));
    if (process.env.SHOT) await page.screenshot({ path: process.env.SHOT + "/" + env("MODE") + ".png", fullPage: true });
    console.log("ok");
  } finally {
    await close();
  }
}

// The state of the panel's node rows, as the page shows them.
function rowsOf(page) {
  return page.evaluate(() => [...document.querySelectorAll("#fleet-nodes tbody tr[data-node]")].map((tr) => {
    const a = tr.querySelector("a");
    return {
      name: tr.dataset.node,
      state: tr.children[1].textContent,
      stale: tr.classList.contains("stale"),
      deferred: tr.querySelector('[data-queue="deferred"]').textContent,
      link: a ? a.getAttribute("href") : null,
    };
  }));
}

async function nodes(page) {
  const want = JSON.parse(env("NODES"));
  await page.waitForFunction(([w, total]) => {
    const card = document.getElementById("fleet-card");
    const rows = [...document.querySelectorAll("#fleet-nodes tbody tr[data-node]")];
    const foot = document.querySelector('#fleet-nodes tfoot [data-queue="deferred"]');
    return !card.hidden && rows.length === w.length && foot !== null && foot.textContent === total
      && w.every((n, i) => {
        const tr = rows[i], a = tr.querySelector("a");
        return tr.dataset.node === n.name && tr.children[1].textContent === "live"
          && tr.querySelector('[data-queue="deferred"]').textContent === String(n.deferred)
          && a !== null && a.getAttribute("href") === n.link;
      });
  }, [want, env("TOTAL")]).catch(async (e) => {
    throw new Error(e.message + "; rows: " + JSON.stringify(await rowsOf(page)));
  });
  await page.fill("#token", env("TOKEN"));
  await page.click("#token-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("token-state").textContent === "token set");
  await page.fill("#suspend-form input[name=destination]", env("DEST"));
  await page.fill("#suspend-form input[name=reason]", env("REASON"));
  await page.click("#suspend-form button[type=submit]");
  await fleetSuspension(page, env("ME"));
}

// Waits until the panel lists DEST suspended on `node`, with REASON as text.
async function fleetSuspension(page, node) {
  await page.waitForFunction(([dest, by, why]) => {
    const tr = document.querySelector(`#fleet-suspended tr[data-destination="${dest}"]`);
    return tr !== null && tr.querySelector(".node").textContent === by
      && tr.children[4].textContent === why;
  }, [env("DEST"), node, env("REASON")]);
}

async function suspended(page) {
  await fleetSuspension(page, env("SETBY"));
  await page.waitForFunction((dest) =>
    document.querySelector(`#suspended tr[data-destination="${dest}"]`) !== null, env("DEST"));
}

async function stale(page) {
  await page.waitForFunction(([gone, live]) => {
    const row = (n) => document.querySelector(`#fleet-nodes tr[data-node="${n}"]`);
    const foot = document.querySelector("#fleet-nodes tfoot tr");
    return row(gone) !== null && row(gone).classList.contains("stale")
      && row(gone).children[1].textContent === "stale"
      && row(live) !== null && row(live).children[1].textContent === "live"
      && foot !== null && foot.children[1].textContent === "1 of 2 live";
  }, [env("STALE"), env("LIVE")]).catch(async (e) => {
    throw new Error(e.message + "; rows: " + JSON.stringify(await rowsOf(page)));
  });
}

async function single(page) {
  await page.waitForFunction(() => document.getElementById("fleet-card").dataset.fleet === "no");
  const shown = await page.evaluate(() => {
    const card = document.getElementById("fleet-card");
    return { hidden: card.hidden, visible: card.checkVisibility(), rows: card.querySelectorAll("tr[data-node]").length };
  });
  if (!shown.hidden || shown.visible || shown.rows !== 0) {
    throw new Error("a node alone shows a Fleet panel: " + JSON.stringify(shown));
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
