import type { CaspersEvent, ClockMessage, ConnectOptions, Control, Feed, FeedError, FeedStatus, LagNotice, Snapshot } from './caspers-replay.js';
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
export declare function useFeed(baseUrl: string, options?: UseFeedOptions): FeedView & {
    events: CaspersEvent[];
};
/** The live feed at `baseUrl` folded into a state by `options.reduce`. */
export declare function useFeed<S>(baseUrl: string, options: UseReducedFeedOptions<S>): FeedView & {
    state: S;
};
/** The simulated time of a feed's clock, re-rendered every `everyMs` (default 1000) while
 * it runs: for a clock on screen. NaN before the first clock message. */
export declare function useClock(feed: Feed | null, everyMs?: number): number;
/** The presenter's controls of the server at `baseUrl` (null without a token). */
export declare function useControl(baseUrl: string, token: string | null | undefined): Control | null;
