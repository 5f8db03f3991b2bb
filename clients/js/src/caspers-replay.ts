// The caspers-replay client, for browsers and Node 20+: one ES module with no imports once
// built.
//
// A feed subscribes over SSE or WebSocket, parses each event's body into its typed object,
// and survives every drop (server restart, switch to another replica, network blip): it
// reconnects with backoff from the last position it delivered, so the app sees every event
// once, in order. The protocol is docs/asyncapi.yaml; docs/live-feed.md says it in prose.
// Nothing here touches a browser global at import, so server-side rendering may import it.

import { createParser } from 'eventsource-parser';
import { EVENT_TYPES } from './events.generated.js';
import type { BodyByType, EventType, WireEvent } from './events.generated.js';

export type * from './events.generated.js';
export { EVENT_TYPES };

/** An event as the wire carries it, with `body` parsed into its type's object. */
export type ParsedEvent = {
  [K in EventType]: Omit<WireEvent, 'event_type' | 'body'> & {
    event_type: K;
    body: BodyByType[K];
  };
}[EventType];

/** A stream event: a parsed event and its position (resume from it with `from`). */
export type CaspersEvent = ParsedEvent & {
  /** `<dataset tag>-<loop>-<row>`: where this event sits in the stream (compare two with
   * {@link comparePositions}). */
  position: string;
};

/** The stream event of one type, e.g. `EventOf<'driver_ping'>`. */
export type EventOf<K extends EventType> = Extract<CaspersEvent, { event_type: K }>;

/** Why a clock message was sent: `connected` (the stream's first message), `restarted`
 * (this connection resumed from a position an earlier server process or another replica
 * sent), a presenter's `speed`, `pause`, `resume`, `seek`, `step` or `change` (several
 * at once), and `end` (the clock stopped at the dataset's end). */
export type ClockReason =
  | 'connected'
  | 'restarted'
  | 'speed'
  | 'pause'
  | 'resume'
  | 'seek'
  | 'step'
  | 'change'
  | 'end';

/** The server's clock (`GET /v1/clock`, and the stream's `clock` messages). */
export interface ClockState {
  /** Simulation time, Unix seconds. */
  sim_time: number;
  sim_time_utc: string;
  /** Day of the dataset (0-based; counts on through loops). */
  day: number;
  speed: number;
  paused: boolean;
  /** Time stopped at the dataset's end (not looping). */
  ended: boolean;
  loop: boolean;
  dataset_start: number;
  dataset_end: number;
  dataset_days: number;
}

export interface ClockMessage extends ClockState {
  type: 'clock';
  reason: ClockReason;
}

/** The orders in flight (`snapshot: true`) when a connection opens (a resumed one's comes
 * before the events it missed) and after every seek: for each, its order_created,
 * driver_picked_up and latest driver_ping. An app replaces what it shows with it, then
 * applies the events that follow. They carry no position. */
export interface Snapshot {
  sim_time: number;
  orders: number;
  events: ParsedEvent[];
}

/** Events the app did not get: the server skipped this client ahead (`server`: it read too
 * slowly; reconnect from `position` to fetch them), or a resume could not be honoured
 * (`resume`: the server streams live events from now). */
export interface LagNotice {
  reason: 'server' | 'resume';
  /** How many events were skipped, when the server knows. */
  missed: number | null;
  message: string;
  /** The last position delivered before the gap. */
  position: string | null;
}

/** What went wrong: `server` (an `error` message, e.g. a filter the server refused),
 * `connection` (the stream dropped or could not open: the feed reconnects by itself),
 * `closed` (the server closed the stream with a reason: the feed reconnects by itself). */
export interface FeedError {
  kind: 'server' | 'connection' | 'closed';
  message: string;
}

export interface Filter {
  /** Kitchens to receive (none or empty: all). */
  locationIds?: readonly number[];
  /** Event types to receive (none or empty: all). */
  eventTypes?: readonly EventType[];
  /** Send the orders in flight first (again at each reconnection), and after every seek
   * (see {@link Snapshot}). */
  snapshot?: boolean;
}

/** A WebSocket constructor, for a runtime without a global one (e.g. the `ws` package). */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface ConnectOptions extends Filter {
  /** `sse` (default) or `websocket`. */
  transport?: 'sse' | 'websocket';
  /** Resume after this position (one of an earlier feed's events). */
  from?: string;
  /** A replay session's id ({@link createSession}): its stream instead of the shared
   * clock's. */
  session?: string;
  /** Reconnection delays: the first, and the most (milliseconds). Default 250 and 10,000;
   * each failed attempt doubles the delay, with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** The WebSocket to use where the runtime has none (Node 20 without
   * `--experimental-websocket`). */
  WebSocket?: WebSocketConstructor;
}

/** The feed's connection: `connecting` (first or later attempt), `open`, `closed` (by
 * {@link Feed.close}). */
export type FeedStatus = 'connecting' | 'open' | 'closed';

export interface Feed extends AsyncIterable<CaspersEvent> {
  /** Each handler registration returns a function that removes it. */
  onEvent(cb: (event: CaspersEvent) => void): () => void;
  /** Events of one type, typed as that type: `feed.on('driver_ping', (e) => e.body.loc_lat)`. */
  on<K extends EventType>(type: K, cb: (event: EventOf<K>) => void): () => void;
  onClock(cb: (clock: ClockMessage) => void): () => void;
  onLag(cb: (lag: LagNotice) => void): () => void;
  onError(cb: (error: FeedError) => void): () => void;
  onSnapshot(cb: (snapshot: Snapshot) => void): () => void;
  onStatus(cb: (status: FeedStatus) => void): () => void;
  /** Changes what the feed receives, going on from the last event delivered: over
   * WebSocket in place, over SSE by reconnecting from that position. Nothing is lost or
   * repeated at the change. Resolves when the new filter is in force (the server
   * acknowledged it, or the new stream is open); rejects if the server refuses it or the
   * feed is closed first. */
  setFilter(filter: Filter): Promise<void>;
  close(): void;
  /** The last position delivered (to resume from), if any. */
  readonly position: string | null;
  readonly status: FeedStatus;
  /** The server's clock, running between clock messages. */
  readonly clock: SimClock;
  /** Events as an async iterator (ends when the feed is closed). */
  events(): AsyncIterableIterator<CaspersEvent>;
}

/** The simulated time between clock messages: anchored at each message, running at its
 * speed unless paused or ended, for smooth animation. */
export class SimClock {
  private state: ClockState | null = null;
  private anchorMs = 0;

  /** Sets the clock from a clock message or `GET /v1/clock` answer, received now. */
  update(state: ClockState, receivedAtMs: number = nowMs()): void {
    this.state = state;
    this.anchorMs = receivedAtMs;
  }

  /** The last state the server sent, if any. */
  get last(): ClockState | null {
    return this.state;
  }

  /** Simulation time (Unix seconds) at `atMs` (default now); NaN before the first message. */
  now(atMs: number = nowMs()): number {
    const s = this.state;
    if (!s) return NaN;
    if (s.paused || s.ended) return s.sim_time;
    const t = s.sim_time + ((atMs - this.anchorMs) / 1000) * s.speed;
    return s.loop ? t : Math.min(t, s.dataset_end);
  }
}

function nowMs(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

/** Parses a wire event's body. */
export function parseEvent(wire: WireEvent): ParsedEvent {
  return { ...wire, body: JSON.parse(wire.body) } as ParsedEvent;
}

/** A position's parts: [dataset tag, loop, row]. */
function positionKey(p: string): [string, number, number] | null {
  const m = /^([0-9a-f]{1,16})-(\d{1,9})-(\d{1,12})$/.exec(p);
  return m ? [m[1], Number(m[2]), Number(m[3])] : null;
}

function checkedPosition(p: unknown, what: string): [string, number, number] {
  const key = typeof p === 'string' ? positionKey(p) : null;
  if (!key) {
    throw new TypeError(
      `${what} is not a position: ${JSON.stringify(p)} (a position is TAG-LOOP-ROW, as an event's \`position\`, e.g. "1a2b3c4d-0-12345")`,
    );
  }
  return key;
}

/** Orders two positions of one dataset as the stream does: negative if `a` came first,
 * 0 if they are the same, positive if `a` came later. Throws a `TypeError` for a text
 * that is not a position, or for positions of two different datasets. */
export function comparePositions(a: string, b: string): number {
  const x = checkedPosition(a, 'the first argument');
  const y = checkedPosition(b, 'the second argument');
  if (x[0] !== y[0]) {
    throw new TypeError(`positions of two different datasets cannot be compared: ${a} and ${b}`);
  }
  return x[1] !== y[1] ? x[1] - y[1] : x[2] - y[2];
}

/** Whether `p` comes after `last` in the stream (an unknown order counts as after). */
function isAfter(p: string, last: string | null): boolean {
  if (last === null) return true;
  const a = positionKey(p);
  const b = positionKey(last);
  if (!a || !b || a[0] !== b[0]) return true;
  return a[1] > b[1] || (a[1] === b[1] && a[2] > b[2]);
}

function absolute(baseUrl: string, path: string): URL {
  const here = typeof location !== 'undefined' ? location.href : undefined;
  if (!here && !/^https?:\/\//.test(baseUrl)) {
    throw new TypeError(
      `the server's URL must be absolute outside a browser page (e.g. "http://127.0.0.1:8080"), not ${JSON.stringify(baseUrl)}`,
    );
  }
  return new URL(path, new URL(baseUrl || '/', here));
}

function query(filter: Filter, snapshot: boolean, from: string | null): string {
  const q = new URLSearchParams();
  if (filter.locationIds?.length) q.set('location_id', filter.locationIds.join(','));
  if (filter.eventTypes?.length) q.set('event_type', filter.eventTypes.join(','));
  if (snapshot) q.set('snapshot', '1');
  if (from) q.set('from', from);
  const s = q.toString();
  return s ? `?${s}` : '';
}

type Handlers = {
  event: Set<(e: CaspersEvent) => void>;
  clock: Set<(c: ClockMessage) => void>;
  lag: Set<(l: LagNotice) => void>;
  error: Set<(e: FeedError) => void>;
  snapshot: Set<(s: Snapshot) => void>;
  status: Set<(s: FeedStatus) => void>;
};

/** Subscribes to the live feed of the server at `baseUrl` (e.g. `http://127.0.0.1:8080`;
 * `''` for the page's own server). Throws a `TypeError` for options it cannot use (a
 * malformed `from`, an unknown transport, no WebSocket in this runtime). */
export function connect(baseUrl: string, options: ConnectOptions = {}): Feed {
  return new LiveFeed(baseUrl, options);
}

/** What a stream connection needs of the feed. */
interface Sink {
  /** A message of `kind` (`message` for events) with its data and SSE id. */
  message(kind: string, data: string, id: string): void;
  dropped(message: string): void;
}

/** SSE over `fetch` where there is no `EventSource` (Node): the same events, read from the
 * response body. */
function fetchEventSource(url: URL, sink: Sink): { close(): void } {
  const abort = new AbortController();
  const parser = createParser({
    onEvent: (m) => sink.message(m.event ?? 'message', m.data, m.id ?? ''),
  });
  (async () => {
    const res = await fetch(url, { headers: { Accept: 'text/event-stream' }, signal: abort.signal });
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      throw new Error(`${res.status} ${text.slice(0, 300)}`);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
    throw new Error('the server ended the stream');
  })().catch((e: unknown) => {
    if (!abort.signal.aborted) sink.dropped(`the event stream dropped: ${e instanceof Error ? e.message : String(e)}`);
  });
  return { close: () => abort.abort() };
}

/** SSE with the runtime's `EventSource`. */
function browserEventSource(url: URL, sink: Sink): { close(): void } {
  const source = new EventSource(url);
  let open = true;
  source.onmessage = (m) => sink.message('message', m.data, m.lastEventId);
  for (const kind of ['clock', 'snapshot', 'lagged', 'error', 'close']) {
    source.addEventListener(kind, (m) => {
      // The server's `error` message and the connection's error share the event name:
      // only a message carries data.
      if (m instanceof MessageEvent && typeof m.data === 'string') sink.message(kind, m.data, '');
      else if (kind === 'error' && open) sink.dropped('the event stream dropped');
    });
  }
  return {
    close: () => {
      open = false;
      source.close();
    },
  };
}

class LiveFeed implements Feed {
  readonly clock = new SimClock();
  private handlers: Handlers = {
    event: new Set(),
    clock: new Set(),
    lag: new Set(),
    error: new Set(),
    snapshot: new Set(),
    status: new Set(),
  };
  private filter: Filter;
  /** Ask for snapshots: on every connection, and after every seek (the server sends one
   * to each subscriber that asked). */
  private wantSnapshot: boolean;
  private last: string | null;
  /** Accept the next event whatever its position (after a seek, or a refused resume). */
  private anyNext = false;
  private current: { close(): void } | null = null;
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private state: FeedStatus = 'connecting';
  private waiting: ((r: IteratorResult<CaspersEvent>) => void)[] = [];
  private buffered: CaspersEvent[] = [];
  private iterating = false;
  /** `setFilter` calls not yet in force, oldest first: `sent` over an open WebSocket (the
   * server acknowledges each in turn), else waiting for the next stream to open. */
  private pendingFilters: {
    sent: boolean;
    filter: Filter;
    snapshot: boolean;
    resolve(): void;
    reject(e: Error): void;
  }[] = [];
  private readonly transport: 'sse' | 'websocket';
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly initialMs: number;
  private readonly maxMs: number;

  /** `/v1`, or a session's `/v1/sessions/ID`. */
  private readonly prefix: string;

  constructor(private readonly baseUrl: string, options: ConnectOptions) {
    this.prefix = clockPath(options.session);
    this.transport = options.transport ?? 'sse';
    if (this.transport !== 'sse' && this.transport !== 'websocket') {
      throw new TypeError(`transport must be "sse" or "websocket", not ${String(this.transport)}`);
    }
    this.WebSocketImpl = options.WebSocket ?? (typeof WebSocket !== 'undefined' ? WebSocket : undefined);
    if (this.transport === 'websocket' && !this.WebSocketImpl) {
      throw new TypeError(
        'this runtime has no WebSocket: use transport "sse", run Node with --experimental-websocket (Node 20) or pass options.WebSocket',
      );
    }
    if (options.from !== undefined) checkedPosition(options.from, 'from');
    absolute(baseUrl, '/');
    this.filter = { locationIds: options.locationIds, eventTypes: options.eventTypes };
    this.wantSnapshot = options.snapshot ?? false;
    this.last = options.from ?? null;
    this.initialMs = options.backoff?.initialMs ?? 250;
    this.maxMs = options.backoff?.maxMs ?? 10_000;
    this.open();
  }

  get position(): string | null {
    return this.last;
  }

  get status(): FeedStatus {
    return this.state;
  }

  onEvent(cb: (e: CaspersEvent) => void) { return this.add(this.handlers.event, cb); }
  onClock(cb: (c: ClockMessage) => void) { return this.add(this.handlers.clock, cb); }
  onLag(cb: (l: LagNotice) => void) { return this.add(this.handlers.lag, cb); }
  onError(cb: (e: FeedError) => void) { return this.add(this.handlers.error, cb); }
  onSnapshot(cb: (s: Snapshot) => void) { return this.add(this.handlers.snapshot, cb); }
  onStatus(cb: (s: FeedStatus) => void) { return this.add(this.handlers.status, cb); }

  on<K extends EventType>(type: K, cb: (event: EventOf<K>) => void): () => void {
    if (!isEventType(type)) throw new TypeError(`not an event type: ${JSON.stringify(type)}`);
    return this.onEvent((e) => {
      if (e.event_type === type) cb(e as EventOf<K>);
    });
  }

  private add<T>(set: Set<T>, cb: T): () => void {
    set.add(cb);
    return () => set.delete(cb);
  }

  private emit<T>(set: Set<(v: T) => void>, value: T): void {
    for (const cb of [...set]) {
      try {
        cb(value);
      } catch (e) {
        // One handler's bug must not stop the feed or the other handlers.
        setTimeout(() => { throw e; });
      }
    }
  }

  private setStatus(s: FeedStatus): void {
    if (s === this.state) return;
    this.state = s;
    this.emit(this.handlers.status, s);
  }

  setFilter(filter: Filter): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new Error('the feed is closed'));
    for (const t of filter.eventTypes ?? []) {
      if (!isEventType(t)) return Promise.reject(new TypeError(`not an event type: ${JSON.stringify(t)}`));
    }
    const next = { locationIds: filter.locationIds, eventTypes: filter.eventTypes };
    const socket = this.socket;
    const sent = socket !== null && socket.readyState === 1; // OPEN
    const done = new Promise<void>((resolve, reject) => {
      this.pendingFilters.push({ sent, filter: next, snapshot: filter.snapshot ?? false, resolve, reject });
    });
    // Over an open WebSocket the filter is the feed's once the server takes it (a refused
    // one leaves the old in force, here as there); otherwise the next connection asks it.
    if (!sent) {
      this.filter = next;
      this.wantSnapshot = filter.snapshot ?? false;
    }
    if (sent) {
      socket.send(JSON.stringify({
        type: 'filter',
        location_id: filter.locationIds ?? [],
        event_type: filter.eventTypes ?? [],
        snapshot: filter.snapshot ?? false,
      }));
    } else {
      // SSE (or a WebSocket not open yet): a new connection from the last position.
      this.reopen(0);
    }
    return done;
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.current?.close();
    this.current = null;
    this.socket = null;
    this.setStatus('closed');
    for (const p of this.pendingFilters.splice(0)) p.reject(new Error('the feed is closed'));
    for (const w of this.waiting.splice(0)) w({ value: undefined, done: true });
  }

  events(): AsyncIterableIterator<CaspersEvent> {
    if (this.iterating) throw new Error('a feed has one event iterator at a time');
    this.iterating = true;
    const iterator: AsyncIterableIterator<CaspersEvent> = {
      next: () => {
        const value = this.buffered.shift();
        if (value) return Promise.resolve({ value, done: false });
        if (this.state === 'closed') return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiting.push(resolve));
      },
      return: () => {
        this.iterating = false;
        this.buffered = [];
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  [Symbol.asyncIterator](): AsyncIterator<CaspersEvent> {
    return this.events();
  }

  // Connections.

  private open(): void {
    this.setStatus('connecting');
    // Filters sent over the connection that dropped are asked of the next one.
    for (const p of this.pendingFilters) {
      if (p.sent) {
        this.filter = p.filter;
        this.wantSnapshot = p.snapshot;
      }
      p.sent = false;
    }
    const snapshot = this.wantSnapshot;
    if (this.transport === 'websocket') this.openWebSocket(snapshot);
    else this.openSse(snapshot);
  }

  /** Drops the connection and opens another after `delayMs`. */
  private reopen(delayMs: number): void {
    this.current?.close();
    this.current = null;
    this.socket = null;
    if (this.state === 'closed' || this.timer !== null) return;
    this.setStatus('connecting');
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state !== 'closed') this.open();
    }, delayMs);
  }

  /** After a drop: wait longer each failed attempt (doubling, with jitter), then reopen. */
  private dropped(message: string): void {
    if (this.state === 'closed') return;
    this.emit(this.handlers.error, { kind: 'connection', message });
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt += 1;
    this.reopen(base / 2 + Math.random() * (base / 2));
  }

  private opened(): void {
    this.attempt = 0;
    this.setStatus('open');
  }

  /** A sink for one connection: what it says counts only while it is the current one. */
  private sink(owner: () => { close(): void } | null): Sink {
    return {
      message: (kind, data, id) => {
        if (this.current !== owner()) return;
        if (kind === 'message') this.deliver(parseEvent(JSON.parse(data)), id);
        else this.control(JSON.parse(data));
      },
      dropped: (message) => {
        if (this.current === owner()) this.dropped(message);
      },
    };
  }

  private openSse(snapshot: boolean): void {
    const url = absolute(this.baseUrl, `${this.prefix}/events${query(this.filter, snapshot, this.last)}`);
    // This feed reconnects itself (from the last position it delivered, with backoff):
    // EventSource's own reconnection is stopped at the first error.
    let connection: { close(): void } | null = null;
    const sink = this.sink(() => connection);
    connection = typeof EventSource !== 'undefined'
      ? browserEventSource(url, sink)
      : fetchEventSource(url, sink);
    this.current = connection;
  }

  private openWebSocket(snapshot: boolean): void {
    const url = absolute(this.baseUrl, `${this.prefix}/ws${query(this.filter, snapshot, this.last)}`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const Impl = this.WebSocketImpl as WebSocketConstructor;
    const socket = new Impl(url.toString());
    this.current = socket;
    this.socket = socket;
    socket.onmessage = (m) => {
      if (this.current !== socket) return;
      const message = JSON.parse(m.data as string);
      if (message.type !== 'events') {
        this.control(message);
        return;
      }
      const { events, positions } = message as { events: WireEvent[]; positions: string[] };
      for (let i = 0; i < events.length; i++) this.deliver(parseEvent(events[i]), positions[i]);
    };
    socket.onclose = (e) => {
      if (this.current !== socket) return;
      this.dropped(e.reason ? `the WebSocket closed: ${e.code} ${e.reason}` : 'the WebSocket dropped');
    };
  }

  private deliver(event: ParsedEvent, position: string): void {
    if (this.state !== 'open') this.opened();
    // The server resumes exactly after the position; this only guards against a replayed
    // tail, e.g. from a replica that had not yet forgotten what it sent.
    if (!this.anyNext && !isAfter(position, this.last)) return;
    this.anyNext = false;
    this.last = position;
    const e = { ...event, position } as CaspersEvent;
    this.emit(this.handlers.event, e);
    if (this.iterating) {
      const w = this.waiting.shift();
      if (w) w({ value: e, done: false });
      else this.buffered.push(e);
    }
  }

  private control(message: { type: string; [k: string]: unknown }): void {
    switch (message.type) {
      case 'clock': {
        const clock = message as unknown as ClockMessage;
        this.opened();
        this.clock.update(clock);
        // A stream's first message: every filter asked for before it is in force.
        if (clock.reason === 'connected' || clock.reason === 'restarted') {
          for (const p of this.pendingFilters.filter((f) => !f.sent)) {
            this.pendingFilters.splice(this.pendingFilters.indexOf(p), 1);
            p.resolve();
          }
        }
        // After a seek the stream goes on from elsewhere, maybe earlier in the dataset.
        if (clock.reason === 'seek') this.anyNext = true;
        this.emit(this.handlers.clock, clock);
        break;
      }
      case 'snapshot': {
        const s = message as unknown as { sim_time: number; orders: number; events: WireEvent[] };
        this.emit(this.handlers.snapshot, {
          sim_time: s.sim_time,
          orders: s.orders,
          events: s.events.map(parseEvent),
        });
        break;
      }
      case 'lagged':
        this.emit(this.handlers.lag, {
          reason: 'server',
          missed: typeof message.missed === 'number' ? message.missed : null,
          message: String(message.message ?? 'the server skipped this client ahead'),
          position: this.last,
        });
        break;
      case 'error': {
        const text = String(message.message ?? 'error');
        this.emit(this.handlers.error, { kind: 'server', message: text });
        if (text.startsWith('cannot resume')) {
          this.emit(this.handlers.lag, { reason: 'resume', missed: null, message: text, position: this.last });
          this.anyNext = true;
        } else {
          // A refused filter change: the old filter stays.
          const i = this.pendingFilters.findIndex((f) => f.sent);
          if (i >= 0) this.pendingFilters.splice(i, 1)[0].reject(new Error(text));
        }
        break;
      }
      case 'close':
        // The server is going away (e.g. shutting down): come back when it does.
        this.emit(this.handlers.error, { kind: 'closed', message: String(message.reason ?? '') });
        this.dropped('the server closed the stream');
        break;
      case 'filter': {
        // The acknowledgement of a filter change: events that follow pass the new filter.
        const i = this.pendingFilters.findIndex((f) => f.sent);
        if (i >= 0) {
          const p = this.pendingFilters.splice(i, 1)[0];
          this.filter = p.filter;
          this.wantSnapshot = p.snapshot;
          p.resolve();
        }
        break;
      }
      default:
        break;
    }
  }
}

/** Why a presenter's change was refused: the HTTP status and the server's message. */
export class ControlError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/** A change to the clock: any of these, applied together. */
export interface ClockChange {
  speed?: number;
  paused?: boolean;
  /** Simulation time: Unix seconds, RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC). */
  seek?: number | string;
  /** Day of the dataset (0-based) to jump to, at its midnight. */
  seek_day?: number;
  /** On a paused clock: emit the next this many seconds of simulated time (at most a day)
   * and stay paused. */
  step?: number;
}

export interface Control {
  state(): Promise<ClockState>;
  change(change: ClockChange): Promise<ClockState>;
  setSpeed(speed: number): Promise<ClockState>;
  pause(): Promise<ClockState>;
  resume(): Promise<ClockState>;
  /** Jumps to a time (Unix seconds, a Date, or text the server reads) or `{ day }`. */
  seek(to: number | string | Date | { day: number }): Promise<ClockState>;
  /** On a paused clock: emits exactly the next `seconds` of simulated time and stays
   * paused (a running clock refuses it with a 409 {@link ControlError}). */
  step(seconds: number): Promise<ClockState>;
}

/** The streams' and clock's path: the shared clock's, or a session's. */
function clockPath(session: string | undefined): string {
  if (session === undefined) return '/v1';
  if (typeof session !== 'string' || !/^[0-9A-Za-z_-]+$/.test(session)) {
    throw new TypeError(`session must be a session's id, as createSession gave it, not ${JSON.stringify(session)}`);
  }
  return `/v1/sessions/${session}`;
}

/** A JSON answer, or a {@link ControlError} with the server's message. */
async function answerOf<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = JSON.parse(text).error ?? text;
    } catch {
      // not JSON: the text as it is
    }
    throw new ControlError(res.status, message);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The controls of the clock of the server at `baseUrl` with a token: the presenter's
 * of the shared clock, or with `{ session }` a session's with its own token. */
export function control(baseUrl: string, token: string, options: { session?: string } = {}): Control {
  const url = absolute(baseUrl, `${clockPath(options.session)}/clock`);
  const answer = (res: Response) => answerOf<ClockState>(res);
  const change = async (c: ClockChange) =>
    answer(await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(c),
    }));
  return {
    state: async () => answer(await fetch(url)),
    change,
    setSpeed: (speed) => change({ speed }),
    pause: () => change({ paused: true }),
    resume: () => change({ paused: false }),
    seek: (to) => {
      if (to instanceof Date) return change({ seek: to.getTime() / 1000 });
      if (typeof to === 'object') return change({ seek_day: to.day });
      return change({ seek: to });
    },
    step: (seconds) => change({ step: seconds }),
  };
}

/** How a session's clock starts; every field optional (the server's defaults). */
export interface SessionOptions {
  /** A day of the dataset (0-based), or an instant (a Date, or RFC 3339 text). */
  start?: number | string | Date;
  speed?: number;
  paused?: boolean;
  loop?: boolean;
  /** The token the server needs to create sessions, if it was started with one
   * (`--session-token`). */
  token?: string;
}

/** A replay session: a clock of one's own beside the shared one. */
export interface Session {
  readonly id: string;
  /** Its owner's token (changes and ends it). */
  readonly token: string;
  /** The clock when it was made. */
  readonly clock: ClockState;
  /** Its controls (pause, seek, step, …). */
  readonly control: Control;
  /** Subscribes to its feed, as {@link connect} does to the shared one. */
  connect(options?: Omit<ConnectOptions, 'session'>): Feed;
  /** Ends it: its streams are closed with a reason. */
  end(): Promise<void>;
}

/** Creates a replay session on the server at `baseUrl`; refusals (a bad option, the
 * server's session limit) throw a {@link ControlError} with the server's message. */
export async function createSession(baseUrl: string, options: SessionOptions = {}): Promise<Session> {
  const { token: needed, start, ...rest } = options;
  const body: Record<string, unknown> = { ...rest };
  if (start instanceof Date) body.start = start.toISOString();
  else if (start !== undefined) body.start = start;
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (needed !== undefined) headers.Authorization = `Bearer ${needed}`;
  const made = await answerOf<{ id: string; token: string; clock: ClockState }>(
    await fetch(absolute(baseUrl, '/v1/sessions'), { method: 'POST', headers, body: JSON.stringify(body) }),
  );
  const session = { session: made.id };
  return {
    id: made.id,
    token: made.token,
    clock: made.clock,
    control: control(baseUrl, made.token, session),
    connect: (connectOptions = {}) => connect(baseUrl, { ...connectOptions, ...session }),
    end: async () => {
      await answerOf<void>(await fetch(absolute(baseUrl, `${clockPath(made.id)}`), {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${made.token}` },
      }));
    },
  };
}

/** A kitchen (`GET /v1/kitchens`). */
export interface Kitchen {
  location_id: number;
  code: string;
  name: string;
  lat: number;
  lon: number;
}

/** The kitchens of the server at `baseUrl`. */
export async function kitchens(baseUrl: string): Promise<Kitchen[]> {
  const res = await fetch(absolute(baseUrl, '/v1/kitchens'));
  if (!res.ok) throw new Error(`GET /v1/kitchens: ${res.status}`);
  return (await res.json()) as Kitchen[];
}

/** Every event type, for filters. */
export function isEventType(name: string): name is EventType {
  return (EVENT_TYPES as readonly string[]).includes(name);
}
