//! Redis's RDB serialization of one value, as DUMP writes it and RESTORE reads it: the value's
//! type byte and body, then the RDB version (2 bytes, little-endian) and a CRC-64 (Jones, as
//! Redis's crc64.c) of everything before it (8 bytes, little-endian).
//!
//! Written: RDB version 10 (Redis 7.0), in the plain encodings every Redis since 2.x reads
//! (string, list, set, hash, sorted set with binary scores) and the stream listpacks of 7.0.
//! Read: every encoding Redis 2.6 through 7.2 writes for these types: integer and LZF strings,
//! ziplists, listpacks, intsets, quicklists (1 and 2), stream listpacks (1, 2, 3).
//!
//! The framing ([`seal`], [`open`]) and the length and string primitives are shared with
//! FUNCTION DUMP's payload (`scripting/dump.rs`).

/// The RDB version written (Redis 7.0's).
pub const RDB_VERSION: u16 = 10;
/// The newest RDB version read (Redis 7.2's: its set listpacks and stream listpacks 3).
pub const RDB_VERSION_READ: u16 = 11;

const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET_2: u8 = 5;
const T_LIST_ZIPLIST: u8 = 10;
const T_SET_INTSET: u8 = 11;
const T_ZSET_ZIPLIST: u8 = 12;
const T_HASH_ZIPLIST: u8 = 13;
const T_LIST_QUICKLIST: u8 = 14;
const T_STREAM_LISTPACKS: u8 = 15;
const T_HASH_LISTPACK: u8 = 16;
const T_ZSET_LISTPACK: u8 = 17;
const T_LIST_QUICKLIST_2: u8 = 18;
const T_STREAM_LISTPACKS_2: u8 = 19;
const T_SET_LISTPACK: u8 = 20;
const T_STREAM_LISTPACKS_3: u8 = 21;

/// A stream ID (milliseconds, sequence).
pub type Id = (u64, u64);

/// A stream entry: its ID and its fields and values (field, value, …).
pub type StreamEntry = (Id, Vec<Vec<u8>>);

/// A value as the RDB format carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    /// Members and scores.
    ZSet(Vec<(Vec<u8>, f64)>),
    /// Fields and values.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Stream(Stream),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Entries in ID order: each its ID and its fields and values (field, value, …).
    pub entries: Vec<StreamEntry>,
    pub last_id: Id,
    pub first_id: Id,
    pub max_deleted: Id,
    pub entries_added: u64,
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub name: Vec<u8>,
    pub last_id: Id,
    /// -1 when unknown.
    pub entries_read: i64,
    /// The pending entries: ID, delivery time (ms), delivery count, owner.
    pub pending: Vec<(Id, u64, u64, Vec<u8>)>,
    /// Consumers: name and seen time (ms).
    pub consumers: Vec<(Vec<u8>, u64)>,
}

/// Why a payload was refused, in Redis's words.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// "DUMP payload version or checksum are wrong".
    VersionOrChecksum,
    /// "Bad data format".
    BadFormat,
}

// ---- CRC-64/Jones (reflected, polynomial 0xad93d23594c935a9, no final xor) ----

const fn crc_table() -> [u64; 256] {
    let poly: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 reflected
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u64; 256] = crc_table();

pub fn crc64(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |crc, &b| {
        CRC_TABLE[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8)
    })
}

// ---- writing ----

pub(crate) fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Listpack entries, as Redis's listpack.c lays them out (an integer where the value is
/// one, so Redis reads the stream's counters as it wrote them).
enum LpItem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

fn write_listpack(items: &[LpItem]) -> Vec<u8> {
    let mut body = Vec::new();
    for item in items {
        let start = body.len();
        match item {
            LpItem::Int(v) => {
                let v = *v;
                if (0..=127).contains(&v) {
                    body.push(v as u8);
                } else if (-4096..=4095).contains(&v) {
                    let u = (v as u64) & 0x1fff;
                    body.push(0xc0 | (u >> 8) as u8);
                    body.push(u as u8);
                } else if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
                    body.push(0xf1);
                    body.extend_from_slice(&(v as i16).to_le_bytes());
                } else if (-(1 << 23)..(1 << 23)).contains(&v) {
                    body.push(0xf2);
                    body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
                    body.push(0xf3);
                    body.extend_from_slice(&(v as i32).to_le_bytes());
                } else {
                    body.push(0xf4);
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
            LpItem::Str(s) => {
                let n = s.len();
                if n < 64 {
                    body.push(0x80 | n as u8);
                } else if n < 4096 {
                    body.push(0xe0 | (n >> 8) as u8);
                    body.push(n as u8);
                } else {
                    body.push(0xf0);
                    body.extend_from_slice(&(n as u32).to_le_bytes());
                }
                body.extend_from_slice(s);
            }
        }
        let len = body.len() - start;
        // The back length (lpEncodeBacklen): the entry's size, 7 bits a byte, most
        // significant first; every byte after the first has its top bit set.
        let n = backlen_size(len);
        for i in 0..n {
            let group = ((len >> (7 * (n - 1 - i))) & 127) as u8;
            body.push(if i == 0 { group } else { group | 128 });
        }
    }
    let mut lp = Vec::with_capacity(body.len() + 7);
    lp.extend_from_slice(&((body.len() + 7) as u32).to_le_bytes());
    lp.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
    lp.extend_from_slice(&body);
    lp.push(0xff);
    lp
}

fn id_bytes(id: Id) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.0.to_be_bytes());
    b[8..].copy_from_slice(&id.1.to_be_bytes());
    b
}

/// Entries a stream listpack holds (Redis's stream-node-max-entries default).
const STREAM_NODE_ENTRIES: usize = 100;

fn put_stream(out: &mut Vec<u8>, s: &Stream) {
    let nodes: Vec<&[StreamEntry]> = s.entries.chunks(STREAM_NODE_ENTRIES).collect();
    put_len(out, nodes.len() as u64);
    for node in nodes {
        let master = node[0].0;
        let master_fields: Vec<&[u8]> = node[0].1.iter().step_by(2).map(|f| &f[..]).collect();
        let mut items = vec![
            LpItem::Int(node.len() as i64),
            LpItem::Int(0),
            LpItem::Int(master_fields.len() as i64),
        ];
        items.extend(master_fields.iter().map(|f| LpItem::Str(f)));
        items.push(LpItem::Int(0));
        for (id, pairs) in node {
            let fields: Vec<&[u8]> = pairs.iter().step_by(2).map(|f| &f[..]).collect();
            let same = fields == master_fields;
            items.push(LpItem::Int(if same { 2 } else { 0 }));
            items.push(LpItem::Int(id.0.wrapping_sub(master.0) as i64));
            items.push(LpItem::Int(id.1.wrapping_sub(master.1) as i64));
            let n = fields.len() as i64;
            if !same {
                items.push(LpItem::Int(n));
            }
            for pair in pairs.chunks(2) {
                if !same {
                    items.push(LpItem::Str(&pair[0]));
                }
                items.push(LpItem::Str(pair.get(1).map_or(&[][..], |v| &v[..])));
            }
            items.push(LpItem::Int(if same { n + 3 } else { 2 * n + 4 }));
        }
        put_string(out, &id_bytes(master));
        put_string(out, &write_listpack(&items));
    }
    put_len(out, s.entries.len() as u64);
    put_len(out, s.last_id.0);
    put_len(out, s.last_id.1);
    put_len(out, s.first_id.0);
    put_len(out, s.first_id.1);
    put_len(out, s.max_deleted.0);
    put_len(out, s.max_deleted.1);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for g in &s.groups {
        put_string(out, &g.name);
        put_len(out, g.last_id.0);
        put_len(out, g.last_id.1);
        put_len(out, g.entries_read as u64);
        put_len(out, g.pending.len() as u64);
        for (id, time, count, _) in &g.pending {
            out.extend_from_slice(&id_bytes(*id));
            out.extend_from_slice(&time.to_le_bytes());
            put_len(out, *count);
        }
        put_len(out, g.consumers.len() as u64);
        for (name, seen) in &g.consumers {
            put_string(out, name);
            out.extend_from_slice(&seen.to_le_bytes());
            let owned: Vec<Id> = g
                .pending
                .iter()
                .filter(|p| p.3 == *name)
                .map(|p| p.0)
                .collect();
            put_len(out, owned.len() as u64);
            for id in owned {
                out.extend_from_slice(&id_bytes(id));
            }
        }
    }
}

/// DUMP's payload for `o`.
pub fn dump(o: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    match o {
        Object::String(s) => {
            out.push(T_STRING);
            put_string(&mut out, s);
        }
        Object::List(items) | Object::Set(items) => {
            out.push(if matches!(o, Object::List(_)) {
                T_LIST
            } else {
                T_SET
            });
            put_len(&mut out, items.len() as u64);
            items.iter().for_each(|i| put_string(&mut out, i));
        }
        Object::ZSet(entries) => {
            out.push(T_ZSET_2);
            put_len(&mut out, entries.len() as u64);
            for (m, score) in entries {
                put_string(&mut out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        Object::Hash(pairs) => {
            out.push(T_HASH);
            put_len(&mut out, pairs.len() as u64);
            for (f, v) in pairs {
                put_string(&mut out, f);
                put_string(&mut out, v);
            }
        }
        Object::Stream(s) => {
            out.push(T_STREAM_LISTPACKS_2);
            put_stream(&mut out, s);
        }
    }
    seal(out)
}

/// A payload's footer: the RDB version written and the CRC-64 of everything before it.
pub(crate) fn seal(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A payload's body, once its footer says an RDB version up to `max_version` and its
/// checksum matches.
pub(crate) fn open(payload: &[u8], max_version: u16) -> R<&[u8]> {
    if payload.len() < 10 {
        return Err(Refused::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if version > max_version || crc64(&payload[..payload.len() - 8]) != crc {
        return Err(Refused::VersionOrChecksum);
    }
    Ok(body)
}

// ---- reading ----

/// Reads RDB lengths and strings from a payload's body.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

type R<T> = Result<T, Refused>;
const BAD: Refused = Refused::BadFormat;

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }

    /// Whether everything was read.
    pub(crate) fn done(&self) -> bool {
        self.at == self.b.len()
    }

    pub(crate) fn byte(&mut self) -> R<u8> {
        let b = *self.b.get(self.at).ok_or(BAD)?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or(BAD)?;
        let s = self.b.get(self.at..end).ok_or(BAD)?;
        self.at = end;
        Ok(s)
    }

    fn u64_le(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| BAD)?,
        ))
    }

    /// A length, or the special encoding (low 6 bits) of a string.
    fn len_or_enc(&mut self) -> R<(u64, bool)> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => ((first & 0x3f) as u64, false),
            1 => ((((first & 0x3f) as u64) << 8) | self.byte()? as u64, false),
            2 => match first {
                0x80 => (
                    u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| BAD)?) as u64,
                    false,
                ),
                0x81 => (
                    u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| BAD)?),
                    false,
                ),
                _ => return Err(BAD),
            },
            _ => ((first & 0x3f) as u64, true),
        })
    }

    fn len(&mut self) -> R<u64> {
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            _ => Err(BAD),
        }
    }

    /// A count of things at least `min_bytes` each: bounded by what is left, so a forged
    /// length cannot make RESTORE allocate more than the payload could hold.
    fn count(&mut self, min_bytes: usize) -> R<usize> {
        let n = self.len()?;
        let left = (self.b.len() - self.at) as u64;
        if n > left / min_bytes.max(1) as u64 + 1 {
            return Err(BAD);
        }
        Ok(n as usize)
    }

    /// A string: plain, integer-encoded or LZF-compressed.
    pub(crate) fn string(&mut self) -> R<Vec<u8>> {
        match self.len_or_enc()? {
            (n, false) => Ok(self.take(usize::try_from(n).map_err(|_| BAD)?)?.to_vec()),
            (0, true) => Ok((self.byte()? as i8).to_string().into_bytes()),
            (1, true) => Ok(
                i16::from_le_bytes(self.take(2)?.try_into().map_err(|_| BAD)?)
                    .to_string()
                    .into_bytes(),
            ),
            (2, true) => Ok(
                i32::from_le_bytes(self.take(4)?.try_into().map_err(|_| BAD)?)
                    .to_string()
                    .into_bytes(),
            ),
            (3, true) => {
                let clen = self.len()? as usize;
                let ulen = self.len()? as usize;
                let data = self.take(clen)?;
                lzf_decompress(data, ulen)
            }
            _ => Err(BAD),
        }
    }

    fn old_double(&mut self) -> R<f64> {
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = std::str::from_utf8(self.take(n as usize)?).map_err(|_| BAD)?;
                s.trim().parse().map_err(|_| BAD)
            }
        }
    }

    fn id_raw(&mut self) -> R<Id> {
        let b = self.take(16)?;
        Ok((
            u64::from_be_bytes(b[..8].try_into().map_err(|_| BAD)?),
            u64::from_be_bytes(b[8..].try_into().map_err(|_| BAD)?),
        ))
    }

    fn id_lens(&mut self) -> R<Id> {
        Ok((self.len()?, self.len()?))
    }
}

fn lzf_decompress(input: &[u8], ulen: usize) -> R<Vec<u8>> {
    if ulen > 512 << 20 {
        return Err(BAD);
    }
    let mut out: Vec<u8> = Vec::with_capacity(ulen);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n).ok_or(BAD)?;
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i).ok_or(BAD)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i).ok_or(BAD)? as usize + 1;
            i += 1;
            if back > out.len() {
                return Err(BAD);
            }
            let start = out.len() - back;
            for k in 0..len + 2 {
                let c = out[start + k];
                out.push(c);
            }
        }
        if out.len() > ulen {
            return Err(BAD);
        }
    }
    if out.len() != ulen {
        return Err(BAD);
    }
    Ok(out)
}

/// The entries of a ziplist, each as bytes (integers in decimal).
fn ziplist(z: &[u8]) -> R<Vec<Vec<u8>>> {
    if z.len() < 11 {
        return Err(BAD);
    }
    let mut at = 10;
    let mut out = Vec::new();
    loop {
        let b = *z.get(at).ok_or(BAD)?;
        if b == 0xff {
            break;
        }
        at += if b == 0xfe { 5 } else { 1 };
        let enc = *z.get(at).ok_or(BAD)?;
        let get = |from: usize, n: usize| z.get(from..from + n).ok_or(BAD);
        let (item, used): (Vec<u8>, usize) = match enc >> 6 {
            0 => {
                let n = (enc & 0x3f) as usize;
                (get(at + 1, n)?.to_vec(), 1 + n)
            }
            1 => {
                let n = (((enc & 0x3f) as usize) << 8) | *z.get(at + 1).ok_or(BAD)? as usize;
                (get(at + 2, n)?.to_vec(), 2 + n)
            }
            2 => {
                let n = u32::from_be_bytes(get(at + 1, 4)?.try_into().map_err(|_| BAD)?) as usize;
                (get(at + 5, n)?.to_vec(), 5 + n)
            }
            _ => {
                let int = |v: i64, n: usize| (v.to_string().into_bytes(), 1 + n);
                match enc {
                    0xc0 => int(
                        i16::from_le_bytes(get(at + 1, 2)?.try_into().map_err(|_| BAD)?) as i64,
                        2,
                    ),
                    0xd0 => int(
                        i32::from_le_bytes(get(at + 1, 4)?.try_into().map_err(|_| BAD)?) as i64,
                        4,
                    ),
                    0xe0 => int(
                        i64::from_le_bytes(get(at + 1, 8)?.try_into().map_err(|_| BAD)?),
                        8,
                    ),
                    0xf0 => {
                        let b = get(at + 1, 3)?;
                        int((i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as i64, 3)
                    }
                    0xfe => int(*z.get(at + 1).ok_or(BAD)? as i8 as i64, 1),
                    0xf1..=0xfd => int((enc & 0x0f) as i64 - 1, 0),
                    _ => return Err(BAD),
                }
            }
        };
        out.push(item);
        at += used;
    }
    Ok(out)
}

/// A listpack entry: a string or an integer.
#[derive(Clone, Debug, PartialEq)]
enum LpValue {
    Str(Vec<u8>),
    Int(i64),
}

impl LpValue {
    fn bytes(self) -> Vec<u8> {
        match self {
            LpValue::Str(s) => s,
            LpValue::Int(i) => i.to_string().into_bytes(),
        }
    }

    fn int(&self) -> R<i64> {
        match self {
            LpValue::Int(i) => Ok(*i),
            LpValue::Str(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(BAD),
        }
    }
}

fn backlen_size(len: usize) -> usize {
    match len {
        l if l <= 127 => 1,
        l if l < 16383 => 2,
        l if l < 2097151 => 3,
        l if l < 268435455 => 4,
        _ => 5,
    }
}

fn listpack_values(lp: &[u8]) -> R<Vec<LpValue>> {
    if lp.len() < 7 {
        return Err(BAD);
    }
    let mut at = 6;
    let mut out = Vec::new();
    loop {
        let enc = *lp.get(at).ok_or(BAD)?;
        if enc == 0xff {
            break;
        }
        let get = |from: usize, n: usize| lp.get(from..from + n).ok_or(BAD);
        let (v, used) = if enc & 0x80 == 0 {
            (LpValue::Int((enc & 0x7f) as i64), 1)
        } else if enc & 0xc0 == 0x80 {
            let n = (enc & 0x3f) as usize;
            (LpValue::Str(get(at + 1, n)?.to_vec()), 1 + n)
        } else if enc & 0xe0 == 0xc0 {
            let u = (((enc & 0x1f) as i64) << 8) | *lp.get(at + 1).ok_or(BAD)? as i64;
            let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
            (LpValue::Int(v), 2)
        } else if enc & 0xf0 == 0xe0 {
            let n = (((enc & 0x0f) as usize) << 8) | *lp.get(at + 1).ok_or(BAD)? as usize;
            (LpValue::Str(get(at + 2, n)?.to_vec()), 2 + n)
        } else {
            match enc {
                0xf0 => {
                    let n =
                        u32::from_le_bytes(get(at + 1, 4)?.try_into().map_err(|_| BAD)?) as usize;
                    (LpValue::Str(get(at + 5, n)?.to_vec()), 5 + n)
                }
                0xf1 => (
                    LpValue::Int(
                        i16::from_le_bytes(get(at + 1, 2)?.try_into().map_err(|_| BAD)?) as i64,
                    ),
                    3,
                ),
                0xf2 => {
                    let b = get(at + 1, 3)?;
                    (
                        LpValue::Int((i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as i64),
                        4,
                    )
                }
                0xf3 => (
                    LpValue::Int(
                        i32::from_le_bytes(get(at + 1, 4)?.try_into().map_err(|_| BAD)?) as i64,
                    ),
                    5,
                ),
                0xf4 => (
                    LpValue::Int(i64::from_le_bytes(
                        get(at + 1, 8)?.try_into().map_err(|_| BAD)?,
                    )),
                    9,
                ),
                _ => return Err(BAD),
            }
        };
        out.push(v);
        at += used + backlen_size(used);
    }
    Ok(out)
}

fn listpack(lp: &[u8]) -> R<Vec<Vec<u8>>> {
    Ok(listpack_values(lp)?
        .into_iter()
        .map(LpValue::bytes)
        .collect())
}

fn intset(s: &[u8]) -> R<Vec<Vec<u8>>> {
    if s.len() < 8 {
        return Err(BAD);
    }
    let width = u32::from_le_bytes(s[..4].try_into().map_err(|_| BAD)?) as usize;
    let n = u32::from_le_bytes(s[4..8].try_into().map_err(|_| BAD)?) as usize;
    if !matches!(width, 2 | 4 | 8) || s.len() != 8 + width * n {
        return Err(BAD);
    }
    Ok(s[8..]
        .chunks(width)
        .map(|c| {
            let v = match width {
                2 => i16::from_le_bytes([c[0], c[1]]) as i64,
                4 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                _ => i64::from_le_bytes(c.try_into().expect("8 bytes")),
            };
            v.to_string().into_bytes()
        })
        .collect())
}

fn pairs(items: Vec<Vec<u8>>) -> R<Vec<(Vec<u8>, Vec<u8>)>> {
    if !items.len().is_multiple_of(2) {
        return Err(BAD);
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn score(s: &[u8]) -> R<f64> {
    let s = std::str::from_utf8(s).map_err(|_| BAD)?;
    match s {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|_| BAD),
    }
}

fn stream_listpack(master: Id, lp: &[u8], entries: &mut Vec<(Id, Vec<Vec<u8>>)>) -> R<()> {
    let v = listpack_values(lp)?;
    let mut it = v.into_iter();
    let mut next = || it.next().ok_or(BAD);
    let count = next()?.int()?;
    let deleted = next()?.int()?;
    let nfields = next()?.int()?;
    if nfields < 0 || count < 0 || deleted < 0 {
        return Err(BAD);
    }
    let mut master_fields = Vec::new();
    for _ in 0..nfields {
        master_fields.push(next()?.bytes());
    }
    if next()?.int()? != 0 {
        return Err(BAD);
    }
    for _ in 0..count + deleted {
        let flags = next()?.int()?;
        let ms = master.0.wrapping_add(next()?.int()? as u64);
        let seq = master.1.wrapping_add(next()?.int()? as u64);
        let mut pairs = Vec::new();
        if flags & 2 != 0 {
            for f in &master_fields {
                pairs.push(f.clone());
                pairs.push(next()?.bytes());
            }
        } else {
            let n = next()?.int()?;
            if n < 0 {
                return Err(BAD);
            }
            for _ in 0..2 * n {
                pairs.push(next()?.bytes());
            }
        }
        next()?; // lp-count
        if flags & 1 == 0 {
            entries.push(((ms, seq), pairs));
        }
    }
    Ok(())
}

fn read_stream(r: &mut Reader, kind: u8) -> R<Stream> {
    let mut s = Stream::default();
    let nodes = r.count(2)?;
    for _ in 0..nodes {
        let key = r.string()?;
        if key.len() != 16 {
            return Err(BAD);
        }
        let master = (
            u64::from_be_bytes(key[..8].try_into().map_err(|_| BAD)?),
            u64::from_be_bytes(key[8..].try_into().map_err(|_| BAD)?),
        );
        let lp = r.string()?;
        stream_listpack(master, &lp, &mut s.entries)?;
    }
    let length = r.len()?;
    if length != s.entries.len() as u64 || s.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BAD);
    }
    s.last_id = r.id_lens()?;
    if kind >= T_STREAM_LISTPACKS_2 {
        s.first_id = r.id_lens()?;
        s.max_deleted = r.id_lens()?;
        s.entries_added = r.len()?;
    } else {
        s.first_id = s.entries.first().map_or((0, 0), |e| e.0);
        s.entries_added = length;
    }
    let ngroups = r.count(3)?;
    for _ in 0..ngroups {
        let mut g = Group {
            name: r.string()?,
            last_id: r.id_lens()?,
            ..Group::default()
        };
        g.entries_read = if kind >= T_STREAM_LISTPACKS_2 {
            r.len()? as i64
        } else {
            -1
        };
        let npel = r.count(17)?;
        let mut pel = Vec::with_capacity(npel);
        for _ in 0..npel {
            let id = r.id_raw()?;
            let time = r.u64_le()?;
            let count = r.len()?;
            pel.push((id, time, count, None::<Vec<u8>>));
        }
        let nconsumers = r.count(9)?;
        for _ in 0..nconsumers {
            let name = r.string()?;
            let seen = r.u64_le()?;
            if kind >= T_STREAM_LISTPACKS_3 {
                r.u64_le()?; // active time (7.2)
            }
            let owned = r.count(16)?;
            for _ in 0..owned {
                let id = r.id_raw()?;
                let p = pel.iter_mut().find(|p| p.0 == id).ok_or(BAD)?;
                if p.3.is_some() {
                    return Err(BAD);
                }
                p.3 = Some(name.clone());
            }
            g.consumers.push((name, seen));
        }
        // Every pending entry has an owner (Redis refuses the payload otherwise).
        g.pending = pel
            .into_iter()
            .map(|(id, t, c, owner)| owner.map(|o| (id, t, c, o)).ok_or(BAD))
            .collect::<R<_>>()?;
        s.groups.push(g);
    }
    Ok(s)
}

/// The value in a DUMP payload (from any Redis 2.6 through 7.2, or rockraft).
pub fn restore(payload: &[u8]) -> R<Object> {
    let body = open(payload, RDB_VERSION_READ)?;
    let mut r = Reader::new(body);
    let kind = r.byte()?;
    let o = match kind {
        T_STRING => Object::String(r.string()?),
        T_LIST | T_SET => {
            let n = r.count(1)?;
            let items = (0..n).map(|_| r.string()).collect::<R<Vec<_>>>()?;
            if kind == T_LIST {
                Object::List(items)
            } else {
                Object::Set(items)
            }
        }
        T_ZSET | T_ZSET_2 => {
            let n = r.count(2)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.string()?;
                let s = if kind == T_ZSET_2 {
                    f64::from_le_bytes(r.take(8)?.try_into().map_err(|_| BAD)?)
                } else {
                    r.old_double()?
                };
                if s.is_nan() {
                    return Err(BAD);
                }
                out.push((m, s));
            }
            Object::ZSet(out)
        }
        T_HASH => {
            let n = r.count(2)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push((r.string()?, r.string()?));
            }
            Object::Hash(out)
        }
        T_LIST_ZIPLIST => Object::List(ziplist(&r.string()?)?),
        T_SET_INTSET => Object::Set(intset(&r.string()?)?),
        T_SET_LISTPACK => Object::Set(listpack(&r.string()?)?),
        T_ZSET_ZIPLIST | T_ZSET_LISTPACK => {
            let s = r.string()?;
            let items = if kind == T_ZSET_ZIPLIST {
                ziplist(&s)?
            } else {
                listpack(&s)?
            };
            Object::ZSet(
                pairs(items)?
                    .into_iter()
                    .map(|(m, s)| Ok((m, score(&s)?)))
                    .collect::<R<_>>()?,
            )
        }
        T_HASH_ZIPLIST | T_HASH_LISTPACK => {
            let s = r.string()?;
            let items = if kind == T_HASH_ZIPLIST {
                ziplist(&s)?
            } else {
                listpack(&s)?
            };
            Object::Hash(pairs(items)?)
        }
        T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
            let nodes = r.count(1)?;
            let mut items = Vec::new();
            for _ in 0..nodes {
                let container = if kind == T_LIST_QUICKLIST_2 {
                    r.len()?
                } else {
                    2
                };
                let node = r.string()?;
                match (kind, container) {
                    (T_LIST_QUICKLIST_2, 1) => items.push(node),
                    (T_LIST_QUICKLIST_2, 2) => items.extend(listpack(&node)?),
                    (T_LIST_QUICKLIST, _) => items.extend(ziplist(&node)?),
                    _ => return Err(BAD),
                }
            }
            Object::List(items)
        }
        T_STREAM_LISTPACKS | T_STREAM_LISTPACKS_2 | T_STREAM_LISTPACKS_3 => {
            Object::Stream(read_stream(&mut r, kind)?)
        }
        _ => return Err(BAD),
    };
    if !r.done() {
        return Err(BAD);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_redis_jones() {
        // Redis's crc64.c test vector.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn everything_written_reads_back() {
        let objects = [
            Object::String(b"hello".to_vec()),
            Object::String(vec![7u8; 20_000]),
            Object::List(vec![b"a".to_vec(), b"".to_vec(), vec![1u8; 300]]),
            Object::Set(vec![b"x".to_vec(), b"12".to_vec()]),
            Object::ZSet(vec![
                (b"m".to_vec(), 1.5),
                (b"n".to_vec(), f64::NEG_INFINITY),
            ]),
            Object::Hash(vec![(b"f".to_vec(), b"v".to_vec())]),
            Object::Stream(Stream {
                entries: (0..250u64)
                    .map(|i| {
                        let fields = if i % 7 == 0 {
                            vec![b"other".to_vec(), b"x".to_vec()]
                        } else {
                            vec![
                                b"f".to_vec(),
                                i.to_string().into_bytes(),
                                b"g".to_vec(),
                                vec![b'z'; i as usize],
                            ]
                        };
                        ((1_700_000_000_000 + i * 3, i % 2), fields)
                    })
                    .collect(),
                last_id: (1_700_000_000_747, 1),
                first_id: (1_700_000_000_000, 0),
                max_deleted: (5, 5),
                entries_added: 300,
                groups: vec![Group {
                    name: b"g1".to_vec(),
                    last_id: (1_700_000_000_003, 1),
                    entries_read: -1,
                    pending: vec![((1_700_000_000_000, 0), 123, 2, b"alice".to_vec())],
                    consumers: vec![(b"alice".to_vec(), 99), (b"bob".to_vec(), 100)],
                }],
            }),
        ];
        for o in objects {
            let payload = dump(&o);
            assert_eq!(restore(&payload).as_ref(), Ok(&o));
            let mut bad = payload.clone();
            let n = bad.len();
            bad[n - 1] ^= 1;
            assert_eq!(restore(&bad), Err(Refused::VersionOrChecksum));
        }
    }

    #[test]
    fn listpack_integers_round_trip() {
        let ints = [
            0i64,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -32768,
            32767,
            1 << 20,
            -(1 << 23),
            1 << 30,
            i64::MIN,
            i64::MAX,
        ];
        let items: Vec<LpItem> = ints.iter().map(|&i| LpItem::Int(i)).collect();
        let got = listpack_values(&write_listpack(&items)).unwrap();
        assert_eq!(
            got,
            ints.iter().map(|&i| LpValue::Int(i)).collect::<Vec<_>>()
        );
        let long = vec![b'q'; 5000];
        let strs = [
            LpItem::Str(b"a"),
            LpItem::Str(&long),
            LpItem::Str(&long[..100]),
        ];
        let got = listpack(&write_listpack(&strs)).unwrap();
        assert_eq!(got, [b"a".to_vec(), long.clone(), long[..100].to_vec()]);
    }

    #[test]
    fn lzf_back_references() {
        // "abcabcabcabc": 3 literals, then a back reference of length 9 at distance 3.
        let c = [2, b'a', b'b', b'c', (7 << 5), 0, 2];
        assert_eq!(lzf_decompress(&c, 12).unwrap(), b"abcabcabcabc");
    }
}
