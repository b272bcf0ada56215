//! INFO commandstats and errorstats: per command, how many calls, how long they took and how
//! many answered an error; per error code, how many errors. A command's time is the one SLOWLOG
//! uses (request read to reply ready); each command's latencies also go to a histogram (INFO
//! latencystats, LATENCY HISTOGRAM) and the latency monitor ([`crate::latency`]). Containers count as one command (`cmdstat_client`,
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
    fast: bool,
    latencies: crate::latency::Histogram,
}

/// Redis keeps at most this many error codes.
const MAX_ERROR_CODES: usize = 128;

pub struct CommandStats {
    commands: HashMap<&'static str, Counters>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// The latency monitor (LATENCY LATEST…), fed with the same timings.
    pub latency: crate::latency::Monitor,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            commands: crate::command::table()
                .iter()
                .map(|c| {
                    let fast = c.flags & crate::command::flags::FAST != 0;
                    (
                        c.name,
                        Counters {
                            fast,
                            ..Counters::default()
                        },
                    )
                })
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
            latency: crate::latency::Monitor::default(),
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
            // Redis keeps latencies in ns from the µs it measured.
            c.latencies.record(micros.saturating_mul(1000));
            let event = if c.fast { "fast-command" } else { "command" };
            self.latency.observe(event, micros / 1000);
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
            c.latencies.reset();
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

    /// The `# Latencystats` lines: p50, p99 and p99.9 of each command called.
    pub fn latencystats(&self, out: &mut String) {
        let mut names: Vec<&&str> = self.commands.keys().collect();
        names.sort();
        for name in names {
            self.commands[*name].latencies.info_line(name, out);
        }
    }

    /// LATENCY HISTOGRAM's entries: every command called (`None`), or the one named.
    pub fn histograms(&self, name: Option<&str>) -> Vec<(String, rockraft_resp::Reply)> {
        let mut names: Vec<&&str> = self
            .commands
            .keys()
            .filter(|n| name.is_none_or(|want| **n == want))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| Some((n.to_string(), self.commands[*n].latencies.cdf()?)))
            .collect()
    }

    /// The `# Errorstats` lines.
    pub fn errorstats(&self, out: &mut String) {
        for (code, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = write!(out, "errorstat_{code}:count={n}\r\n");
        }
    }
}
