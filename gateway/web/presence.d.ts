// Types of presence.js, the browser client of presenced (protocol v1).
// Served by every node at /presence.d.ts.

export type PresenceState = 'active' | 'idle' | 'away' | 'stale' | 'offline';
export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface Device {
  kind?: 'desktop' | 'mobile' | 'web' | 'agent' | string;
  platform?: string;
  meta?: unknown;
}

/** One session (tab, device) in a room. */
export interface Member {
  session: string;
  user?: string;
  device: Device;
  state: PresenceState;
  /** The session's location is this room. */
  here: boolean;
  location?: string;
  data?: any;
  /** unix ms */
  entered_at: number;
  /** unix ms */
  last_active: number;
}

/** One user in a room, derived from their sessions in it. */
export interface RoomUser {
  user: string;
  /** The strongest of its sessions' states: active > idle > away > stale. */
  state: PresenceState;
  sessions: number;
  here: boolean;
  lastActive: number;
  members: Member[];
}

export interface CountSet {
  connections: number;
  users: number;
  anonymous: number;
}

export interface Counts {
  online: CountSet;
  here: CountSet;
}

/** The server's welcome message. */
export interface Welcome {
  type: 'welcome';
  session: string;
  user?: string;
  resume_token: string;
  resumed: boolean;
  node: string;
  heartbeat_ms: number;
  grace_ms: number;
  idle_after_ms: number;
  away_after_ms: number;
  typing_timeout_ms: number;
  limits: {
    max_frame_bytes: number;
    max_data_bytes: number;
    max_id_bytes: number;
    max_rooms_per_session: number;
    rate_per_second: number;
  };
}

/** A room event as the server sends it. */
export interface RoomEvent {
  type: 'enter' | 'leave' | 'update' | 'typing' | 'online' | 'state' | 'offline';
  room: string;
  version: number;
  time: number;
  session?: string;
  user?: string;
  member?: Member;
  reason?: 'explicit' | 'closed' | 'timeout' | 'node_failure' | 'kicked';
  data?: any;
  state?: PresenceState;
  typing?: boolean;
}

export interface ClientOptions {
  /** WebSocket URL; default: /v1/ws of the node that served presence.js. */
  url?: string;
  /** A JWT, or a function returning one (called before each connection). */
  token?: string | (() => string | Promise<string>);
  /** Open dev mode only: who this client is. */
  user?: string;
  device?: Device;
  /** What this session is viewing; a room counts it "here" while this equals the room id. */
  location?: string;
  /** Session metadata (JSON, ≤ 2 KiB). */
  meta?: unknown;
  /** Report input as activity and a hidden tab as away (default true). */
  detectActivity?: boolean;
  /** Close the session on pagehide, so others see the tab leave at once (default true). */
  leaveOnPagehide?: boolean;
  /** Connect in the constructor (default true). */
  autoConnect?: boolean;
  /** ms; the reconnect backoff doubles from here, with jitter (default 500). */
  minReconnectDelay?: number;
  /** ms (default 15000). */
  maxReconnectDelay?: number;
  /** ms to get a welcome before trying again (default 10000). */
  connectTimeout?: number;
  /** ms without a typing() call before typing stops (default 2500). */
  typingIdle?: number;
  WebSocket?: typeof WebSocket;
}

export class Emitter {
  on(type: string, fn: (...args: any[]) => void): () => void;
  off(type: string, fn: (...args: any[]) => void): void;
  emit(type: string, ...args: any[]): void;
}

export class PresenceError extends Error {
  code: string;
  constructor(code: string, message?: string);
}

/** An immutable view of a room; the same object until something changes. */
export interface RoomSnapshot {
  readonly room: string;
  readonly version: number;
  readonly synced: boolean;
  readonly status: ConnectionStatus;
  readonly members: Member[];
  readonly users: RoomUser[];
  readonly counts: Counts;
  /** Other users typing (this user's own tabs are left out). */
  readonly typingUsers: string[];
  readonly me: Member | null;
}

export class PresenceClient extends Emitter {
  constructor(options?: ClientOptions);
  readonly options: ClientOptions;
  readonly url: string;
  readonly status: ConnectionStatus;
  readonly session: string | null;
  readonly user: string | null;
  readonly node: string | null;
  readonly welcome: Welcome | null;
  readonly location: string;
  readonly rooms: Map<string, Room>;

  connect(): Promise<Welcome>;
  whenOpen(): Promise<Welcome>;
  /** Ends the session at once (every room sees this session leave) and stops. */
  close(reason?: string): void;
  /** Drops the connection as a network failure would: the client reconnects and resumes. */
  drop(): void;
  /** The room handle (created on first use); subscribes and enters unless told not to. */
  room(id: string, options?: { data?: any; enter?: boolean; subscribe?: boolean }): Room;
  setLocation(location: string): Promise<unknown>;
  call(msg: Record<string, unknown>): Promise<any>;
  query(what: 'members' | 'users' | 'counts' | 'typing' | 'user' | 'rooms' | 'last_seen' | 'users_batch',
    params?: { room?: string; users?: string[] }): Promise<any>;
  activity(): void;

  on(type: 'status', fn: (status: ConnectionStatus) => void): () => void;
  on(type: 'welcome', fn: (welcome: Welcome) => void): () => void;
  on(type: 'error', fn: (err: PresenceError) => void): () => void;
  on(type: 'close', fn: (info: { code: number; reason: string }) => void): () => void;
}

export class Room extends Emitter {
  readonly client: PresenceClient;
  readonly id: string;
  readonly version: number;
  /** The member list is a live copy (false before the snapshot and while disconnected). */
  readonly synced: boolean;
  /** This session is (or is about to be) in the room; false once the server takes it out (kicked). */
  readonly entered: boolean;
  readonly members: Member[];
  readonly users: RoomUser[];
  readonly counts: Counts;
  /** Users online in the room. */
  readonly onlineCount: number;
  /** Users here (viewing the room). */
  readonly hereCount: number;
  readonly typingUsers: string[];
  readonly me: Member | null;

  enter(data?: any): Promise<void>;
  update(data: any): Promise<void>;
  leave(): Promise<void>;
  subscribe(): void;
  unsubscribe(): void;
  /** Leaves, unsubscribes and forgets the room; a leave made while disconnected is sent on reconnect. */
  close(): Promise<void>;
  /** Call on every keystroke (throttled); false stops. */
  typing(on?: boolean): void;
  stopTyping(): void;
  snapshot(): RoomSnapshot;

  on(type: 'sync' | 'change', fn: (room: Room) => void): () => void;
  on(type: 'enter' | 'leave' | 'update' | 'typing' | 'online' | 'state' | 'offline', fn: (ev: RoomEvent) => void): () => void;
}

export function connect(options?: ClientOptions): PresenceClient;
export function strongerState(a: PresenceState, b: PresenceState): PresenceState;
export function typingText(users: string[]): string;
