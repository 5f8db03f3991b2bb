//! Where expanded events go: JSON lines files for batch consumers; for the live feed, a
//! hub that frames each tick's events once per transport and fans them out to subscribers'
//! byte-bounded queues, drained by SSE and WebSocket writers; the WebSocket wire format and its compression.

pub mod arrow;
pub mod files;
pub mod filter;
pub mod hub;
pub mod nats;
pub mod queue;
pub mod websocket;
