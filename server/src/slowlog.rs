//! SLOWLOG: the node's slowest recent commands, as Redis keeps them (newest first, at most
//! `slowlog-max-len`, each at least `slowlog-log-slower-than` microseconds). A command's time
//! is from the moment its request was read until its reply was ready: for a write, that
//! includes its raft round (commit on a quorum, apply), which is what a client waits for.
//! Blocking commands are not logged (their wait is not work), nor AUTH and HELLO (their
//! arguments are secrets).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use rockraft_resp::Reply;

/// Redis's SLOWLOG_ENTRY_MAX_ARGC and SLOWLOG_ENTRY_MAX_STRING.
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

pub struct Entry {
    id: u64,
    at_secs: i64,
    micros: i64,
    argv: Vec<Bytes>,
    addr: String,
    name: String,
}

pub struct SlowLog {
    /// `slowlog-log-slower-than` (negative: off).
    pub slower_than: AtomicI64,
    /// `slowlog-max-len`.
    pub max_len: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            slower_than: AtomicI64::new(10_000),
            max_len: AtomicU64::new(128),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }
}

/// Whether a command's time is worth logging at all (see the module's notes).
pub fn loggable(name: &str) -> bool {
    !matches!(
        name,
        "auth"
            | "hello"
            | "exec"
            | "blpop"
            | "brpop"
            | "brpoplpush"
            | "blmove"
            | "blmpop"
            | "bzpopmin"
            | "bzpopmax"
            | "bzmpop"
            | "xread"
            | "xreadgroup"
            | "wait"
    )
}

impl SlowLog {
    /// Whether a command that took `micros` goes in the log.
    pub fn wants(&self, micros: i64) -> bool {
        let t = self.slower_than.load(Ordering::Relaxed);
        t >= 0 && micros >= t && self.max_len.load(Ordering::Relaxed) > 0
    }

    /// Records a command (Redis's `slowlogPushEntryIfNeeded`, once [`SlowLog::wants`] said
    /// yes): its arguments trimmed as Redis trims them.
    pub fn push(&self, argv: &[Bytes], micros: i64, addr: String, name: String) {
        let mut kept: Vec<Bytes> = Vec::with_capacity(argv.len().min(MAX_ARGC));
        for (i, a) in argv.iter().enumerate().take(MAX_ARGC) {
            if argv.len() > MAX_ARGC && i == MAX_ARGC - 1 {
                kept.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    argv.len() - MAX_ARGC + 1
                )));
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                kept.push(Bytes::from(s));
            } else {
                kept.push(a.clone());
            }
        }
        let at_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            at_secs,
            micros,
            argv: kept,
            addr,
            name,
        };
        let mut entries = self.lock();
        entries.push_front(entry);
        let max = self.max_len.load(Ordering::Relaxed) as usize;
        entries.truncate(max);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Empties the log (CONFIG RESETSTAT, SLOWLOG RESET).
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Drops entries past a lowered `slowlog-max-len`.
    pub fn trim(&self) {
        let max = self.max_len.load(Ordering::Relaxed) as usize;
        self.lock().truncate(max);
    }
}

/// `SLOWLOG GET [count] | LEN | RESET | HELP`.
pub fn command(log: &SlowLog, argv: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_uppercase();
    match (sub.as_str(), argv.len()) {
        ("HELP", 2) => crate::command::help_reply(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Prints this help.",
        ]),
        ("RESET", 2) => {
            log.reset();
            Reply::ok()
        }
        ("LEN", 2) => Reply::Int(log.lock().len() as i64),
        ("GET", 2 | 3) => {
            let count = match argv.get(2) {
                None => 10,
                Some(c) => match crate::command::parse_i64(c) {
                    Some(-1) => usize::MAX,
                    Some(n) if n >= 0 => n as usize,
                    _ => return Reply::err("ERR count should be greater than or equal to -1"),
                },
            };
            Reply::Array(
                log.lock()
                    .iter()
                    .take(count)
                    .map(|e| {
                        Reply::Array(vec![
                            Reply::Int(e.id as i64),
                            Reply::Int(e.at_secs),
                            Reply::Int(e.micros),
                            Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                            Reply::bulk(e.addr.clone()),
                            Reply::bulk(e.name.clone()),
                        ])
                    })
                    .collect(),
            )
        }
        _ => Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            String::from_utf8_lossy(&argv[1])
                .chars()
                .take(128)
                .collect::<String>()
        )),
    }
}
