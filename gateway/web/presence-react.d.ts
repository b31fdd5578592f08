// Types of presence-react.js (React bindings) and presence-components.js.

import type { ClientOptions, ConnectionStatus, Counts, Member, PresenceClient, PresenceState, Room, RoomUser } from './presence.js';

export interface PresenceHookOptions extends ClientOptions {
  /** Use this client instead of the shared one for these options. */
  client?: PresenceClient;
  /** This session's data in the room (kept up to date while mounted). */
  data?: any;
  /** Enter the room while mounted (default true); false only watches it. */
  enter?: boolean;
}

export interface PresenceView {
  status: ConnectionStatus;
  synced: boolean;
  version: number;
  members: Member[];
  users: RoomUser[];
  counts: Counts;
  typingUsers: string[];
  me: Member | null;
  room: Room;
  client: PresenceClient;
}

/**
 * The client shared by hooks with the same url, user and token (created on
 * first use), or options.client. The hooks close a shared client when the
 * last of them using it unmounts; a client given as options.client is the
 * app's to close.
 */
export function getClient(options?: PresenceHookOptions): PresenceClient;
export function usePresence(room: string, options?: PresenceHookOptions): PresenceView;
export function useRoomUsers(room: string, options?: PresenceHookOptions): RoomUser[];
export function useTyping(room: string, options?: PresenceHookOptions): {
  typingUsers: string[];
  /** "alice is typing…" or "". */
  text: string;
  /** Call on every keystroke (throttled). */
  onInput(): void;
  /** Call when the message is sent. */
  stop(): void;
};

// presence-components.js
export function Avatar(props: { user: string; state?: PresenceState; size?: number; title?: string }): any;
export function AvatarStack(props: { users: { user: string; state: PresenceState; here?: boolean }[]; max?: number; size?: number }): any;
export function TypingLine(props: { users: string[] }): any;
