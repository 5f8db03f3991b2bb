// What the client's types promise, checked by `tsc -p test/types` (npm run test:types):
// each `@ts-expect-error` line must be an error, and every other line must compile, so a
// type that loosens (or tightens by mistake) fails the build. It imports the package by
// its own name, as an app does, so the published declarations are what is checked.
import { comparePositions, connect } from 'caspers-replay-client';
import type { CaspersEvent, ClockReason, EventOf, Filter } from 'caspers-replay-client';
import { useFeed } from 'caspers-replay-client/react';

declare const e: CaspersEvent;

// A body field that may be missing is `number | undefined`: using it unchecked fails.
if (e.event_type === 'driver_ping') {
  // @ts-expect-error loc_lat may be undefined (a ping without a location)
  const lat: number = e.body.loc_lat;
  if (e.body.loc_lat !== undefined) {
    // Checking one field narrows the body: the others are there too.
    const where: [number, number] = [e.body.loc_lat, e.body.loc_lon];
    void where;
  }
  void lat;
}
if (e.event_type === 'delivered') {
  // @ts-expect-error delivered_lat may be undefined
  Math.round(e.body.delivered_lat);
}
if (e.event_type === 'order_created') {
  // Always there: no check needed.
  const n: number = e.body.items.length + e.body.customer_lat;
  void n;
}
if (e.event_type === 'gk_started') {
  // @ts-expect-error an empty body has no members to read
  void e.body.anything;
}

// Filters take readonly arrays (an `as const` configuration).
const config = { locationIds: [1, 2], eventTypes: ['driver_ping', 'delivered'] } as const;
const filter: Filter = config;
void filter;
// @ts-expect-error not an event type
const badFilter: Filter = { eventTypes: ['driver_pinged'] };
void badFilter;

// The clock's reasons are a closed list.
const reason: ClockReason = 'seek';
// @ts-expect-error a typo is not a reason
const typo: ClockReason = 'seeked';
void reason;
void typo;

// A handler for one event type gets that type, without a cast.
const feed = connect('http://127.0.0.1:8080', { ...config, transport: 'websocket' });
feed.on('driver_ping', (p) => {
  const t: 'driver_ping' = p.event_type;
  void t;
  // @ts-expect-error a ping's body has no items
  void p.body.items;
});
feed.on('order_created', (o: EventOf<'order_created'>) => void o.body.customer_addr);
// @ts-expect-error not an event type
feed.on('order_canceled', () => undefined);

// setFilter says when the new filter is in force.
const inForce: Promise<void> = feed.setFilter({ locationIds: [3] });
void inForce;

// Positions compare as numbers, not as text.
const order: number = comparePositions('1a2b3c4d-0-10', '1a2b3c4d-0-9');
void order;

// The React hook: the latest events, or a reducer's state.
function Board(): number {
  const { events, status } = useFeed('http://127.0.0.1:8080', { locationIds: [1] });
  const s: 'connecting' | 'open' | 'closed' = status;
  void s;
  const { state } = useFeed('', {
    reduce: (count: number, _ev: CaspersEvent) => count + 1,
    initialState: 0,
  });
  // @ts-expect-error a reduced feed has no events list
  void useFeed('', { reduce: (n: number) => n, initialState: 0 }).events.length;
  return events.length + state;
}
void Board;
