//! Replies, encoded for the protocol the connection speaks.
//!
//! Commands build a [`Reply`]; the connection encodes it with `redis-protocol` as RESP2 or RESP3.
//! RESP3-only types degrade the way Redis degrades them for RESP2 clients: maps and sets become
//! flat arrays, doubles and verbatim strings become bulk strings, booleans become 1/0.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::{encode::extend_encode as encode2, types::BytesFrame as F2};
use redis_protocol::resp3::{
    encode::complete::extend_encode as encode3,
    types::{BytesFrame as F3, FrameMap, FrameSet, VerbatimStringFormat},
};

/// The protocol a connection speaks, chosen with `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// One reply to a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Simple(String),
    /// Full error text, code included (`ERR …`, `WRONGTYPE …`).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// The null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    /// A map in RESP3, an array of `[key, value]` arrays in RESP2 (XREAD's reply).
    Pairs(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    /// A double Redis prints as a long double in human form (`"%.17Lf"` without trailing
    /// zeros, as GEOPOS does): a bulk string in RESP2, a double in RESP3.
    HumanDouble(f64),
    Bool(bool),
    /// Text shown as-is by clients (`INFO`); a bulk string in RESP2.
    Verbatim(String),
    /// An out-of-band message (pub/sub): a RESP3 push, an array in RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command, written one after the other (SUBSCRIBE of several
    /// channels confirms each).
    Many(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// An error reply; `msg` carries its code (`ERR …`).
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoded reply to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        if let Reply::Many(replies) = self {
            for r in replies {
                r.encode(proto, out);
            }
            return;
        }
        // Encoding an in-memory frame cannot fail: the buffer is extended before writing.
        match proto {
            Protocol::Resp2 => self.encode2(out),
            Protocol::Resp3 => {
                encode3(out, &self.to_resp3(), false).expect("encode RESP3 reply");
            }
        }
    }

    /// RESP2 has two nulls, `$-1` and `*-1`, and the codec's frames only the first: a null
    /// array (at any depth, e.g. an EXEC element) is written here, the rest by the codec.
    fn encode2(&self, out: &mut BytesMut) {
        match self {
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Pairs(pairs) if self.holds_nil_array() => {
                out.extend_from_slice(format!("*{}\r\n", pairs.len()).as_bytes());
                for (k, v) in pairs {
                    out.extend_from_slice(b"*2\r\n");
                    k.encode2(out);
                    v.encode2(out);
                }
            }
            Reply::Array(items) | Reply::Set(items) if items.iter().any(Reply::holds_nil_array) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode2(out);
                }
            }
            _ => {
                encode2(out, &self.to_resp2(), false).expect("encode RESP2 reply");
            }
        }
    }

    fn holds_nil_array(&self) -> bool {
        match self {
            Reply::NilArray => true,
            Reply::Array(items) | Reply::Set(items) => items.iter().any(Reply::holds_nil_array),
            Reply::Pairs(pairs) => pairs
                .iter()
                .any(|(k, v)| k.holds_nil_array() || v.holds_nil_array()),
            _ => false,
        }
    }

    fn to_resp2(&self) -> F2 {
        match self {
            Reply::Simple(s) => F2::SimpleString(Bytes::copy_from_slice(s.as_bytes())),
            Reply::Error(e) => F2::Error(sanitize(e).into()),
            Reply::Int(i) => F2::Integer(*i),
            Reply::Bulk(b) => F2::BulkString(b.clone()),
            Reply::Nil | Reply::NilArray => F2::Null,
            // (Inside another reply, as in EXEC, one of several replies stands for itself.)
            Reply::Many(items) if items.len() == 1 => items[0].to_resp2(),
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Many(items) => {
                F2::Array(items.iter().map(Reply::to_resp2).collect())
            }
            Reply::Map(pairs) => F2::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()])
                    .collect(),
            ),
            Reply::Pairs(pairs) => F2::Array(
                pairs
                    .iter()
                    .map(|(k, v)| F2::Array(vec![k.to_resp2(), v.to_resp2()]))
                    .collect(),
            ),
            Reply::Double(d) => F2::BulkString(format_double_g17(*d).into()),
            Reply::HumanDouble(d) => F2::BulkString(format_human(*d).into()),
            Reply::Bool(b) => F2::Integer(*b as i64),
            Reply::Verbatim(s) => F2::BulkString(Bytes::copy_from_slice(s.as_bytes())),
        }
    }

    fn to_resp3(&self) -> F3 {
        match self {
            Reply::Simple(s) => F3::SimpleString {
                data: Bytes::copy_from_slice(s.as_bytes()),
                attributes: None,
            },
            Reply::Error(e) => F3::SimpleError {
                data: sanitize(e).into(),
                attributes: None,
            },
            Reply::Int(i) => F3::Number {
                data: *i,
                attributes: None,
            },
            Reply::Bulk(b) => F3::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Nil | Reply::NilArray => F3::Null,
            Reply::Many(items) if items.len() == 1 => items[0].to_resp3(),
            Reply::Array(items) | Reply::Many(items) => F3::Array {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Push(items) => F3::Push {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Set(items) => F3::Set {
                data: items.iter().map(Reply::to_resp3).collect::<FrameSet<_>>(),
                attributes: None,
            },
            Reply::Map(pairs) | Reply::Pairs(pairs) => F3::Map {
                data: pairs
                    .iter()
                    .map(|(k, v)| (k.to_resp3(), v.to_resp3()))
                    .collect::<FrameMap<_, _>>(),
                attributes: None,
            },
            Reply::Double(d) | Reply::HumanDouble(d) => F3::Double {
                data: *d,
                attributes: None,
            },
            Reply::Bool(b) => F3::Boolean {
                data: *b,
                attributes: None,
            },
            Reply::Verbatim(s) => F3::VerbatimString {
                data: Bytes::copy_from_slice(s.as_bytes()),
                format: VerbatimStringFormat::Text,
                attributes: None,
            },
        }
    }
}

/// Redis never lets a newline into an error line (it would break the protocol).
fn sanitize(e: &str) -> String {
    e.replace(['\r', '\n'], " ")
}

/// Formats a double as Redis 7.0's `addReplyDouble` does in RESP2 (`"%.17g"`: 17 significant
/// digits, no trailing zeros, an exponent below 1e-4 and from 1e17; `inf`/`-inf`).
pub fn format_double_g17(d: f64) -> String {
    format_g(d, 17)
}

/// `printf("%.<precision>g", d)` (`nan` without a sign).
pub fn format_g(d: f64, precision: usize) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, d);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{:.*}", (p as i32 - 1 - exp) as usize, d))
    }
}

/// Redis's `ld2string` in human mode for a double: 17 decimals, trailing zeros and a bare
/// point removed, `-0` as `0`.
pub fn format_human(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    let s = format!("{d:.17}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Formats a double as Redis does for RESP2 replies (human form: no exponent, no trailing zeros; `inf`/`-inf`).
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's shortest round-trip form never uses an exponent, like Redis's human format.
    format!("{}", d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: Reply, p: Protocol) -> String {
        let mut out = BytesMut::new();
        r.encode(p, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn doubles_print_as_printf_g17() {
        for (d, want) in [
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (3.0, "3"),
            (1e20, "1e+20"),
            (1e-05, "1.0000000000000001e-05"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.30000000000000004, "0.30000000000000004"),
            (-2.5, "-2.5"),
            (1e16, "10000000000000000"),
            (0.0001, "0.0001"),
            (f64::INFINITY, "inf"),
            (-0.0, "-0"),
        ] {
            assert_eq!(format_double_g17(d), want, "{d}");
        }
    }

    #[test]
    fn resp2_encodings() {
        use Protocol::Resp2;
        assert_eq!(enc(Reply::ok(), Resp2), "+OK\r\n");
        assert_eq!(enc(Reply::err("ERR x"), Resp2), "-ERR x\r\n");
        assert_eq!(enc(Reply::Nil, Resp2), "$-1\r\n");
        assert_eq!(enc(Reply::NilArray, Resp2), "*-1\r\n");
        assert_eq!(
            enc(
                Reply::Array(vec![Reply::Int(1), Reply::NilArray, Reply::Nil]),
                Resp2
            ),
            "*3\r\n:1\r\n*-1\r\n$-1\r\n"
        );
        assert_eq!(enc(Reply::Int(-3), Resp2), ":-3\r\n");
        assert_eq!(enc(Reply::bulk("ab"), Resp2), "$2\r\nab\r\n");
        assert_eq!(
            enc(Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]), Resp2),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(Reply::Bool(true), Resp2), ":1\r\n");
    }

    #[test]
    fn resp3_encodings() {
        use Protocol::Resp3;
        assert_eq!(enc(Reply::Nil, Resp3), "_\r\n");
        assert_eq!(
            enc(Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]), Resp3),
            "%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(Reply::Bool(false), Resp3), "#f\r\n");
        assert_eq!(enc(Reply::Verbatim("x".into()), Resp3), "=5\r\ntxt:x\r\n");
    }

    #[test]
    fn errors_never_carry_newlines() {
        assert_eq!(
            enc(Reply::err("ERR a\r\nb"), Protocol::Resp2),
            "-ERR a  b\r\n"
        );
    }
}
