// dashboard.js — the cluster dashboard at /dashboard: nodes (alive, suspect,
// dead), the raft leader, sessions per node, rooms, and a live event feed
// (room events over one WebSocket, cluster changes from polling /v1/cluster).

import { connect } from '/presence.js';
import { stateLabel } from '/presence-ui.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get('token') || sessionStorage.getItem('presence-token') || '';
if (params.get('token')) {
  sessionStorage.setItem('presence-token', token);
  history.replaceState(null, '', location.pathname); // keep the token out of the address bar
}
const POLL_MS = 1000;
const MAX_ROOMS = 20; // rooms whose events the feed follows

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function feed(text, kind = '') {
  const list = $('feed');
  list.prepend(el('li', { dataset: { kind } }, el('time', {}, new Date().toLocaleTimeString()), text));
  while (list.children.length > 200) list.lastChild.remove();
}

// ---- room events over WebSocket ----

const client = connect(token ? { token, detectActivity: false, device: { kind: 'web', platform: 'dashboard' } }
  : { detectActivity: false, device: { kind: 'web', platform: 'dashboard' } });
window.presenceClient = client;
client.on('status', (s) => {
  const st = $('status');
  st.dataset.status = s;
  st.textContent = { open: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', closed: 'not connected' }[s] || s;
});
client.on('welcome', (w) => feed(w.resumed ? `events: reconnected to ${w.node}` : `events: connected to ${w.node}`, 'conn'));
client.on('error', (e) => { $('error').textContent = `${e.code}: ${e.message}`; });

const followed = new Map(); // room → Room

// followOnly follows the rooms given (the busiest) and no others.
function followOnly(roomIds) {
  const keep = new Set(roomIds.slice(0, MAX_ROOMS));
  for (const [roomId, r] of followed) {
    if (keep.has(roomId)) continue;
    followed.delete(roomId);
    r.close();
  }
  for (const roomId of keep) follow(roomId);
}

function follow(roomId) {
  if (followed.has(roomId)) return;
  const r = client.room(roomId, { enter: false });
  followed.set(roomId, r);
  r.on('online', (ev) => feed(`${ev.user} came online in ${roomId}`, 'online'));
  r.on('offline', (ev) => feed(`${ev.user} went offline in ${roomId}`, 'offline'));
  r.on('state', (ev) => feed(`${ev.user} is ${stateLabel(ev.state)} in ${roomId}`, 'state'));
  r.on('enter', (ev) => feed(`${ev.user || 'anonymous'} opened a tab in ${roomId}`, 'enter'));
  r.on('leave', (ev) => feed(`${ev.user || 'anonymous'} left ${roomId} (${ev.reason})`, 'leave'));
  r.on('typing', (ev) => { if (ev.typing) feed(`${ev.user || 'anonymous'} is typing in ${roomId}`, 'typing'); });
}

// ---- cluster state, polled ----

let prev = null;

function diff(cur) {
  if (!prev) {
    feed(`cluster: ${cur.nodes.length} node(s), raft leader ${cur.raft.leader || 'unknown'}`, 'cluster');
    return;
  }
  const before = new Map(prev.nodes.map((n) => [n.name, n]));
  for (const n of cur.nodes) {
    const b = before.get(n.name);
    if (!b) feed(`node ${n.name} joined (${n.state})`, 'node');
    else if (b.state !== n.state) feed(`node ${n.name}: ${b.state} → ${n.state}`, 'node');
    before.delete(n.name);
  }
  for (const n of before.values()) feed(`node ${n.name} is gone from the list`, 'node');
  if (prev.raft.leader !== cur.raft.leader) feed(`raft leader: ${prev.raft.leader || 'none'} → ${cur.raft.leader || 'none'}`, 'raft');
}

function renderCluster(c) {
  $('via').textContent = c.node;
  const alive = c.nodes.filter((n) => n.state === 'alive').length;
  $('stat-nodes').textContent = `${alive}/${c.nodes.length}`;
  $('stat-leader').textContent = c.raft.leader || 'none';
  $('stat-sessions').textContent = c.sessions;
  $('stat-users').textContent = c.users;
  $('stat-rooms').textContent = c.rooms_total;

  $('nodes').replaceChildren(...c.nodes.map((n) => {
    const byState = Object.entries(n.session_states || {}).filter(([, k]) => k > 0)
      .map(([s, k]) => `${k} ${stateLabel(s)}`).join(', ');
    const role = n.name === c.raft.leader ? el('span', { class: 'pr-leader' }, 'leader') : (n.raft_role || '–');
    const addr = n.http ? el('a', { href: `http://${n.http}/dashboard` }, n.http) : '–';
    return el('tr', { dataset: { node: n.name, state: n.state, sessions: String(n.sessions) } },
      el('td', {}, el('b', {}, n.name), n.self ? el('span', { class: 'pr-muted' }, ' (this node)') : null),
      el('td', { class: 'pr-node-state' }, el('span', { class: `pr-inline-dot pr-${n.state}` }), ' ', n.state),
      el('td', {}, role),
      el('td', { class: 'pr-node-sessions' }, String(n.sessions), byState ? el('span', { class: 'pr-muted' }, ` (${byState})`) : null),
      el('td', {}, addr));
  }));

  $('rooms').replaceChildren(...(c.rooms.length ? c.rooms.map((r) => el('tr', { dataset: { room: r.room } },
    el('td', {}, el('b', {}, r.room)),
    el('td', {}, String(r.online.users)),
    el('td', {}, String(r.online.connections)),
    el('td', {}, String(r.here.users)),
    el('td', {}, (r.typing || []).join(', ') || '–'))) : [el('tr', {}, el('td', { colspan: '5', class: 'pr-muted' }, 'no rooms with members'))]));
}

async function poll() {
  try {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const res = await fetch('/v1/cluster', { headers, cache: 'no-store' });
    const body = await res.json();
    if (!res.ok) throw new Error(body?.error?.message || res.statusText);
    $('error').textContent = '';
    diff(body);
    prev = body;
    renderCluster(body);
    followOnly(body.rooms.map((r) => r.room)); // busiest first
  } catch (err) {
    $('error').textContent = `cannot read /v1/cluster: ${err.message}`;
  }
  setTimeout(poll, POLL_MS);
}

poll();
