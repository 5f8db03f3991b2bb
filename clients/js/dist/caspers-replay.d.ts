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
export type EventOf<K extends EventType> = Extract<CaspersEvent, {
    event_type: K;
}>;
/** Why a clock message was sent: `connected` (the stream's first message), `restarted`
 * (this connection resumed from a position an earlier server process or another replica
 * sent), a presenter's `speed`, `pause`, `resume`, `seek`, `step` or `change` (several
 * at once), and `end` (the clock stopped at the dataset's end). */
export type ClockReason = 'connected' | 'restarted' | 'speed' | 'pause' | 'resume' | 'seek' | 'step' | 'change' | 'end';
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
    backoff?: {
        initialMs?: number;
        maxMs?: number;
    };
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
export declare class SimClock {
    private state;
    private anchorMs;
    /** Sets the clock from a clock message or `GET /v1/clock` answer, received now. */
    update(state: ClockState, receivedAtMs?: number): void;
    /** The last state the server sent, if any. */
    get last(): ClockState | null;
    /** Simulation time (Unix seconds) at `atMs` (default now); NaN before the first message. */
    now(atMs?: number): number;
}
/** Parses a wire event's body. */
export declare function parseEvent(wire: WireEvent): ParsedEvent;
/** Orders two positions of one dataset as the stream does: negative if `a` came first,
 * 0 if they are the same, positive if `a` came later. Throws a `TypeError` for a text
 * that is not a position, or for positions of two different datasets. */
export declare function comparePositions(a: string, b: string): number;
/** Subscribes to the live feed of the server at `baseUrl` (e.g. `http://127.0.0.1:8080`;
 * `''` for the page's own server). Throws a `TypeError` for options it cannot use (a
 * malformed `from`, an unknown transport, no WebSocket in this runtime). */
export declare function connect(baseUrl: string, options?: ConnectOptions): Feed;
/** Why a presenter's change was refused: the HTTP status and the server's message. */
export declare class ControlError extends Error {
    readonly status: number;
    constructor(status: number, message: string);
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
    seek(to: number | string | Date | {
        day: number;
    }): Promise<ClockState>;
    /** On a paused clock: emits exactly the next `seconds` of simulated time and stays
     * paused (a running clock refuses it with a 409 {@link ControlError}). */
    step(seconds: number): Promise<ClockState>;
}
/** The controls of the clock of the server at `baseUrl` with a token: the presenter's
 * of the shared clock, or with `{ session }` a session's with its own token. */
export declare function control(baseUrl: string, token: string, options?: {
    session?: string;
}): Control;
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
export declare function createSession(baseUrl: string, options?: SessionOptions): Promise<Session>;
/** A kitchen (`GET /v1/kitchens`). */
export interface Kitchen {
    location_id: number;
    code: string;
    name: string;
    lat: number;
    lon: number;
}
/** The kitchens of the server at `baseUrl`. */
export declare function kitchens(baseUrl: string): Promise<Kitchen[]>;
/** Every event type, for filters. */
export declare function isEventType(name: string): name is EventType;
