// A small Pomelo protocol client for browsers (WebSocket transport), written
// from the protocol: packages (type, 3-byte length, body), messages (flag,
// base-128 id, route code or string, JSON body), handshake, heartbeats, kick.
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

  function decodeMessage(b, abbrs) {
    var flag = b[0], type = (flag >> 1) & 7, off = 1, id = 0, route = null;
    if (type === MSG.RESPONSE) {
      var shift = 1, c;
      do { c = b[off++]; id += (c & 0x7f) * shift; shift *= 128; } while (c >= 128);
    }
    if (type === MSG.PUSH) {
      if (flag & 1) { route = abbrs[(b[off] << 8) | b[off + 1]]; off += 2; }
      else { var n = b[off++]; route = dec.decode(b.subarray(off, off + n)); off += n; }
    }
    var text = dec.decode(b.subarray(off));
    return { type: type, id: id, route: route, body: text ? JSON.parse(text) : null };
  }

  function Pomelo() {
    this.ws = null; this.reqId = 0; this.callbacks = {}; this.handlers = {};
    this.dict = null; this.abbrs = {}; this.heartbeatTimer = null; this.timeoutTimer = null;
  }

  Pomelo.prototype.on = function (route, fn) { (this.handlers[route] = this.handlers[route] || []).push(fn); };
  Pomelo.prototype.emit = function (route, body) { (this.handlers[route] || []).forEach(function (fn) { fn(body); }); };

  // connect resolves once the handshake is done and data may flow.
  Pomelo.prototype.connect = function (host, port) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var ws = new WebSocket('ws://' + host + ':' + port + '/');
      ws.binaryType = 'arraybuffer';
      self.ws = ws;
      var ready = false;
      ws.onopen = function () {
        ws.send(pkg(PKG.HANDSHAKE, enc.encode(JSON.stringify({ sys: { type: 'js-websocket', version: '0.1.0' }, user: {} }))));
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
            self.dict = (res.sys && res.sys.dict) || {};
            for (var r in self.dict) self.abbrs[self.dict[r]] = r;
            self.interval = ((res.sys && res.sys.heartbeat) || 0) * 1000;
            ws.send(pkg(PKG.ACK));
            ready = true;
            self.scheduleHeartbeat();
            resolve();
          } else if (type === PKG.HEARTBEAT) {
            self.scheduleHeartbeat();
          } else if (type === PKG.DATA) {
            var m = decodeMessage(body, self.abbrs);
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

  Pomelo.prototype.request = function (route, msg) {
    var self = this, id = ++this.reqId;
    return new Promise(function (resolve) {
      self.callbacks[id] = resolve;
      self.ws.send(pkg(PKG.DATA, message(MSG.REQUEST, id, route, enc.encode(JSON.stringify(msg || {})), self.dict)));
    });
  };

  Pomelo.prototype.notify = function (route, msg) {
    this.ws.send(pkg(PKG.DATA, message(MSG.NOTIFY, 0, route, enc.encode(JSON.stringify(msg || {})), this.dict)));
  };

  Pomelo.prototype.disconnect = function () {
    this.stopTimers();
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
  };

  global.Pomelo = Pomelo;
})(window);
