//! C's `strtod` as Redis uses it for sorted sets: scores (`string2d`: strict) and score
//! ranges (`zslParseRange`: plain strtod over the whole argument). Decimal numbers are read
//! by Rust's correctly rounded parser, hexadecimal ones by APFloat, as glibc rounds them.

use rustc_apfloat::ieee::Double;
use rustc_apfloat::{Float, Round};

/// Whether all of `s` is a number strtod reads to its end: decimal `d[.d][e[±]d]` or
/// hexadecimal `0x h[.h][p[±]d]`, with at least one mantissa digit.
pub(crate) fn whole_number(s: &[u8]) -> bool {
    let (hex, body) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    let is_digit = |c: u8| {
        if hex {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        }
    };
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < body.len() && is_digit(body[i]) {
        i += 1;
        mantissa_digits += 1;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && is_digit(body[i]) {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i == body.len() {
        return true;
    }
    let exp_mark: &[u8] = if hex { b"pP" } else { b"eE" };
    if !exp_mark.contains(&body[i]) {
        return false;
    }
    i += 1;
    if i < body.len() && (body[i] == b'+' || body[i] == b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < body.len() && body[i].is_ascii_digit() {
        i += 1;
    }
    i == body.len() && i > digits_start
}

/// What strtod made of a whole string.
struct Parsed {
    value: f64,
    /// The string spelled an infinity (so an infinite value is not an overflow).
    infinity_literal: bool,
    /// A mantissa digit was not zero (so a zero value is an underflow).
    nonzero_digits: bool,
}

fn parse(s: &[u8]) -> Option<Parsed> {
    let s = std::str::from_utf8(s).ok()?;
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let sign = |v: f64| if negative { -v } else { v };
    let lower = unsigned.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(Parsed {
            value: sign(f64::INFINITY),
            infinity_literal: true,
            nonzero_digits: true,
        });
    }
    if !whole_number(unsigned.as_bytes()) {
        // "nan" and its kin too: strtod reads them, and every caller refuses NaN.
        return None;
    }
    let nonzero_digits = unsigned
        .bytes()
        .take_while(|c| !matches!(c, b'e' | b'E' | b'p' | b'P'))
        .skip(if lower.starts_with("0x") { 2 } else { 0 })
        .any(|c| c.is_ascii_alphanumeric() && c != b'0');
    let value = if lower.starts_with("0x") {
        let text = if lower.contains('p') {
            unsigned.to_string()
        } else {
            format!("{unsigned}p0")
        };
        let v = Double::from_str_r(&text, Round::NearestTiesToEven)
            .ok()?
            .value;
        f64::from_bits(v.to_bits() as u64)
    } else {
        unsigned.parse::<f64>().ok()?
    };
    Some(Parsed {
        value: sign(value),
        infinity_literal: false,
        nonzero_digits,
    })
}

/// Redis's `string2d` (a sorted-set score, ZINCRBY's increment, a WEIGHTS value): the whole
/// string, no leading space, not NaN, no overflow to an infinity and no underflow to zero.
pub fn parse_strict(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b[0].is_ascii_whitespace() {
        return None;
    }
    let p = parse(b)?;
    if p.value.is_infinite() && !p.infinity_literal {
        return None;
    }
    if p.value == 0.0 && p.nonzero_digits {
        return None;
    }
    Some(p.value)
}

/// Plain strtod that must read the whole string and not give NaN (`zslParseRange`): leading
/// white space is skipped, an overflow is an infinity, and the empty string is 0.
pub fn parse_loose(b: &[u8]) -> Option<f64> {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .unwrap_or(b.len());
    if b.is_empty() {
        return Some(0.0);
    }
    if start == b.len() {
        // Only white space: strtod converts nothing and stops at the start.
        return None;
    }
    parse(&b[start..]).map(|p| p.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_scores_follow_string2d() {
        assert_eq!(parse_strict(b"1.5"), Some(1.5));
        assert_eq!(parse_strict(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_strict(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_strict(b"0x10"), Some(16.0));
        assert_eq!(parse_strict(b"0x1p-2"), Some(0.25));
        assert_eq!(parse_strict(b"1e-320"), Some(1e-320));
        assert_eq!(parse_strict(b"0e-999"), Some(0.0));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e400",
            b"1e-400",
            b"abc",
            b"1e",
            b"--1",
        ] {
            assert_eq!(
                parse_strict(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn range_bounds_follow_plain_strtod() {
        assert_eq!(parse_loose(b""), Some(0.0));
        assert_eq!(parse_loose(b" 2"), Some(2.0));
        assert_eq!(parse_loose(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_loose(b"   "), None);
        assert_eq!(parse_loose(b"nan"), None);
        assert_eq!(parse_loose(b"2 "), None);
    }
}
