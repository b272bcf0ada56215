//! `FUNCTION DUMP`'s payload, in Redis 7.0's format, so a payload moves between Redis and
//! rockraft either way: for each library the RDB opcode `FUNCTION2` (245) and its code as an
//! RDB string, then the RDB version (2 bytes, little-endian) and the CRC-64 (Jones, as
//! Redis's `crc64.c`) of everything before it (8 bytes, little-endian).
//!
//! Strings are written plain; read, they may also be integer-encoded or LZF-compressed, as
//! Redis writes them. The RDB primitives and the CRC are `crate::rdb`'s.

use crate::rdb::{self, Reader, Refused, RDB_VERSION};

const OPCODE_FUNCTION_PRE_GA: u8 = 246;
const OPCODE_FUNCTION2: u8 = 245;

/// The payload of these libraries' codes.
pub fn encode(codes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION2);
        rdb::put_string(&mut out, code);
    }
    rdb::seal(out)
}

/// The libraries' codes in a payload, or Redis's error (without `ERR`).
pub fn decode(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    // Redis 7.0 takes function payloads of its own RDB version or older.
    let body = rdb::open(payload, RDB_VERSION)
        .map_err(|_| "DUMP payload version or checksum are wrong".to_string())?;
    let mut reader = Reader::new(body);
    let mut codes = Vec::new();
    while !reader.done() {
        match reader.byte() {
            Ok(OPCODE_FUNCTION2) => {}
            Ok(OPCODE_FUNCTION_PRE_GA) => return Err("Pre-GA function format not supported".into()),
            Ok(_) => return Err("given type is not a function".into()),
            Err(_) => return Err("can not read data type".into()),
        }
        codes.push(
            reader
                .string()
                .map_err(|_: Refused| "Failed loading library payload".to_string())?,
        );
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
