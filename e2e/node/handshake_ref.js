'use strict';
// handshake_ref.js runs Pomelo 2.2.7's own handshake command
// (lib/connectors/commands/handshake.js) on a fake socket for a set of
// cases and prints them as JSON, each with the connector options, the
// client's handshake and Pomelo's answer body. e2e's
// TestPomeloPeerParity replays the cases against shaddock's connector and
// compares the answers byte for byte; the vectors in protocol's unit tests
// are this script's output.
//
// Usage: node handshake_ref.js POMELO_NODE_MODULES_DIR
// (the peer's install: $POMELO_CHAT_RUN/node_modules)
process.noDeprecation = true;
const path = require('path');
const crypto = require('crypto');
const base = process.argv[2];
if (!base) { console.error('usage: node handshake_ref.js NODE_MODULES_DIR'); process.exit(2); }
const pomelo = require(path.join(base, 'pomelo/lib/pomelo'));
const protobuf = require(path.join(base, 'pomelo-protobuf'));
const Handshake = require(path.join(base, 'pomelo/lib/connectors/commands/handshake'));

// The dictionary and protos, computed as Pomelo's dictionary and protobuf
// components compute them.
const routes = ['a.b.c', 'onX'];
const dict = {}, abbrs = {};
routes.forEach((r, i) => { dict[r] = i + 1; abbrs[i + 1] = r; });
const dictVersion = crypto.createHash('md5').update(JSON.stringify(dict)).digest('base64');
const serverRaw = { onX: { 'required string a': 1 } }, clientRaw = { 'a.b.c': { 'optional uInt32 n': 1 } };
const server = protobuf.parse(serverRaw), client = protobuf.parse(clientRaw);
const protoVersion = crypto.createHash('md5').update(JSON.stringify(client) + JSON.stringify(server)).digest('base64');

// handshake.js reads pomelo.app.components: createApp makes the app, the
// components are replaced by ones serving the values above.
pomelo.createApp({ base: path.dirname(base) });
pomelo.app.components = {
  __dictionary__: { getDict: () => dict, getAbbrs: () => abbrs, getVersion: () => dictVersion },
  __protobuf__: { getVersion: () => protoVersion, getProtos: () => ({ server, client, version: protoVersion }) },
  __connector__: { setPubKey() {} },
};

const full = { heartbeat: 30, useDict: true, useProtobuf: true };
const cases = [
  ['new', full, { sys: { type: 'js-websocket', protoVersion: 0 } }],
  ['cachedDict', full, { sys: { dictVersion } }],
  ['cachedProtos', full, { sys: { protoVersion } }],
  ['cachedBoth', full, { sys: { dictVersion, protoVersion } }],
  ['noHeartbeat', { useDict: true }, { sys: {} }],
  ['nothing', {}, { sys: {} }],
  ['noSys', full, {}],
  ['sysZero', full, { sys: 0 }],
  ['sysString', { heartbeat: 3 }, { sys: 'x' }],
  ['oldClient', { heartbeat: 3, requireVersion: '1.0' }, { sys: { type: 't', version: '0.9' } }],
  ['newClient', { heartbeat: 3, requireVersion: '1.0' }, { sys: { type: 't', version: '1.0' } }],
  ['user', { heartbeat: 3, user: { motd: 'hi <&>', n: [1, 2] } }, { sys: {}, user: { a: 1 } }],
  ['userFalsy', { heartbeat: 3, user: 0 }, { sys: {} }],
  ['userEmpty', { heartbeat: 3, user: {} }, { sys: {} }],
  ['userError', { heartbeat: 3, userError: true }, { sys: {} }],
  ['dictVersionNumber', { useDict: true }, { sys: { dictVersion: 5 } }],
];

function run(opts, hello) {
  const o = Object.assign({}, opts);
  if (o.requireVersion) o.checkClient = (type, version) => version === opts.requireVersion;
  if ('user' in o || o.userError) o.handshake = (msg, cb) => (opts.userError ? cb(new Error('refused')) : cb(null, opts.user));
  return new Promise((resolve) => {
    const done = (b) => resolve(b.slice(4).toString());
    new Handshake(o).handle({ handshakeResponse: done, sendForce: done, disconnect() {} }, hello);
  });
}

(async () => {
  const out = { routes, server: serverRaw, client: clientRaw, dictVersion, protoVersion, cases: [] };
  for (const [name, opts, hello] of cases) {
    out.cases.push({ name, opts, hello: JSON.stringify(hello), answer: await run(opts, hello) });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
})();
