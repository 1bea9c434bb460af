// A small Pomelo protocol client for browsers (WebSocket transport), written
// from the protocol: packages (type, 3-byte length, body), messages (flag,
// base-128 id, route code or string, JSON body), handshake, heartbeats, kick,
// and Pomelo's protobuf bodies (pomelo-protobuf's format) when the server
// offers protos. wss:// when the page came over https. The dictionary and
// the protos a server sent are kept for the page's later connections, whose
// handshakes offer their versions (the server then leaves them out).
(function (global) {
  'use strict';
  var PKG = { HANDSHAKE: 1, ACK: 2, HEARTBEAT: 3, DATA: 4, KICK: 5 };
  var MSG = { REQUEST: 0, NOTIFY: 1, RESPONSE: 2, PUSH: 3 };
  var enc = new TextEncoder(), dec = new TextDecoder();

  function pkg(type, body) {
    var n = body ? body.length : 0, b = new Uint8Array(4 + n);
    b[0] = type; b[1] = (n >> 16) & 0xff; b[2] = (n >> 8) & 0xff; b[3] = n & 0xff;
    if (body) b.set(body, 4);
    return b;
  }

  function message(type, id, route, body, dict) {
    var code = dict && dict[route], parts = [];
    parts.push((type << 1) | (code ? 1 : 0));
    if (type === MSG.REQUEST) {
      do { var low = id % 128, next = Math.floor(id / 128); parts.push(next ? low | 0x80 : low); id = next; } while (id);
    }
    if (code) { parts.push((code >> 8) & 0xff, code & 0xff); }
    else { var r = enc.encode(route); if (r.length > 255) throw new Error('route too long'); parts.push(r.length); for (var i = 0; i < r.length; i++) parts.push(r[i]); }
    var head = Uint8Array.from(parts), out = new Uint8Array(head.length + body.length);
    out.set(head); out.set(body, head.length);
    return out;
  }

  function decodeMessage(b, abbrs, routes, protos) {
    var flag = b[0], type = (flag >> 1) & 7, off = 1, id = 0, route = null;
    if (type === MSG.RESPONSE) {
      var shift = 1, c;
      do { c = b[off++]; id += (c & 0x7f) * shift; shift *= 128; } while (c >= 128);
    }
    if (type === MSG.PUSH) {
      if (flag & 1) { route = abbrs[(b[off] << 8) | b[off + 1]]; off += 2; }
      else { var n = b[off++]; route = dec.decode(b.subarray(off, off + n)); off += n; }
    }
    if (type === MSG.RESPONSE) { route = routes[id]; delete routes[id]; }
    var rest = b.subarray(off);
    if (protos && protos.server[route]) return { type: type, id: id, route: route, body: PB.decode(protos.server, route, rest) };
    var text = dec.decode(rest);
    return { type: type, id: id, route: route, body: text ? JSON.parse(text) : null };
  }

  // PB encodes and decodes bodies with protos in the parsed form a Pomelo
  // handshake carries: per route, fields {option, type, tag}, __messages
  // (nested messages) and __tags; "message X" entries are shared.
  var PB = (function () {
    var WIRE = { uInt32: 0, sInt32: 0, int32: 0, double: 1, string: 2, float: 5 };
    function simple(t) { return t === 'uInt32' || t === 'sInt32' || t === 'int32' || t === 'float' || t === 'double'; }
    function wire(t) { return WIRE[t] === undefined ? 2 : WIRE[t]; }
    function varint(out, n) { do { var b = n % 128; n = Math.floor(n / 128); out.push(n ? b | 128 : b); } while (n); }
    function lookup(file, parent, type) { return (parent.__messages && parent.__messages[type]) || file['message ' + type]; }
    function fixed(out, n, set, v) { var b = new Uint8Array(n); set.call(new DataView(b.buffer), 0, v, true); for (var i = 0; i < n; i++) out.push(b[i]); }
    function value(file, proto, type, v, out) {
      switch (type) {
        case 'uInt32': varint(out, v); break;
        case 'sInt32': case 'int32': varint(out, v < 0 ? -2 * v - 1 : 2 * v); break;
        case 'float': fixed(out, 4, DataView.prototype.setFloat32, v); break;
        case 'double': fixed(out, 8, DataView.prototype.setFloat64, v); break;
        case 'string': var s = enc.encode(v); varint(out, s.length); for (var i = 0; i < s.length; i++) out.push(s[i]); break;
        default: var inner = message(file, lookup(file, proto, type), v, []); varint(out, inner.length); Array.prototype.push.apply(out, inner);
      }
    }
    function message(file, proto, msg, out) {
      Object.keys(msg).forEach(function (name) {
        var f = proto[name], v = msg[name];
        if (!f || name === '__messages' || name === '__tags' || v === null || v === undefined) return;
        if (f.option !== 'repeated') { varint(out, (f.tag << 3) | wire(f.type)); value(file, proto, f.type, v, out); return; }
        if (!v.length) return;
        if (simple(f.type)) {
          varint(out, (f.tag << 3) | wire(f.type)); varint(out, v.length);
          v.forEach(function (x) { value(file, proto, f.type, x, out); });
        } else {
          v.forEach(function (x) { varint(out, (f.tag << 3) | wire(f.type)); value(file, proto, f.type, x, out); });
        }
      });
      return out;
    }
    function reader(b) {
      var r = { b: b, pos: 0, dv: new DataView(b.buffer, b.byteOffset, b.byteLength) };
      r.varint = function () { var n = 0, m = 1, c; do { c = r.b[r.pos++]; n += (c & 127) * m; m *= 128; } while (c >= 128); return n; };
      return r;
    }
    function read(file, proto, type, r) {
      var v;
      switch (type) {
        case 'uInt32': return r.varint();
        case 'sInt32': case 'int32': v = r.varint(); return v % 2 === 1 ? -(v + 1) / 2 : v / 2;
        case 'float': v = r.dv.getFloat32(r.pos, true); r.pos += 4; return v;
        case 'double': v = r.dv.getFloat64(r.pos, true); r.pos += 8; return v;
        case 'string': var n = r.varint(); v = dec.decode(r.b.subarray(r.pos, r.pos + n)); r.pos += n; return v;
        default: var len = r.varint(); return decodeTo(file, lookup(file, proto, type), r, r.pos + len);
      }
    }
    function decodeTo(file, proto, r, end) {
      var obj = {};
      while (r.pos < end) {
        var name = proto.__tags[r.varint() >> 3], f = proto[name];
        if (!f) throw new Error('protobuf body: unknown tag');
        if (f.option !== 'repeated') { obj[name] = read(file, proto, f.type, r); continue; }
        var arr = obj[name] || (obj[name] = []);
        if (simple(f.type)) { for (var n = r.varint(); n > 0; n--) arr.push(read(file, proto, f.type, r)); }
        else arr.push(read(file, proto, f.type, r));
      }
      return obj;
    }
    return {
      encode: function (file, route, msg) { return Uint8Array.from(message(file, file[route], msg, [])); },
      decode: function (file, route, b) { return decodeTo(file, file[route], reader(b), b.length); },
    };
  })();

  // What servers sent in earlier handshakes, offered by later ones.
  var cache = { dict: null, dictVersion: '', protos: null };

  function Pomelo() {
    this.ws = null; this.reqId = 0; this.callbacks = {}; this.handlers = {};
    this.dict = null; this.abbrs = {}; this.heartbeatTimer = null; this.timeoutTimer = null;
    this.routes = {}; this.protos = null;
  }

  Pomelo.prototype.on = function (route, fn) { (this.handlers[route] = this.handlers[route] || []).push(fn); };
  Pomelo.prototype.emit = function (route, body) { (this.handlers[route] || []).forEach(function (fn) { fn(body); }); };

  // connect resolves once the handshake is done and data may flow.
  Pomelo.prototype.connect = function (host, port) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var scheme = global.location && global.location.protocol === 'https:' ? 'wss://' : 'ws://';
      var ws = new WebSocket(scheme + host + ':' + port + '/');
      ws.binaryType = 'arraybuffer';
      self.ws = ws;
      var ready = false;
      ws.onopen = function () {
        var sys = { type: 'js-websocket', version: '0.1.0' };
        if (cache.dictVersion) sys.dictVersion = cache.dictVersion;
        if (cache.protos) sys.protoVersion = cache.protos.version;
        ws.send(pkg(PKG.HANDSHAKE, enc.encode(JSON.stringify({ sys: sys, user: {} }))));
      };
      ws.onmessage = function (ev) {
        var b = new Uint8Array(ev.data), off = 0;
        while (off + 4 <= b.length) {
          var type = b[off], n = (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
          var body = b.subarray(off + 4, off + 4 + n);
          off += 4 + n;
          self.resetTimeout();
          if (type === PKG.HANDSHAKE) {
            var res = JSON.parse(dec.decode(body));
            if (res.code !== 200) { reject(new Error('handshake refused: ' + res.code)); ws.close(); return; }
            var sys = res.sys || {};
            if (sys.dict) { cache.dict = sys.dict; cache.dictVersion = sys.dictVersion || ''; }
            self.dict = sys.useDict ? cache.dict || {} : {};
            for (var r in self.dict) self.abbrs[self.dict[r]] = r;
            if (sys.protos) cache.protos = sys.protos;
            self.protos = sys.useProto ? cache.protos : null;
            self.interval = ((res.sys && res.sys.heartbeat) || 0) * 1000;
            ws.send(pkg(PKG.ACK));
            ready = true;
            self.scheduleHeartbeat();
            resolve();
          } else if (type === PKG.HEARTBEAT) {
            self.scheduleHeartbeat();
          } else if (type === PKG.DATA) {
            var m = decodeMessage(body, self.abbrs, self.routes, self.protos);
            if (m.type === MSG.RESPONSE) {
              var cb = self.callbacks[m.id]; delete self.callbacks[m.id];
              if (cb) cb(m.body);
            } else if (m.type === MSG.PUSH) {
              self.emit(m.route, m.body);
            }
          } else if (type === PKG.KICK) {
            self.emit('onKick', JSON.parse(dec.decode(body)));
          }
        }
      };
      ws.onerror = function () { if (!ready) reject(new Error('cannot connect to ' + host + ':' + port)); };
      ws.onclose = function () { self.stopTimers(); self.emit('disconnect', null); };
    });
  };

  Pomelo.prototype.scheduleHeartbeat = function () {
    var self = this;
    if (!this.interval || this.heartbeatTimer) return;
    this.heartbeatTimer = setTimeout(function () {
      self.heartbeatTimer = null;
      if (self.ws && self.ws.readyState === WebSocket.OPEN) self.ws.send(pkg(PKG.HEARTBEAT));
    }, this.interval);
  };

  // resetTimeout closes a connection the server has gone silent on (2× interval).
  Pomelo.prototype.resetTimeout = function () {
    var self = this;
    if (!this.interval) return;
    clearTimeout(this.timeoutTimer);
    this.timeoutTimer = setTimeout(function () { if (self.ws) self.ws.close(); }, 2 * this.interval + 1000);
  };

  Pomelo.prototype.stopTimers = function () {
    clearTimeout(this.heartbeatTimer); clearTimeout(this.timeoutTimer);
    this.heartbeatTimer = this.timeoutTimer = null;
  };

  // body encodes a request or notify body: protobuf when the route has a
  // client proto, JSON otherwise.
  Pomelo.prototype.body = function (route, msg) {
    if (this.protos && this.protos.client[route]) return PB.encode(this.protos.client, route, msg || {});
    return enc.encode(JSON.stringify(msg || {}));
  };

  Pomelo.prototype.request = function (route, msg) {
    var self = this, id = ++this.reqId;
    return new Promise(function (resolve) {
      self.callbacks[id] = resolve;
      self.routes[id] = route;
      self.ws.send(pkg(PKG.DATA, message(MSG.REQUEST, id, route, self.body(route, msg), self.dict)));
    });
  };

  Pomelo.prototype.notify = function (route, msg) {
    this.ws.send(pkg(PKG.DATA, message(MSG.NOTIFY, 0, route, this.body(route, msg), this.dict)));
  };

  // Wire reports what the connection uses, for tests: the scheme, and
  // whether bodies may travel as protobuf.
  Pomelo.prototype.wire = function () {
    return { url: this.ws ? this.ws.url : '', protobuf: !!this.protos };
  };

  Pomelo.prototype.disconnect = function () {
    this.stopTimers();
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
  };

  global.Pomelo = Pomelo;
})(window);
