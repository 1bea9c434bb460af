// The chatofpomelo flow: ask the gate for a connector, enter the room on it,
// then chat; pushes onAdd/onLeave/onChat keep the page current.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var pomelo = null, me = '', room = '';
  // For tests: the connector connection's URL and whether bodies may be protobuf.
  window.chatWire = function () { return pomelo ? pomelo.wire() : null; };

  function status(text) { $('status').textContent = text; }

  function addLine(cls, parts) {
    var li = document.createElement('li');
    if (cls) li.className = cls;
    parts.forEach(function (p) {
      var span = document.createElement('span');
      if (p.cls) span.className = p.cls;
      span.textContent = p.text;
      li.appendChild(span);
    });
    $('messages').appendChild(li);
    $('messages').scrollTop = $('messages').scrollHeight;
  }

  function setUsers(users) {
    var list = $('users'), target = $('target'), keep = target.value;
    list.textContent = '';
    target.textContent = '';
    var all = document.createElement('option'); all.value = '*'; all.textContent = 'everyone'; target.appendChild(all);
    users.slice().sort().forEach(function (u) {
      var li = document.createElement('li'); li.textContent = u; list.appendChild(li);
      if (u !== me) { var o = document.createElement('option'); o.value = u; o.textContent = u; target.appendChild(o); }
    });
    target.value = users.indexOf(keep) >= 0 ? keep : '*';
  }

  var users = [];
  // Pushes that arrive before the enter reply: the reply's list was taken
  // when we were added, so later arrivals and departures are replayed on it.
  var early = null;

  function addUser(u) { if (users.indexOf(u) < 0) users.push(u); }
  function removeUser(u) { users = users.filter(function (x) { return x !== u; }); }
  function change(fn, u) { if (early) { early.push([fn, u]); return; } fn(u); setUsers(users); }

  async function join(username, rid) {
    var cfg = await (await fetch('config.json')).json();
    var gate = new Pomelo();
    status('asking the gate…');
    await gate.connect(cfg.gateHost, cfg.gatePort);
    var entry = await gate.request('gate.gateHandler.queryEntry', { uid: username });
    gate.disconnect();
    if (entry.code !== 200) throw new Error('the gate has no connector for you (code ' + entry.code + ')');

    pomelo = new Pomelo();
    status('connecting to ' + entry.host + ':' + entry.port + '…');
    await pomelo.connect(entry.host, entry.port);
    pomelo.on('onChat', function (m) {
      var priv = m.target !== '*';
      addLine(priv ? 'private' : '', [{ cls: 'from', text: m.from + (priv ? ' → ' + m.target : '') + ': ' }, { text: m.msg }]);
    });
    early = [];
    pomelo.on('onAdd', function (m) { change(addUser, m.user); addLine('system', [{ text: m.user + ' joined' }]); });
    pomelo.on('onLeave', function (m) { change(removeUser, m.user); addLine('system', [{ text: m.user + ' left' }]); });
    pomelo.on('onKick', function (m) { status('kicked: ' + m.reason); });
    pomelo.on('disconnect', function () { status('disconnected'); });

    var res = await pomelo.request('connector.entryHandler.enter', { username: username, rid: rid });
    if (res.error || !res.users) { early = null; pomelo.disconnect(); throw new Error('the name ' + username + ' is taken in this room'); }
    me = username; room = rid; users = res.users.slice();
    early.forEach(function (c) { c[0](c[1]); });
    early = null;
    setUsers(users);
    $('room-name').textContent = rid;
    status('connected as ' + username + ' via ' + entry.host + ':' + entry.port);
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    $('login-error').hidden = true;
    $('join').disabled = true;
    join($('username').value.trim(), $('room').value.trim()).then(function () {
      $('login').hidden = true; $('chat').hidden = false; $('content').focus();
    }).catch(function (err) {
      $('login-error').textContent = err.message; $('login-error').hidden = false; status('not connected');
    }).finally(function () { $('join').disabled = false; });
  });

  $('send').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var content = $('content').value, target = $('target').value;
    if (!content) return;
    pomelo.request('chat.chatHandler.send', { rid: room, content: content, from: me, target: target });
    if (target !== '*') addLine('private', [{ cls: 'from', text: me + ' → ' + target + ': ' }, { text: content }]);
    $('content').value = '';
  });
})();
