//! `FUNCTION DUMP`'s payload, in Redis 7.0's format, so a payload moves between Redis and
//! rockraft either way: for each library the RDB opcode `FUNCTION2` (245) and its code as an
//! RDB string, then the RDB version (2 bytes, little-endian) and the CRC-64 (Jones, as
//! Redis's `crc64.c`) of everything before it (8 bytes, little-endian).
//!
//! Strings are written plain; read, they may also be integer-encoded or LZF-compressed, as
//! Redis writes them.

/// The RDB version of Redis 7.0.
pub const RDB_VERSION: u16 = 10;
const OPCODE_FUNCTION_PRE_GA: u8 = 246;
const OPCODE_FUNCTION2: u8 = 245;

/// Redis's CRC-64 (Jones polynomial, reflected, initial value 0).
pub fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9, bit-reversed
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *slot = c;
        }
        t
    });
    data.iter().fold(0u64, |crc, &b| {
        table[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u32::MAX as usize {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

/// The payload of these libraries' codes.
pub fn encode(codes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION2);
        put_len(&mut out, code.len());
        out.extend_from_slice(code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len())?;
        let out = &self.data[self.at..end];
        self.at = end;
        Some(out)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// An RDB length, or (`true`, the encoding) for a special encoding.
    fn len(&mut self) -> Option<(bool, u64)> {
        let first = self.byte()?;
        Some(match first >> 6 {
            0 => (false, u64::from(first & 0x3f)),
            1 => (
                false,
                (u64::from(first & 0x3f) << 8) | u64::from(self.byte()?),
            ),
            2 if first == 0x80 => (
                false,
                u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?)),
            ),
            2 if first == 0x81 => (false, u64::from_be_bytes(self.take(8)?.try_into().ok()?)),
            2 => return None,
            _ => (true, u64::from(first & 0x3f)),
        })
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            (false, n) => self.take(usize::try_from(n).ok()?).map(<[u8]>::to_vec),
            (true, 0) => Some((self.byte()? as i8).to_string().into_bytes()),
            (true, 1) => Some(
                i16::from_le_bytes(self.take(2)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            (true, 2) => Some(
                i32::from_le_bytes(self.take(4)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            (true, 3) => {
                let (false, clen) = self.len()? else {
                    return None;
                };
                let (false, len) = self.len()? else {
                    return None;
                };
                let compressed = self.take(usize::try_from(clen).ok()?)?;
                lzf_decompress(compressed, usize::try_from(len).ok()?)
            }
            _ => None,
        }
    }
}

/// LZF decompression (the format of Redis's `lzf_d.c`) to exactly `len` bytes.
fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            out.extend_from_slice(input.get(i..i + run)?);
            i += run;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let from = out.len().checked_sub(back)?;
            for k in 0..n + 2 {
                let b = out[from + k];
                out.push(b);
            }
        }
        if out.len() > len {
            return None;
        }
    }
    (out.len() == len).then_some(out)
}

/// The libraries' codes in a payload, or Redis's error (without `ERR`).
pub fn decode(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let bad = || "DUMP payload version or checksum are wrong".to_string();
    if payload.len() < 10 {
        return Err(bad());
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if version > RDB_VERSION || crc64(&payload[..payload.len() - 8]) != crc {
        return Err(bad());
    }
    let mut cursor = Cursor { data: body, at: 0 };
    let mut codes = Vec::new();
    while cursor.at < body.len() {
        match cursor.byte() {
            Some(OPCODE_FUNCTION2) => {}
            Some(OPCODE_FUNCTION_PRE_GA) => {
                return Err("Pre-GA function format not supported".into())
            }
            Some(_) => return Err("given type is not a function".into()),
            None => return Err("can not read data type".into()),
        }
        codes.push(
            cursor
                .string()
                .ok_or_else(|| "Failed loading library payload".to_string())?,
        );
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_redis_s() {
        // crc64.c's own test vector.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn payloads_round_trip_and_reject_damage() {
        let codes = vec![b"#!lua name=a\nreturn".to_vec(), vec![b'x'; 20_000]];
        let payload = encode(&codes);
        assert_eq!(decode(&payload).unwrap(), codes);
        let mut broken = payload.clone();
        broken[3] ^= 1;
        assert!(decode(&broken).is_err());
        assert!(decode(&payload[..5]).is_err());
    }

    #[test]
    fn reads_redis_s_compressed_payload() {
        // `FUNCTION DUMP` of Redis 7.0.15 after
        // FUNCTION LOAD "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)"
        let hex = "f5c34056405b1f23216c7561206e616d653d6d796c69620a72656469732e72656769737465725f0b66756e6374696f6e28276d79400b02272c2040066012116b6579732c2061726773292072657475726e600c075b315d20656e64290a008d5936adc6e707da";
        let payload: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let code = b"#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)";
        assert_eq!(decode(&payload).unwrap(), vec![code.to_vec()]);
    }
}
