// The caspers-replay browser client: one ES module with no imports once built.
//
// A feed subscribes over SSE or WebSocket, parses each event's body into its typed object,
// and survives every drop (server restart, switch to another replica, network blip): it
// reconnects with backoff from the last position it delivered, so the app sees every event
// once, in order. The protocol is docs/asyncapi.yaml; docs/live-feed.md says it in prose.

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
  /** `<dataset tag>-<loop>-<row>`: where this event sits in the stream. */
  position: string;
};

/** Why a clock message was sent. `restarted`: this connection resumed from a position an
 * earlier server process (or another replica) sent. */
export type ClockReason =
  | 'connected'
  | 'restarted'
  | 'speed'
  | 'pause'
  | 'resume'
  | 'seek'
  | 'change'
  | 'end'
  | (string & {});

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

/** The orders in flight when the stream started (`snapshot: true`): for each, its
 * order_created, driver_picked_up and latest driver_ping. They carry no position. */
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
  locationIds?: number[];
  /** Event types to receive (none or empty: all). */
  eventTypes?: EventType[];
  /** Send the orders in flight first (see {@link Snapshot}). */
  snapshot?: boolean;
}

export interface ConnectOptions extends Filter {
  /** `sse` (default) or `websocket`. */
  transport?: 'sse' | 'websocket';
  /** Resume after this position (one of an earlier feed's events). */
  from?: string;
  /** Reconnection delays: the first, and the most (milliseconds). Default 250 and 10,000;
   * each failed attempt doubles the delay, with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
}

/** The feed's connection: `connecting` (first or later attempt), `open`, `closed` (by
 * {@link Feed.close}). */
export type FeedStatus = 'connecting' | 'open' | 'closed';

export interface Feed extends AsyncIterable<CaspersEvent> {
  /** Each handler registration returns a function that removes it. */
  onEvent(cb: (event: CaspersEvent) => void): () => void;
  onClock(cb: (clock: ClockMessage) => void): () => void;
  onLag(cb: (lag: LagNotice) => void): () => void;
  onError(cb: (error: FeedError) => void): () => void;
  onSnapshot(cb: (snapshot: Snapshot) => void): () => void;
  onStatus(cb: (status: FeedStatus) => void): () => void;
  /** Changes what the feed receives, going on from the last event delivered: over
   * WebSocket in place, over SSE by reconnecting from that position. Nothing is lost or
   * repeated at the change. */
  setFilter(filter: Filter): void;
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

/** Orders positions of one dataset: [tag, loop, row]. */
function positionKey(p: string): [string, number, number] | null {
  const m = /^([0-9a-f]+)-(\d+)-(\d+)$/.exec(p);
  return m ? [m[1], Number(m[2]), Number(m[3])] : null;
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
  const here = typeof location !== 'undefined' ? location.href : 'http://127.0.0.1:8080/';
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
 * `''` for the page's own server). */
export function connect(baseUrl: string, options: ConnectOptions = {}): Feed {
  return new LiveFeed(baseUrl, options);
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
  /** Ask for a snapshot on the next connection (the first, or after a filter change). */
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
  private readonly transport: 'sse' | 'websocket';
  private readonly initialMs: number;
  private readonly maxMs: number;

  constructor(private readonly baseUrl: string, options: ConnectOptions) {
    this.transport = options.transport ?? 'sse';
    if (this.transport !== 'sse' && this.transport !== 'websocket') {
      throw new Error(`transport must be "sse" or "websocket", not ${String(this.transport)}`);
    }
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

  setFilter(filter: Filter): void {
    if (this.state === 'closed') throw new Error('the feed is closed');
    this.filter = { locationIds: filter.locationIds, eventTypes: filter.eventTypes };
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({
        type: 'filter',
        location_id: filter.locationIds ?? [],
        event_type: filter.eventTypes ?? [],
        snapshot: filter.snapshot ?? false,
      }));
      return;
    }
    // SSE (or a WebSocket not open yet): a new connection from the last position.
    this.wantSnapshot = filter.snapshot ?? false;
    this.reopen(0);
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.current?.close();
    this.current = null;
    this.socket = null;
    this.setStatus('closed');
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
    const snapshot = this.wantSnapshot;
    this.wantSnapshot = false;
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

  private openSse(snapshot: boolean): void {
    const url = absolute(this.baseUrl, `/v1/events${query(this.filter, snapshot, this.last)}`);
    const source = new EventSource(url);
    // This feed reconnects itself (from the last position it delivered, with backoff):
    // EventSource's own reconnection is stopped at the first error.
    this.current = source;
    source.onmessage = (m) => this.deliver(parseEvent(JSON.parse(m.data)), m.lastEventId);
    for (const kind of ['clock', 'snapshot', 'lagged', 'error', 'close']) {
      source.addEventListener(kind, (m) => {
        // The server's `error` message and the connection's error share the event name:
        // only a message carries data.
        if (m instanceof MessageEvent && typeof m.data === 'string') this.control(JSON.parse(m.data));
        else if (kind === 'error' && this.current === source) this.dropped('the event stream dropped');
      });
    }
  }

  private openWebSocket(snapshot: boolean): void {
    const url = absolute(this.baseUrl, `/v1/ws${query(this.filter, snapshot, this.last)}`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    this.current = socket;
    this.socket = socket;
    socket.onmessage = (m) => {
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
        }
        break;
      }
      case 'close':
        // The server is going away (e.g. shutting down): come back when it does.
        this.emit(this.handlers.error, { kind: 'closed', message: String(message.reason ?? '') });
        this.dropped('the server closed the stream');
        break;
      case 'filter':
        // The acknowledgement of a filter change: events that follow pass the new filter.
        break;
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
}

export interface Control {
  state(): Promise<ClockState>;
  change(change: ClockChange): Promise<ClockState>;
  setSpeed(speed: number): Promise<ClockState>;
  pause(): Promise<ClockState>;
  resume(): Promise<ClockState>;
  /** Jumps to a time (Unix seconds, a Date, or text the server reads) or `{ day }`. */
  seek(to: number | string | Date | { day: number }): Promise<ClockState>;
}

/** The presenter's controls of the server at `baseUrl`, with its token. */
export function control(baseUrl: string, token: string): Control {
  const url = absolute(baseUrl, '/v1/clock');
  const answer = async (res: Response): Promise<ClockState> => {
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
    return JSON.parse(text) as ClockState;
  };
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
