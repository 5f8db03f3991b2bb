// src/events.generated.ts
var EVENT_TYPES = ["order_created", "gk_started", "gk_finished", "gk_ready", "driver_arrived", "driver_picked_up", "driver_ping", "delivered"];

// src/caspers-replay.ts
var SimClock = class {
  constructor() {
    this.state = null;
    this.anchorMs = 0;
  }
  /** Sets the clock from a clock message or `GET /v1/clock` answer, received now. */
  update(state, receivedAtMs = nowMs()) {
    this.state = state;
    this.anchorMs = receivedAtMs;
  }
  /** The last state the server sent, if any. */
  get last() {
    return this.state;
  }
  /** Simulation time (Unix seconds) at `atMs` (default now); NaN before the first message. */
  now(atMs = nowMs()) {
    const s = this.state;
    if (!s) return NaN;
    if (s.paused || s.ended) return s.sim_time;
    const t = s.sim_time + (atMs - this.anchorMs) / 1e3 * s.speed;
    return s.loop ? t : Math.min(t, s.dataset_end);
  }
};
function nowMs() {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}
function parseEvent(wire) {
  return { ...wire, body: JSON.parse(wire.body) };
}
function positionKey(p) {
  const m = /^([0-9a-f]+)-(\d+)-(\d+)$/.exec(p);
  return m ? [m[1], Number(m[2]), Number(m[3])] : null;
}
function isAfter(p, last) {
  if (last === null) return true;
  const a = positionKey(p);
  const b = positionKey(last);
  if (!a || !b || a[0] !== b[0]) return true;
  return a[1] > b[1] || a[1] === b[1] && a[2] > b[2];
}
function absolute(baseUrl, path) {
  const here = typeof location !== "undefined" ? location.href : "http://127.0.0.1:8080/";
  return new URL(path, new URL(baseUrl || "/", here));
}
function query(filter, snapshot, from) {
  const q = new URLSearchParams();
  if (filter.locationIds?.length) q.set("location_id", filter.locationIds.join(","));
  if (filter.eventTypes?.length) q.set("event_type", filter.eventTypes.join(","));
  if (snapshot) q.set("snapshot", "1");
  if (from) q.set("from", from);
  const s = q.toString();
  return s ? `?${s}` : "";
}
function connect(baseUrl, options = {}) {
  return new LiveFeed(baseUrl, options);
}
var LiveFeed = class {
  constructor(baseUrl, options) {
    this.baseUrl = baseUrl;
    this.clock = new SimClock();
    this.handlers = {
      event: /* @__PURE__ */ new Set(),
      clock: /* @__PURE__ */ new Set(),
      lag: /* @__PURE__ */ new Set(),
      error: /* @__PURE__ */ new Set(),
      snapshot: /* @__PURE__ */ new Set(),
      status: /* @__PURE__ */ new Set()
    };
    /** Accept the next event whatever its position (after a seek, or a refused resume). */
    this.anyNext = false;
    this.current = null;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.state = "connecting";
    this.waiting = [];
    this.buffered = [];
    this.iterating = false;
    this.transport = options.transport ?? "sse";
    if (this.transport !== "sse" && this.transport !== "websocket") {
      throw new Error(`transport must be "sse" or "websocket", not ${String(this.transport)}`);
    }
    this.filter = { locationIds: options.locationIds, eventTypes: options.eventTypes };
    this.wantSnapshot = options.snapshot ?? false;
    this.last = options.from ?? null;
    this.initialMs = options.backoff?.initialMs ?? 250;
    this.maxMs = options.backoff?.maxMs ?? 1e4;
    this.open();
  }
  get position() {
    return this.last;
  }
  get status() {
    return this.state;
  }
  onEvent(cb) {
    return this.add(this.handlers.event, cb);
  }
  onClock(cb) {
    return this.add(this.handlers.clock, cb);
  }
  onLag(cb) {
    return this.add(this.handlers.lag, cb);
  }
  onError(cb) {
    return this.add(this.handlers.error, cb);
  }
  onSnapshot(cb) {
    return this.add(this.handlers.snapshot, cb);
  }
  onStatus(cb) {
    return this.add(this.handlers.status, cb);
  }
  add(set, cb) {
    set.add(cb);
    return () => set.delete(cb);
  }
  emit(set, value) {
    for (const cb of [...set]) {
      try {
        cb(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
  setStatus(s) {
    if (s === this.state) return;
    this.state = s;
    this.emit(this.handlers.status, s);
  }
  setFilter(filter) {
    if (this.state === "closed") throw new Error("the feed is closed");
    this.filter = { locationIds: filter.locationIds, eventTypes: filter.eventTypes };
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({
        type: "filter",
        location_id: filter.locationIds ?? [],
        event_type: filter.eventTypes ?? [],
        snapshot: filter.snapshot ?? false
      }));
      return;
    }
    this.wantSnapshot = filter.snapshot ?? false;
    this.reopen(0);
  }
  close() {
    if (this.state === "closed") return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.current?.close();
    this.current = null;
    this.socket = null;
    this.setStatus("closed");
    for (const w of this.waiting.splice(0)) w({ value: void 0, done: true });
  }
  events() {
    if (this.iterating) throw new Error("a feed has one event iterator at a time");
    this.iterating = true;
    const iterator = {
      next: () => {
        const value = this.buffered.shift();
        if (value) return Promise.resolve({ value, done: false });
        if (this.state === "closed") return Promise.resolve({ value: void 0, done: true });
        return new Promise((resolve) => this.waiting.push(resolve));
      },
      return: () => {
        this.iterating = false;
        this.buffered = [];
        return Promise.resolve({ value: void 0, done: true });
      },
      [Symbol.asyncIterator]: () => iterator
    };
    return iterator;
  }
  [Symbol.asyncIterator]() {
    return this.events();
  }
  // Connections.
  open() {
    this.setStatus("connecting");
    const snapshot = this.wantSnapshot;
    this.wantSnapshot = false;
    if (this.transport === "websocket") this.openWebSocket(snapshot);
    else this.openSse(snapshot);
  }
  /** Drops the connection and opens another after `delayMs`. */
  reopen(delayMs) {
    this.current?.close();
    this.current = null;
    this.socket = null;
    if (this.state === "closed" || this.timer !== null) return;
    this.setStatus("connecting");
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state !== "closed") this.open();
    }, delayMs);
  }
  /** After a drop: wait longer each failed attempt (doubling, with jitter), then reopen. */
  dropped(message) {
    if (this.state === "closed") return;
    this.emit(this.handlers.error, { kind: "connection", message });
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt += 1;
    this.reopen(base / 2 + Math.random() * (base / 2));
  }
  opened() {
    this.attempt = 0;
    this.setStatus("open");
  }
  openSse(snapshot) {
    const url = absolute(this.baseUrl, `/v1/events${query(this.filter, snapshot, this.last)}`);
    const source = new EventSource(url);
    this.current = source;
    source.onmessage = (m) => this.deliver(parseEvent(JSON.parse(m.data)), m.lastEventId);
    for (const kind of ["clock", "snapshot", "lagged", "error", "close"]) {
      source.addEventListener(kind, (m) => {
        if (m instanceof MessageEvent && typeof m.data === "string") this.control(JSON.parse(m.data));
        else if (kind === "error" && this.current === source) this.dropped("the event stream dropped");
      });
    }
  }
  openWebSocket(snapshot) {
    const url = absolute(this.baseUrl, `/v1/ws${query(this.filter, snapshot, this.last)}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    this.current = socket;
    this.socket = socket;
    socket.onmessage = (m) => {
      const message = JSON.parse(m.data);
      if (message.type !== "events") {
        this.control(message);
        return;
      }
      const { events, positions } = message;
      for (let i = 0; i < events.length; i++) this.deliver(parseEvent(events[i]), positions[i]);
    };
    socket.onclose = (e) => {
      if (this.current !== socket) return;
      this.dropped(e.reason ? `the WebSocket closed: ${e.code} ${e.reason}` : "the WebSocket dropped");
    };
  }
  deliver(event, position) {
    if (this.state !== "open") this.opened();
    if (!this.anyNext && !isAfter(position, this.last)) return;
    this.anyNext = false;
    this.last = position;
    const e = { ...event, position };
    this.emit(this.handlers.event, e);
    if (this.iterating) {
      const w = this.waiting.shift();
      if (w) w({ value: e, done: false });
      else this.buffered.push(e);
    }
  }
  control(message) {
    switch (message.type) {
      case "clock": {
        const clock = message;
        this.opened();
        this.clock.update(clock);
        if (clock.reason === "seek") this.anyNext = true;
        this.emit(this.handlers.clock, clock);
        break;
      }
      case "snapshot": {
        const s = message;
        this.emit(this.handlers.snapshot, {
          sim_time: s.sim_time,
          orders: s.orders,
          events: s.events.map(parseEvent)
        });
        break;
      }
      case "lagged":
        this.emit(this.handlers.lag, {
          reason: "server",
          missed: typeof message.missed === "number" ? message.missed : null,
          message: String(message.message ?? "the server skipped this client ahead"),
          position: this.last
        });
        break;
      case "error": {
        const text = String(message.message ?? "error");
        this.emit(this.handlers.error, { kind: "server", message: text });
        if (text.startsWith("cannot resume")) {
          this.emit(this.handlers.lag, { reason: "resume", missed: null, message: text, position: this.last });
          this.anyNext = true;
        }
        break;
      }
      case "close":
        this.emit(this.handlers.error, { kind: "closed", message: String(message.reason ?? "") });
        this.dropped("the server closed the stream");
        break;
      case "filter":
        break;
      default:
        break;
    }
  }
};
var ControlError = class extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    this.name = "ControlError";
  }
};
function control(baseUrl, token) {
  const url = absolute(baseUrl, "/v1/clock");
  const answer = async (res) => {
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = JSON.parse(text).error ?? text;
      } catch {
      }
      throw new ControlError(res.status, message);
    }
    return JSON.parse(text);
  };
  const change = async (c) => answer(await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify(c)
  }));
  return {
    state: async () => answer(await fetch(url)),
    change,
    setSpeed: (speed) => change({ speed }),
    pause: () => change({ paused: true }),
    resume: () => change({ paused: false }),
    seek: (to) => {
      if (to instanceof Date) return change({ seek: to.getTime() / 1e3 });
      if (typeof to === "object") return change({ seek_day: to.day });
      return change({ seek: to });
    }
  };
}
async function kitchens(baseUrl) {
  const res = await fetch(absolute(baseUrl, "/v1/kitchens"));
  if (!res.ok) throw new Error(`GET /v1/kitchens: ${res.status}`);
  return await res.json();
}
function isEventType(name) {
  return EVENT_TYPES.includes(name);
}
export {
  ControlError,
  EVENT_TYPES,
  SimClock,
  connect,
  control,
  isEventType,
  kitchens,
  parseEvent
};
