'use strict';
// protobuf.js runs the chatofpomelo scenario with Pomelo protobuf bodies
// against a chat cluster (shaddock's examples/chat with --protobuf, or the
// Pomelo 2.2.7 peer with PEER_PROTOBUF=1): every body is encoded and decoded
// by NetEase's pomelo-protobuf 0.4.0 (the independent codec) with the
// protos the server's handshake carries, packages by pomelo-protocol, and
// the second user is NetEase's npm client pomelo-nodejsclient-websocket
// 0.0.2 over WebSocket (a raw client over TCP).
//
// Usage: node protobuf.js GATE_HOST GATE_PORT ws|tcp PROTOS_DIR
//
// Checks: the handshake offers protos equal to pomelo-protobuf's own parse
// of PROTOS_DIR/{server,client}Protos.json, with Pomelo's version; a second
// connection offering that version is not sent them again; enter and send
// travel protobuf-encoded; onAdd, onChat (to the room and privately) and
// onLeave arrive protobuf-encoded and decode to chatofpomelo's bodies.
// Exit 0 when all pass; "FAIL ..." and 1 on the first failure.
process.noDeprecation = true; // pomelo-protocol and pomelo-protobuf call new Buffer()

const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const path = require('path');
const WebSocket = require('ws');
const Protocol = require('pomelo-protocol');
const protobuf = require('pomelo-protobuf');
const NodeClient = require('pomelo-nodejsclient-websocket');

const { Package, Message } = Protocol;
const STEP_MS = 8000;
const OVERALL_MS = 60000;

const [host, port, transport, protosDir] = process.argv.slice(2);
if (!host || !port || !['ws', 'tcp'].includes(transport) || !protosDir) {
  console.error('usage: node protobuf.js GATE_HOST GATE_PORT ws|tcp PROTOS_DIR');
  process.exit(2);
}
function fail(msg) { console.error(`FAIL [${transport}] ${msg}`); process.exit(1); }
function ok(msg) { console.log(`ok   [${transport}] ${msg}`); }
setTimeout(() => fail(`not done after ${OVERALL_MS} ms`), OVERALL_MS).unref();
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// The protos as pomelo-protobuf parses the files, and Pomelo's version.
const want = {
  server: protobuf.parse(JSON.parse(fs.readFileSync(path.join(protosDir, 'serverProtos.json'), 'utf8'))),
  client: protobuf.parse(JSON.parse(fs.readFileSync(path.join(protosDir, 'clientProtos.json'), 'utf8'))),
};
want.version = crypto.createHash('md5').update(JSON.stringify(want.client) + JSON.stringify(want.server)).digest('base64');

// Conn is a raw client: pomelo-protocol packages over ws or net.
class Conn {
  constructor(name) { this.name = name; this.inbox = []; this.waiters = []; this.closed = false; this.routes = {}; this.nextId = 1; }
  open(h, p) {
    return new Promise((resolve, reject) => {
      const deliverAll = (buf) => { for (const pkg of [].concat(Package.decode(buf))) this.deliver(pkg); };
      if (transport === 'ws') {
        this.ws = new WebSocket(`ws://${h}:${p}/`);
        this.ws.binaryType = 'nodebuffer';
        this.ws.on('open', resolve);
        this.ws.on('error', reject);
        this.ws.on('message', (d) => deliverAll(d));
        this.ws.on('close', () => { this.closed = true; });
      } else {
        this.sock = net.connect({ host: h, port: Number(p) }, resolve);
        this.sock.on('error', reject);
        let buf = Buffer.alloc(0);
        this.sock.on('data', (chunk) => {
          buf = Buffer.concat([buf, chunk]);
          while (buf.length >= 4) {
            const len = (buf[1] << 16) | (buf[2] << 8) | buf[3];
            if (buf.length < 4 + len) break;
            deliverAll(buf.subarray(0, 4 + len));
            buf = buf.subarray(4 + len);
          }
        });
        this.sock.on('close', () => { this.closed = true; });
      }
    });
  }
  send(b) { if (this.ws) this.ws.send(b, { binary: true }); else this.sock.write(b); }
  close() { if (this.ws) this.ws.terminate(); else this.sock.destroy(); }
  deliver(p) {
    const i = this.waiters.findIndex((w) => w.pred(p));
    if (i < 0) { this.inbox.push(p); return; }
    const [w] = this.waiters.splice(i, 1);
    clearTimeout(w.timer);
    w.resolve(p);
  }
  next(pred, what) {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => fail(`${this.name}: no ${what} within ${STEP_MS} ms`), STEP_MS);
      this.waiters.push(w);
    });
  }
  async handshake(sys) {
    this.send(Package.encode(Package.TYPE_HANDSHAKE, Protocol.strencode(JSON.stringify({ sys, user: {} }))));
    const p = await this.next((p) => p.type === Package.TYPE_HANDSHAKE, 'handshake answer');
    const res = JSON.parse(Protocol.strdecode(p.body));
    if (res.code !== 200) fail(`${this.name}: handshake answered ${JSON.stringify(res)}`);
    this.sys = res.sys;
    if (res.sys.dict) { this.dict = res.sys.dict; this.abbrs = {}; for (const r in this.dict) this.abbrs[this.dict[r]] = r; }
    this.send(Package.encode(Package.TYPE_HANDSHAKE_ACK));
    return res;
  }
  // request encodes the body with the route's client proto (pomelo-protobuf)
  // and decodes the response with its server proto, or JSON.
  async request(route, msg) {
    const id = this.nextId++;
    if (!this.protos.client[route]) fail(`no client proto for ${route}`);
    const body = protobuf.encode(route, msg);
    if (!body || body[0] === 0x7b) fail(`${route}: pomelo-protobuf encoded ${body && body.toString('hex')}`);
    const code = this.dict && this.dict[route];
    this.send(Package.encode(Package.TYPE_DATA, Message.encode(id, Message.TYPE_REQUEST, code ? 1 : 0, code || route, body)));
    const p = await this.next((p) => p.type === Package.TYPE_DATA && Message.decode(p.body).id === id, `response to ${route}`);
    const m = Message.decode(p.body);
    return this.protos.server[route] ? protobuf.decode(route, m.body) : JSON.parse(Protocol.strdecode(m.body));
  }
  // push waits for a push on route and returns its body, decoded with the
  // route's server proto; it must have travelled as protobuf.
  async push(route, pred = () => true) {
    const p = await this.next((p) => {
      if (p.type !== Package.TYPE_DATA) return false;
      const m = Message.decode(p.body);
      const r = m.compressRoute ? this.abbrs[m.route] : m.route;
      return r === route && m.body[0] !== 0x7b && pred(protobuf.decode(route, m.body));
    }, `protobuf ${route} push`);
    return protobuf.decode(route, Message.decode(p.body).body);
  }
}

// nodeClient connects NetEase's pomelo-nodejsclient-websocket and resolves
// once its handshake is done.
function nodeClient(h, p) {
  const quiet = { debug() {}, info() {}, warn() {}, error: (...a) => console.error(...a), trace() {} };
  const c = new NodeClient({ logger: quiet });
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`pomelo-nodejsclient-websocket: no handshake with ${h}:${p}`), STEP_MS);
    c.init({ host: h, port: p }, () => { clearTimeout(timer); resolve(c); });
  });
}
function nodeRequest(c, route, msg) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`pomelo-nodejsclient-websocket: no response to ${route}`), STEP_MS);
    c.request(route, msg, (err, body) => { clearTimeout(timer); resolve(body); });
  });
}

async function main() {
  // The gate: a client without cached protos (pomelo-jsclient sends 0).
  const gate = new Conn('alice@gate');
  await gate.open(host, port);
  const res = await gate.handshake({ type: 'js-websocket', version: '0.0.1', protoVersion: 0, rsa: {} });
  const protos = res.sys.protos;
  if (res.sys.useProto !== true || !protos) fail(`gate handshake has no protos: ${JSON.stringify(res.sys)}`);
  if (!same(protos.server, want.server) || !same(protos.client, want.client)) {
    fail(`handshake protos differ from pomelo-protobuf's parse of ${protosDir}:\n got ${JSON.stringify(protos)}\nwant ${JSON.stringify(want)}`);
  }
  if (protos.version !== want.version) fail(`protos version ${protos.version}, Pomelo's is ${want.version}`);
  ok(`handshake offers the protos (as pomelo-protobuf parses them), version ${protos.version}`);
  protobuf.init({ encoderProtos: protos.client, decoderProtos: protos.server });
  gate.protos = protos;
  const room = `pb${process.pid}`;
  const entry = await gate.request('gate.gateHandler.queryEntry', { uid: 'alice' });
  if (entry.code !== 200 || !entry.port) fail(`queryEntry answered ${JSON.stringify(entry)}`);
  gate.close();
  ok(`queryEntry (protobuf request) -> ${entry.host}:${entry.port}`);

  // The connector: the same protos version is not sent again.
  const alice = new Conn('alice');
  await alice.open(entry.host, entry.port);
  const res2 = await alice.handshake({ type: 'js-websocket', version: '0.0.1', protoVersion: protos.version, rsa: {} });
  if (res2.sys.protos !== undefined || res2.sys.useProto !== true) fail(`second handshake with the cached version: ${JSON.stringify(res2.sys)}`);
  ok('a connection offering the protos version gets useProto without the protos');
  alice.protos = protos;
  const r1 = await alice.request('connector.entryHandler.enter', { username: 'alice', rid: room });
  if (!same(r1.users, ['alice'])) fail(`alice's enter answered ${JSON.stringify(r1)}`);
  ok('enter (protobuf request) -> {users:["alice"]}');

  // Bob: NetEase's Node client over WebSocket, a raw client over TCP.
  let bob, bobSend;
  if (transport === 'ws') {
    const g = await nodeClient(host, Number(port));
    const e = await nodeRequest(g, 'gate.gateHandler.queryEntry', { uid: 'bob' });
    g.disconnect();
    bob = await nodeClient(e.host, e.port);
    bob.got = [];
    for (const r of ['onAdd', 'onChat', 'onLeave']) bob.on(r, (body) => bob.got.push([r, body]));
    const r2 = await nodeRequest(bob, 'connector.entryHandler.enter', { username: 'bob', rid: room });
    if (!same([...r2.users].sort(), ['alice', 'bob'])) fail(`bob's enter answered ${JSON.stringify(r2)}`);
    bobSend = (msg) => nodeRequest(bob, 'chat.chatHandler.send', msg);
    ok('pomelo-nodejsclient-websocket 0.0.2: gate, enter (protobuf)');
  } else {
    const g = new Conn('bob@gate');
    await g.open(host, port);
    await g.handshake({ type: 'c-tcp', version: '0.3.5' }); // libpomelo2 sends no protoVersion at first
    g.protos = protos;
    const e = await g.request('gate.gateHandler.queryEntry', { uid: 'bob' });
    g.close();
    bob = new Conn('bob');
    await bob.open(e.host, e.port);
    await bob.handshake({ type: 'c-tcp', version: '0.3.5', protoVersion: protos.version });
    bob.protos = protos;
    const r2 = await bob.request('connector.entryHandler.enter', { username: 'bob', rid: room });
    if (!same([...r2.users].sort(), ['alice', 'bob'])) fail(`bob's enter answered ${JSON.stringify(r2)}`);
    bobSend = (msg) => bob.request('chat.chatHandler.send', msg);
  }
  const add = await alice.push('onAdd');
  if (!same(add, { user: 'bob' })) fail(`onAdd decoded to ${JSON.stringify(add)}`);
  ok('onAdd {user:"bob"} arrived protobuf-encoded');

  const sent = await alice.request('chat.chatHandler.send', { rid: room, content: 'hello room', from: 'alice', target: '*' });
  if (sent.route !== 'chat.chatHandler.send') fail(`send answered ${JSON.stringify(sent)}`);
  const chat = await alice.push('onChat');
  if (!same(chat, { msg: 'hello room', from: 'alice', target: '*' })) fail(`onChat decoded to ${JSON.stringify(chat)}`);
  ok('send (protobuf request) -> onChat {msg, from, target:"*"} protobuf-encoded, to the sender too');

  await bobSend({ rid: room, content: 'psst', from: 'bob', target: 'alice' });
  const priv = await alice.push('onChat', (b) => b.target === 'alice');
  if (!same(priv, { msg: 'psst', from: 'bob', target: 'alice' })) fail(`private onChat decoded to ${JSON.stringify(priv)}`);
  if (transport === 'ws') {
    const deadline = Date.now() + STEP_MS;
    while (!bob.got.some(([r, b]) => r === 'onChat' && same(b, { msg: 'hello room', from: 'alice', target: '*' }))) {
      if (Date.now() > deadline) fail(`pomelo-nodejsclient-websocket got ${JSON.stringify(bob.got)}, no onChat from alice`);
      await new Promise((r) => setTimeout(r, 20));
    }
    ok('pomelo-nodejsclient-websocket decoded the room onChat; alice got the private one');
    bob.disconnect();
  } else {
    await bob.push('onChat', (b) => b.from === 'alice');
    ok('bob decoded the room onChat; alice got the private one');
    bob.close();
  }
  const leave = await alice.push('onLeave');
  if (!same(leave, { user: 'bob' })) fail(`onLeave decoded to ${JSON.stringify(leave)}`);
  ok('onLeave {user:"bob"} arrived protobuf-encoded');
  alice.close();
  console.log(`PASS [${transport}]`);
  process.exit(0);
}
main().catch((e) => fail(e.stack || String(e)));
