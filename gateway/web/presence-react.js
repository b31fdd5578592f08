// presence-react.js — React bindings for presence.js. No build step: import
// React through an import map ("react" must resolve), e.g.
//
//   <script type="importmap">{"imports": {"react": "https://esm.sh/react@18.3.1"}}</script>
//   import { usePresence } from '/presence-react.js';
//
//   function Room() {
//     const { users, counts, typingUsers, room } = usePresence('lobby', { user: 'alice' });
//     return <input onInput={() => room.typing()} />;
//   }
//
// Hooks that name the same connection options share one client (one
// session per tab), and hooks on the same room share its handle: the room
// is entered while at least one of them is mounted. A shared client is
// closed when the last hook using it unmounts (or moves to other options,
// e.g. a refreshed token string), so an old session does not linger.

import { useCallback, useEffect, useMemo, useSyncExternalStore } from 'react';
import { PresenceClient, typingText } from './presence.js';

const clients = new Map(); // key → PresenceClient
const shared = new WeakMap(); // a client made by getClient → {key, refs}
const holds = new WeakMap(); // Room → {refs, entered}

/**
 * The shared client for these options (created and connected on first
 * use), or options.client when given.
 * @param {import('./presence.js').ClientOptions & {client?: PresenceClient}} [options]
 * @returns {PresenceClient}
 */
export function getClient(options = {}) {
  if (options.client) return options.client;
  const token = typeof options.token === 'string' ? options.token : options.token ? 'fn' : '';
  const key = JSON.stringify([options.url || '', options.user || '', token]);
  let c = clients.get(key);
  if (!c) {
    const { client: _c, data: _d, enter: _e, ...clientOptions } = options;
    c = new PresenceClient(clientOptions);
    clients.set(key, c);
    shared.set(c, { key, refs: 0, closed: false });
  }
  return c;
}

// retain counts the hooks using a client made by getClient; the last one to
// let go closes it and forgets it. Letting go waits a tick, as in hold.
function retain(client) {
  const s = shared.get(client);
  if (!s) return undefined; // options.client: the app's to close
  if (s.refs++ === 0 && s.closed) {
    // Closed just before this hook mounted (it rendered with it earlier): open it again.
    s.closed = false;
    if (!clients.has(s.key)) clients.set(s.key, client);
    client.connect().catch(() => {});
  }
  return () => {
    s.refs--;
    setTimeout(() => {
      if (s.refs > 0) return;
      if (clients.get(s.key) === client) clients.delete(s.key);
      s.closed = true;
      client.close();
    }, 0);
  };
}

// hold counts the components using a room: it is subscribed while any is
// mounted and entered while any that enters is. Letting go waits a tick, so
// a quick unmount and mount (React StrictMode, a re-keyed parent) does not
// make the user leave and enter again.
function hold(room, enter, data) {
  let h = holds.get(room);
  if (!h) holds.set(room, (h = { refs: 0, entered: 0 }));
  h.refs++;
  room.subscribe();
  if (enter && ++h.entered === 1) room.enter(data).catch(() => {});
  return () => {
    h.refs--;
    if (enter) h.entered--;
    setTimeout(() => {
      if (h.entered === 0 && room.entered) room.leave().catch(() => {});
      if (h.refs === 0) room.unsubscribe();
    }, 0);
  };
}

/**
 * Presence in a room: enters it (unless options.enter is false) while the
 * component is mounted, and re-renders on every change.
 *
 * @param {string} roomId
 * @param {import('./presence.js').ClientOptions & {client?: PresenceClient, data?: any, enter?: boolean}} [options]
 * @returns {{status: string, synced: boolean, members: any[], users: any[], counts: any,
 *   typingUsers: string[], me: any, room: import('./presence.js').Room, client: PresenceClient}}
 */
export function usePresence(roomId, options = {}) {
  const client = getClient(options);
  const enter = options.enter !== false;
  const room = useMemo(() => client.room(roomId, { enter: false, subscribe: false }), [client, roomId]);
  const dataKey = JSON.stringify(options.data ?? null);
  useEffect(() => retain(client), [client]);
  useEffect(() => hold(room, enter, options.data), [room, enter]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (enter && options.data !== undefined && room.entered) room.update(options.data).catch(() => {});
  }, [room, enter, dataKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const subscribe = useCallback((onChange) => room.on('change', onChange), [room]);
  const snap = useSyncExternalStore(subscribe, () => room.snapshot());
  return { ...snap, room, client };
}

/**
 * The room's users, each derived from their tabs and devices (state,
 * sessions, here).
 */
export function useRoomUsers(roomId, options) {
  return usePresence(roomId, options).users;
}

/**
 * Typing in a room: who else is typing, a line to show, and the calls to
 * make from an input (onInput on every keystroke: throttled; stop when the
 * message is sent).
 */
export function useTyping(roomId, options) {
  const { typingUsers, room } = usePresence(roomId, options);
  const onInput = useCallback(() => room.typing(), [room]);
  const stop = useCallback(() => room.stopTyping(), [room]);
  return { typingUsers, text: typingText(typingUsers), onInput, stop };
}
