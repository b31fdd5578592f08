// react-app.js — the React example: usePresence, useRoomUsers and useTyping
// with the example components, no JSX and no bundler.
//
// /examples/react.html?user=alice&room=lobby

import { createElement as h, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { usePresence, useTyping } from '/presence-react.js';
import { Avatar, AvatarStack, TypingLine } from '/presence-components.js';
import { stateLabel, tabsText } from '/presence-ui.js';

const params = new URLSearchParams(location.search);

function RoomView({ user, roomId }) {
  const { status, users, counts } = usePresence(roomId, { user, location: roomId });
  const typing = useTyping(roomId, { user, location: roomId });
  const [text, setText] = useState('');
  return h('section', { className: 'pr-card', id: 'react-room', 'data-status': status },
    h('div', { className: 'pr-row', style: { justifyContent: 'space-between' } },
      h('h2', { style: { margin: 0 } }, `Room ${roomId}`),
      h('span', { className: 'pr-status', 'data-status': status }, status)),
    h('div', { style: { margin: '12px 0' } }, h(AvatarStack, { users, max: 3 })),
    h('p', { className: 'pr-muted', id: 'react-counts', 'data-online': counts.online.users, 'data-here': counts.here.users },
      `${counts.online.users} online (${tabsText(counts.online.connections)}), ${counts.here.users} here`),
    h('ul', { className: 'pr-users', id: 'react-users' }, users.map((u) => h('li', { key: u.user, 'data-user': u.user, 'data-state': u.state },
      h(Avatar, { user: u.user, state: u.state }),
      h('span', { className: 'pr-user-name' }, u.user),
      h('span', { className: 'pr-user-state' }, stateLabel(u.state)),
      h('span', { className: 'pr-badge' }, tabsText(u.sessions))))),
    h(TypingLine, { users: typing.typingUsers }),
    h('form', { className: 'pr-row', onSubmit: (e) => { e.preventDefault(); typing.stop(); setText(''); } },
      h('input', { id: 'react-message', value: text, placeholder: 'Type: the others see you typing', style: { flex: 1 },
        onChange: (e) => { setText(e.target.value); typing.onInput(); } }),
      h('button', { type: 'submit' }, 'Send')));
}

function App() {
  const [user, setUser] = useState(params.get('user') || '');
  const [draft, setDraft] = useState('');
  const roomId = params.get('room') || 'lobby';
  if (!user) {
    return h('form', { className: 'pr-card pr-row', onSubmit: (e) => { e.preventDefault(); if (draft.trim()) setUser(draft.trim()); } },
      h('input', { id: 'react-name', placeholder: 'Your name', value: draft, onChange: (e) => setDraft(e.target.value) }),
      h('button', { type: 'submit' }, `Join ${roomId}`));
  }
  return h(RoomView, { user, roomId });
}

createRoot(document.getElementById('app')).render(h(App));
