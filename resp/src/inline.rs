//! Inline commands: one line of space-separated arguments, quoted as `redis-cli` quotes them
//! (the rules of Redis's `sdssplitargs`).

use bytes::{Bytes, BytesMut};

use crate::request::{ProtocolError, INLINE_MAX_SIZE};

pub(crate) fn decode(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    if nl > INLINE_MAX_SIZE {
        return Err(ProtocolError::TooBigInline);
    }
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    split_args(line)
        .map(|args| Some(args.into_iter().map(Bytes::from).collect()))
        .ok_or(ProtocolError::UnbalancedQuotes)
}

/// Splits a line into arguments as Redis's `sdssplitargs` does (inline commands, and
/// redis.conf lines); `None` when quotes are unbalanced.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let c = *line.get(i)?;
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // A closing quote must be followed by a space or the end.
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

fn hex(c: u8) -> u8 {
    (c as char).to_digit(16).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Option<Vec<String>> {
        split_args(line.as_bytes()).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8(a).unwrap())
                .collect()
        })
    }

    #[test]
    fn splits_like_sdssplitargs() {
        assert_eq!(args("PING").unwrap(), ["PING"]);
        assert_eq!(args("  set  k   v ").unwrap(), ["set", "k", "v"]);
        assert_eq!(
            args(r#"set k "a b\n\x41""#).unwrap(),
            ["set", "k", "a b\nA"]
        );
        assert_eq!(args(r"set k 'it\'s'").unwrap(), ["set", "k", "it's"]);
        assert_eq!(args("").unwrap(), Vec::<String>::new());
        assert_eq!(args(r#"set "k"#), None);
        assert_eq!(args(r#"set "k"x"#), None);
    }

    #[test]
    fn decode_takes_one_line() {
        let mut buf = BytesMut::from(&b"PING\r\nECHO hi\nPI"[..]);
        assert_eq!(
            decode(&mut buf).unwrap().unwrap(),
            vec![Bytes::from("PING")]
        );
        assert_eq!(decode(&mut buf).unwrap().unwrap().len(), 2);
        assert_eq!(decode(&mut buf).unwrap(), None);
    }
}
