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

pub use inline::split_args;
pub use reply::{Protocol, Reply};
pub use request::{decode_request, ProtocolError, RequestLimits};

/// Encodes a command the way clients send it: a multibulk of bulk strings.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}
