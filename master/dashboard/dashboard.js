// The shaddock dashboard: renders the master's view, kept live by
// server-sent events (/api/events), and offers restart and stop with a
// confirmation. No framework, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const busy = new Set(); // servers with an action in flight

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function uptime(ms) {
  if (!ms) return '';
  let s = Math.floor(ms / 1000);
  if (s >= 86400) return `${Math.floor(s / 86400)}d${Math.floor(s % 86400 / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h${Math.floor(s % 3600 / 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${s}s`;
}

function notice(text, isError) {
  const n = $('notice');
  n.textContent = text;
  n.className = isError ? 'error' : '';
  n.style.display = text ? 'block' : 'none';
}

async function act(id, action) {
  if (!window.confirm(`${action[0].toUpperCase() + action.slice(1)} ${id}?`)) return;
  busy.add(id);
  render(lastView);
  notice(`${action} ${id}…`, false);
  try {
    const resp = await fetch(`/api/servers/${encodeURIComponent(id)}/${action}`, { method: 'POST', credentials: 'same-origin' });
    const rep = await resp.json().catch(() => ({ ok: false, lines: [], error: resp.statusText }));
    notice(`${action} ${id}: ${rep.ok ? 'done' : 'failed'}\n${(rep.lines || []).join('\n')}${rep.error ? '\n' + rep.error : ''}`, !rep.ok);
  } catch (e) {
    notice(`${action} ${id}: ${e}`, true);
  } finally {
    busy.delete(id);
    render(lastView);
  }
}

function row(s) {
  const state = el('td', { class: `state s-${s.state}` }, s.state);
  if (s.reason) state.append(el('span', { class: 'reason' }, s.reason));
  const actions = el('td', {},
    el('button', { onclick: () => act(s.id, 'restart'), disabled: busy.has(s.id), 'data-action': 'restart' }, 'Restart'),
    el('button', { onclick: () => act(s.id, 'stop'), disabled: busy.has(s.id) || s.state === 'stopped', 'data-action': 'stop' }, 'Stop'));
  return el('tr', { 'data-id': s.id, 'data-state': s.state },
    el('td', {}, el('code', {}, s.id)), el('td', {}, s.type), state,
    el('td', { class: 'num' }, s.pid ? String(s.pid) : ''),
    el('td', { class: 'num' }, s.pid ? String(s.sessions) : ''),
    el('td', { class: 'num' }, s.rate !== undefined ? s.rate.toFixed(1) : ''),
    el('td', { class: 'num' }, s.p99Ms !== undefined ? s.p99Ms.toFixed(2) : ''),
    el('td', {}, el('code', {}, s.build || '')),
    el('td', {}, uptime(s.uptimeMs)),
    el('td', {}, `${s.host}:${s.port}` + (s.client ? ` · ${s.client}` : '')),
    actions);
}

let lastView = null;

// render draws the servers by host, and within a host by group.
function render(v) {
  if (!v) return;
  $('env').textContent = v.env;
  $('master').textContent = `master ${v.master} (pid ${v.masterPid})`;
  $('update').textContent = v.update || '';
  const byHost = new Map();
  for (const s of v.servers) {
    if (!byHost.has(s.host)) byHost.set(s.host, []);
    byHost.get(s.host).push(s);
  }
  const hosts = [];
  for (const host of [...byHost.keys()].sort()) {
    const list = byHost.get(host).sort((a, b) => (a.group || '').localeCompare(b.group || '') || a.id.localeCompare(b.id));
    const head = el('tr', {}, ...['id', 'type', 'state', 'pid', 'sessions', 'req/s', 'p99 ms', 'build', 'uptime', 'cluster · client', ''].map((h) => el('th', {}, h)));
    const body = el('tbody', {});
    let group = null;
    for (const s of list) {
      if (s.group !== group) {
        group = s.group;
        body.append(el('tr', { class: 'group' }, el('td', { colSpan: 11 }, group ? `group ${group}` : 'no group')));
      }
      body.append(row(s));
    }
    hosts.push(el('section', { 'data-host': host }, el('h2', {}, `host ${host}`), el('table', {}, el('thead', {}, head), body)));
  }
  $('hosts').replaceChildren(...hosts);
}

function connect() {
  const es = new EventSource('/api/events');
  es.onmessage = (e) => {
    lastView = JSON.parse(e.data);
    render(lastView);
    const live = $('live');
    live.className = '';
    live.textContent = `live · updated ${new Date(lastView.at).toLocaleTimeString()}`;
  };
  es.onerror = () => {
    const live = $('live');
    live.className = 'down';
    live.textContent = 'connection to the master lost; retrying…';
  };
}

connect();
