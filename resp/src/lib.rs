//! RESP framing for rockraft: request bytes → argument vectors, replies → bytes.
//!
//! Decoding of multibulk requests is done by `redis-protocol`; this crate adds what a
//! Redis server needs on top of a codec: Redis's request limits and exact protocol error
//! strings (checked on the headers before the codec decodes), inline commands
//! (`PING\r\n`, as redis-benchmark's PING_INLINE sends), and a [`Reply`] type that encodes
//! for whichever protocol (RESP2 or RESP3) the connection negotiated with `HELLO`.

mod inline;
pub mod reply;
mod request;

pub use reply::{Protocol, Reply};
pub use request::{decode_request, ProtocolError, RequestLimits};
