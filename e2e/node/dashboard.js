#!/usr/bin/env node
// The master's dashboard in headless Chromium, driven by playwright-core
// against Debian's /usr/bin/chromium:
//
//   node dashboard.js URL_WITH_TOKEN SCREENSHOT_DIR IDS KILL_ID -- KILL_COMMAND...
//
// IDS is a comma-separated list of every server id. Checks, in order:
//   1. without the token the page and its data answer 401 and show no server;
//   2. with it every server is listed, running, with pid and build, by host
//      and group, and a frontend under load shows a request rate and a p99;
//   3. a Stop whose confirmation is dismissed stops nothing;
//   4. after KILL_COMMAND (the test's `master kill --id KILL_ID`) the page
//      shows KILL_ID not running within 5 s, without a reload (live);
//   5. Restart on KILL_ID, confirmed, brings it back running with a new pid.
// Screenshots go to SCREENSHOT_DIR (dashboard-*.png). Exit 0 on success; 1
// with a message on the first failed check.
'use strict';

const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const OVERALL_MS = 150000;
const STEP_MS = 20000;
const LIVE_MS = 5000; // a kill must show within this

const t0 = Date.now();
function log(msg) { console.log(`[${((Date.now() - t0) / 1000).toFixed(2)}s] ${msg}`); }
class CheckError extends Error {}
function fail(msg) { throw new CheckError(msg); }

async function rows(page) {
  return page.$$eval('tr[data-id]', (trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td');
    return {
      id: tr.dataset.id, state: tr.dataset.state, pid: td[3].textContent, sessions: td[4].textContent,
      rate: td[5].textContent, p99: td[6].textContent, build: td[7].textContent,
      host: tr.closest('section').dataset.host,
    };
  }));
}

async function waitRows(page, what, pred, timeout = STEP_MS) {
  const deadline = Date.now() + timeout;
  let last = [];
  for (;;) {
    last = await rows(page);
    if (pred(last)) return last;
    if (Date.now() > deadline) fail(`timed out after ${timeout / 1000} s waiting for ${what}; rows: ${JSON.stringify(last, null, 1)}`);
    await page.waitForTimeout(100);
  }
}

async function main() {
  const sep = process.argv.indexOf('--');
  const [url, shots, idList, killID] = process.argv.slice(2, sep);
  const killCmd = process.argv.slice(sep + 1);
  const ids = idList.split(',');
  const base = new URL(url);
  base.search = '';

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000 });
  try {
    // 1. No token: 401, no server data, for the page and the API.
    const anon = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const ap = await anon.newPage();
    const resp = await ap.goto(base.href);
    if (resp.status() !== 401) fail(`page without the token: ${resp.status()}, want 401`);
    const body = await ap.textContent('body');
    for (const id of ids) if (body.includes(id)) fail(`page without the token shows ${id}`);
    for (const p of ['api/servers', 'api/events']) {
      const r = await ap.request.get(new URL(p, base).href);
      const text = await r.text();
      if (r.status() !== 401 || ids.some((id) => text.includes(id))) fail(`/${p} without the token: ${r.status()} ${text.slice(0, 200)}`);
    }
    await ap.screenshot({ path: path.join(shots, 'dashboard-no-token.png'), fullPage: true });
    log('without the token: 401, no server shown');
    await anon.close();

    // 2. With the token: every server, by host and group, running.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    if (new URL(page.url()).search !== '') fail(`the token stays in the address bar: ${page.url()}`);
    let rs = await waitRows(page, 'every server running, with pid and build',
      (rs) => ids.every((id) => rs.some((r) => r.id === id && r.state === 'running' && r.pid !== '' && r.build !== '')));
    log(`listed: ${rs.map((r) => `${r.id}=${r.state}`).join(' ')}`);
    const groups = await page.$$eval('tr.group td', (tds) => tds.map((td) => td.textContent));
    if (!groups.length) fail('no group rows');
    if (!(await page.$$eval('section h2', (hs) => hs.map((h) => h.textContent))).some((h) => h.startsWith('host '))) fail('no host sections');
    rs = await waitRows(page, 'a request rate and a p99 on a connector under load',
      (rs) => rs.some((r) => r.id.startsWith('connector') && r.rate !== '' && parseFloat(r.rate) > 0 && r.p99 !== ''));
    log(`figures: ${rs.map((r) => `${r.id} ${r.sessions} sessions ${r.rate} req/s p99 ${r.p99} ms`).join('; ')}`);
    await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });

    // 3. A dismissed confirmation does nothing.
    const first = ids[0];
    page.once('dialog', (d) => d.dismiss());
    await page.click(`tr[data-id="${first}"] button[data-action="stop"]`);
    await page.waitForTimeout(1500);
    rs = await rows(page);
    if (rs.find((r) => r.id === first).state !== 'running') fail(`${first} left running after a dismissed stop`);
    log(`dismissed stop of ${first}: still running`);

    // 4. A kill shows, live, within 5 s.
    const oldPid = rs.find((r) => r.id === killID).pid;
    execFileSync(killCmd[0], killCmd.slice(1), { stdio: 'inherit', timeout: 30000 });
    const killed = Date.now();
    await waitRows(page, `${killID} not running`, (rs) => rs.some((r) => r.id === killID && r.state !== 'running'), LIVE_MS);
    log(`${killID} shown as not running ${Date.now() - killed} ms after the kill returned`);
    await page.screenshot({ path: path.join(shots, 'dashboard-killed.png'), fullPage: true });

    // 5. Restart from the page, confirmed.
    page.once('dialog', (d) => {
      if (!d.message().includes(killID)) fail(`confirmation ${JSON.stringify(d.message())} does not name ${killID}`);
      d.accept();
    });
    await page.click(`tr[data-id="${killID}"] button[data-action="restart"]`);
    rs = await waitRows(page, `${killID} running again with a new pid`,
      (rs) => rs.some((r) => r.id === killID && r.state === 'running' && r.pid !== '' && r.pid !== oldPid), 60000);
    await page.waitForFunction(() => document.getElementById('notice').textContent.includes('done'), null, { timeout: STEP_MS });
    log(`${killID} restarted from the page: pid ${oldPid} → ${rs.find((r) => r.id === killID).pid}; notice: ${await page.textContent('#notice')}`);
    await page.screenshot({ path: path.join(shots, 'dashboard-restarted.png'), fullPage: true });
    if (errors.length) fail(`page errors: ${errors.join('; ')}`);
    await ctx.close();
  } finally {
    await browser.close();
  }
}

const timer = setTimeout(() => { console.error(`dashboard.js: over ${OVERALL_MS / 1000} s`); process.exit(1); }, OVERALL_MS);
main().then(() => { clearTimeout(timer); log('ok'); }, (e) => {
  console.error(e instanceof CheckError ? `FAIL: ${e.message}` : e);
  process.exit(1);
});
