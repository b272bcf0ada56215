//! Redis's long double arithmetic, for INCRBYFLOAT and HINCRBYFLOAT. Redis parses with
//! `strtold`, adds in x87 80-bit extended precision, and prints with `"%.17Lf"` minus trailing
//! zeros (`ld2string`, human mode): so `0.1 + 0.2` is `0.3` there, and `1e308 + 1e308` is a
//! 309-digit integer rather than an overflow. Doing it in f64 would differ from Redis, so this
//! computes exactly what Redis does: LLVM's APFloat (`rustc_apfloat`) for parsing and adding,
//! correctly rounded, and an exact decimal expansion for printing.

use rustc_apfloat::ieee::X87DoubleExtended as F80;
use rustc_apfloat::{Float, Round, Status};

/// A long double value.
#[derive(Clone, Copy, Debug)]
pub struct LongDouble(F80);

/// Redis's buffer for a long double argument (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// `a + b`, rounded to nearest as the x87 unit does.
impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    fn add(self, other: LongDouble) -> LongDouble {
        LongDouble(self.0.add_r(other.0, Round::NearestTiesToEven).value)
    }
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble(F80::ZERO);

    /// Parses as Redis's `string2ld`: the whole string, no leading space, not NaN, and
    /// neither an overflow nor an underflow to zero.
    pub fn parse(b: &[u8]) -> Option<LongDouble> {
        if b.is_empty() || b.len() >= MAX_CHARS || b[0].is_ascii_whitespace() {
            return None;
        }
        let s = std::str::from_utf8(b).ok()?;
        let (negative, unsigned) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = unsigned.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            let inf = F80::INFINITY;
            return Some(LongDouble(if negative { -inf } else { inf }));
        }
        if lower.starts_with("nan") || unsigned.starts_with(['+', '-']) || unsigned.is_empty() {
            return None;
        }
        if !crate::strtod::whole_number(unsigned.as_bytes()) {
            return None;
        }
        // strtold takes a hexadecimal number without a binary exponent; APFloat wants one.
        let text = if lower.starts_with("0x") && !lower.contains('p') {
            format!("{unsigned}p0")
        } else {
            unsigned.to_string()
        };
        let parsed = F80::from_str_r(&text, Round::NearestTiesToEven).ok()?;
        let v = parsed.value;
        if v.is_nan()
            || parsed.status.contains(Status::OVERFLOW)
            || v.is_infinite()
            || (v.is_zero() && parsed.status.contains(Status::UNDERFLOW))
        {
            return None;
        }
        Some(LongDouble(if negative { -v } else { v }))
    }

    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }

    pub fn is_infinite(self) -> bool {
        self.0.is_infinite()
    }

    /// Redis's text for the value (`ld2string` in human mode).
    pub fn to_redis_string(self) -> String {
        if self.0.is_infinite() {
            return if self.0.is_negative() { "-inf" } else { "inf" }.into();
        }
        let bits = self.0.to_bits();
        let negative = (bits >> 79) & 1 == 1;
        let exponent = ((bits >> 64) & 0x7fff) as i64;
        let significand = bits as u64;
        // value = significand * 2^shift
        let shift = if exponent == 0 { 1 } else { exponent } - 16383 - 63;
        let digits = scaled_digits(significand, shift);
        let mut out = String::with_capacity(digits.len() + 2);
        if negative {
            out.push('-');
        }
        let (int, frac) = digits.split_at(digits.len() - 17);
        out.push_str(int);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }
}

/// The decimal digits of `round_half_even(significand * 2^shift * 10^17)`, at least 18 of
/// them (so there is an integer digit before the 17 decimals).
fn scaled_digits(significand: u64, shift: i64) -> String {
    const TEN17: u128 = 100_000_000_000_000_000;
    let digits = if shift >= 0 {
        let mut n = BigUint::from_u128(significand as u128 * TEN17);
        n.shl(shift as u32);
        n.into_decimal()
    } else {
        let num = significand as u128 * TEN17; // < 2^121
        let s = (-shift) as u32;
        let q = if s >= 128 {
            0
        } else {
            let q = num >> s;
            let rem = num - (q << s);
            let half = 1u128 << (s - 1);
            if rem > half || (rem == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        };
        q.to_string()
    };
    format!("{digits:0>18}")
}

/// Just enough of a big unsigned integer to print a long double exactly.
struct BigUint {
    /// Little-endian 32-bit limbs.
    limbs: Vec<u32>,
}

impl BigUint {
    fn from_u128(v: u128) -> BigUint {
        let limbs = (0..4).map(|i| (v >> (32 * i)) as u32).collect();
        let mut n = BigUint { limbs };
        n.trim();
        n
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn shl(&mut self, bits: u32) {
        let (words, bits) = ((bits / 32) as usize, bits % 32);
        let mut out = vec![0u32; words];
        let mut carry = 0u32;
        for &l in &self.limbs {
            if bits == 0 {
                out.push(l);
            } else {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
        }
        if carry != 0 {
            out.push(carry);
        }
        self.limbs = out;
        self.trim();
    }

    /// Divides in place by `d`; the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for l in self.limbs.iter_mut().rev() {
            let cur = (rem << 32) | *l as u64;
            *l = (cur / d as u64) as u32;
            rem = cur % d as u64;
        }
        self.trim();
        rem as u32
    }

    fn into_decimal(mut self) -> String {
        if self.limbs.is_empty() {
            return "0".into();
        }
        let mut chunks = Vec::new();
        while !self.limbs.is_empty() {
            chunks.push(self.div_small(1_000_000_000));
        }
        let mut s = chunks.pop().expect("non-zero").to_string();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> String {
        (LongDouble::parse(a.as_bytes()).unwrap() + LongDouble::parse(b.as_bytes()).unwrap())
            .to_redis_string()
    }

    #[test]
    fn sums_print_as_redis_prints_them() {
        // Each expected text is what Redis 7.0 (x86-64) answers to INCRBYFLOAT.
        assert_eq!(incr("0.1", "0.2"), "0.3");
        assert_eq!(incr("10.5", "0.1"), "10.6");
        assert_eq!(incr("1.5", "0.1"), "1.6");
        assert_eq!(incr("0", "5e-324"), "0");
        assert_eq!(incr("3.0e3", "1"), "3001");
        assert_eq!(incr("-1", "0.5"), "-0.5");
        assert_eq!(incr("-0.00000000000000001", "0"), "-0.00000000000000001");
        assert_eq!(incr("-0.000000000000000001", "0"), "0");
        assert_eq!(incr("5.0e3", "2.0e2"), "5200");
        assert_eq!(incr("0x10", "1"), "17");
        assert_eq!(
            incr("1e308", "1e308"),
            "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096"
        );
        assert_eq!(incr("inf", "0"), "inf");
    }

    #[test]
    fn parsing_follows_string2ld() {
        for bad in [
            "", " 1", "1 ", "abc", "nan", "-nan", "1e", "1e99999", "1e-99999", "--1", "+-1", "0x",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        for good in [
            "1",
            "+1",
            "-1",
            ".5",
            "5.",
            "1e-4940",
            "INF",
            "-Infinity",
            "0e-99999",
            "007",
        ] {
            assert!(LongDouble::parse(good.as_bytes()).is_some(), "{good:?}");
        }
    }
}
