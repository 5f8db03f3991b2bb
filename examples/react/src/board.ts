// The board's state: the orders of one kitchen in flight, folded from the feed's events and
// replaced by each snapshot (at the start and after a seek).
import type { CaspersEvent, EventType, ParsedEvent, Snapshot } from 'caspers-replay-client';

export interface Order {
  id: string;
  /** The latest event of the order. */
  stage: EventType;
  created: string;
  items: number;
  address: string;
  /** Where its driver is, once on the road. */
  driver: [number, number] | null;
}

export interface Board {
  orders: ReadonlyMap<string, Order>;
  delivered: number;
}

export const emptyBoard: Board = { orders: new Map(), delivered: 0 };

function apply(orders: Map<string, Order>, e: ParsedEvent): void {
  if (e.event_type === 'order_created') {
    orders.set(e.order_id, {
      id: e.order_id,
      stage: e.event_type,
      created: e.ts,
      items: e.body.items.reduce((n, item) => n + item.qty, 0),
      address: e.body.customer_addr,
      driver: null,
    });
    return;
  }
  const order = orders.get(e.order_id);
  if (!order) return; // created before the board started: the next snapshot has it
  if (e.event_type === 'delivered') {
    orders.delete(e.order_id);
    return;
  }
  const driver: [number, number] | null =
    e.event_type === 'driver_ping' && e.body.loc_lat !== undefined
      ? [e.body.loc_lat, e.body.loc_lon]
      : order.driver;
  orders.set(e.order_id, { ...order, stage: e.event_type, driver });
}

export function reduce(board: Board, e: CaspersEvent): Board {
  const orders = new Map(board.orders);
  apply(orders, e);
  return { orders, delivered: board.delivered + (e.event_type === 'delivered' ? 1 : 0) };
}

export function fromSnapshot(board: Board, s: Snapshot): Board {
  const orders = new Map<string, Order>();
  for (const e of s.events) apply(orders, e);
  return { orders, delivered: board.delivered };
}
