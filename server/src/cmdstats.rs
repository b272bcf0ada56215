//! INFO commandstats and errorstats: per command, how many calls, how long they took and how
//! many answered an error; per error code, how many errors. A command's time is the one SLOWLOG
//! uses (request read to reply ready). Containers count as one command (`cmdstat_client`,
//! where Redis counts each subcommand).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    micros: AtomicU64,
    failed: AtomicU64,
}

/// Redis keeps at most this many error codes.
const MAX_ERROR_CODES: usize = 128;

pub struct CommandStats {
    commands: HashMap<&'static str, Counters>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            commands: crate::command::table()
                .iter()
                .map(|c| (c.name, Counters::default()))
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

impl CommandStats {
    /// Counts one answered command (`error`: its error reply's text, if it failed).
    pub fn record(&self, name: &str, micros: u64, error: Option<&str>) {
        if let Some(c) = self.commands.get(name) {
            c.calls.fetch_add(1, Ordering::Relaxed);
            c.micros.fetch_add(micros, Ordering::Relaxed);
            if error.is_some() {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(e) = error {
            let code = e.split(' ').next().unwrap_or("ERR");
            let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = errors.get_mut(code) {
                *n += 1;
            } else if errors.len() < MAX_ERROR_CODES {
                errors.insert(code.to_string(), 1);
            }
        }
    }

    /// Every error reply counted.
    pub fn total_errors(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    pub fn reset(&self) {
        for c in self.commands.values() {
            c.calls.store(0, Ordering::Relaxed);
            c.micros.store(0, Ordering::Relaxed);
            c.failed.store(0, Ordering::Relaxed);
        }
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The `# Commandstats` lines (commands called at least once, by name).
    pub fn commandstats(&self, out: &mut String) {
        let mut names: Vec<&&str> = self.commands.keys().collect();
        names.sort();
        for name in names {
            let c = &self.commands[*name];
            let calls = c.calls.load(Ordering::Relaxed);
            if calls == 0 {
                continue;
            }
            let micros = c.micros.load(Ordering::Relaxed);
            let _ = write!(
                out,
                "cmdstat_{name}:calls={calls},usec={micros},usec_per_call={:.2},rejected_calls=0,failed_calls={}\r\n",
                micros as f64 / calls as f64,
                c.failed.load(Ordering::Relaxed)
            );
        }
    }

    /// The `# Errorstats` lines.
    pub fn errorstats(&self, out: &mut String) {
        for (code, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = write!(out, "errorstat_{code}:count={n}\r\n");
        }
    }
}
