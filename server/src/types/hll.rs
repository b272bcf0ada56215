//! HyperLogLog in Redis's own string format, so a value moves between Redis and rockraft with
//! GET and SET and every node computes the same bytes.
//!
//! ```text
//! header (16 bytes): "HYLL" | encoding (0 dense, 1 sparse) | 3 unused | cached count (LE u64,
//!                    top bit set = stale)
//! dense:  16384 registers of 6 bits, packed from each byte's least significant bit up
//! sparse: run-length opcodes over the registers
//!         00xxxxxx           ZERO:  xxxxxx+1 registers at 0 (1..64)
//!         01xxxxxx yyyyyyyy  XZERO: the 14-bit xxxxxxyyyyyyyy+1 registers at 0 (1..16384)
//!         1vvvvvxx           VAL:   xx+1 registers (1..4) at vvvvv+1 (1..32)
//! ```
//!
//! An HLL starts sparse and turns dense when a register needs a value above 32 or the sparse
//! form would pass `hll-sparse-max-bytes` (3000). The register a value lands in and its run of
//! zeros come from MurmurHash64A, and the estimate is Ertl's improved estimator, both as in
//! Redis 7, so counts agree with Redis's exactly (standard error 0.81 %).

pub const HEADER: usize = 16;
pub const REGISTERS: usize = 1 << P;
/// A dense value's exact length.
pub const DENSE_SIZE: usize = HEADER + REGISTERS * BITS / 8;
/// Redis's default `hll-sparse-max-bytes`.
pub const SPARSE_MAX_BYTES: usize = 3000;

const P: usize = 14;
const Q: usize = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SPARSE_VAL_MAX: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
// 0.5 / ln 2 (Redis writes 0.721347520444481703680, the same double).
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The value is a string but not an HLL (Redis: `WRONGTYPE Key is not a valid HyperLogLog
/// string value.`).
#[derive(Debug)]
pub struct NotHll;

/// The sparse opcodes do not cover the registers exactly (Redis: `INVALIDOBJ`).
#[derive(Debug)]
pub struct Corrupt;

/// An HLL value, owned for reading or changing.
pub struct Hll {
    bytes: Vec<u8>,
}

/// MurmurHash2, 64-bit, read little-endian (Redis's endian-neutral variant).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `element` falls in and the length of its hash's `0…01` run (1..=Q+1).
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u16::from(regs[byte]);
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u16::from(REGISTER_MAX)) as u8
}

fn dense_put(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = u16::from(v);
    let max = u16::from(REGISTER_MAX);
    regs[byte] = ((u16::from(regs[byte]) & !(max << fb)) | (v << fb)) as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        let shift = 8 - fb;
        *next = ((u16::from(*next) & !(max >> shift)) | (v >> shift)) as u8;
    }
}

/// Raises register `i` to `count`; whether it changed.
fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

/// One sparse opcode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

impl Op {
    /// The opcode at `p` (a truncated XZERO reads its missing byte as 0, as Redis's
    /// terminating NUL does).
    fn at(b: &[u8], p: usize) -> Op {
        let op = b[p];
        if op & 0xc0 == 0 {
            Op::Zero(usize::from(op & 0x3f) + 1)
        } else if op & 0x80 != 0 {
            Op::Val(((op >> 2) & 0x1f) + 1, usize::from(op & 3) + 1)
        } else {
            let low = usize::from(b.get(p + 1).copied().unwrap_or(0));
            Op::XZero(((usize::from(op & 0x3f) << 8) | low) + 1)
        }
    }

    fn span(self) -> usize {
        match self {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        }
    }

    fn width(self) -> usize {
        if matches!(self, Op::XZero(_)) {
            2
        } else {
            1
        }
    }

    fn push(self, out: &mut Vec<u8>) {
        match self {
            Op::Zero(n) => out.push((n - 1) as u8),
            Op::XZero(n) => {
                let l = n - 1;
                out.push((l >> 8) as u8 | 0x40);
                out.push((l & 0xff) as u8);
            }
            Op::Val(v, n) => out.push(val_byte(v, n)),
        }
    }
}

fn val_byte(v: u8, n: usize) -> u8 {
    ((v - 1) << 2) | (n - 1) as u8 | 0x80
}

/// A run of `n` zero registers as the shorter opcode.
fn zeros(n: usize) -> Op {
    if n > SPARSE_ZERO_MAX_LEN {
        Op::XZero(n)
    } else {
        Op::Zero(n)
    }
}

/// Visits the sparse opcodes from `HEADER` on: (register index of the opcode's first register,
/// opcode).
fn sparse_ops(b: &[u8], mut visit: impl FnMut(usize, Op)) {
    let (mut p, mut idx) = (HEADER, 0);
    while p < b.len() {
        let op = Op::at(b, p);
        visit(idx, op);
        idx += op.span();
        p += op.width();
    }
}

/// Estimates the cardinality from the histogram of register values (Ertl, arXiv:1702.01284).
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The estimate for raw registers (one byte each), as PFCOUNT of several keys makes them.
pub fn count_registers(regs: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u64; 64];
    for &r in regs.iter() {
        histo[usize::from(r & 63)] += 1;
    }
    estimate(&histo)
}

impl Default for Hll {
    fn default() -> Self {
        Self::new()
    }
}

impl Hll {
    /// An empty HLL: sparse, one XZERO over every register.
    pub fn new() -> Hll {
        let mut bytes = Vec::with_capacity(HEADER + 2);
        bytes.extend_from_slice(b"HYLL");
        bytes.push(SPARSE);
        bytes.extend_from_slice(&[0; 11]);
        let mut left = REGISTERS;
        while left > 0 {
            let n = left.min(SPARSE_XZERO_MAX_LEN);
            Op::XZero(n).push(&mut bytes);
            left -= n;
        }
        Hll { bytes }
    }

    /// The HLL in a string value, checked as Redis's `isHLLObjectOrReply` checks it.
    pub fn parse(data: &[u8]) -> Result<Hll, NotHll> {
        if data.len() < HEADER || &data[..4] != b"HYLL" || data[4] > SPARSE {
            return Err(NotHll);
        }
        if data[4] == DENSE && data.len() != DENSE_SIZE {
            return Err(NotHll);
        }
        Ok(Hll {
            bytes: data.to_vec(),
        })
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn is_dense(&self) -> bool {
        self.bytes[4] == DENSE
    }

    /// The cached count, when the registers have not changed since it was computed.
    pub fn cached(&self) -> Option<u64> {
        let card = u64::from_le_bytes(self.bytes[8..16].try_into().expect("8 bytes"));
        (card >> 63 == 0).then_some(card)
    }

    pub fn invalidate_cache(&mut self) {
        self.bytes[15] |= 0x80;
    }

    /// Adds `element`; whether a register changed.
    pub fn add(&mut self, element: &[u8]) -> Result<bool, Corrupt> {
        let (index, count) = pattern(element);
        self.set(index, count)
    }

    /// Raises register `index` to `count`; whether it changed.
    pub fn set(&mut self, index: usize, count: u8) -> Result<bool, Corrupt> {
        if self.is_dense() {
            Ok(dense_set(&mut self.bytes[HEADER..], index, count))
        } else {
            self.sparse_set(index, count)
        }
    }

    /// The estimated cardinality (the cached one is not consulted).
    pub fn count(&self) -> Result<u64, Corrupt> {
        let mut histo = [0u64; 64];
        if self.is_dense() {
            let regs = &self.bytes[HEADER..];
            for i in 0..REGISTERS {
                histo[usize::from(dense_get(regs, i))] += 1;
            }
        } else {
            let mut covered = 0;
            sparse_ops(&self.bytes, |_, op| {
                covered += op.span();
                match op {
                    Op::Zero(n) | Op::XZero(n) => histo[0] += n as u64,
                    Op::Val(v, n) => histo[usize::from(v)] += n as u64,
                }
            });
            if covered != REGISTERS {
                return Err(Corrupt);
            }
        }
        Ok(estimate(&histo))
    }

    /// Raises each of `max`'s registers to this HLL's value (PFCOUNT of several keys, PFMERGE).
    pub fn merge_into(&self, max: &mut [u8; REGISTERS]) -> Result<(), Corrupt> {
        if self.is_dense() {
            let regs = &self.bytes[HEADER..];
            for (i, m) in max.iter_mut().enumerate() {
                *m = (*m).max(dense_get(regs, i));
            }
            return Ok(());
        }
        let (mut p, mut idx) = (HEADER, 0);
        while p < self.bytes.len() {
            let op = Op::at(&self.bytes, p);
            if let Op::Val(v, n) = op {
                if idx + n > REGISTERS {
                    break;
                }
                for m in &mut max[idx..idx + n] {
                    *m = (*m).max(v);
                }
            }
            idx += op.span();
            p += op.width();
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
        Ok(())
    }

    /// Turns a sparse HLL dense (the header, cached count included, is kept).
    pub fn to_dense(&mut self) -> Result<(), Corrupt> {
        if self.is_dense() {
            return Ok(());
        }
        let mut dense = vec![0u8; DENSE_SIZE];
        dense[..HEADER].copy_from_slice(&self.bytes[..HEADER]);
        dense[4] = DENSE;
        let regs = &mut dense[HEADER..];
        let mut idx = 0;
        let mut p = HEADER;
        while p < self.bytes.len() {
            let op = Op::at(&self.bytes, p);
            if let Op::Val(v, n) = op {
                if idx + n > REGISTERS {
                    break;
                }
                for i in idx..idx + n {
                    dense_put(regs, i, v);
                }
            }
            idx += op.span();
            p += op.width();
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
        self.bytes = dense;
        Ok(())
    }

    fn promote(&mut self, index: usize, count: u8) -> Result<bool, Corrupt> {
        self.to_dense()?;
        Ok(dense_set(&mut self.bytes[HEADER..], index, count))
    }

    /// Redis's `hllSparseSet`, step for step, so the opcodes come out the same bytes.
    fn sparse_set(&mut self, index: usize, count: u8) -> Result<bool, Corrupt> {
        if count > SPARSE_VAL_MAX {
            return self.promote(index, count);
        }
        // Find the opcode that covers `index`.
        let (mut p, mut first, mut prev, mut span) = (HEADER, 0usize, None, 0usize);
        while p < self.bytes.len() {
            let op = Op::at(&self.bytes, p);
            span = op.span();
            if index < first + span {
                break;
            }
            prev = Some(p);
            p += op.width();
            first += span;
        }
        if span == 0 || p >= self.bytes.len() {
            return Err(Corrupt);
        }
        let op = Op::at(&self.bytes, p);
        let simple = match op {
            Op::Val(old, _) if old >= count => return Ok(false),
            Op::Val(_, 1) | Op::Zero(1) => true,
            _ => false,
        };
        if simple {
            self.bytes[p] = val_byte(count, 1);
        } else {
            // Split the opcode around `index`.
            let last = first + span - 1;
            let mut seq = Vec::with_capacity(5);
            let around = |n: usize| match op {
                Op::Val(v, _) => Op::Val(v, n),
                _ => zeros(n),
            };
            if index != first {
                around(index - first).push(&mut seq);
            }
            Op::Val(count, 1).push(&mut seq);
            if index != last {
                around(last - index).push(&mut seq);
            }
            let old_end = (p + op.width()).min(self.bytes.len());
            let grows = seq.len() > old_end - p;
            if grows && self.bytes.len() + seq.len() - (old_end - p) > SPARSE_MAX_BYTES {
                return self.promote(index, count);
            }
            self.bytes.splice(p..old_end, seq);
        }
        // Merge adjacent VAL opcodes of one value, looking at up to 5 opcodes from `prev`.
        let mut p = prev.unwrap_or(HEADER);
        let mut scan = 5;
        while p < self.bytes.len() && scan > 0 {
            scan -= 1;
            match Op::at(&self.bytes, p) {
                Op::XZero(_) => p += 2,
                Op::Zero(_) => p += 1,
                Op::Val(v1, n1) => {
                    if p + 1 < self.bytes.len() {
                        if let Op::Val(v2, n2) = Op::at(&self.bytes, p + 1) {
                            if v1 == v2 && n1 + n2 <= SPARSE_VAL_MAX_LEN {
                                self.bytes[p + 1] = val_byte(v1, n1 + n2);
                                self.bytes.remove(p);
                                continue;
                            }
                        }
                    }
                    p += 1;
                }
            }
        }
        self.invalidate_cache();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_hll_is_two_xzero_bytes() {
        let h = Hll::new();
        assert_eq!(h.bytes.len(), HEADER + 2);
        assert_eq!(&h.bytes[HEADER..], &[0x7f, 0xff]);
        assert_eq!(h.count().unwrap(), 0);
    }

    #[test]
    fn dense_registers_round_trip() {
        let mut regs = vec![0u8; REGISTERS * BITS / 8];
        for i in 0..REGISTERS {
            dense_put(&mut regs, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&regs, i), (i % 64) as u8, "register {i}");
        }
    }

    #[test]
    fn sparse_and_dense_agree_and_stay_within_the_error() {
        let mut sparse = Hll::new();
        let mut dense = Hll::new();
        dense.to_dense().unwrap();
        for n in 0..20_000u32 {
            let e = format!("element:{n}");
            assert_eq!(
                sparse.add(e.as_bytes()).unwrap(),
                dense.add(e.as_bytes()).unwrap()
            );
            if n % 997 == 0 {
                assert_eq!(sparse.count().unwrap(), dense.count().unwrap(), "at {n}");
            }
        }
        assert!(sparse.is_dense(), "a big HLL turns dense");
        let c = sparse.count().unwrap() as f64;
        assert!((c - 20_000.0).abs() / 20_000.0 < 0.03, "count {c}");
        let mut a = [0u8; REGISTERS];
        sparse.merge_into(&mut a).unwrap();
        assert_eq!(count_registers(&a), sparse.count().unwrap());
    }
}
