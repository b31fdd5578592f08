// demo.js — the demo page at / : pick a name, join a room, see the others
// with their states, tabs, typing, and the online and here counts.
// Plain DOM on top of presence.js (see /examples/react.html for React).

import { connect } from '/presence.js';
import { colorFor, initials, peopleHere, stateLabel, tabsText, typingText } from '/presence-ui.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

let client = null;
let room = null;

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'style') Object.assign(e.style, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function avatar(user, state, size = 36) {
  return el('span', {
    class: `pr-avatar pr-${state}`, title: `${user} · ${stateLabel(state)}`,
    style: { width: size + 'px', height: size + 'px', background: colorFor(user) },
  }, initials(user), el('span', { class: `pr-dot pr-${state}` }));
}

function log(text) {
  const list = $('log');
  const t = new Date();
  list.prepend(el('li', {}, el('time', {}, t.toLocaleTimeString()), text));
  while (list.children.length > 100) list.lastChild.remove();
}

function setStatus(s) {
  const st = $('status');
  st.dataset.status = s;
  st.textContent = { open: 'connected', connecting: 'connecting…', reconnecting: 'connection lost · reconnecting…', closed: 'not connected' }[s] || s;
}

// "Here" in this demo means looking at the room now: the tab is visible.
function syncLocation() {
  if (!client || !room) return;
  client.setLocation(document.visibilityState === 'visible' ? room.id : '').catch(() => {});
}

function render() {
  const v = room.snapshot();
  const me = client.user;
  $('online-users').textContent = v.counts.online.users;
  $('online-tabs').textContent = tabsText(v.counts.online.connections);
  $('here-users').textContent = v.counts.here.users;
  const counts = $('counts').dataset;
  counts.onlineUsers = v.counts.online.users;
  counts.onlineTabs = v.counts.online.connections;
  counts.hereUsers = v.counts.here.users;
  counts.hereTabs = v.counts.here.connections;

  // Avatar stack: up to 5, then "+N", then "N people here".
  const max = 5;
  const stack = $('stack');
  stack.replaceChildren(
    el('div', { class: 'pr-stack-avatars' },
      ...v.users.slice(0, max).map((u) => avatar(u.user, u.state)),
      v.users.length > max ? el('span', { class: 'pr-avatar pr-more' }, `+${v.users.length - max}`) : null),
    el('span', { class: 'pr-here' }, peopleHere(v.counts.here.users)),
  );

  const list = $('users');
  list.replaceChildren(...v.users.map((u) => {
    const tabs = el('div', { class: 'pr-tabs' }, ...u.members.map((m) => el('span', {
      class: 'pr-tab', dataset: { session: m.session, state: m.state, here: String(m.here) },
    }, el('span', { class: `pr-inline-dot pr-${m.state}` }), ' ',
    (m.session === client.session ? 'this tab' : 'tab') + (m.data && m.data.node ? ` on ${m.data.node}` : '') + ` · ${stateLabel(m.state)}${m.here ? ' · here' : ''}`)));
    return el('li', { dataset: { user: u.user, state: u.state, tabs: String(u.sessions), here: String(u.here) } },
      avatar(u.user, u.state, 40),
      el('div', { style: { flex: '1' } },
        el('div', {},
          el('span', { class: 'pr-user-name' }, u.user),
          u.user === me ? el('span', { class: 'pr-user-me' }, ' (you)') : null, ' ',
          el('span', { class: 'pr-user-state' }, stateLabel(u.state)), ' ',
          el('span', { class: 'pr-badge pr-tabs-count' }, tabsText(u.sessions)), ' ',
          u.here ? el('span', { class: 'pr-badge pr-here-badge' }, 'here') : null),
        tabs));
  }));

  const typing = $('typing');
  typing.textContent = typingText(v.typingUsers) || '\u00a0';
  typing.dataset.typing = v.typingUsers.join(',');
}

function join(name, roomId, token) {
  localStorage.setItem('presence-demo-name', name);
  const opts = { user: name, location: document.visibilityState === 'visible' ? roomId : '' };
  if (token) opts.token = token;
  const c = connect(opts);
  client = c;
  // Exposed for the browser tests and for poking around in the console.
  window.presenceClient = client;
  setStatus(client.status);
  client.on('status', setStatus);
  client.on('close', (c) => log(`connection lost (${c.reason || 'code ' + c.code}): reconnecting…`));
  client.on('welcome', (w) => {
    $('node').textContent = w.node;
    log(w.resumed ? `reconnected to ${w.node}: session resumed` : `connected to ${w.node} as ${w.user || 'anonymous'}`);
    if (room && room.entered && room.me?.data?.node !== w.node) room.update({ node: w.node }).catch(() => {});
  });
  client.on('error', (e) => {
    $('join-error').textContent = `${e.code}: ${e.message}`;
    log(`error: ${e.code} ${e.message}`);
  });
  client.whenOpen().then((w) => {
    room = client.room(roomId, { data: { node: w.node } });
    window.presenceRoom = room;
    $('room-name').textContent = roomId;
    $('join-card').classList.add('pr-hidden');
    $('room-card').classList.remove('pr-hidden');
    $('log-card').classList.remove('pr-hidden');
    room.on('change', render);
    room.on('online', (ev) => log(`${ev.user} came online`));
    room.on('offline', (ev) => log(`${ev.user} went offline`));
    room.on('state', (ev) => log(`${ev.user} is now ${stateLabel(ev.state)}`));
    room.on('enter', (ev) => log(`${ev.user || 'someone'} opened a tab${ev.member?.data?.node ? ' on ' + ev.member.data.node : ''}`));
    room.on('leave', (ev) => log(`${ev.user || 'someone'} left a tab (${ev.reason})`));
    render();
    document.title = `${roomId} · presenced demo`;
  }, () => {
    // Stopped before joining (a bad token, say; the error is shown): the
    // form can be sent again.
    if (client === c) client = null;
  });
  document.addEventListener('visibilitychange', syncLocation);
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  const roomId = $('room').value.trim();
  if (!name || !roomId || client) return;
  const url = new URL(location.href);
  url.searchParams.set('room', roomId);
  history.replaceState(null, '', url);
  $('join-error').textContent = '';
  join(name, roomId, $('token').value.trim());
});

$('leave').addEventListener('click', () => {
  client?.close('explicit');
  client = null;
  room = null;
  location.reload();
});

$('message').addEventListener('input', () => room?.typing());
$('message-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!room) return;
  const text = $('message').value.trim();
  room.stopTyping();
  $('message').value = '';
  if (text) log(`you said: ${text}`);
});

$('name').value = params.get('name') || localStorage.getItem('presence-demo-name') || '';
if (params.get('room')) $('room').value = params.get('room');
fetch('/healthz').then((r) => r.json()).then((h) => { $('node').textContent = h.node; }, () => {});
if (params.get('join') === '1' && $('name').value) $('join-form').requestSubmit();
