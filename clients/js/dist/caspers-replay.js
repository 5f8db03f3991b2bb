// node_modules/eventsource-parser/dist/errors.js
var ParseError = class extends Error {
  constructor(message, options) {
    super(message);
    this.name = "ParseError";
    this.type = options.type;
    this.field = options.field;
    this.value = options.value;
    this.line = options.line;
  }
};

// node_modules/eventsource-parser/dist/parse.js
var LF = 10;
var CR = 13;
var SPACE = 32;
var MAX_FIELD_PREFIX_LENGTH = 6;
function createParser(config) {
  if (typeof config === "function") {
    throw new TypeError("`config` must be an object, got a function instead. Did you mean `createParser({onEvent: fn})`?");
  }
  const { maxBufferSize, onComment, onError, onEvent, onId, onRetry } = config;
  const pendingFragments = [];
  let pendingFragmentsLength = 0;
  let bomPrefix = "";
  let id;
  let data = "";
  let dataLines = 0;
  let eventType;
  let terminated = false;
  let skippingLine = false;
  let skipNextLineFeed = false;
  function feed(chunk) {
    if (terminated) {
      throw new Error("Cannot feed parser: it was terminated after exceeding the configured max buffer size. Call `reset()` to resume parsing.");
    }
    if (bomPrefix !== void 0) {
      chunk = bomPrefix + chunk;
      if (chunk === "" || chunk === "\xEF" || chunk === "\xEF\xBB") {
        bomPrefix = chunk;
        return;
      }
      bomPrefix = void 0;
      chunk = chunk.replace(/^(?:\uFEFF|\xEF\xBB\xBF)/, "");
    }
    if (skippingLine || skipNextLineFeed) {
      chunk = resumeAfterSkip(chunk);
      if (!chunk) {
        return;
      }
    }
    if (!pendingFragments.length) {
      const trailing = processLines(chunk);
      if (trailing !== "") {
        storeTrailing(trailing);
      }
      checkForBufferOverflow();
      return;
    }
    if (chunk.indexOf("\n") === -1 && chunk.indexOf("\r") === -1) {
      if (pendingFragmentsLength < MAX_FIELD_PREFIX_LENGTH) {
        const head = pendingFragments.join("") + chunk.slice(0, MAX_FIELD_PREFIX_LENGTH - pendingFragmentsLength);
        if (!shouldBufferTrailing(head)) {
          pendingFragments.length = 0;
          pendingFragmentsLength = 0;
          skippingLine = true;
          return;
        }
      }
      pendingFragments.push(chunk);
      pendingFragmentsLength += chunk.length;
      checkForBufferOverflow();
      return;
    }
    pendingFragments.push(chunk);
    const input = pendingFragments.join("");
    pendingFragments.length = 0;
    pendingFragmentsLength = 0;
    storeTrailing(processLines(input));
    checkForBufferOverflow();
  }
  function resumeAfterSkip(chunk) {
    if (chunk.length === 0) {
      return chunk;
    }
    if (skipNextLineFeed) {
      skipNextLineFeed = false;
      return chunk.charCodeAt(0) === LF ? chunk.slice(1) : chunk;
    }
    const crIndex = chunk.indexOf("\r");
    const lfIndex = chunk.indexOf("\n");
    const lineEnd = crIndex === -1 ? lfIndex : lfIndex === -1 ? crIndex : crIndex < lfIndex ? crIndex : lfIndex;
    if (lineEnd === -1) {
      return "";
    }
    if (lineEnd === chunk.length - 1 && chunk.charCodeAt(lineEnd) === CR) {
      skippingLine = false;
      skipNextLineFeed = true;
      return "";
    }
    skippingLine = false;
    return chunk.slice(lineEnd + (chunk.charCodeAt(lineEnd) === CR && chunk.charCodeAt(lineEnd + 1) === LF ? 2 : 1));
  }
  function storeTrailing(trailing) {
    if (!trailing)
      return;
    if (trailing.charCodeAt(trailing.length - 1) === CR) {
      parseLine(trailing, 0, trailing.length - 1);
      if (checkForBufferOverflow())
        return;
      skipNextLineFeed = true;
      return;
    }
    if (shouldBufferTrailing(trailing)) {
      pendingFragments.push(trailing);
      pendingFragmentsLength = trailing.length;
      return;
    }
    skippingLine = true;
  }
  function shouldBufferTrailing(trailing) {
    const firstCharCode = trailing.charCodeAt(0);
    return firstCharCode === 58 && !!onComment || firstCharCode === 100 && isPotentialField(trailing, "data") || firstCharCode === 101 && isPotentialField(trailing, "event") || firstCharCode === 105 && isPotentialField(trailing, "id") || firstCharCode === 114 && isPotentialField(trailing, "retry");
  }
  function checkForBufferOverflow() {
    if (terminated)
      return true;
    if (maxBufferSize === void 0)
      return false;
    if (pendingFragmentsLength + data.length <= maxBufferSize)
      return false;
    terminated = true;
    pendingFragments.length = 0;
    pendingFragmentsLength = 0;
    id = void 0;
    data = "";
    dataLines = 0;
    eventType = void 0;
    skippingLine = false;
    skipNextLineFeed = false;
    onError === null || onError === void 0 ? void 0 : onError(new ParseError(`Buffered data exceeded max buffer size of ${maxBufferSize} characters`, {
      type: "max-buffer-size-exceeded"
    }));
    return true;
  }
  function processLines(chunk) {
    let searchIndex = 0;
    if (chunk.indexOf("\r") === -1) {
      let lfIndex2 = chunk.indexOf("\n", searchIndex);
      while (lfIndex2 !== -1) {
        if (searchIndex === lfIndex2) {
          if (id !== void 0) {
            onId === null || onId === void 0 ? void 0 : onId(id);
          }
          if (dataLines > 0) {
            onEvent === null || onEvent === void 0 ? void 0 : onEvent({ id, event: eventType, data });
          }
          id = void 0;
          data = "";
          dataLines = 0;
          eventType = void 0;
          searchIndex = lfIndex2 + 1;
          lfIndex2 = chunk.indexOf("\n", searchIndex);
          continue;
        }
        const firstCharCode = chunk.charCodeAt(searchIndex);
        if (isDataPrefix(chunk, searchIndex, firstCharCode)) {
          const valueStart = chunk.charCodeAt(searchIndex + 5) === SPACE ? searchIndex + 6 : searchIndex + 5;
          const value = chunk.slice(valueStart, lfIndex2);
          if (dataLines === 0 && chunk.charCodeAt(lfIndex2 + 1) === LF) {
            if (id !== void 0) {
              onId === null || onId === void 0 ? void 0 : onId(id);
            }
            onEvent === null || onEvent === void 0 ? void 0 : onEvent({ id, event: eventType, data: value });
            id = void 0;
            data = "";
            eventType = void 0;
            searchIndex = lfIndex2 + 2;
            lfIndex2 = chunk.indexOf("\n", searchIndex);
            continue;
          }
          data = dataLines === 0 ? value : `${data}
${value}`;
          dataLines++;
        } else if (isEventPrefix(chunk, searchIndex, firstCharCode)) {
          eventType = chunk.slice(chunk.charCodeAt(searchIndex + 6) === SPACE ? searchIndex + 7 : searchIndex + 6, lfIndex2) || void 0;
        } else {
          parseLine(chunk, searchIndex, lfIndex2);
        }
        if (checkForBufferOverflow())
          return "";
        searchIndex = lfIndex2 + 1;
        lfIndex2 = chunk.indexOf("\n", searchIndex);
      }
      return chunk.slice(searchIndex);
    }
    let crIndex = chunk.indexOf("\r", searchIndex);
    let lfIndex = chunk.indexOf("\n", searchIndex);
    while (searchIndex < chunk.length) {
      let lineEnd = -1;
      if (crIndex !== -1 && lfIndex !== -1) {
        lineEnd = crIndex < lfIndex ? crIndex : lfIndex;
      } else if (crIndex !== -1) {
        if (crIndex === chunk.length - 1) {
          lineEnd = -1;
        } else {
          lineEnd = crIndex;
        }
      } else if (lfIndex !== -1) {
        lineEnd = lfIndex;
      }
      if (lineEnd === -1) {
        break;
      }
      parseLine(chunk, searchIndex, lineEnd);
      if (checkForBufferOverflow())
        return "";
      searchIndex = lineEnd + 1;
      if (chunk.charCodeAt(searchIndex - 1) === CR && chunk.charCodeAt(searchIndex) === LF) {
        searchIndex++;
      }
      if (crIndex !== -1 && crIndex < searchIndex) {
        crIndex = chunk.indexOf("\r", searchIndex);
      }
      if (lfIndex !== -1 && lfIndex < searchIndex) {
        lfIndex = chunk.indexOf("\n", searchIndex);
      }
    }
    return chunk.slice(searchIndex);
  }
  function parseLine(chunk, start, end) {
    if (start === end) {
      dispatchEvent();
      return;
    }
    const firstCharCode = chunk.charCodeAt(start);
    if (isDataPrefix(chunk, start, firstCharCode)) {
      const valueStart = chunk.charCodeAt(start + 5) === SPACE ? start + 6 : start + 5;
      const value2 = chunk.slice(valueStart, end);
      data = dataLines === 0 ? value2 : `${data}
${value2}`;
      dataLines++;
      return;
    }
    if (isEventPrefix(chunk, start, firstCharCode)) {
      eventType = chunk.slice(chunk.charCodeAt(start + 6) === SPACE ? start + 7 : start + 6, end) || void 0;
      return;
    }
    if (firstCharCode === 105 && chunk.charCodeAt(start + 1) === 100 && chunk.charCodeAt(start + 2) === 58) {
      const value2 = chunk.slice(chunk.charCodeAt(start + 3) === SPACE ? start + 4 : start + 3, end);
      if (!value2.includes("\0"))
        id = value2;
      return;
    }
    if (firstCharCode === 58) {
      if (onComment) {
        const line2 = chunk.slice(start, end);
        onComment(line2.slice(chunk.charCodeAt(start + 1) === SPACE ? 2 : 1));
      }
      return;
    }
    const line = chunk.slice(start, end);
    const fieldSeparatorIndex = line.indexOf(":");
    if (fieldSeparatorIndex === -1) {
      processField(line, "", line);
      return;
    }
    const field = line.slice(0, fieldSeparatorIndex);
    const offset = line.charCodeAt(fieldSeparatorIndex + 1) === SPACE ? 2 : 1;
    const value = line.slice(fieldSeparatorIndex + offset);
    processField(field, value, line);
  }
  function processField(field, value, line) {
    switch (field) {
      case "event":
        eventType = value || void 0;
        break;
      case "data":
        data = dataLines === 0 ? value : `${data}
${value}`;
        dataLines++;
        break;
      case "id":
        if (!value.includes("\0"))
          id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) {
          onRetry === null || onRetry === void 0 ? void 0 : onRetry(parseInt(value, 10));
        } else {
          onError === null || onError === void 0 ? void 0 : onError(new ParseError(`Invalid \`retry\` value: "${value}"`, {
            type: "invalid-retry",
            value,
            line
          }));
        }
        break;
      default:
        onError === null || onError === void 0 ? void 0 : onError(new ParseError(`Unknown field "${field.length > 20 ? `${field.slice(0, 20)}\u2026` : field}"`, { type: "unknown-field", field, value, line }));
        break;
    }
  }
  function dispatchEvent() {
    if (id !== void 0) {
      onId === null || onId === void 0 ? void 0 : onId(id);
    }
    if (dataLines > 0) {
      onEvent === null || onEvent === void 0 ? void 0 : onEvent({
        id,
        event: eventType,
        data
      });
    }
    id = void 0;
    data = "";
    dataLines = 0;
    eventType = void 0;
  }
  function reset(options = {}) {
    if (options.consume && pendingFragments.length > 0) {
      const incompleteLine = pendingFragments.join("");
      parseLine(incompleteLine, 0, incompleteLine.length);
    }
    bomPrefix = "";
    id = void 0;
    data = "";
    dataLines = 0;
    eventType = void 0;
    pendingFragments.length = 0;
    pendingFragmentsLength = 0;
    terminated = false;
    skippingLine = false;
    skipNextLineFeed = false;
  }
  return { feed, reset };
}
function isDataPrefix(chunk, i, firstCharCode) {
  return firstCharCode === 100 && chunk.charCodeAt(i + 1) === 97 && chunk.charCodeAt(i + 2) === 116 && chunk.charCodeAt(i + 3) === 97 && chunk.charCodeAt(i + 4) === 58;
}
function isEventPrefix(chunk, i, firstCharCode) {
  return firstCharCode === 101 && chunk.charCodeAt(i + 1) === 118 && chunk.charCodeAt(i + 2) === 101 && chunk.charCodeAt(i + 3) === 110 && chunk.charCodeAt(i + 4) === 116 && chunk.charCodeAt(i + 5) === 58;
}
function isPotentialField(line, field) {
  let i = 1;
  while (i < line.length && i < field.length) {
    if (line.charCodeAt(i) !== field.charCodeAt(i)) {
      return false;
    }
    i++;
  }
  return line.length <= field.length || line.charCodeAt(field.length) === 58;
}

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
  const m = /^([0-9a-f]{1,16})-(\d{1,9})-(\d{1,12})$/.exec(p);
  return m ? [m[1], Number(m[2]), Number(m[3])] : null;
}
function checkedPosition(p, what) {
  const key = typeof p === "string" ? positionKey(p) : null;
  if (!key) {
    throw new TypeError(
      `${what} is not a position: ${JSON.stringify(p)} (a position is TAG-LOOP-ROW, as an event's \`position\`, e.g. "1a2b3c4d-0-12345")`
    );
  }
  return key;
}
function comparePositions(a, b) {
  const x = checkedPosition(a, "the first argument");
  const y = checkedPosition(b, "the second argument");
  if (x[0] !== y[0]) {
    throw new TypeError(`positions of two different datasets cannot be compared: ${a} and ${b}`);
  }
  return x[1] !== y[1] ? x[1] - y[1] : x[2] - y[2];
}
function isAfter(p, last) {
  if (last === null) return true;
  const a = positionKey(p);
  const b = positionKey(last);
  if (!a || !b || a[0] !== b[0]) return true;
  return a[1] > b[1] || a[1] === b[1] && a[2] > b[2];
}
function absolute(baseUrl, path) {
  const here = typeof location !== "undefined" ? location.href : void 0;
  if (!here && !/^https?:\/\//.test(baseUrl)) {
    throw new TypeError(
      `the server's URL must be absolute outside a browser page (e.g. "http://127.0.0.1:8080"), not ${JSON.stringify(baseUrl)}`
    );
  }
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
function fetchEventSource(url, sink) {
  const abort = new AbortController();
  const parser = createParser({
    onEvent: (m) => sink.message(m.event ?? "message", m.data, m.id ?? "")
  });
  (async () => {
    const res = await fetch(url, { headers: { Accept: "text/event-stream" }, signal: abort.signal });
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => "");
      throw new Error(`${res.status} ${text.slice(0, 300)}`);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (; ; ) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
    throw new Error("the server ended the stream");
  })().catch((e) => {
    if (!abort.signal.aborted) sink.dropped(`the event stream dropped: ${e instanceof Error ? e.message : String(e)}`);
  });
  return { close: () => abort.abort() };
}
function browserEventSource(url, sink) {
  const source = new EventSource(url);
  let open = true;
  source.onmessage = (m) => sink.message("message", m.data, m.lastEventId);
  for (const kind of ["clock", "snapshot", "lagged", "error", "close"]) {
    source.addEventListener(kind, (m) => {
      if (m instanceof MessageEvent && typeof m.data === "string") sink.message(kind, m.data, "");
      else if (kind === "error" && open) sink.dropped("the event stream dropped");
    });
  }
  return {
    close: () => {
      open = false;
      source.close();
    }
  };
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
    /** `setFilter` calls not yet in force, oldest first: `sent` over an open WebSocket (the
     * server acknowledges each in turn), else waiting for the next stream to open. */
    this.pendingFilters = [];
    this.prefix = clockPath(options.session);
    this.transport = options.transport ?? "sse";
    if (this.transport !== "sse" && this.transport !== "websocket") {
      throw new TypeError(`transport must be "sse" or "websocket", not ${String(this.transport)}`);
    }
    this.WebSocketImpl = options.WebSocket ?? (typeof WebSocket !== "undefined" ? WebSocket : void 0);
    if (this.transport === "websocket" && !this.WebSocketImpl) {
      throw new TypeError(
        'this runtime has no WebSocket: use transport "sse", run Node with --experimental-websocket (Node 20) or pass options.WebSocket'
      );
    }
    if (options.from !== void 0) checkedPosition(options.from, "from");
    absolute(baseUrl, "/");
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
  on(type, cb) {
    if (!isEventType(type)) throw new TypeError(`not an event type: ${JSON.stringify(type)}`);
    return this.onEvent((e) => {
      if (e.event_type === type) cb(e);
    });
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
    if (this.state === "closed") return Promise.reject(new Error("the feed is closed"));
    for (const t of filter.eventTypes ?? []) {
      if (!isEventType(t)) return Promise.reject(new TypeError(`not an event type: ${JSON.stringify(t)}`));
    }
    const next = { locationIds: filter.locationIds, eventTypes: filter.eventTypes };
    const socket = this.socket;
    const sent = socket !== null && socket.readyState === 1;
    const done = new Promise((resolve, reject) => {
      this.pendingFilters.push({ sent, filter: next, snapshot: filter.snapshot ?? false, resolve, reject });
    });
    if (!sent) {
      this.filter = next;
      this.wantSnapshot = filter.snapshot ?? false;
    }
    if (sent) {
      socket.send(JSON.stringify({
        type: "filter",
        location_id: filter.locationIds ?? [],
        event_type: filter.eventTypes ?? [],
        snapshot: filter.snapshot ?? false
      }));
    } else {
      this.reopen(0);
    }
    return done;
  }
  close() {
    if (this.state === "closed") return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.current?.close();
    this.current = null;
    this.socket = null;
    this.setStatus("closed");
    for (const p of this.pendingFilters.splice(0)) p.reject(new Error("the feed is closed"));
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
    for (const p of this.pendingFilters) {
      if (p.sent) {
        this.filter = p.filter;
        this.wantSnapshot = p.snapshot;
      }
      p.sent = false;
    }
    const snapshot = this.wantSnapshot;
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
  /** A sink for one connection: what it says counts only while it is the current one. */
  sink(owner) {
    return {
      message: (kind, data, id) => {
        if (this.current !== owner()) return;
        if (kind === "message") this.deliver(parseEvent(JSON.parse(data)), id);
        else this.control(JSON.parse(data));
      },
      dropped: (message) => {
        if (this.current === owner()) this.dropped(message);
      }
    };
  }
  openSse(snapshot) {
    const url = absolute(this.baseUrl, `${this.prefix}/events${query(this.filter, snapshot, this.last)}`);
    let connection = null;
    const sink = this.sink(() => connection);
    connection = typeof EventSource !== "undefined" ? browserEventSource(url, sink) : fetchEventSource(url, sink);
    this.current = connection;
  }
  openWebSocket(snapshot) {
    const url = absolute(this.baseUrl, `${this.prefix}/ws${query(this.filter, snapshot, this.last)}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const Impl = this.WebSocketImpl;
    const socket = new Impl(url.toString());
    this.current = socket;
    this.socket = socket;
    socket.onmessage = (m) => {
      if (this.current !== socket) return;
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
        if (clock.reason === "connected" || clock.reason === "restarted") {
          for (const p of this.pendingFilters.filter((f) => !f.sent)) {
            this.pendingFilters.splice(this.pendingFilters.indexOf(p), 1);
            p.resolve();
          }
        }
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
        } else {
          const i = this.pendingFilters.findIndex((f) => f.sent);
          if (i >= 0) this.pendingFilters.splice(i, 1)[0].reject(new Error(text));
        }
        break;
      }
      case "close":
        this.emit(this.handlers.error, { kind: "closed", message: String(message.reason ?? "") });
        this.dropped("the server closed the stream");
        break;
      case "filter": {
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
};
var ControlError = class extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
    this.name = "ControlError";
  }
};
function clockPath(session) {
  if (session === void 0) return "/v1";
  if (typeof session !== "string" || !/^[0-9A-Za-z_-]+$/.test(session)) {
    throw new TypeError(`session must be a session's id, as createSession gave it, not ${JSON.stringify(session)}`);
  }
  return `/v1/sessions/${session}`;
}
async function answerOf(res) {
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = JSON.parse(text).error ?? text;
    } catch {
    }
    throw new ControlError(res.status, message);
  }
  return text ? JSON.parse(text) : void 0;
}
function control(baseUrl, token, options = {}) {
  const url = absolute(baseUrl, `${clockPath(options.session)}/clock`);
  const answer = (res) => answerOf(res);
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
    },
    step: (seconds) => change({ step: seconds })
  };
}
async function createSession(baseUrl, options = {}) {
  const { token: needed, start, ...rest } = options;
  const body = { ...rest };
  if (start instanceof Date) body.start = start.toISOString();
  else if (start !== void 0) body.start = start;
  const headers = { "Content-Type": "application/json" };
  if (needed !== void 0) headers.Authorization = `Bearer ${needed}`;
  const made = await answerOf(
    await fetch(absolute(baseUrl, "/v1/sessions"), { method: "POST", headers, body: JSON.stringify(body) })
  );
  const session = { session: made.id };
  return {
    id: made.id,
    token: made.token,
    clock: made.clock,
    control: control(baseUrl, made.token, session),
    connect: (connectOptions = {}) => connect(baseUrl, { ...connectOptions, ...session }),
    end: async () => {
      await answerOf(await fetch(absolute(baseUrl, `${clockPath(made.id)}`), {
        method: "DELETE",
        headers: { Authorization: `Bearer ${made.token}` }
      }));
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
  comparePositions,
  connect,
  control,
  createSession,
  isEventType,
  kitchens,
  parseEvent
};
//# sourceMappingURL=caspers-replay.js.map
