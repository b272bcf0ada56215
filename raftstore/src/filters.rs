//! Ready-made [`SendFilter`]s for fault tests: partitions, isolation, one-way links, random
//! drops, drops by message type and delays (the vocabulary of raft-rs's test network).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use raft::eraftpb::{Message, MessageType};

use crate::transport::SendFilter;

/// Only messages within one side of the partition pass.
pub struct Partition {
    pub sides: Vec<HashSet<u64>>,
}

impl SendFilter for Partition {
    fn allow(&self, m: &Message) -> bool {
        self.sides
            .iter()
            .any(|side| side.contains(&m.from) && side.contains(&m.to))
            || !self
                .sides
                .iter()
                .any(|s| s.contains(&m.from) || s.contains(&m.to))
    }
}

/// Messages from `from` to `to` are dropped; the other direction passes.
pub struct OneWay {
    pub from: HashSet<u64>,
    pub to: HashSet<u64>,
}

impl SendFilter for OneWay {
    fn allow(&self, m: &Message) -> bool {
        !(self.from.contains(&m.from) && self.to.contains(&m.to))
    }
}

/// Drops `percent`% of messages, pseudo-randomly from `seed` (reproducible).
pub struct DropRate {
    pub percent: u64,
    state: AtomicU64,
}

impl DropRate {
    pub fn new(percent: u64, seed: u64) -> DropRate {
        DropRate {
            percent,
            state: AtomicU64::new(seed | 1),
        }
    }
}

impl SendFilter for DropRate {
    fn allow(&self, _: &Message) -> bool {
        // xorshift64*: cheap, and good enough to spread drops.
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545F4914F6CDD1D) % 100 >= self.percent
    }
}

/// Drops every message of the given types.
pub struct DropType(pub Vec<MessageType>);

impl SendFilter for DropType {
    fn allow(&self, m: &Message) -> bool {
        !self.0.contains(&m.get_msg_type())
    }
}

/// Holds every message back for `min_ms` to `max_ms` milliseconds, pseudo-randomly from
/// `seed`: a slow network, on which messages also overtake each other.
pub struct Delay {
    pub min_ms: u64,
    pub max_ms: u64,
    state: AtomicU64,
}

impl Delay {
    pub fn new(min_ms: u64, max_ms: u64, seed: u64) -> Delay {
        Delay {
            min_ms,
            max_ms: max_ms.max(min_ms),
            state: AtomicU64::new(seed | 1),
        }
    }
}

impl SendFilter for Delay {
    fn allow(&self, _: &Message) -> bool {
        true
    }

    fn delay(&self, _: &Message) -> Option<std::time::Duration> {
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        let span = self.max_ms - self.min_ms + 1;
        Some(std::time::Duration::from_millis(self.min_ms + x % span))
    }
}
