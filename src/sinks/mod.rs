//! Where expanded events go: JSON lines files for batch consumers (and, with the live feed,
//! SSE and WebSocket subscribers).

pub mod files;
