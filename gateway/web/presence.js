// presence.js — the browser client of presenced (WebSocket protocol v1).
//
// An ES module with no dependencies and no build step: every node serves it
// at /presence.js (types: /presence.d.ts).
//
//   import { connect } from '/presence.js';
//   const client = connect({ token });           // or { user: 'alice' } in open dev mode
//   const room = client.room('lobby', { data: { name: 'Alice' } });
//   room.on('change', () => render(room.users, room.counts, room.typingUsers));
//   input.addEventListener('input', () => room.typing());
//
// Each PresenceClient is one session: one per tab. The user stays online
// while any of their tabs is. The client reconnects with jittered backoff and
// resumes its session inside the server's grace window (subscribers see no
// leave and no enter), pings every heartbeat_ms, reports input (pointer,
// keyboard, scroll, touch) as activity, a hidden tab as away, and closes its
// session on pagehide so others see the tab leave at once.

/**
 * @typedef {'active'|'idle'|'away'|'stale'|'offline'} PresenceState
 * @typedef {'connecting'|'open'|'reconnecting'|'closed'} ConnectionStatus
 *
 * @typedef {Object} Member  one session in a room
 * @property {string} session
 * @property {string} [user]
 * @property {{kind?: string, platform?: string, meta?: any}} device
 * @property {PresenceState} state
 * @property {boolean} here       the session's location is this room
 * @property {string} [location]
 * @property {any} [data]         the per-room data it entered with
 * @property {number} entered_at  unix ms
 * @property {number} last_active unix ms
 *
 * @typedef {Object} RoomUser  one user in a room, derived from their sessions
 * @property {string} user
 * @property {PresenceState} state  the strongest of its sessions: active > idle > away > stale
 * @property {number} sessions      tabs and devices in the room
 * @property {boolean} here         any of them is here
 * @property {number} lastActive    unix ms
 * @property {Member[]} members
 *
 * @typedef {{connections: number, users: number, anonymous: number}} CountSet
 * @typedef {{online: CountSet, here: CountSet}} Counts
 *
 * @typedef {Object} ClientOptions
 * @property {string} [url]     WebSocket URL; default: /v1/ws of the node that served this module
 * @property {string|(() => string|Promise<string>)} [token]  a JWT, or a function returning one (called before each connection, so it can refresh)
 * @property {string} [user]    open dev mode only: who this client is
 * @property {{kind?: string, platform?: string, meta?: any}} [device]
 * @property {string} [location]  what this session is viewing; a room counts it "here" while this equals the room id
 * @property {any} [meta]        session metadata (JSON, ≤ 2 KiB)
 * @property {boolean} [detectActivity=true]   report input as activity and a hidden tab as away
 * @property {boolean} [leaveOnPagehide=true]  close the session on pagehide (others see the tab leave at once)
 * @property {boolean} [autoConnect=true]
 * @property {number} [minReconnectDelay=500]  ms; the backoff doubles from here, with jitter
 * @property {number} [maxReconnectDelay=15000] ms
 * @property {number} [connectTimeout=10000]  ms to get a welcome before trying again
 * @property {number} [typingIdle=2500]  ms without a typing() call before typing stops
 * @property {typeof WebSocket} [WebSocket]
 */

// Set to false only by deliberately broken test builds of the server
// (go test -tags presence_broken), to show the browser tests catch it.
const LEAVE_ON_PAGEHIDE = true;

const RANK = { active: 4, idle: 3, away: 2, stale: 1, offline: 0 };
const EVENT_TYPES = new Set(['enter', 'leave', 'update', 'typing', 'online', 'state', 'offline']);
const ACTIVITY_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'focus'];

/** The stronger of two states (active > idle > away > stale > offline). */
export function strongerState(a, b) {
  return (RANK[a] ?? 0) >= (RANK[b] ?? 0) ? a : b;
}

/** A minimal event emitter. */
export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
  }

  /**
   * Adds a handler; returns a function that removes it.
   * @param {string} type
   * @param {Function} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** @param {string} type @param {Function} fn */
  off(type, fn) {
    this._handlers.get(type)?.delete(fn);
  }

  /** @param {string} type @param {...any} args */
  emit(type, ...args) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        console.error('presence: a', type, 'handler threw', err);
      }
    }
  }
}

/** An error reply or a close the client will not retry. */
export class PresenceError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message || code);
    this.name = 'PresenceError';
    this.code = code;
  }
}

function defaultURL() {
  try {
    const u = new URL('/v1/ws', import.meta.url);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  } catch {
    const l = globalThis.location;
    return (l.protocol === 'https:' ? 'wss://' : 'ws://') + l.host + '/v1/ws';
  }
}

function browserPlatform() {
  const ua = globalThis.navigator?.userAgent || '';
  const b = /Edg\//.test(ua) ? 'edge' : /Chrom(e|ium)\//.test(ua) ? 'chrome' : /Firefox\//.test(ua) ? 'firefox' : /Safari\//.test(ua) ? 'safari' : 'browser';
  const os = /Android/.test(ua) ? 'android' : /iPhone|iPad/.test(ua) ? 'ios' : /Mac OS X/.test(ua) ? 'macos' : /Windows/.test(ua) ? 'windows' : /Linux/.test(ua) ? 'linux' : 'other';
  return b + '-' + os;
}

function same(a, b) {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * A presence session over one WebSocket, reconnecting and resuming as needed.
 *
 * Events: 'status' (ConnectionStatus), 'welcome' (the welcome message;
 * `resumed` says whether the session survived a reconnect), 'error'
 * (PresenceError: unsolicited errors, and closes that stop the client),
 * 'close' ({code, reason}: every dropped connection).
 */
export class PresenceClient extends Emitter {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    super();
    this.options = {
      detectActivity: true, leaveOnPagehide: true, autoConnect: true,
      minReconnectDelay: 500, maxReconnectDelay: 15000, connectTimeout: 10000, typingIdle: 2500,
      ...options,
    };
    this.url = options.url || defaultURL();
    /** @type {ConnectionStatus} */
    this.status = 'closed';
    /** @type {string|null} */ this.session = null;
    /** @type {string|null} */ this.user = null;
    /** @type {string|null} */ this.node = null;
    /** the last welcome message (heartbeat_ms, grace_ms, idle_after_ms, …) */
    this.welcome = null;
    this.location = options.location ?? '';
    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    /** @type {Set<Room>} closed rooms whose leave the server has not acknowledged yet */
    this._closing = new Set();

    this._ws = null;
    this._resumeToken = null;
    this._nextID = 1;
    this._pending = new Map(); // id → {resolve, reject, onReply}
    this._attempt = 0;
    this._timers = {};
    this._lastFrameAt = 0;
    this._activitySentAt = 0;
    this._activityTimer = null;
    this._hidden = false;
    this._stopped = true;
    this._gen = 0; // counts _open calls: a newer one (or close) makes an older one stale
    this._openWaiters = [];
    this._installPageHooks();
    if (this.options.autoConnect) this.connect().catch(() => {}); // failures are emitted as 'error'
  }

  /**
   * Starts connecting (if not already). Resolves with the welcome message of
   * the next successful connection.
   * @returns {Promise<any>}
   */
  connect() {
    const ready = this.status === 'open' ? Promise.resolve(this.welcome) : this.whenOpen();
    if (this._stopped) {
      this._stopped = false;
      this._open();
    }
    return ready;
  }

  /** Resolves when the client is (or next becomes) connected. */
  whenOpen() {
    if (this.status === 'open') return Promise.resolve(this.welcome);
    return new Promise((resolve, reject) => this._openWaiters.push({ resolve, reject }));
  }

  /**
   * Ends the session at once (every room sees this session leave) and stops.
   * @param {string} [reason] a leave reason (default "closed")
   */
  close(reason) {
    this._stopped = true;
    this._gen++; // an _open waiting for its token gives up
    const ws = this._ws;
    if (ws && ws.readyState === 1 && this.status === 'open') {
      try {
        ws.send(JSON.stringify(reason ? { type: 'close', reason } : { type: 'close' }));
      } catch { /* closing anyway */ }
    }
    this._teardown(1000, 'closed by client');
    this._resumeToken = null;
    // The session is over, and with it every room it was in.
    for (const room of this._closing) room._ack(room._want);
    this._setStatus('closed');
    const err = new PresenceError('closed', 'client closed');
    for (const w of this._openWaiters.splice(0)) w.reject(err);
  }

  /**
   * Drops the connection without ending the session, as a network failure
   * would: the client reconnects and resumes. (Useful in demos and tests.)
   */
  drop() {
    if (this._ws) this._connectionLost(4000, 'dropped by client');
  }

  /**
   * The room handle for id, created on first use. By default it subscribes
   * to the room's events and enters it with options.data.
   * @param {string} id
   * @param {{data?: any, enter?: boolean, subscribe?: boolean}} [options]
   * @returns {Room}
   */
  room(id, options = {}) {
    let r = this.rooms.get(id);
    if (!r) {
      r = new Room(this, id);
      this.rooms.set(id, r);
    }
    if (options.subscribe !== false) r.subscribe();
    if (options.enter !== false) r.enter(options.data).catch(() => {}); // refusals are emitted as 'error'
    return r;
  }

  /**
   * Sets what this session is viewing ("" for nothing). A room counts the
   * session "here" while its location equals the room id.
   * @param {string} location
   */
  setLocation(location) {
    this.location = location || '';
    if (this.status === 'open') return this.call({ type: 'location', location: this.location });
    return Promise.resolve(); // sent on (re)connect
  }

  /**
   * Sends one message and resolves with its reply (ok, result or snapshot),
   * or rejects with a PresenceError. Requires an open connection.
   * @param {Object} msg
   * @returns {Promise<any>}
   */
  call(msg) {
    return this._request(msg).reply;
  }

  /** call, also giving the message's id. @returns {{id: number, reply: Promise<any>}} */
  _request(msg) {
    if (this.status !== 'open') return { id: 0, reply: Promise.reject(new PresenceError('not_connected', 'not connected')) };
    const id = this._nextID++;
    const reply = new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._send({ ...msg, id });
    });
    return { id, reply };
  }

  /**
   * Asks a query (members, users, counts, typing need room; user, rooms,
   * last_seen and users_batch need users). Resolves with the result's data.
   */
  async query(what, { room, users } = {}) {
    const r = await this.call({ type: 'query', what, room, users });
    return r.data;
  }

  /** Reports user activity now (input seen). Usually automatic. */
  activity() {
    this._activitySentAt = Date.now();
    clearTimeout(this._activityTimer);
    this._activityTimer = null;
    if (this.status === 'open' && !this._hidden) this._send({ type: 'activity', state: 'active' });
  }

  // ---- connection ----

  async _open() {
    if (this._stopped) return;
    const gen = ++this._gen;
    this._setStatus(this._attempt === 0 && !this._resumeToken ? 'connecting' : 'reconnecting');
    let token = this.options.token;
    try {
      if (typeof token === 'function') token = await token();
    } catch (err) {
      if (gen !== this._gen) return;
      this.emit('error', new PresenceError('token', 'getting a token failed: ' + (err?.message || err)));
      this._scheduleReconnect();
      return;
    }
    // Closed, or closed and connected again, while the token was coming:
    // the newer _open (if any) connects.
    if (this._stopped || gen !== this._gen) return;
    const WS = this.options.WebSocket || globalThis.WebSocket;
    let ws;
    try {
      ws = new WS(this.url);
    } catch (err) {
      this.emit('error', new PresenceError('connect', String(err?.message || err)));
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    const helloID = this._nextID++;
    this._helloID = helloID;
    this._timer('connect', this.options.connectTimeout, () => {
      if (this._ws === ws) this._connectionLost(4000, 'connect timeout');
    });
    ws.onopen = () => {
      if (this._ws !== ws) return;
      const hello = {
        type: 'hello', id: helloID,
        device: this.options.device || { kind: 'web', platform: browserPlatform() },
      };
      if (token) hello.token = token;
      if (this.options.user) hello.user = this.options.user;
      if (this.location) hello.location = this.location;
      this._helloLocation = this.location;
      if (this.options.meta !== undefined) hello.meta = this.options.meta;
      if (this._resumeToken) hello.resume = this._resumeToken;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (e) => {
      if (this._ws !== ws) return;
      this._lastFrameAt = Date.now();
      for (const line of String(e.data).split('\n')) {
        if (!line) continue;
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        this._route(msg);
      }
    };
    ws.onclose = (e) => {
      if (this._ws === ws) this._connectionLost(e.code, e.reason);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _route(msg) {
    if (msg.type === 'welcome' && msg.id === this._helloID) {
      this._onWelcome(msg);
      return;
    }
    if (EVENT_TYPES.has(msg.type) && msg.room !== undefined && msg.version !== undefined) {
      this.rooms.get(msg.room)?._onEvent(msg);
      return;
    }
    if (msg.type === 'pong') return;
    // A snapshot is applied now, not when its promise settles: events that
    // follow it in the same frame must find the room synced.
    if (msg.type === 'snapshot') this.rooms.get(msg.room)?._onSnapshot(msg);
    const p = msg.id !== undefined ? this._pending.get(msg.id) : undefined;
    if (p) {
      this._pending.delete(msg.id);
      if (msg.type === 'error') p.reject(new PresenceError(msg.code, msg.message));
      else p.resolve(msg);
      return;
    }
    if (msg.type === 'error') {
      this.emit('error', new PresenceError(msg.code, msg.message));
    }
  }

  _onWelcome(msg) {
    this._clearTimer('connect');
    const resumed = !!msg.resumed;
    this.welcome = msg;
    this.session = msg.session;
    this.user = msg.user || null;
    this.node = msg.node;
    this._resumeToken = msg.resume_token;
    this._attempt = 0;
    this._lastFrameAt = Date.now();
    this._setStatus('open');
    const hb = Math.max(1000, msg.heartbeat_ms || 25000);
    let pingAt = 0;
    this._interval('heartbeat', hb, () => {
      if (pingAt && this._lastFrameAt < pingAt) {
        // The last ping got no answer in a whole interval: the connection is
        // dead even if the socket has not noticed (a network that drops
        // packets silently). Judged per ping, so a background tab whose
        // timers the browser slows down is not mistaken for a dead one.
        this._connectionLost(4000, 'heartbeat timeout');
        return;
      }
      pingAt = Date.now();
      this._send({ type: 'ping' });
    });
    // Resume brings the session back as active and here where it was: say
    // where we are now and whether the tab is hidden.
    if (resumed || this.location !== this._helloLocation) {
      this._send({ type: 'location', location: this.location });
    }
    this._hidden = this.options.detectActivity && typeof document !== 'undefined' && document.visibilityState === 'hidden';
    if (this._hidden) this._send({ type: 'activity', state: 'hidden' });
    this._activitySentAt = Date.now();
    // Closed rooms first: a leave made while offline goes before an enter
    // of a new handle for the same room.
    for (const room of this._allRooms()) room._onWelcome(resumed);
    this.emit('welcome', msg);
    for (const w of this._openWaiters.splice(0)) w.resolve(msg);
  }

  _connectionLost(code, reason) {
    const ws = this._ws;
    this._ws = null;
    this._clearTimer('connect');
    this._clearTimer('heartbeat');
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code >= 4000 && code < 5000 ? code : 1000, 'reconnecting');
      } catch { /* already closed */ }
    }
    const err = new PresenceError('disconnected', 'connection lost');
    for (const p of this._pending.values()) p.reject(err);
    this._pending.clear();
    for (const room of this._allRooms()) room._onDisconnect();
    this.emit('close', { code, reason });
    if (this._stopped) return;

    let delay;
    if (code === 4100 || code === 4102 || code === 4101) {
      // Not worth retrying as is. Only an expired token has a remedy here: a
      // token function gets a fresh one. After 4100 (missing or invalid
      // token) PROTOCOL.md says not to reconnect until something changes.
      const e = new PresenceError(code === 4101 ? 'token_expired' : code === 4100 ? 'unauthorized' : 'protocol_error', reason || 'closed ' + code);
      this.emit('error', e);
      if (code !== 4101 || typeof this.options.token !== 'function') {
        this._stopped = true;
        this._setStatus('closed');
        for (const w of this._openWaiters.splice(0)) w.reject(e);
        return;
      }
    }
    if (code === 4103) {
      // The session was ended by the server, or resumed elsewhere: open a
      // new one (rooms are entered again on welcome). Any other close
      // (even a 1000, which a proxy may send) leaves the session to resume.
      this._resumeToken = null;
    }
    if (code === 1012) {
      // The node is draining: come back after retry_ms, spread out so its
      // clients do not all arrive at the next node at once.
      const m = /retry_ms=(\d+)/.exec(reason || '');
      if (m) delay = Number(m[1]) + Math.random() * Math.max(Number(m[1]) / 2, this.options.minReconnectDelay);
    }
    if (code === 4002) this._attempt = Math.max(this._attempt, 4); // flood: back off harder
    this._scheduleReconnect(delay);
  }

  _scheduleReconnect(delay) {
    if (this._stopped) return;
    this._setStatus('reconnecting');
    if (delay === undefined) {
      const { minReconnectDelay: lo, maxReconnectDelay: hi } = this.options;
      const cap = Math.min(hi, lo * 2 ** this._attempt);
      delay = this._attempt === 0 ? Math.random() * lo : cap / 2 + Math.random() * cap / 2; // jittered
    }
    this._attempt++;
    this._timer('reconnect', delay, () => this._open());
  }

  /** Reconnects now if waiting to (the browser says it is back online). */
  _reconnectNow() {
    if (this._stopped || this._ws || !this._timers.reconnect) return;
    this._clearTimer('reconnect');
    this._attempt = 0;
    this._open();
  }

  _teardown(code, reason) {
    for (const name of Object.keys(this._timers)) this._clearTimer(name);
    clearTimeout(this._activityTimer);
    this._activityTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch { /* already closed */ }
    }
    const err = new PresenceError('closed', 'client closed');
    for (const p of this._pending.values()) p.reject(err);
    this._pending.clear();
    for (const room of this._allRooms()) room._onDisconnect();
  }

  /** The closed rooms still leaving, then the open ones. */
  _allRooms() {
    return [...this._closing, ...this.rooms.values()];
  }

  _send(msg) {
    const ws = this._ws;
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg));
  }

  _setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
    for (const room of this.rooms.values()) room._changed();
  }

  _timer(name, ms, fn) {
    this._clearTimer(name);
    this._timers[name] = { t: setTimeout(() => { delete this._timers[name]; fn(); }, ms), interval: false };
  }

  _interval(name, ms, fn) {
    this._clearTimer(name);
    this._timers[name] = { t: setInterval(fn, ms), interval: true };
  }

  _clearTimer(name) {
    const t = this._timers[name];
    if (!t) return;
    if (t.interval) clearInterval(t.t);
    else clearTimeout(t.t);
    delete this._timers[name];
  }

  // ---- page hooks: activity, visibility, pagehide, online ----

  _installPageHooks() {
    if (typeof window === 'undefined' || typeof document === 'undefined') return;
    const opts = this.options;
    if (opts.detectActivity) {
      const onInput = () => this._onInput();
      for (const t of ACTIVITY_EVENTS) window.addEventListener(t, onInput, { passive: true, capture: true });
      document.addEventListener('scroll', onInput, { passive: true, capture: true });
      document.addEventListener('visibilitychange', () => this._onVisibility());
    }
    window.addEventListener('pagehide', (e) => {
      if (!opts.leaveOnPagehide || !LEAVE_ON_PAGEHIDE || this._stopped) return;
      // The tab is going away (closed, navigated, or put in the back/forward
      // cache): end the session now rather than after grace.
      this.close();
      this._bfcached = e.persisted;
    });
    window.addEventListener('pageshow', (e) => {
      if (e.persisted && this._bfcached) {
        this._bfcached = false;
        this.connect().catch(() => {}); // a new session: the old one ended on pagehide
      }
    });
    window.addEventListener('online', () => this._reconnectNow());
  }

  _onInput() {
    if (this._hidden) return;
    // Report input at most every idle_after/4 (the server's idle timer needs
    // no more), but at once after a quiet spell, so idle → active is prompt.
    const idle = this.welcome?.idle_after_ms || 60000;
    const every = Math.min(15000, Math.max(1000, idle / 4));
    const since = Date.now() - this._activitySentAt;
    if (since >= every) {
      this.activity();
    } else if (!this._activityTimer) {
      this._activityTimer = setTimeout(() => this.activity(), every - since);
    }
  }

  _onVisibility() {
    const hidden = document.visibilityState === 'hidden';
    if (hidden === this._hidden) return;
    this._hidden = hidden;
    if (this.status !== 'open') return; // sent after welcome
    this._send({ type: 'activity', state: hidden ? 'hidden' : 'visible' });
    if (!hidden) this._activitySentAt = Date.now();
  }
}

/**
 * One room as this client sees it: a live copy of its members (from a
 * snapshot plus versioned events; a version gap triggers a resync) and this
 * session's membership.
 *
 * Events: 'sync' (a fresh snapshot was applied), 'enter', 'leave', 'update',
 * 'typing', 'online', 'state', 'offline' (the server's event message, after
 * it is applied), and 'change' (anything that changes what a view shows,
 * including the connection status).
 */
export class Room extends Emitter {
  /** @param {PresenceClient} client @param {string} id */
  constructor(client, id) {
    super();
    this.client = client;
    this.id = id;
    /** The version of the last applied event; 0 before the first snapshot. */
    this.version = 0;
    /** True while the member list is a live copy of the room's. */
    this.synced = false;
    /** @type {Map<string, Member>} by session */
    this._members = new Map();
    /** @type {Map<string, string>} typing session → user (or session if anonymous) */
    this._typing = new Map();
    this._subscribed = false;
    this._resyncing = false;
    this._subscribeID = 0; // the id of the subscribe whose snapshot is awaited
    // Membership: what the app wants (desired) and what the server has
    // acknowledged; ops are numbered so replies settle the right promises.
    this._want = { entered: false, data: undefined, seq: 0 };
    this._acked = { entered: false, data: undefined, seq: 0 };
    this._inflight = 0;
    this._waiters = [];
    this._typingSentAt = 0;
    this._typingStop = null;
    this._snap = null;
  }

  // ---- membership ----

  /** Enters the room (again: replaces the data). @param {any} [data] */
  enter(data) {
    if (this._want.entered && data === undefined) return this._settled();
    return this._wantState(true, data !== undefined ? data : this._want.data);
  }

  /** Replaces this session's data in the room in place. @param {any} data */
  update(data) {
    return this._wantState(true, data);
  }

  /** Leaves the room (others see leave, reason "explicit"). */
  leave() {
    this.stopTyping();
    return this._wantState(false, undefined);
  }

  /** True if this session is (or is about to be) in the room. */
  get entered() {
    return this._want.entered;
  }

  _wantState(entered, data) {
    const seq = this._want.seq + 1;
    this._want = { entered, data, seq };
    const p = new Promise((resolve, reject) => this._waiters.push({ seq, resolve, reject }));
    this._flush();
    return p;
  }

  _settled() {
    if (this._acked.seq >= this._want.seq) return Promise.resolve();
    const seq = this._want.seq;
    return new Promise((resolve, reject) => this._waiters.push({ seq, resolve, reject }));
  }

  /** Sends the wanted membership if it differs from the acknowledged one. */
  _flush() {
    const c = this.client;
    if (c.status !== 'open' || this._inflight) return;
    const want = this._want;
    if (want.seq <= this._acked.seq) return;
    if (want.entered === this._acked.entered && (!want.entered || same(want.data, this._acked.data))) {
      this._ack(want);
      return;
    }
    let msg;
    if (!want.entered) msg = { type: 'leave', room: this.id };
    else if (this._acked.entered) msg = { type: 'update', room: this.id, data: want.data ?? null };
    else msg = { type: 'enter', room: this.id, data: want.data };
    this._inflight = want.seq;
    c.call(msg).then(
      () => {
        this._inflight = 0;
        this._ack(want);
        this._flush();
      },
      (err) => {
        this._inflight = 0;
        if (err.code === 'disconnected' || err.code === 'closed') return; // retried on welcome
        if (err.code === 'not_member') {
          // Leaving a room we are not in is done; updating it means enter.
          this._acked = { entered: false, data: undefined, seq: this._acked.seq };
          if (!want.entered) this._ack(want);
          this._flush();
          return;
        }
        // Refused (room full, forbidden, too large …): back to what the server has.
        if (this._want.seq === want.seq) this._want = { ...this._acked, seq: want.seq };
        this._acked.seq = want.seq;
        for (const w of this._takeWaiters(want.seq)) w.reject(err);
        this.client.emit('error', err);
        this._flush();
      },
    );
  }

  _ack(state) {
    this._acked = { entered: state.entered, data: state.data, seq: state.seq };
    for (const w of this._takeWaiters(state.seq)) w.resolve();
  }

  _takeWaiters(seq) {
    const done = this._waiters.filter((w) => w.seq <= seq);
    this._waiters = this._waiters.filter((w) => w.seq > seq);
    return done;
  }

  // ---- subscription ----

  /** Receives the room's members and events (automatic with client.room). */
  subscribe() {
    if (this._subscribed) return;
    this._subscribed = true;
    this._resync();
  }

  /** Stops receiving events; the member list is kept as last seen. */
  unsubscribe() {
    if (!this._subscribed) return;
    this._subscribed = false;
    this._resyncing = false; // a snapshot still coming is not applied; subscribe asks again
    this.synced = false;
    if (this.client.status === 'open') this.client.call({ type: 'unsubscribe', room: this.id }).catch(() => {});
    this._changed();
  }

  /**
   * Leaves, unsubscribes and forgets the room (client.room(id) makes a new
   * handle). A leave the server has not acknowledged, e.g. made while
   * disconnected, is still sent on the next welcome.
   */
  close() {
    const c = this.client;
    const p = this.leave();
    this.unsubscribe();
    if (c.rooms.get(this.id) === this) c.rooms.delete(this.id);
    c._closing.add(this);
    const done = () => { c._closing.delete(this); };
    return p.then(done, done);
  }

  _resync() {
    if (!this._subscribed || this.client.status !== 'open' || this._resyncing) return;
    this._resyncing = true;
    const { id, reply } = this.client._request({ type: 'subscribe', room: this.id });
    this._subscribeID = id;
    reply.then(
      () => {}, // applied by _onSnapshot as it arrived
      (err) => {
        if (this._subscribeID !== id) return; // an older subscribe
        this._resyncing = false;
        if (err.code !== 'disconnected' && err.code !== 'closed') this.client.emit('error', err);
      },
    );
  }

  _onSnapshot(s) {
    // Only the answer to the latest subscribe: an earlier one may predate an
    // unsubscribe, and the events after it are not coming.
    if (!this._resyncing || s.id !== this._subscribeID) return;
    this._resyncing = false;
    if (this._subscribed) this._applySnapshot(s);
  }

  _applySnapshot(s) {
    this.version = s.version;
    this._members = new Map((s.members || []).map((m) => [m.session, m]));
    this._typing = new Map();
    const bySession = new Map((s.members || []).map((m) => [m.session, m.user || m.session]));
    for (const sid of s.typing_sessions || []) this._typing.set(sid, bySession.get(sid) || sid);
    this.synced = true;
    this._changed();
    this.emit('sync', this);
  }

  _onEvent(ev) {
    if (!this._subscribed || !this.synced || this._resyncing) return; // the coming snapshot covers it
    if (ev.version <= this.version) return; // a duplicate
    if (ev.version !== this.version + 1) {
      // Missed an event: rebuild from a fresh snapshot.
      this.synced = false;
      this._resync();
      return;
    }
    this.version = ev.version;
    switch (ev.type) {
      case 'enter':
      case 'update':
        if (ev.member) this._members.set(ev.session, ev.member);
        break;
      case 'leave':
        this._members.delete(ev.session);
        this._typing.delete(ev.session);
        // This session left with none of our own ops in flight: the server
        // took it out (kicked). Not entered any more, so typing() stops.
        if (ev.session === this.client.session && !this._inflight) this._removed();
        break;
      case 'typing':
        if (ev.typing) this._typing.set(ev.session, ev.user || ev.session);
        else this._typing.delete(ev.session);
        break;
    }
    this._changed();
    this.emit(ev.type, ev);
  }

  _onWelcome(resumed) {
    if (!resumed) {
      // A new session: the server holds none of our rooms; enter again.
      this._acked = { entered: false, data: undefined, seq: this._acked.seq };
      if (this._want.entered && this._want.seq <= this._acked.seq) this._want = { ...this._want, seq: this._acked.seq + 1 };
    }
    // Resumed: the server kept the rooms; an op that was in flight when the
    // connection dropped is sent again (enter and update are idempotent).
    this._flush();
    this._resync();
  }

  _removed() {
    this._forgetTyping();
    this._acked = { entered: false, data: undefined, seq: this._acked.seq };
    this._want = { entered: false, data: undefined, seq: this._want.seq };
    this._flush(); // settles any waiter
  }

  _onDisconnect() {
    this._inflight = 0;
    this._resyncing = false;
    this.synced = false; // events missed while disconnected: resubscribed on welcome
    this._forgetTyping();
    this._changed();
  }

  /** Stops typing here, without telling the server (it no longer counts us as typing). */
  _forgetTyping() {
    clearTimeout(this._typingStop);
    this._typingStop = null;
    this._typingSentAt = 0;
  }

  // ---- typing ----

  /**
   * Says this session is typing (call it on every input event: it is
   * throttled), or stopped (false). Typing stops by itself after
   * options.typingIdle ms without a call.
   * @param {boolean} [on=true]
   */
  typing(on = true) {
    if (!on) return this.stopTyping();
    const c = this.client;
    if (c.status !== 'open' || !this._want.entered) return;
    const timeout = c.welcome?.typing_timeout_ms || 3000;
    const every = Math.max(500, timeout - 1000); // refresh before the server expires it
    const now = Date.now();
    if (now - this._typingSentAt >= every) {
      this._typingSentAt = now;
      c._send({ type: 'typing', room: this.id, typing: true });
    }
    clearTimeout(this._typingStop);
    this._typingStop = setTimeout(() => this.stopTyping(), c.options.typingIdle);
  }

  /** Stops typing now (e.g. when the message is sent). */
  stopTyping() {
    clearTimeout(this._typingStop);
    this._typingStop = null;
    if (!this._typingSentAt) return;
    this._typingSentAt = 0;
    if (this.client.status === 'open') this.client._send({ type: 'typing', room: this.id, typing: false });
  }

  // ---- views ----

  /** Members, one per session, oldest first. @returns {Member[]} */
  get members() {
    return this.snapshot().members;
  }

  /** Identified users, each derived from their sessions, by name. @returns {RoomUser[]} */
  get users() {
    return this.snapshot().users;
  }

  /** Online (members) and here (members viewing the room) counts. @returns {Counts} */
  get counts() {
    return this.snapshot().counts;
  }

  /** Users online in the room. */
  get onlineCount() {
    return this.snapshot().counts.online.users;
  }

  /** Users here (viewing the room). */
  get hereCount() {
    return this.snapshot().counts.here.users;
  }

  /** Other users typing (this user's own tabs are left out). @returns {string[]} */
  get typingUsers() {
    return this.snapshot().typingUsers;
  }

  /** This session's member, if it is in the room. @returns {Member|null} */
  get me() {
    return this.snapshot().me;
  }

  /**
   * An immutable view of the room; the same object until something changes
   * (suits React's useSyncExternalStore).
   */
  snapshot() {
    if (this._snap) return this._snap;
    const members = [...this._members.values()].sort((a, b) => a.entered_at - b.entered_at || (a.session < b.session ? -1 : 1));
    const byUser = new Map();
    const online = { connections: 0, users: 0, anonymous: 0 };
    const here = { connections: 0, users: 0, anonymous: 0 };
    for (const m of members) {
      online.connections++;
      if (m.here) here.connections++;
      if (!m.user) {
        online.anonymous++;
        if (m.here) here.anonymous++;
        continue;
      }
      let u = byUser.get(m.user);
      if (!u) {
        u = { user: m.user, state: 'offline', sessions: 0, here: false, lastActive: 0, members: [] };
        byUser.set(m.user, u);
      }
      u.sessions++;
      u.state = strongerState(u.state, m.state);
      u.here = u.here || m.here;
      u.lastActive = Math.max(u.lastActive, m.last_active || 0);
      u.members.push(m);
    }
    const users = [...byUser.values()].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
    online.users = users.length;
    here.users = users.filter((u) => u.here).length;
    const c = this.client;
    const typingUsers = [...new Set([...this._typing.entries()]
      .filter(([sid, who]) => sid !== c.session && !(c.user && who === c.user))
      .map(([, who]) => who))].sort();
    const me = (c.session && this._members.get(c.session)) || null;
    this._snap = Object.freeze({
      room: this.id, version: this.version, synced: this.synced, status: c.status,
      members, users, counts: { online, here }, typingUsers, me,
    });
    return this._snap;
  }

  _changed() {
    this._snap = null;
    this.emit('change', this);
  }
}

/**
 * Creates a client and starts connecting.
 * @param {ClientOptions} [options]
 * @returns {PresenceClient}
 */
export function connect(options) {
  return new PresenceClient(options);
}

/**
 * "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…".
 * @param {string[]} users
 * @returns {string}
 */
export function typingText(users) {
  const n = users.length;
  if (n === 0) return '';
  if (n === 1) return `${users[0]} is typing…`;
  if (n === 2) return `${users[0]} and ${users[1]} are typing…`;
  if (n === 3) return `${users[0]}, ${users[1]} and ${users[2]} are typing…`;
  return `${users[0]}, ${users[1]} and ${n - 2} others are typing…`;
}
