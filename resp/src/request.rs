//! Request decoding with Redis's limits and error strings.
//!
//! Redis reads a request as a multibulk (`*<n>\r\n` followed by `n` bulk strings) when the
//! first byte is `*`, and as an inline command otherwise. An incomplete request means
//! "read more", never an error. A malformed request cannot be resynchronised, so the caller
//! replies with the error and closes the connection, as Redis does.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::{decode::decode_bytes_mut, types::BytesFrame};

use crate::inline;

/// Longest header or inline line Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;

/// Limits a server applies while reading requests.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Largest bulk string accepted (Redis's `proto-max-bulk-len`, 512 MB by default).
    pub max_bulk_len: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_bulk_len: 512 * 1024 * 1024,
        }
    }
}

/// A request that cannot be parsed. `Display` gives the text after `-ERR `, exactly as Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: {0}")]
    Other(String),
}

/// Takes one request off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds no complete request yet, and `Ok(Some(argv))` with the
/// bytes of the request removed from `buf` otherwise. An empty `argv` (blank inline line,
/// `*0`) is a request with nothing to execute; Redis ignores those.
pub fn decode_request(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return inline::decode(buf);
    }
    match scan_multibulk(buf, limits)? {
        Scan::Incomplete => Ok(None),
        Scan::Empty(consumed) => {
            let _ = buf.split_to(consumed);
            Ok(Some(Vec::new()))
        }
        Scan::Complete => match decode_bytes_mut(buf) {
            Ok(Some((BytesFrame::Array(items), _, _))) => items
                .into_iter()
                .map(|f| match f {
                    BytesFrame::BulkString(b) => Ok(b),
                    _ => Err(ProtocolError::Other("expected bulk strings".into())),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Ok(Some(_)) => Err(ProtocolError::InvalidMultibulkLength),
            Ok(None) => Ok(None),
            Err(e) => Err(ProtocolError::Other(e.to_string())),
        },
    }
}

enum Scan {
    Incomplete,
    /// `*0` or a negative count: Redis skips it. Holds the bytes to drop.
    Empty(usize),
    Complete,
}

/// Walks the headers of a multibulk request without copying, enforcing Redis's limits, so
/// that a bad length is rejected before its body is awaited.
fn scan_multibulk(buf: &[u8], limits: &RequestLimits) -> Result<Scan, ProtocolError> {
    let (count, mut pos) = match read_header_line(buf, 1)? {
        Some((line, next)) => (parse_len(line), next),
        None if buf.len() > INLINE_MAX_SIZE => return Err(ProtocolError::TooBigMultibulkCount),
        None => return Ok(Scan::Incomplete),
    };
    let count = match count {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if count <= 0 {
        return Ok(Scan::Empty(pos));
    }
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Scan::Incomplete);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::ExpectedBulk(buf[pos] as char));
        }
        let (len, next) = match read_header_line(buf, pos + 1)? {
            Some((line, next)) => (parse_len(line), next),
            None if buf.len() - pos > INLINE_MAX_SIZE => {
                return Err(ProtocolError::TooBigBulkCount)
            }
            None => return Ok(Scan::Incomplete),
        };
        let len = match len {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => n as usize,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        let end = next + len + 2;
        if end > buf.len() {
            return Ok(Scan::Incomplete);
        }
        pos = end;
    }
    Ok(Scan::Complete)
}

/// Finds the `\r\n`-terminated line that starts at `start`; returns it and the offset after it.
fn read_header_line(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[start.min(buf.len())..];
    match rest.iter().position(|&b| b == b'\r') {
        Some(i) if i + 1 < rest.len() => Ok(Some((&rest[..i], start + i + 2))),
        _ => Ok(None),
    }
}

/// Parses a length the way Redis's `string2ll` does: optional `-`, digits only, fits in i64.
fn parse_len(line: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(line).ok()?;
    if s.is_empty() || s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        decode_request(&mut buf, &RequestLimits::default())
    }

    #[test]
    fn multibulk_complete_and_partial() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(
            decode(full).unwrap().unwrap(),
            vec![Bytes::from("GET"), Bytes::from("k")]
        );
        for cut in 1..full.len() {
            assert_eq!(decode(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\nPI"[..]);
        let l = RequestLimits::default();
        assert!(decode_request(&mut buf, &l).unwrap().is_some());
        assert!(decode_request(&mut buf, &l).unwrap().is_some());
        assert_eq!(decode_request(&mut buf, &l).unwrap(), None);
        assert_eq!(&buf[..], b"PI");
    }

    #[test]
    fn redis_error_strings() {
        assert_eq!(
            decode(b"*x\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            decode(b"*1\r\n+OK\r\n"),
            Err(ProtocolError::ExpectedBulk('+'))
        );
        assert_eq!(
            decode(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            ProtocolError::ExpectedBulk('+').to_string(),
            "Protocol error: expected '$', got '+'"
        );
    }

    #[test]
    fn bulk_over_limit_is_rejected_before_the_body_arrives() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$1025\r\n"[..]);
        let limits = RequestLimits { max_bulk_len: 1024 };
        assert_eq!(
            decode_request(&mut buf, &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        let mut buf = BytesMut::from(&b"*0\r\n*1\r\n$4\r\nPING\r\n"[..]);
        let l = RequestLimits::default();
        assert_eq!(decode_request(&mut buf, &l).unwrap(), Some(vec![]));
        assert_eq!(
            decode_request(&mut buf, &l).unwrap(),
            Some(vec![Bytes::from("PING")])
        );
    }

    #[test]
    fn header_without_terminator_is_bounded() {
        let mut big = b"*".to_vec();
        big.extend(std::iter::repeat_n(b'1', INLINE_MAX_SIZE + 1));
        assert_eq!(decode(&big), Err(ProtocolError::TooBigMultibulkCount));
    }
}
