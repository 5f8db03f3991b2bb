// src/react.ts
import { useEffect, useMemo, useRef, useState } from "react";
import { connect, control } from "./caspers-replay.js";
function useFeed(baseUrl, options = {}) {
  const reduced = "reduce" in options;
  const [view, setView] = useState({
    clock: null,
    status: "connecting",
    error: null,
    lag: null,
    feed: null
  });
  const [events, setEvents] = useState([]);
  const [state, setState] = useState(reduced ? options.initialState : void 0);
  const latest = useRef(options);
  latest.current = options;
  const transport = options.transport ?? "sse";
  const locations = key(options.locationIds);
  const types = key(options.eventTypes);
  const snapshot = options.snapshot ?? false;
  const feedRef = useRef(null);
  useEffect(() => {
    let feed;
    try {
      const o = latest.current;
      feed = connect(baseUrl, {
        transport,
        locationIds: o.locationIds,
        eventTypes: o.eventTypes,
        snapshot: o.snapshot,
        backoff: o.backoff,
        WebSocket: o.WebSocket
      });
    } catch (e) {
      setView((v) => ({ ...v, error: { kind: "connection", message: String(e instanceof Error ? e.message : e) } }));
      return void 0;
    }
    feedRef.current = feed;
    setView((v) => ({ ...v, feed, status: feed.status }));
    const off = [
      feed.onStatus((status) => setView((v) => ({ ...v, status }))),
      feed.onClock((clock) => setView((v) => ({ ...v, clock }))),
      feed.onError((error) => setView((v) => ({ ...v, error }))),
      feed.onLag((lag) => setView((v) => ({ ...v, lag }))),
      feed.onSnapshot((s) => {
        const o = latest.current;
        if ("reduce" in o && o.fromSnapshot) {
          const from = o.fromSnapshot;
          setState((st) => from(st, s));
        }
      }),
      feed.onEvent((e) => {
        const o = latest.current;
        if ("reduce" in o) {
          const reduce = o.reduce;
          setState((st) => reduce(st, e));
        } else {
          const keep = o.keep ?? 100;
          setEvents((list) => list.length >= keep ? [...list.slice(list.length - keep + 1), e] : [...list, e]);
        }
        setView((v) => v.error ? { ...v, error: null } : v);
      })
    ];
    return () => {
      for (const f of off) f();
      feed.close();
      feedRef.current = null;
    };
  }, [baseUrl, transport]);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const o = latest.current;
    feedRef.current?.setFilter({ locationIds: o.locationIds, eventTypes: o.eventTypes, snapshot: o.snapshot }).catch(() => void 0);
  }, [locations, types, snapshot]);
  return reduced ? { ...view, state } : { ...view, events };
}
function key(list) {
  return list ? list.join(",") : "";
}
function useClock(feed, everyMs = 1e3) {
  const [now, setNow] = useState(() => feed ? feed.clock.now() : NaN);
  useEffect(() => {
    if (!feed) return void 0;
    setNow(feed.clock.now());
    const timer = setInterval(() => setNow(feed.clock.now()), everyMs);
    const off = feed.onClock(() => setNow(feed.clock.now()));
    return () => {
      clearInterval(timer);
      off();
    };
  }, [feed, everyMs]);
  return now;
}
function useControl(baseUrl, token) {
  return useMemo(() => token ? control(baseUrl, token) : null, [baseUrl, token]);
}
export {
  useClock,
  useControl,
  useFeed
};
//# sourceMappingURL=react.js.map
