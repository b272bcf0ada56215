//! Bitmaps on string values: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO, with
//! Redis's bit order (bit 0 is the most significant bit of the first byte), its index rules
//! and its overflow rules.
//!
//! ```text
//! BITCOUNT key [start end [BYTE|BIT]]
//! BITPOS key bit [start [end [BYTE|BIT]]]
//! BITOP AND|OR|XOR|NOT destkey key [key ...]
//! BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
//!              [OVERFLOW WRAP|SAT|FAIL] ...
//! ```

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, READONLY, WRITE};
use super::string::MAX_STRING;
use super::{
    as_is, parse_i64, spec, upper, CommandSpec, Kind, ReadCtx, ERR_NOT_INTEGER, ERR_SYNTAX,
    ERR_WRONGTYPE,
};
use crate::db::{Txn, Value, TYPE_STRING};

const ERR_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const ERR_BIT: &str = "ERR bit is not an integer or out of range";
const ERR_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "bitmap";
    vec![
        spec("setbit", 4, WRITE | DENYOOM, (1, 1, 1), g, "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", Write { prepare: prepare_setbit, apply: apply_setbit }),
        spec("getbit", 3, READONLY | super::flags::FAST, (1, 1, 1), g, "Returns a bit value by offset.", Read(getbit)),
        spec("bitcount", -2, READONLY, (1, 1, 1), g, "Counts the number of set bits (population counting) in a string.", Read(bitcount)),
        spec("bitpos", -3, READONLY, (1, 1, 1), g, "Finds the first set (1) or clear (0) bit in a string.", Read(bitpos)),
        spec("bitop", -4, WRITE | DENYOOM, (2, -1, 1), g, "Performs bitwise operations on multiple strings, and stores the result.", Write { prepare: prepare_bitop, apply: apply_bitop }),
        spec("bitfield", -2, WRITE | DENYOOM, (1, 1, 1), g, "Performs arbitrary bitfield integer operations on strings.", Write { prepare: as_is, apply: apply_bitfield }),
        spec("bitfield_ro", -2, READONLY | super::flags::FAST, (1, 1, 1), g, "Performs arbitrary read-only bitfield integer operations on strings.", Read(bitfield_ro)),
    ]
}

/// A bit offset (`getBitOffsetFromArgument`): a non-negative integer within a 512 MB string;
/// with `width`, `#n` means `n * width`.
fn bit_offset(b: &[u8], width: Option<u32>) -> Result<u64, Reply> {
    let (digits, multiply) = match (b.first(), width) {
        (Some(b'#'), Some(w)) => (&b[1..], u64::from(w)),
        _ => (b, 1),
    };
    let n = parse_i64(digits).ok_or_else(|| Reply::err(ERR_OFFSET))?;
    let n = (n as i128) * (multiply as i128);
    if n < 0 || (n >> 3) >= MAX_STRING as i128 {
        return Err(Reply::err(ERR_OFFSET));
    }
    Ok(n as u64)
}

fn bit_at(data: &[u8], offset: u64) -> bool {
    data.get((offset >> 3) as usize)
        .is_some_and(|byte| byte & (0x80 >> (offset & 7)) != 0)
}

/// The string at `key` for a bit command: its bytes (empty when missing) and expiry.
fn string_for_write(txn: &Txn, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Reply> {
    match txn.get(key) {
        Some(v) if v.kind != TYPE_STRING => Err(Reply::err(ERR_WRONGTYPE)),
        Some(v) => Ok(Some((v.data.to_vec(), v.expire_at))),
        None => Ok(None),
    }
}

fn string_for_read(ctx: &ReadCtx, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match ctx.get(key) {
        Some(v) if v.kind != TYPE_STRING => Err(Reply::err(ERR_WRONGTYPE)),
        Some(v) => Ok(Some(v.data)),
        None => Ok(None),
    }
}

fn setbit_args(argv: &[Bytes]) -> Result<(u64, bool), Reply> {
    let offset = bit_offset(&argv[2], None)?;
    match parse_i64(&argv[3]) {
        Some(0) => Ok((offset, false)),
        Some(1) => Ok((offset, true)),
        _ => Err(Reply::err(ERR_BIT)),
    }
}

fn prepare_setbit(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    setbit_args(argv)?;
    Ok(None)
}

fn apply_setbit(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let (offset, on) = match setbit_args(argv) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (mut data, expire_at) = match string_for_write(txn, &argv[1]) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => return e,
    };
    let byte = (offset >> 3) as usize;
    let grew = data.len() <= byte;
    if grew {
        data.resize(byte + 1, 0);
    }
    let mask = 0x80u8 >> (offset & 7);
    let was = data[byte] & mask != 0;
    if grew || was != on {
        if on {
            data[byte] |= mask;
        } else {
            data[byte] &= !mask;
        }
        txn.set(&argv[1], &Value::string(data, expire_at));
    }
    Reply::Int(i64::from(was))
}

fn getbit(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let offset = match bit_offset(&argv[2], None) {
        Ok(o) => o,
        Err(e) => return e,
    };
    match string_for_read(ctx, &argv[1]) {
        Ok(v) => Reply::Int(i64::from(v.is_some_and(|d| bit_at(&d, offset)))),
        Err(e) => e,
    }
}

/// Normalizes Redis's inclusive `[start, end]` over `len` units (negative from the end);
/// None when empty.
fn normalize(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    (start <= end).then_some((start, end))
}

/// BYTE or BIT, the unit of BITCOUNT's and BITPOS's range.
fn unit(arg: Option<&Bytes>) -> Result<bool, Reply> {
    match arg.map(|a| upper(a)) {
        None => Ok(false),
        Some(u) if u == "BYTE" => Ok(false),
        Some(u) if u == "BIT" => Ok(true),
        Some(_) => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn bitcount(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let data = match string_for_read(ctx, &argv[1]) {
        Ok(Some(d)) => d,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let bits = data.len() as i64 * 8;
    let range = match argv.len() {
        2 => normalize(0, bits - 1, bits),
        4 | 5 => {
            let (Some(start), Some(end)) = (parse_i64(&argv[2]), parse_i64(&argv[3])) else {
                return Reply::err(ERR_NOT_INTEGER);
            };
            if start < 0 && end < 0 && start > end {
                return Reply::Int(0);
            }
            let in_bits = match unit(argv.get(4)) {
                Ok(b) => b,
                Err(e) => return e,
            };
            if in_bits {
                normalize(start, end, bits)
            } else {
                normalize(start, end, data.len() as i64).map(|(s, e)| (s * 8, e * 8 + 7))
            }
        }
        _ => return Reply::err(ERR_SYNTAX),
    };
    let Some((from, to)) = range else {
        return Reply::Int(0);
    };
    Reply::Int(count_ones(&data, from as u64, to as u64) as i64)
}

/// Set bits in the inclusive bit range `[from, to]`.
fn count_ones(data: &[u8], from: u64, to: u64) -> u64 {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    let mut n: u64 = data[first..=last]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    // Take away the bits of the edge bytes outside the range.
    n -= u64::from((data[first] & !(0xffu8 >> (from & 7))).count_ones());
    n -= u64::from((data[last] & (0x7fu8 >> (to & 7))).count_ones());
    n
}

fn bitpos(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let Some(bit) = parse_i64(&argv[2]) else {
        return Reply::err(ERR_NOT_INTEGER);
    };
    if bit != 0 && bit != 1 {
        return Reply::err("ERR The bit argument must be 1 or 0.");
    }
    let want = bit == 1;
    let data = match string_for_read(ctx, &argv[1]) {
        Ok(Some(d)) => d,
        Ok(None) => return Reply::Int(if want { -1 } else { 0 }),
        Err(e) => return e,
    };
    let bytes = data.len() as i64;
    let bits = bytes * 8;
    if argv.len() > 6 {
        return Reply::err(ERR_SYNTAX);
    }
    let mut end_given = false;
    let range = if argv.len() == 3 {
        normalize(0, bits - 1, bits)
    } else {
        let Some(start) = parse_i64(&argv[3]) else {
            return Reply::err(ERR_NOT_INTEGER);
        };
        let in_bits = match unit(argv.get(5)) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let end = match argv.get(4) {
            Some(e) => match parse_i64(e) {
                Some(e) => {
                    end_given = true;
                    e
                }
                None => return Reply::err(ERR_NOT_INTEGER),
            },
            None if in_bits => bits - 1,
            None => bytes - 1,
        };
        if in_bits {
            normalize(start, end, bits)
        } else {
            normalize(start, end, bytes).map(|(s, e)| (s * 8, e * 8 + 7))
        }
    };
    let Some((from, to)) = range else {
        return Reply::Int(-1);
    };
    match (from as u64..=to as u64).find(|&i| bit_at(&data, i) == want) {
        Some(i) => Reply::Int(i as i64),
        // Past the string it is all zeros, unless the range was given to its end.
        None if !want && !end_given => Reply::Int(to + 1),
        None => Reply::Int(-1),
    }
}

fn prepare_bitop(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    match upper(&argv[1]).as_str() {
        "AND" | "OR" | "XOR" => Ok(None),
        "NOT" if argv.len() == 4 => Ok(None),
        "NOT" => Err(Reply::err(
            "ERR BITOP NOT must be called with a single source key.",
        )),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn apply_bitop(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    if let Err(e) = prepare_bitop(argv, 0) {
        return e;
    }
    let op = upper(&argv[1]);
    let mut sources = Vec::with_capacity(argv.len() - 3);
    for key in &argv[3..] {
        match txn.get(key) {
            Some(v) if v.kind != TYPE_STRING => return Reply::err(ERR_WRONGTYPE),
            Some(v) => sources.push(v.data),
            None => sources.push(Bytes::new()),
        }
    }
    let len = sources.iter().map(Bytes::len).max().unwrap_or(0);
    if len == 0 {
        txn.del(&argv[2]);
        return Reply::Int(0);
    }
    let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
    let out: Vec<u8> = (0..len)
        .map(|i| {
            let first = byte(&sources[0], i);
            let rest = sources[1..].iter().map(|s| byte(s, i));
            match op.as_str() {
                "AND" => rest.fold(first, |a, b| a & b),
                "OR" => rest.fold(first, |a, b| a | b),
                "XOR" => rest.fold(first, |a, b| a ^ b),
                _ => !first,
            }
        })
        .collect();
    txn.set(&argv[2], &Value::string(out, 0));
    Reply::Int(len as i64)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// BITFIELD's subcommands, as Redis parses them (all before any runs).
fn parse_fields(argv: &[Bytes]) -> Result<Vec<Field>, Reply> {
    let mut out = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let rest = argv.len() - j - 1;
        let sub = upper(&argv[j]);
        let op = match sub.as_str() {
            "GET" if rest >= 2 => FieldOp::Get,
            "SET" if rest >= 3 => FieldOp::Set(0),
            "INCRBY" if rest >= 3 => FieldOp::IncrBy(0),
            "OVERFLOW" if rest >= 1 => {
                overflow = match upper(&argv[j + 1]).as_str() {
                    "WRAP" => Overflow::Wrap,
                    "SAT" => Overflow::Sat,
                    "FAIL" => Overflow::Fail,
                    _ => return Err(Reply::err("ERR Invalid OVERFLOW type specified")),
                };
                j += 2;
                continue;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        };
        let ty = &argv[j + 1];
        let signed = match ty.first() {
            Some(b'i') => true,
            Some(b'u') => false,
            _ => return Err(Reply::err(ERR_TYPE)),
        };
        let bits = match parse_i64(&ty[1..]) {
            Some(b) if b >= 1 && (b <= 63 || (signed && b == 64)) => b as u32,
            _ => return Err(Reply::err(ERR_TYPE)),
        };
        let offset = bit_offset(&argv[j + 2], Some(bits))?;
        let op = match op {
            FieldOp::Get => FieldOp::Get,
            FieldOp::Set(_) | FieldOp::IncrBy(_) => {
                let v = parse_i64(&argv[j + 3]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                if matches!(op, FieldOp::Set(_)) {
                    FieldOp::Set(v)
                } else {
                    FieldOp::IncrBy(v)
                }
            }
        };
        out.push(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(out)
}

fn get_field(data: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |v, i| (v << 1) | u64::from(bit_at(data, offset + i)))
}

fn set_field(data: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let on = value >> (u64::from(bits) - 1 - i) & 1 == 1;
        let at = offset + i;
        let mask = 0x80u8 >> (at & 7);
        if on {
            data[(at >> 3) as usize] |= mask;
        } else {
            data[(at >> 3) as usize] &= !mask;
        }
    }
}

/// The stored bits of `raw` read as the field's type.
fn as_value(raw: u64, signed: bool, bits: u32) -> i128 {
    if signed && bits < 64 && raw >> (bits - 1) & 1 == 1 {
        raw as i128 - (1i128 << bits)
    } else if signed {
        raw as i64 as i128
    } else {
        raw as i128
    }
}

/// `value` stored in a field of the type, as the overflow rule says: the bits to store, or
/// None for FAIL. `up` says which way it overflowed when it did (Redis's unsigned SET of a
/// negative value overflows upwards: it is read as a huge unsigned number).
fn fit(value: i128, signed: bool, bits: u32, overflow: Overflow, up: Option<bool>) -> Option<u64> {
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    if (min..=max).contains(&value) && up.is_none() {
        return Some(value as u64 & mask);
    }
    match overflow {
        Overflow::Fail => None,
        Overflow::Wrap => Some(value.rem_euclid(1i128 << bits) as u64 & mask),
        Overflow::Sat => Some(if up.unwrap_or(value > max) { max } else { min } as u64 & mask),
    }
}

fn run_fields(data: &mut [u8], fields: &[Field]) -> Vec<Reply> {
    fields
        .iter()
        .map(|f| {
            let old = as_value(get_field(data, f.offset, f.bits), f.signed, f.bits);
            let (new, reply) = match f.op {
                FieldOp::Get => return Reply::Int(old as i64),
                FieldOp::Set(v) => {
                    // An unsigned field takes the 64 bits of a negative value as unsigned.
                    let (value, up) = if !f.signed && v < 0 {
                        (v as u64 as i128, Some(true))
                    } else {
                        (v as i128, None)
                    };
                    let up = up.filter(|_| value > (1i128 << f.bits) - 1);
                    (fit(value, f.signed, f.bits, f.overflow, up), old)
                }
                FieldOp::IncrBy(by) => {
                    let sum = old + by as i128;
                    let bits = fit(sum, f.signed, f.bits, f.overflow, None);
                    let new = bits.map(|b| as_value(b, f.signed, f.bits));
                    (bits, new.unwrap_or(0))
                }
            };
            match new {
                Some(bits) => {
                    set_field(data, f.offset, f.bits, bits);
                    Reply::Int(reply as i64)
                }
                None => Reply::Nil,
            }
        })
        .collect()
}

fn apply_bitfield(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let fields = match parse_fields(argv) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let writes = fields.iter().any(|f| f.op != FieldOp::Get);
    let stored = match string_for_write(txn, &argv[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let existed = stored.is_some();
    let (mut data, expire_at) = stored.unwrap_or_default();
    let before = data.clone();
    if writes {
        let highest = fields
            .iter()
            .filter(|f| f.op != FieldOp::Get)
            .map(|f| f.offset + u64::from(f.bits) - 1)
            .max()
            .unwrap_or(0);
        let need = (highest >> 3) as usize + 1;
        if data.len() < need {
            data.resize(need, 0);
        }
    }
    let replies = run_fields(&mut data, &fields);
    if writes && (!existed || data != before) {
        txn.set(&argv[1], &Value::string(data, expire_at));
    }
    Reply::Array(replies)
}

fn bitfield_ro(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let fields = match parse_fields(argv) {
        Ok(f) => f,
        Err(e) => return e,
    };
    if fields.iter().any(|f| f.op != FieldOp::Get) {
        return Reply::err("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let mut data = match string_for_read(ctx, &argv[1]) {
        Ok(v) => v.map(|d| d.to_vec()).unwrap_or_default(),
        Err(e) => return e,
    };
    Reply::Array(run_fields(&mut data, &fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_count_and_fields_follow_redis_s_bit_order() {
        let data = [0b1000_0001u8, 0xff, 0x00];
        assert!(bit_at(&data, 0) && bit_at(&data, 7) && !bit_at(&data, 1));
        assert_eq!(count_ones(&data, 0, 23), 10);
        assert_eq!(count_ones(&data, 1, 6), 0);
        assert_eq!(count_ones(&data, 7, 8), 2);
        assert_eq!(get_field(&data, 0, 8), 0x81);
        assert_eq!(as_value(get_field(&data, 8, 4), true, 4), -1);
        let mut d = vec![0u8; 2];
        set_field(&mut d, 4, 8, 0xab);
        assert_eq!(d, vec![0x0a, 0xb0]);
    }

    #[test]
    fn overflow_rules() {
        assert_eq!(fit(300, false, 8, Overflow::Wrap, None), Some(44));
        assert_eq!(fit(300, false, 8, Overflow::Sat, None), Some(255));
        assert_eq!(fit(-5, false, 8, Overflow::Sat, None), Some(0));
        assert_eq!(fit(300, false, 8, Overflow::Fail, None), None);
        assert_eq!(fit(128, true, 8, Overflow::Wrap, None), Some(0x80));
        assert_eq!(fit(-129, true, 8, Overflow::Sat, None), Some(0x80));
        assert_eq!(
            fit(i64::MAX as i128 + 1, true, 64, Overflow::Wrap, None),
            Some(1 << 63)
        );
    }
}
