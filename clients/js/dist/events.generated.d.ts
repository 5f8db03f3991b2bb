/** The body of gk_started, gk_finished, gk_ready and driver_arrived, and of the others when their data is missing. */
export type EmptyBody = Record<never, never>;
export type OrderItem = {
    id: number;
    category_id: number;
    menu_id: number;
    brand_id: number;
    name: string;
    price: number;
    qty: number;
};
/** [latitude, longitude] */
export type LatLon = [number, number];
export type OrderCreatedBody = {
    customer_lat: number;
    customer_lon: number;
    customer_addr: string;
    items: OrderItem[];
};
/** The street route from the kitchen to the customer, when the dataset has one. */
export type DriverPickedUpBody = {
    route_points: LatLon[];
} | {
    route_points?: undefined;
};
/** Where the driver is, when the dataset has it. */
export type DriverPingBody = {
    progress_pct: number;
    loc_lat: number;
    loc_lon: number;
} | {
    progress_pct?: undefined;
    loc_lat?: undefined;
    loc_lon?: undefined;
};
/** Where the order was delivered, when the dataset has it. */
export type DeliveredBody = {
    delivered_lat: number;
    delivered_lon: number;
} | {
    delivered_lat?: undefined;
    delivered_lon?: undefined;
};
/** What happened. */
export type EventType = "order_created" | "gk_started" | "gk_finished" | "gk_ready" | "driver_arrived" | "driver_picked_up" | "driver_ping" | "delivered";
/** The parsed body of each event type. */
export interface BodyByType {
    order_created: OrderCreatedBody;
    gk_started: EmptyBody;
    gk_finished: EmptyBody;
    gk_ready: EmptyBody;
    driver_arrived: EmptyBody;
    driver_picked_up: DriverPickedUpBody;
    driver_ping: DriverPingBody;
    delivered: DeliveredBody;
}
/** One event as every caspers-replay output carries it (docs/batch-replay.md, the event). body is a JSON string holding a JSON object whose members depend on event_type. */
export interface WireEvent {
    /** UUIDv5 of "{order_id}/{sequence}" in namespace 63c5c29f-7dfa-5fc2-a0cf-d03d7c34fa6c: stable across runs. */
    event_id: string;
    event_type: EventType;
    /** UTC, %Y-%m-%d %H:%M:%S.%3f */
    ts: string;
    location_id: number;
    /** The dataset's order id, suffixed -Lk on loop k of a looping replay. */
    order_id: string;
    /** Position of the event within its order. An integer: do not sort it as text. */
    sequence: number;
    /** A JSON object serialized as a string; its members depend on event_type (contentSchema, and $defs below). */
    body: string;
}
/** The event types, in the schema's order. */
export declare const EVENT_TYPES: readonly EventType[];
