//! MONITOR: every command this node's clients send, to every monitoring connection, in
//! Redis's line format (`+1339518083.107412 [0 127.0.0.1:60866] "SET" "k" "v"`). A line goes
//! through the monitor's outbox, so a monitor that stops reading is disconnected at the
//! outbox's limits and never grows the node's memory. AUTH's arguments, HELLO's credentials
//! and CONFIG SET requirepass's value are redacted, and administrative commands and refused
//! ones (unknown, wrong arity, NOAUTH, NOPERM) are not shown, as in Redis. A command is shown
//! when it is dispatched (a queued one when it is queued, where Redis shows it at EXEC), and
//! scripts' calls are not shown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::pubsub::{Outbox, Push};

#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    outboxes: Mutex<HashMap<u64, Arc<Outbox>>>,
}

impl Monitors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Outbox>>> {
        self.outboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, client: u64, outbox: Arc<Outbox>) {
        let mut m = self.lock();
        m.insert(client, outbox);
        self.count.store(m.len(), Ordering::Release);
    }

    pub fn remove(&self, client: u64) {
        let mut m = self.lock();
        m.remove(&client);
        self.count.store(m.len(), Ordering::Release);
    }

    /// Whether anyone is monitoring (the check every command makes).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Sends one command to every monitor but `except` (`addr`: the client's `ip:port`).
    pub fn feed(&self, addr: &str, argv: &[Bytes], except: Option<u64>) {
        let line = line(addr, argv);
        for (id, outbox) in self.lock().iter() {
            if Some(*id) != except {
                outbox.push(Push::Monitor(line.clone()));
            }
        }
    }
}

/// Redis's `replicationFeedMonitors` line, without its `+` and CRLF.
fn line(addr: &str, argv: &[Bytes]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = format!("{}.{:06} [0 {addr}]", now.as_secs(), now.subsec_micros());
    let redacted = redactions(argv);
    for (i, a) in argv.iter().enumerate() {
        out.push(' ');
        if redacted.contains(&i) {
            out.push_str("\"(redacted)\"");
        } else {
            repr(&mut out, a);
        }
    }
    out
}

/// The arguments Redis 7.0 redacts from MONITOR.
fn redactions(argv: &[Bytes]) -> Vec<usize> {
    let is = |i: usize, w: &str| {
        argv.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(w.as_bytes()))
    };
    if is(0, "auth") {
        return (1..argv.len()).collect();
    }
    if is(0, "hello") {
        return match (2..argv.len()).find(|&i| is(i, "auth")) {
            Some(i) => vec![i + 1, i + 2],
            None => Vec::new(),
        };
    }
    if is(0, "config") && is(1, "set") {
        return (2..argv.len())
            .step_by(2)
            .filter(|&i| is(i, "requirepass"))
            .map(|i| i + 1)
            .collect();
    }
    Vec::new()
}

/// Redis's `sdscatrepr`: a quoted string with `\\`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b` and
/// `\xHH` for other unprintable bytes.
fn repr(out: &mut String, s: &[u8]) {
    out.push('"');
    for &c in s {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_and_redacted_as_redis_does() {
        let args = |a: &[&[u8]]| {
            a.iter()
                .map(|x| Bytes::copy_from_slice(x))
                .collect::<Vec<_>>()
        };
        let l = line("127.0.0.1:1", &args(&[b"SET", b"k2", b"x\ny\x01z\"\\"]));
        assert!(
            l.ends_with(r#"[0 127.0.0.1:1] "SET" "k2" "x\ny\x01z\"\\""#),
            "{l}"
        );
        let l = line("a", &args(&[b"HELLO", b"3", b"AUTH", b"default", b"pw"]));
        assert!(
            l.ends_with(r#""HELLO" "3" "AUTH" "(redacted)" "(redacted)""#),
            "{l}"
        );
        let l = line("a", &args(&[b"AUTH", b"pw"]));
        assert!(l.ends_with(r#""AUTH" "(redacted)""#), "{l}");
        let l = line("a", &args(&[b"config", b"set", b"requirepass", b"pw"]));
        assert!(
            l.ends_with(r#""config" "set" "requirepass" "(redacted)""#),
            "{l}"
        );
    }
}
