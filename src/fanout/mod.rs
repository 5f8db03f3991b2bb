//! The delivery engine of the live feed: a hub that frames each tick's events once per
//! group of subscribers (filter and transport) and fans them out to byte-bounded client
//! queues; writer threads that drain the queues onto the sockets as the kernel takes them
//! (epoll through mio); the WebSocket wire format with shared permessage-deflate; and
//! publishing to NATS JetStream.

pub mod hub;
pub mod jetstream;
pub mod queue;
pub mod websocket;
pub mod writers;
