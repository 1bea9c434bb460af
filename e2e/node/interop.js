'use strict';
// interop.js drives a shaddock echo connector (examples/echo) as an
// unmodified Pomelo client would: every package and message is encoded and
// decoded by NetEase's own pomelo-protocol, the transport is `ws`
// (WebSocket) or Node's `net` (raw TCP, as Pomelo's hybrid connector serves).
//
// Usage: node interop.js HOST PORT ws|tcp
//
// It prints one line per check and exits 0 when all pass; on the first
// failure it prints "FAIL ..." and exits 1. The whole run is bounded by
// OVERALL_TIMEOUT_MS. The silent-connection check expects the server's
// heartbeat timeout to be twice the announced interval (start the echo
// server with -heartbeat 1s to keep the run short).
//
// Pomelo's connector sends a heartbeat as soon as it gets the
// handshake-ack, and pomelo-jsclient starts heartbeating only when it
// receives one: a server that does not fails the check.

// pomelo-protocol 0.1.6 calls `new Buffer(...)`, deprecated since Node 10;
// the warning would only add noise to the output.
process.noDeprecation = true;

const net = require('net');
const WebSocket = require('ws');
const Protocol = require('pomelo-protocol');

const { Package, Message } = Protocol;

const OVERALL_TIMEOUT_MS = 40000;
const STEP_TIMEOUT_MS = 5000;
const FIRST_HEARTBEAT_MS = 1000;

const ROUTES = {
  echo: 'connector.echoHandler.echo',
  push: 'connector.echoHandler.push',
  broadcast: 'connector.echoHandler.broadcast',
  kick: 'connector.echoHandler.kick',
  bind: 'connector.echoHandler.bind',
};
const PUSH_ROUTES = ['onEcho', 'onBroadcast'];

const [host, port, transport] = process.argv.slice(2);
if (!host || !port || (transport !== 'ws' && transport !== 'tcp')) {
  console.error('usage: node interop.js HOST PORT ws|tcp');
  process.exit(2);
}

function fail(msg) {
  console.error(`FAIL [${transport}] ${msg}`);
  process.exit(1);
}

function ok(msg) {
  console.log(`ok   [${transport}] ${msg}`);
}

setTimeout(() => fail(`overall timeout: not done after ${OVERALL_TIMEOUT_MS} ms`), OVERALL_TIMEOUT_MS);

// Conn is one client connection. Incoming packages, decoded by
// Package.decode, are handed to the oldest waiter whose predicate accepts
// them, or kept until one does.
class Conn {
  constructor(name) {
    this.name = name;
    this.inbox = [];
    this.waiters = [];
    this.closed = false;
    this.closedAt = 0;
    this.closeWaiters = [];
  }

  open() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: connect timeout`)), STEP_TIMEOUT_MS);
      let isOpen = false;
      const opened = () => { isOpen = true; clearTimeout(timer); resolve(this); };
      // Before the connection opens an error fails the connect; after, the
      // close event that follows it is what counts.
      const onError = (err) => {
        if (isOpen) return;
        clearTimeout(timer);
        reject(new Error(`${this.name}: connect: ${err.message}`));
      };
      if (transport === 'ws') {
        const ws = new WebSocket(`ws://${host}:${port}/`);
        this.ws = ws;
        ws.binaryType = 'nodebuffer';
        ws.on('open', opened);
        ws.on('error', onError);
        ws.on('message', (data, isBinary) => {
          if (!isBinary) fail(`${this.name}: server sent a text frame`);
          // A frame carries one package; decode() also accepts several.
          for (const p of [].concat(Package.decode(data))) this.deliver(p);
        });
        ws.on('close', () => this.onClose());
      } else {
        const sock = net.connect({ host, port: Number(port) });
        this.sock = sock;
        let buf = Buffer.alloc(0);
        sock.on('connect', opened);
        sock.on('error', onError);
        sock.on('data', (chunk) => {
          // TCP is a stream: cut it at package boundaries (the 3-byte length
          // after the type), then let pomelo-protocol decode each package.
          buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
          while (buf.length >= 4) {
            const len = (buf[1] << 16) | (buf[2] << 8) | buf[3];
            if (buf.length < 4 + len) break;
            for (const p of [].concat(Package.decode(buf.subarray(0, 4 + len)))) this.deliver(p);
            buf = buf.subarray(4 + len);
          }
        });
        sock.on('close', () => this.onClose());
      }
    });
  }

  send(bytes) {
    if (this.ws) this.ws.send(bytes, { binary: true });
    else this.sock.write(bytes);
  }

  sendMessage(id, type, route, body, compress) {
    const r = compress ? this.dict[route] : route;
    this.send(Package.encode(Package.TYPE_DATA, Message.encode(id, type, compress ? 1 : 0, r, Protocol.strencode(body))));
  }

  close() {
    if (this.ws) this.ws.terminate();
    else this.sock.destroy();
  }

  deliver(p) {
    const i = this.waiters.findIndex((w) => w.pred(p));
    if (i < 0) {
      this.inbox.push(p);
      return;
    }
    const [w] = this.waiters.splice(i, 1);
    clearTimeout(w.timer);
    w.resolve(p);
  }

  onClose() {
    if (this.closed) return;
    this.closed = true;
    this.closedAt = Date.now();
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`${this.name}: connection closed while waiting for ${w.what}`));
    }
    for (const resolve of this.closeWaiters.splice(0)) resolve(this.closedAt);
  }

  // next resolves with the first package accepted by pred.
  next(pred, what, timeoutMs = STEP_TIMEOUT_MS) {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    if (this.closed) return Promise.reject(new Error(`${this.name}: connection closed before ${what}`));
    return new Promise((resolve, reject) => {
      const w = { pred, what, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // nextMessage resolves with the first data package whose decoded message
  // is accepted by pred.
  async nextMessage(pred, what, timeoutMs) {
    const p = await this.next((p) => p.type === Package.TYPE_DATA && pred(Message.decode(p.body)), what, timeoutMs);
    return Message.decode(p.body);
  }

  // waitClosed resolves with the time the connection closed, or rejects.
  waitClosed(what, timeoutMs) {
    if (this.closed) return Promise.resolve(this.closedAt);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: ${what}: still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push((at) => { clearTimeout(timer); resolve(at); });
    });
  }

  // handshake sends the client handshake, checks the answer, keeps the
  // dictionary and sends the handshake-ack.
  async handshake() {
    const hello = { sys: { type: 'js-websocket', version: '0.0.1' }, user: {} };
    this.send(Package.encode(Package.TYPE_HANDSHAKE, Protocol.strencode(JSON.stringify(hello))));
    const p = await this.next((p) => p.type === Package.TYPE_HANDSHAKE, 'handshake answer');
    let res;
    try {
      res = JSON.parse(Protocol.strdecode(p.body));
    } catch (e) {
      throw new Error(`handshake answer is not JSON: ${e.message}`);
    }
    if (res.code !== 200) throw new Error(`handshake answer code ${res.code}, want 200: ${JSON.stringify(res)}`);
    const sys = res.sys || {};
    if (!Number.isInteger(sys.heartbeat) || sys.heartbeat <= 0) {
      throw new Error(`handshake heartbeat ${JSON.stringify(sys.heartbeat)}, want a positive number of seconds`);
    }
    const dict = sys.dict;
    if (!dict || typeof dict !== 'object') throw new Error(`handshake has no dict: ${JSON.stringify(sys)}`);
    this.dict = dict;
    this.abbrs = {};
    for (const [route, code] of Object.entries(dict)) {
      if (!Number.isInteger(code) || code < 1 || code > 0xffff) throw new Error(`dict code ${code} of ${route} is not a route code`);
      if (this.abbrs[code]) throw new Error(`dict code ${code} given to ${this.abbrs[code]} and ${route}`);
      this.abbrs[code] = route;
    }
    for (const route of [...Object.values(ROUTES), ...PUSH_ROUTES]) {
      if (!dict[route]) throw new Error(`dict lacks ${route}: ${JSON.stringify(dict)}`);
    }
    this.heartbeat = sys.heartbeat;
    this.send(Package.encode(Package.TYPE_HANDSHAKE_ACK));
    return res;
  }
}

async function main() {
  const c = await new Conn('main').open();
  ok(`connected to ${host}:${port}`);

  // Handshake.
  await c.handshake();
  ok(`handshake: code 200, heartbeat ${c.heartbeat} s, dict of ${Object.keys(c.dict).length} routes with the echo routes, onEcho and onBroadcast; handshake-ack sent`);
  // The heartbeat Pomelo sends on the handshake-ack.
  const first = await c.next((p) => p.type === Package.TYPE_HEARTBEAT, 'heartbeat after the handshake-ack', FIRST_HEARTBEAT_MS).catch(() => null);
  if (first) {
    ok('heartbeat from the server right after the handshake-ack, as Pomelo sends');
  } else {
    const msg = `server sent no heartbeat within ${FIRST_HEARTBEAT_MS} ms of the handshake-ack; Pomelo's connector sends one at once, and pomelo-jsclient starts heartbeating only when it gets one (it would be closed at the heartbeat timeout)`;
    fail(msg);
  }
  // Keep the connection alive as a Pomelo client does.
  const beat = setInterval(() => c.send(Package.encode(Package.TYPE_HEARTBEAT)), c.heartbeat * 1000);

  // Requests, sent back to back before any answer, with compressed and
  // string routes and ids of one, two and three varint bytes.
  const reqs = [
    { id: 1, compress: true, body: { msg: 'compressed route', n: 1 } },
    { id: 2, compress: false, body: { msg: 'string route', n: 2 } },
    { id: 3, compress: true, body: { msg: 'héllo, 世界 ✓', n: 3 } },
    { id: 300, compress: false, body: { msg: 'two-byte id', list: [1, 2, 3] } },
    { id: 70000, compress: true, body: { msg: 'three-byte id', nested: { a: null, b: true } } },
  ];
  for (const r of reqs) {
    r.json = JSON.stringify(r.body);
    c.sendMessage(r.id, Message.TYPE_REQUEST, ROUTES.echo, r.json, r.compress);
  }
  await Promise.all(reqs.map(async (r) => {
    const m = await c.nextMessage((m) => m.type === Message.TYPE_RESPONSE && m.id === r.id, `response to request ${r.id}`);
    if (m.route !== null || m.compressRoute) throw new Error(`response ${r.id} carries a route (${m.route})`);
    const got = Protocol.strdecode(m.body);
    if (got !== r.json) throw new Error(`response ${r.id} body ${got}, want ${r.json}`);
  }));
  for (const r of reqs) {
    ok(`request/response id ${r.id}, ${r.compress ? `compressed route (code ${c.dict[ROUTES.echo]})` : 'string route'}: body round trip`);
  }

  // Notify → push, with a compressed and a string route; the push arrives
  // with its route compressed (onEcho is in the dict).
  for (const compress of [true, false]) {
    const body = JSON.stringify({ msg: 'push me', compress, t: Date.now() });
    c.sendMessage(0, Message.TYPE_NOTIFY, ROUTES.push, body, compress);
    const m = await c.nextMessage((m) => m.type === Message.TYPE_PUSH, 'onEcho push');
    if (!m.compressRoute) throw new Error(`push route not compressed: ${m.route}`);
    if (c.abbrs[m.route] !== 'onEcho') throw new Error(`push route code ${m.route} is ${c.abbrs[m.route]}, want onEcho`);
    const got = Protocol.strdecode(m.body);
    if (got !== body) throw new Error(`push body ${got}, want ${body}`);
    ok(`notify ${ROUTES.push} (${compress ? 'compressed' : 'string'} route) → push onEcho (code ${m.route}) with the same body`);
  }

  // Heartbeat answered.
  c.inbox = c.inbox.filter((p) => p.type !== Package.TYPE_HEARTBEAT); // answers to the timer's beats
  c.send(Package.encode(Package.TYPE_HEARTBEAT));
  const hb = await c.next((p) => p.type === Package.TYPE_HEARTBEAT, 'heartbeat answer');
  if (hb.body) throw new Error(`heartbeat answer has a ${hb.body.length}-byte body`);
  ok('heartbeat sent → heartbeat answered');

  // Kick: a kick package with the reason, then the server closes.
  clearInterval(beat);
  c.sendMessage(9, Message.TYPE_REQUEST, ROUTES.kick, JSON.stringify({ reason: 'bye' }), true);
  const k = await c.next((p) => p.type === Package.TYPE_KICK, 'kick package');
  const kick = JSON.parse(Protocol.strdecode(k.body));
  if (JSON.stringify(kick) !== JSON.stringify({ reason: 'bye' })) throw new Error(`kick body ${JSON.stringify(kick)}, want {"reason":"bye"}`);
  const kickedAt = Date.now();
  await c.waitClosed('after the kick', STEP_TIMEOUT_MS);
  ok(`kick: type 5 package with {"reason":"bye"}, then the server closed the connection (${c.closedAt - kickedAt} ms later)`);

  // Heartbeat timeout: a client that handshakes and then stays silent is
  // closed after twice the interval.
  const s = await new Conn('silent').open();
  await s.handshake();
  const ackAt = Date.now();
  const timeoutMs = 2 * s.heartbeat * 1000;
  const closedAt = await s.waitClosed('silent client', timeoutMs + 4000);
  const after = closedAt - ackAt;
  if (after < timeoutMs - 250) throw new Error(`silent client closed after ${after} ms, before the ${timeoutMs} ms heartbeat timeout`);
  ok(`heartbeat timeout: silent client closed by the server ${after} ms after its handshake-ack (interval ${s.heartbeat} s, timeout ${timeoutMs} ms)`);
}

main().then(
  () => {
    console.log(`PASS [${transport}]`);
    process.exit(0);
  },
  (err) => fail(err.message),
);
