// presence-components.js — example React components for presence: an avatar
// with a status dot, an avatar stack with "+N" and "N people here", and a
// typing line. Plain React.createElement (no JSX, no build step); style them
// with /presence.css or your own CSS (class names start with "pr-").
//
//   import { AvatarStack, TypingLine } from '/presence-components.js';
//   const { users, typingUsers } = usePresence('lobby', { user: 'alice' });
//   <AvatarStack users={users} max={4} />  <TypingLine users={typingUsers} />

import { createElement as h } from 'react';
import { colorFor, initials, peopleHere, stateLabel, typingText } from './presence-ui.js';

/**
 * A round avatar with the user's initials and a dot for their state.
 * @param {{user: string, state?: string, size?: number, title?: string}} props
 */
export function Avatar({ user, state = 'offline', size = 36, title }) {
  return h(
    'span',
    {
      className: `pr-avatar pr-${state}`,
      title: title ?? `${user} · ${stateLabel(state)}`,
      'data-user': user,
      'data-state': state,
      style: { width: size, height: size, fontSize: Math.round(size * 0.4), background: colorFor(user) },
    },
    initials(user),
    h('span', { className: `pr-dot pr-${state}`, 'aria-label': stateLabel(state) }),
  );
}

/**
 * Up to max avatars, then "+N", then "N people here" (users whose tab is
 * on this room now).
 * @param {{users: {user: string, state: string, here?: boolean}[], max?: number, size?: number}} props
 */
export function AvatarStack({ users, max = 4, size = 36 }) {
  const shown = users.slice(0, max);
  const more = users.length - shown.length;
  const here = users.filter((u) => u.here).length;
  return h(
    'div',
    { className: 'pr-stack', 'data-count': users.length },
    h(
      'div',
      { className: 'pr-stack-avatars' },
      shown.map((u) => h(Avatar, { key: u.user, user: u.user, state: u.state, size })),
      more > 0 ? h('span', { className: 'pr-avatar pr-more', style: { width: size, height: size, fontSize: Math.round(size * 0.36) } }, `+${more}`) : null,
    ),
    h('span', { className: 'pr-here', 'data-here': here }, peopleHere(here)),
  );
}

/**
 * "alice is typing…" (empty, but keeping its height, when nobody is).
 * @param {{users: string[]}} props
 */
export function TypingLine({ users }) {
  return h('div', { className: 'pr-typing', 'aria-live': 'polite', 'data-typing': users.join(',') }, typingText(users) || '\u00a0');
}
