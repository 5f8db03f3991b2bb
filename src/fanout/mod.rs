//! The delivery engine of the live feed: a hub (hub.rs) that frames each tick's events once
//! per group of subscribers (filter and transport; framing.rs) and fans them out to
//! byte-bounded client queues (queue.rs), keeping what was emitted for resuming clients
//! (history.rs) and the orders in flight for new ones (snapshot.rs); writer threads that drain the queues onto the sockets as the kernel takes them
//! (epoll through mio); the WebSocket wire format with shared permessage-deflate; and
//! publishing to NATS JetStream.

mod framing;
mod history;
pub mod hub;
pub mod jetstream;
pub mod queue;
mod snapshot;
pub mod websocket;
pub mod writers;
