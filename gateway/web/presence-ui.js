// presence-ui.js — small formatting helpers shared by the demo page, the
// dashboard and the React example components. No DOM, no dependencies.

export { typingText } from './presence.js';

/** "Alice Smith" → "AS", "bob" → "B". @param {string} name */
export function initials(name) {
  const parts = String(name || '?').trim().split(/[\s._-]+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] || '?')[0];
  return s.toUpperCase();
}

/** A stable background colour for a name. @param {string} name */
export function colorFor(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 45%)`;
}

const LABELS = { active: 'active', idle: 'idle', away: 'away', stale: 'reconnecting', offline: 'offline' };

/** What a person reads for a state ("stale" reads "reconnecting"). @param {string} state */
export function stateLabel(state) {
  return LABELS[state] || state;
}

/** "1 person here", "3 people here". @param {number} n */
export function peopleHere(n) {
  return `${n} ${n === 1 ? 'person' : 'people'} here`;
}

/** "1 tab", "2 tabs". @param {number} n */
export function tabsText(n) {
  return `${n} ${n === 1 ? 'tab' : 'tabs'}`;
}
