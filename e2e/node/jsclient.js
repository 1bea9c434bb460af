'use strict';
// jsclient.js runs the chat in headless Chromium with NetEase's browser
// client, pomelo-jsclient-websocket 0.1.1 (npm), unmodified, on
// pomelo-protocol 0.1.6's and pomelo-protobuf 0.4.0's browser builds, the
// way chatofpomelo-websocket's page loads them (window.Protocol,
// window.protobuf, window.EventEmitter, then pomelo-client.js, with the
// `module` their last lines assign to). A small
// HTTP server here serves those files to the pages.
//
// Usage: node jsclient.js GATE_HOST GATE_PORT [protobuf]
//
// With "protobuf" the page adds the one alias the npm release needs
// (protobuf.decodeStr, see alias.js); without, nothing is added.
//
// Two users (browser contexts) each ask the gate, enter one room on their
// connector, and chat: alice sees bob arrive (onAdd), bob gets alice's
// message (onChat), alice sees bob leave (onLeave). With "protobuf" the
// client must have received protos from the gate, offered their version to
// the connector (kept in localStorage, as the client does), got an answer
// without them, and the pushes must have travelled protobuf-encoded.
// Exit 0 on success; "FAIL ..." and 1 on the first failed check.
const fs = require('fs');
const http = require('http');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const [gateHost, gatePort, mode] = process.argv.slice(2);
const protobuf = mode === 'protobuf';
if (!gateHost || !gatePort) { console.error('usage: node jsclient.js GATE_HOST GATE_PORT [protobuf]'); process.exit(2); }
let browser = null;
const pageLog = []; // errors and console output of every page, for failures
function fail(msg) {
  console.error(`FAIL ${msg}` + (pageLog.length ? `\n  pages:\n    ${pageLog.join('\n    ')}` : ''));
  (browser ? browser.close() : Promise.resolve()).finally(() => process.exit(1));
  throw new Error('failed');
}
const log = (m) => console.log(`ok   ${m}`);
setTimeout(() => fail('not done after 60 s'), 60000).unref();

const mod = (p) => path.join(__dirname, 'node_modules', p);
const files = {
  '/protocol.js': fs.readFileSync(mod('pomelo-protocol/lib/protocol.js')),
  '/protobuf.js': fs.readFileSync(mod('pomelo-protobuf/lib/client/protobuf.js')),
  '/pomelo-client.js': fs.readFileSync(mod('pomelo-jsclient-websocket/lib/pomelo-client.js')),
  // The component-emitter chatofpomelo's page builds in: on and emit.
  '/emitter.js': `window.EventEmitter = function () {};
EventEmitter.prototype.on = function (ev, fn) { this._h = this._h || {}; (this._h[ev] = this._h[ev] || []).push(fn); return this; };
EventEmitter.prototype.emit = function (ev) { var a = [].slice.call(arguments, 1), self = this;
  ((this._h || {})[ev] || []).slice().forEach(function (fn) { fn.apply(self, a); }); return this; };`,
  // pomelo-jsclient-websocket 0.1.1 (npm) decodes pushes with
  // protobuf.decodeStr(route, bytes), which no pomelo-protobuf browser build
  // defines (chatofpomelo's own copy of the client calls decode): without
  // this alias it cannot decode a protobuf push from Pomelo either.
  '/alias.js': protobuf ? 'protobuf.decodeStr = function (route, bytes) { return protobuf.decode(route, bytes); };' : '',
  '/': `<!doctype html><html><head><meta charset="utf-8">
<script src="/emitter.js"></script>
<script>
// The three files end with module.exports = ..., as under the component
// build's wrapper that chatofpomelo's page uses; protobuf.js exports into
// module.exports when there is one, so that is window.protobuf.
var module = { exports: (window.protobuf = {}) };
</script>
<script src="/protobuf.js"></script><script src="/protocol.js"></script><script src="/pomelo-client.js"></script>
<script src="/alias.js"></script></head><body>
<script>
window.pushes = [];
function init(host, port) { return new Promise(function (resolve) { pomelo.init({ host: host, port: port }, resolve); }); }
function request(route, msg) { return new Promise(function (resolve) { pomelo.request(route, msg, resolve); }); }
['onAdd', 'onChat', 'onLeave'].forEach(function (r) { pomelo.on(r, function (body) { window.pushes.push([r, body]); }); });
window.join = async function (name, room, host, port) {
  await init(host, port);
  var e = await request('gate.gateHandler.queryEntry', { uid: name });
  pomelo.disconnect();
  await init(e.host, e.port);
  var r = await request('connector.entryHandler.enter', { username: name, rid: room });
  return { entry: e, users: r.users, cached: !!localStorage.getItem('protos') };
};
window.send = function (room, from, content) { return request('chat.chatHandler.send', { rid: room, content: content, from: from, target: '*' }); };
</script></body></html>`,
};
const server = http.createServer((req, res) => {
  const body = files[req.url];
  if (!body) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'Content-Type': req.url === '/' ? 'text/html' : 'application/javascript' });
  res.end(body);
});

async function user(name) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  const u = { name, ctx, page, frames: [], errors: [] };
  page.on('pageerror', (e) => { u.errors.push(String(e)); pageLog.push(`${name}: ${e}`); });
  page.on('console', (m) => pageLog.push(`${name}: console.${m.type()}: ${m.text()}`));
  // What each WebSocket received, to see how bodies travelled.
  page.on('websocket', (ws) => ws.on('framereceived', (f) => u.frames.push([ws.url(), Buffer.from(f.payload)])));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  return u;
}

async function waitPush(u, route, pred) {
  try {
    await u.page.waitForFunction(([r, p]) => window.pushes.some(([pr, b]) => pr === r && new Function('b', 'return ' + p)(b)), [route, pred], { timeout: 15000, polling: 50 });
  } catch (e) {
    fail(`${u.name}: no ${route} with ${pred}; got ${JSON.stringify(await u.page.evaluate(() => window.pushes))}; page errors ${u.errors}`);
  }
}

async function main() {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000 });
  const room = `js${process.pid}`;
  const alice = await user('alice');
  const a = await alice.page.evaluate(([n, r, h, p]) => window.join(n, r, h, p), ['alice', room, gateHost, Number(gatePort)]);
  if (JSON.stringify(a.users) !== '["alice"]') fail(`alice entered with users ${JSON.stringify(a.users)}`);
  log(`alice: gate -> ${a.entry.host}:${a.entry.port}, enter -> ${JSON.stringify(a.users)}`);
  const bob = await user('bob');
  const b = await bob.page.evaluate(([n, r, h, p]) => window.join(n, r, h, p), ['bob', room, gateHost, Number(gatePort)]);
  if (JSON.stringify([...b.users].sort()) !== '["alice","bob"]') fail(`bob entered with users ${JSON.stringify(b.users)}`);
  await waitPush(alice, 'onAdd', "b.user === 'bob'");
  log('alice saw bob arrive (onAdd)');
  await alice.page.evaluate((r) => window.send(r, 'alice', 'hi from the jsclient'), room);
  await waitPush(bob, 'onChat', "b.msg === 'hi from the jsclient' && b.from === 'alice'");
  log("bob got alice's onChat");
  if (protobuf) {
    if (!a.cached) fail('alice: the client kept no protos from the gate (localStorage)');
    const hs = alice.frames.filter(([, f]) => f[0] === 1).map(([url, f]) => [url, f.subarray(4).toString()]);
    if (hs.length !== 2 || !hs[0][1].includes('"protos"') || hs[1][1].includes('"protos"') || !hs[1][1].includes('"useProto":true')) {
      fail(`alice's handshake answers ${JSON.stringify(hs)}: want protos from the gate, then useProto without them from the connector`);
    }
    const pushes = bob.frames.filter(([, f]) => f[0] === 4 && (f[4] >> 1 & 7) === 3);
    if (!pushes.length || pushes.some(([, f]) => f[f[4] & 1 ? 7 : 6 + f[5]] === 0x7b)) fail('bob: pushes did not travel protobuf-encoded');
    log('protos from the gate, kept and offered to the connector (answered without them); pushes protobuf-encoded');
  }
  await bob.ctx.close();
  await waitPush(alice, 'onLeave', "b.user === 'bob'");
  log('alice saw bob leave (onLeave)');
  if (alice.errors.length) fail(`page errors: ${alice.errors}`);
  await browser.close();
  server.close();
  console.log('PASS');
  process.exit(0);
}
main().catch((e) => { if (e.message !== 'failed') fail(e.stack || String(e)); });
