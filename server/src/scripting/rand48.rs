//! The 48-bit linear congruential generator behind Redis's `math.random` (`redisLrand48`,
//! the same as POSIX `lrand48`), so a seed gives the same numbers on every machine.

const A: u64 = 0x5_DEEC_E66D;
const C: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;

pub struct Rand48 {
    x: u64,
}

impl Rand48 {
    /// `redisSrand48(seed)`: the seed's 32 bits above the fixed low word 0x330E.
    pub fn new(seed: i32) -> Rand48 {
        Rand48 {
            x: ((u64::from(seed as u32)) << 16) | 0x330E,
        }
    }

    /// The next number in `[0, 2^31)`.
    pub fn next(&mut self) -> i32 {
        self.x = (A.wrapping_mul(self.x).wrapping_add(C)) & MASK;
        (self.x >> 17) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_posix_lrand48() {
        // srand48(0); lrand48() x3, and srand48(42); lrand48(), with glibc.
        let mut r = Rand48::new(0);
        assert_eq!(
            [r.next(), r.next(), r.next()],
            [366850414, 1610402240, 206956554]
        );
        assert_eq!(Rand48::new(42).next(), 1598855263);
    }
}
