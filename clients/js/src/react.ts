// React hooks over the caspers-replay client (`caspers-replay-client/react`).
//
// A component subscribes with `useFeed` and re-renders with the latest events (or the
// state a reducer folds them into), the clock and the connection's status. The feed opens
// in an effect, so nothing runs during server-side rendering: there the status is
// `connecting` and the lists are empty.

import { useEffect, useMemo, useRef, useState } from 'react';
import { connect, control } from './caspers-replay.js';
import type {
  CaspersEvent,
  ClockMessage,
  ConnectOptions,
  Control,
  EventType,
  Feed,
  FeedError,
  FeedStatus,
  LagNotice,
  Snapshot,
} from './caspers-replay.js';

/** What every `useFeed` gives. */
export interface FeedView {
  /** The last clock message (null before the first). */
  clock: ClockMessage | null;
  status: FeedStatus;
  /** The last error (a dropped connection, a refused filter), null once events flow again. */
  error: FeedError | null;
  /** The last lag notice, if any. */
  lag: LagNotice | null;
  /** The feed itself (null during server-side rendering and before the first effect). */
  feed: Feed | null;
}

export interface UseFeedOptions extends Omit<ConnectOptions, 'from'> {
  /** How many of the latest events to keep (default 100). */
  keep?: number;
}

export interface UseReducedFeedOptions<S> extends Omit<ConnectOptions, 'from'> {
  /** Folds each event into the state. */
  reduce: (state: S, event: CaspersEvent) => S;
  /** Replaces the state with a snapshot's (at the start, and after every seek, when
   * `snapshot` is set). Without it, snapshots leave the state as it is. */
  fromSnapshot?: (state: S, snapshot: Snapshot) => S;
  initialState: S;
}

/** The latest events of the live feed at `baseUrl`, the clock and the status. */
export function useFeed(baseUrl: string, options?: UseFeedOptions): FeedView & { events: CaspersEvent[] };
/** The live feed at `baseUrl` folded into a state by `options.reduce`. */
export function useFeed<S>(baseUrl: string, options: UseReducedFeedOptions<S>): FeedView & { state: S };
export function useFeed<S>(
  baseUrl: string,
  options: UseFeedOptions | UseReducedFeedOptions<S> = {},
): FeedView & { events?: CaspersEvent[]; state?: S } {
  const reduced = 'reduce' in options;
  const [view, setView] = useState<FeedView>({
    clock: null,
    status: 'connecting',
    error: null,
    lag: null,
    feed: null,
  });
  const [events, setEvents] = useState<CaspersEvent[]>([]);
  const [state, setState] = useState<S | undefined>(reduced ? options.initialState : undefined);
  // The latest options, read by the handlers without reopening the feed.
  const latest = useRef(options);
  latest.current = options;

  const transport = options.transport ?? 'sse';
  const locations = key(options.locationIds);
  const types = key(options.eventTypes);
  const snapshot = options.snapshot ?? false;
  const feedRef = useRef<Feed | null>(null);

  // One feed per server and transport; a filter change goes through setFilter.
  useEffect(() => {
    let feed: Feed;
    try {
      const o = latest.current;
      feed = connect(baseUrl, {
        transport,
        locationIds: o.locationIds,
        eventTypes: o.eventTypes,
        snapshot: o.snapshot,
        backoff: o.backoff,
        WebSocket: o.WebSocket,
      });
    } catch (e) {
      setView((v) => ({ ...v, error: { kind: 'connection', message: String(e instanceof Error ? e.message : e) } }));
      return undefined;
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
        if ('reduce' in o && o.fromSnapshot) {
          const from = o.fromSnapshot;
          setState((st) => from(st as S, s));
        }
      }),
      feed.onEvent((e) => {
        const o = latest.current;
        if ('reduce' in o) {
          const reduce = o.reduce;
          setState((st) => reduce(st as S, e));
        } else {
          const keep = o.keep ?? 100;
          setEvents((list) => (list.length >= keep ? [...list.slice(list.length - keep + 1), e] : [...list, e]));
        }
        setView((v) => (v.error ? { ...v, error: null } : v));
      }),
    ];
    return () => {
      for (const f of off) f();
      feed.close();
      feedRef.current = null;
    };
  }, [baseUrl, transport]);

  // A filter change on the open feed, from its last position: nothing lost or repeated.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const o = latest.current;
    // A refusal reaches the view through onError.
    feedRef.current
      ?.setFilter({ locationIds: o.locationIds, eventTypes: o.eventTypes, snapshot: o.snapshot })
      .catch(() => undefined);
  }, [locations, types, snapshot]);

  return reduced ? { ...view, state: state as S } : { ...view, events };
}

function key(list: readonly (number | EventType)[] | undefined): string {
  return list ? list.join(',') : '';
}

/** The simulated time of a feed's clock, re-rendered every `everyMs` (default 1000) while
 * it runs: for a clock on screen. NaN before the first clock message. */
export function useClock(feed: Feed | null, everyMs = 1000): number {
  const [now, setNow] = useState(() => (feed ? feed.clock.now() : NaN));
  useEffect(() => {
    if (!feed) return undefined;
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

/** The presenter's controls of the server at `baseUrl` (null without a token). */
export function useControl(baseUrl: string, token: string | null | undefined): Control | null {
  return useMemo(() => (token ? control(baseUrl, token) : null), [baseUrl, token]);
}
