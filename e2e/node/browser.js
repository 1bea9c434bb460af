#!/usr/bin/env node
// The chat page (examples/chat/web) in headless Chromium, driven by
// playwright-core against Debian's /usr/bin/chromium:
//
//   node browser.js http://127.0.0.1:PORT/ SCREENSHOT_DIR [CONNECTORS]
//
// With an https:// page every WebSocket must be wss:// (NODE_EXTRA_CA_CERTS
// and the browser profile's NSS database must trust the test's CA). With
// EXPECT_PROTOBUF=1 every page's connector connection must have been
// offered protobuf bodies (the cluster runs with --protobuf), without it
// none may.
//
// CONNECTORS, if given, is a comma-separated list of the cluster's connector
// client addresses (host:port) in server-id order; each page's second
// WebSocket must go to the one the gate's dispatch picks for its name,
// connectors[abs(int32(crc32(name))) % len], and alice and bob must be on
// different ones, so that the room's pushes cross connectors.
//
// Three users (separate browser contexts) join one room through the login
// form. They must see each other arrive, a message to everyone reaches the
// whole room (the sender too), a private message reaches only its target,
// a taken name is refused, and a closed page is seen leaving. Every page
// talks to the gate first, then to a connector, over ws://127.0.0.1.
// Screenshots of pages A and B go to SCREENSHOT_DIR. Exit 0 on success;
// 1 with a message on the first failed check.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
// This machine's network is closed: without these, Chromium's background
// calls out are refused many at a time (see the env notes).
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const OVERALL_MS = 60000; // the whole run
const STEP_MS = 15000;    // one wait for the page to show something

const t0 = Date.now();
function log(msg) { console.log(`[${((Date.now() - t0) / 1000).toFixed(2)}s] ${msg}`); }

class CheckError extends Error {}
function fail(msg) { throw new CheckError(msg); }

// A User is one browser context with one page, recording its WebSockets and
// anything the page throws.
class User {
  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
    this.sockets = []; // playwright WebSocket objects, in the order opened
    this.errors = [];  // uncaught exceptions in the page
    this.console = []; // console errors/warnings, for the failure report
    page.on('websocket', (ws) => this.sockets.push(ws));
    page.on('pageerror', (err) => this.errors.push(String(err)));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') this.console.push(`${m.type()}: ${m.text()}`);
    });
  }

  static async open(browser, name) {
    const context = await browser.newContext({ viewport: { width: 960, height: 640 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    return new User(name, context, page);
  }

  // state describes what the page shows, for failure messages.
  async state() {
    try {
      return await this.page.evaluate(() => {
        const texts = (sel) => Array.from(document.querySelectorAll(sel)).map((e) => e.textContent);
        return {
          status: document.getElementById('status').textContent,
          loginError: document.getElementById('login-error').hidden ? '' : document.getElementById('login-error').textContent,
          users: texts('#users li'),
          targets: Array.from(document.querySelectorAll('#target option')).map((o) => o.value),
          messages: Array.from(document.querySelectorAll('#messages li')).map((li) => (li.className ? `[${li.className}] ` : '') + li.textContent),
        };
      });
    } catch (e) {
      return { unavailable: String(e.message || e) };
    }
  }

  // waitFor waits until pred(document-derived snapshot) holds in the page,
  // failing with what was expected and what the page shows.
  async waitFor(what, fn, arg) {
    try {
      await this.page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 50 });
    } catch (e) {
      fail(`${this.name}: timed out after ${STEP_MS / 1000} s waiting for ${what}\n  page shows: ${JSON.stringify(await this.state(), null, 1)}` +
        (this.console.length ? `\n  console: ${this.console.join('\n    ')}` : '') +
        (this.errors.length ? `\n  page errors: ${this.errors.join('\n    ')}` : ''));
    }
  }

  async waitMessage(text, { cls = null } = {}) {
    const desc = `message line ${JSON.stringify(text)}` + (cls === null ? '' : cls ? ` with class "${cls}"` : ' without a class');
    await this.waitFor(desc, ([text, cls]) => Array.from(document.querySelectorAll('#messages li')).some(
      (li) => li.textContent === text && (cls === null || li.className === cls)), [text, cls]);
  }

  async waitUsers(names) {
    const want = names.slice().sort();
    await this.waitFor(`user list ${JSON.stringify(want)}`, (want) => {
      const got = Array.from(document.querySelectorAll('#users li')).map((li) => li.textContent);
      return JSON.stringify(got) === JSON.stringify(want);
    }, want);
  }

  async messages() {
    return this.page.$$eval('#messages li', (lis) => lis.map((li) => ({ cls: li.className, text: li.textContent })));
  }

  // checkSystem: the join/leave lines are exactly want, in order.
  async checkSystem(want) {
    const got = (await this.messages()).filter((m) => m.cls === 'system').map((m) => m.text);
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${this.name}: join/leave lines ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }

  async join(url, room) {
    const p = this.page;
    await p.goto(url, { waitUntil: 'load' });
    if (!(await p.isVisible('#login'))) fail(`${this.name}: the login form is not visible on a fresh page`);
    if (await p.isVisible('#chat')) fail(`${this.name}: the chat pane is visible before joining (the [hidden] attribute is overridden by CSS?)`);
    await p.fill('#username', this.name);
    await p.fill('#room', room);
    await p.click('#join');
  }

  async joined(room) {
    await this.waitFor(`status "connected as ${this.name} via …" (or a login error)`, (name) =>
      document.getElementById('status').textContent.startsWith(`connected as ${name} via `) ||
      !document.getElementById('login-error').hidden, this.name);
    const err = await this.page.evaluate(() => { const e = document.getElementById('login-error'); return e.hidden ? '' : e.textContent; });
    if (err) fail(`${this.name}: joining room ${room} failed, the page says: ${err}` + (this.console.length ? `\n  console: ${this.console.join('\n    ')}` : ''));
    await this.page.waitForSelector('#chat', { state: 'visible' });
    await this.page.waitForSelector('#login', { state: 'hidden' });
    const shown = await this.page.textContent('#room-name');
    if (shown !== room) fail(`${this.name}: room name shows ${JSON.stringify(shown)}, want ${JSON.stringify(room)}`);
  }

  async send(content, target = '*') {
    const p = this.page;
    await p.selectOption('#target', target);
    await p.fill('#content', content);
    await p.click('#send-button');
    await this.waitFor('the message box to clear after sending', () => document.getElementById('content').value === '');
  }

  // checkWire: the page opened exactly two WebSockets, the first to the gate
  // (closed once it answered), the second to a connector, both on loopback.
  checkWire(gatePort, connectors, scheme) {
    const urls = this.sockets.map((ws) => ws.url());
    if (urls.length !== 2) fail(`${this.name}: the page opened ${urls.length} WebSockets ${JSON.stringify(urls)}, want 2 (gate, then connector)`);
    const parse = (u) => {
      const m = /^(wss?):\/\/127\.0\.0\.1:(\d+)\/?$/.exec(u);
      if (!m || m[1] !== scheme) fail(`${this.name}: WebSocket URL ${u} is not ${scheme}://127.0.0.1:PORT/`);
      return Number(m[2]);
    };
    const [g, c] = urls.map(parse);
    if (g !== gatePort) fail(`${this.name}: first WebSocket ${urls[0]} is not to the gate port ${gatePort} from /config.json`);
    if (c === gatePort) fail(`${this.name}: second WebSocket ${urls[1]} is to the gate, want a connector`);
    if (connectors.length) {
      const want = connectors[Math.abs(zlib.crc32(this.name) | 0) % connectors.length];
      if (`127.0.0.1:${c}` !== want) {
        fail(`${this.name}: second WebSocket ${urls[1]} is not to ${want}, the connector the gate's dispatch picks ` +
          `(abs(int32(crc32(uid))) % ${connectors.length} over ${JSON.stringify(connectors)})`);
      }
    }
    if (!this.sockets[0].isClosed()) fail(`${this.name}: the gate WebSocket is still open after the connector answered`);
    if (this.sockets[1].isClosed()) fail(`${this.name}: the connector WebSocket is closed`);
    return c;
  }
}

async function main() {
  const [url, shotDir, connArg] = process.argv.slice(2);
  if (!url || !shotDir) fail('usage: node browser.js http://127.0.0.1:PORT/ SCREENSHOT_DIR [CONNECTORS]');
  const connectors = connArg ? connArg.split(',').filter(Boolean) : [];
  if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install -y chromium`);
  fs.mkdirSync(shotDir, { recursive: true });

  // The same /config.json the page fetches tells where the gate is.
  const cfgURL = new URL('config.json', url).href;
  const res = await fetch(cfgURL).catch((e) => fail(`GET ${cfgURL}: ${(e.cause && e.cause.message) || e.message}`));
  if (!res.ok) fail(`GET ${cfgURL}: ${res.status} ${res.statusText}`);
  const cfg = await res.json();
  if (cfg.gateHost !== '127.0.0.1' || !Number.isInteger(cfg.gatePort) || cfg.gatePort <= 0) {
    fail(`${cfgURL} = ${JSON.stringify(cfg)}, want {gateHost: "127.0.0.1", gatePort: N}`);
  }
  log(`config.json: gate at ${cfg.gateHost}:${cfg.gatePort}`);

  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000 });
    log(`launched Chromium ${browser.version()}`);
    const room = `room${process.pid}`;
    const [a, b, c] = await Promise.all(['alice', 'bob', 'carol'].map((n) => User.open(browser, n)));

    // A joins alone, then B: B gets both names in the enter reply, A an onAdd.
    await a.join(url, room);
    await a.joined(room);
    await a.waitUsers(['alice']);
    log('alice joined');
    await b.join(url, room);
    await b.joined(room);
    await b.waitUsers(['alice', 'bob']);
    await a.waitUsers(['alice', 'bob']);
    await a.waitMessage('bob joined', { cls: 'system' });
    log('bob joined; alice and bob see each other');

    // C, the bystander: A and B both see it arrive.
    await c.join(url, room);
    await c.joined(room);
    for (const u of [a, b, c]) await u.waitUsers(['alice', 'bob', 'carol']);
    await a.waitMessage('carol joined', { cls: 'system' });
    await b.waitMessage('carol joined', { cls: 'system' });
    log('carol joined; everyone sees three users');

    // The wire: gate first, then a connector, all on loopback.
    const ports = {};
    const scheme = url.startsWith('https:') ? 'wss' : 'ws';
    const wantProtobuf = process.env.EXPECT_PROTOBUF === '1';
    for (const u of [a, b, c]) {
      ports[u.name] = u.checkWire(cfg.gatePort, connectors, scheme);
      const wire = await u.page.evaluate(() => window.chatWire());
      if (!wire || wire.protobuf !== wantProtobuf) fail(`${u.name}: connector connection ${JSON.stringify(wire)}, want protobuf ${wantProtobuf}`);
      log(`${u.name}: WebSockets ${u.sockets.map((ws) => ws.url()).join(' then ')}${wire.protobuf ? ' (protobuf bodies)' : ''}`);
    }
    if (connectors.length > 1 && ports.alice === ports.bob) {
      fail(`alice and bob are both on connector port ${ports.alice}: the room should span two connectors (pick other names)`);
    }

    // A name already in the room is refused, and the page says so.
    const d = await User.open(browser, 'alice');
    await d.join(url, room);
    await d.waitFor('the "name is taken" error', () => {
      const e = document.getElementById('login-error');
      return !e.hidden && /is taken/.test(e.textContent);
    });
    if (await d.page.isVisible('#chat')) fail('second alice: the chat pane is shown although the name was refused');
    await d.context.close();
    for (const u of [a, b, c]) await u.waitUsers(['alice', 'bob', 'carol']);
    log('a second "alice" was refused');

    // To everyone: the whole room sees it, the sender included.
    await a.send('hello from alice');
    for (const u of [a, b, c]) await u.waitMessage('alice: hello from alice', { cls: '' });
    log('alice → everyone: seen by alice, bob and carol');
    await b.send('hi alice, bob here');
    for (const u of [a, b, c]) await u.waitMessage('bob: hi alice, bob here', { cls: '' });
    log('bob → everyone: seen by alice, bob and carol');

    // Private, A → B: B sees it marked private, A its own copy, C nothing.
    await a.send('psst, bob only', 'bob');
    await b.waitMessage('alice → bob: psst, bob only', { cls: 'private' });
    await a.waitMessage('alice → bob: psst, bob only', { cls: 'private' });
    // A later message to everyone is the fence: once C has it, C would have
    // had the private one too, had it been sent to C.
    await a.send('that was private', '*');
    for (const u of [a, b, c]) await u.waitMessage('alice: that was private', { cls: '' });
    const leaked = (await c.messages()).filter((m) => m.text.includes('psst'));
    if (leaked.length) fail(`carol saw the private message to bob: ${JSON.stringify(leaked)}`);
    for (const u of [a, b]) {
      const n = (await u.messages()).filter((m) => m.text.includes('psst')).length;
      if (n !== 1) fail(`${u.name} shows the private message ${n} times, want once`);
    }
    log('alice → bob privately: seen by bob (marked private) and alice, not by carol');

    // No arrivals or departures beyond the real ones (the refused second
    // alice must not have been added, nor kicked on leaving).
    await b.checkSystem(['carol joined']);

    // Screenshot B while it is still in the room, then close it: A and C see B leave.
    const shotB = path.join(shotDir, 'chat-page-b.png');
    await b.page.screenshot({ path: shotB, fullPage: true });
    await b.context.close();
    for (const u of [a, c]) {
      await u.waitMessage('bob left', { cls: 'system' });
      await u.waitUsers(['alice', 'carol']);
    }
    const targets = await a.page.$$eval('#target option', (os) => os.map((o) => o.value));
    if (targets.includes('bob')) fail(`alice: bob is still offered as a target after leaving: ${JSON.stringify(targets)}`);
    await a.checkSystem(['bob joined', 'carol joined', 'bob left']);
    await c.checkSystem(['bob left']);
    log('bob closed his page: alice and carol saw him leave');
    const shotA = path.join(shotDir, 'chat-page-a.png');
    await a.page.screenshot({ path: shotA, fullPage: true });

    for (const u of [a, b, c]) {
      if (u.errors.length) fail(`${u.name}: uncaught errors in the page:\n  ${u.errors.join('\n  ')}`);
    }
    console.log(`screenshot ${shotA}`);
    console.log(`screenshot ${shotB}`);
    log('PASS');
  } finally {
    await closeBrowser();
  }
}

let browser = null;
async function closeBrowser() {
  const br = browser;
  browser = null;
  if (br) await br.close().catch((e) => log(`closing the browser: ${e.message}`));
}

let timer;
const overall = new Promise((_, reject) => {
  timer = setTimeout(() => reject(new CheckError(`overall timeout: the run took over ${OVERALL_MS / 1000} s`)), OVERALL_MS);
});
// A failure stops the run and the browser is closed (main's finally, or
// here on the overall timeout); should closing hang, a last timer ends the
// process anyway (playwright kills the Chromium it launched on exit).
Promise.race([main(), overall]).then(() => {
  clearTimeout(timer);
  process.exit(0);
}, async (err) => {
  console.error(`FAIL: ${err instanceof CheckError ? err.message : (err && err.stack) || err}`);
  clearTimeout(timer);
  setTimeout(() => process.exit(1), 10000).unref();
  await closeBrowser();
  process.exit(1);
});
