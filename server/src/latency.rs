//! The latency monitor (LATENCY LATEST HISTORY RESET DOCTOR GRAPH) and the per-command latency
//! histograms behind LATENCY HISTOGRAM and INFO latencystats, as Redis 7 keeps them.
//!
//! Events: `command` (a command slower than `latency-monitor-threshold` ms) and `fast-command`
//! (the same for a command flagged fast), timed as SLOWLOG times them. Each event keeps its
//! last 160 samples, one per second (the worst of that second), and its all-time high.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rockraft_resp::Reply;

/// Samples kept per event (Redis's LATENCY_TS_LEN).
const SAMPLES: usize = 160;

#[derive(Clone, Copy, Default)]
struct Sample {
    time: i64,
    latency: u64,
}

struct Series {
    samples: [Sample; SAMPLES],
    idx: usize,
    max: u64,
}

/// The latency monitor's events.
#[derive(Default)]
pub struct Monitor {
    /// `latency-monitor-threshold`, in milliseconds; 0 disables the monitor.
    pub threshold_ms: AtomicI64,
    events: Mutex<BTreeMap<String, Series>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Monitor {
    /// Notes `ms` for `event` when the monitor is on and it reaches the threshold.
    pub fn observe(&self, event: &str, ms: u64) {
        let threshold = self.threshold_ms.load(Ordering::Relaxed);
        if threshold > 0 && ms >= threshold as u64 {
            self.add(event, ms, now());
        }
    }

    fn add(&self, event: &str, latency: u64, time: i64) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let ts = events.entry(event.to_string()).or_insert_with(|| Series {
            samples: [Sample::default(); SAMPLES],
            idx: 0,
            max: 0,
        });
        ts.max = ts.max.max(latency);
        let prev = (ts.idx + SAMPLES - 1) % SAMPLES;
        if ts.samples[prev].time == time {
            ts.samples[prev].latency = ts.samples[prev].latency.max(latency);
            return;
        }
        ts.samples[ts.idx] = Sample { time, latency };
        ts.idx = (ts.idx + 1) % SAMPLES;
    }

    fn in_order(ts: &Series) -> impl Iterator<Item = Sample> + '_ {
        (0..SAMPLES)
            .map(move |j| ts.samples[(ts.idx + j) % SAMPLES])
            .filter(|s| s.time != 0)
    }

    /// LATENCY DOCTOR's report, in Redis's words for the events rockraft has.
    fn doctor(&self, slowlog_slower_than: i64) -> String {
        let threshold = self.threshold_ms.load(Ordering::Relaxed);
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.is_empty() && threshold == 0 {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
        }
        let mut report = String::new();
        let (mut slowlog_off, mut slowlog_tuning, mut inspect, mut scheduler) =
            (false, false, false, false);
        for (n, (event, ts)) in events.iter().enumerate() {
            if n == 0 {
                report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
            }
            let samples: Vec<Sample> = Self::in_order(ts).collect();
            let count = samples.len() as u64;
            let avg = samples
                .iter()
                .map(|s| s.latency)
                .sum::<u64>()
                .checked_div(count)
                .unwrap_or(0);
            let mad = samples
                .iter()
                .map(|s| s.latency.abs_diff(avg))
                .sum::<u64>()
                .checked_div(count)
                .unwrap_or(0);
            let period = samples
                .iter()
                .map(|s| s.time)
                .min()
                .map_or(0, |oldest| (now() - oldest).max(1));
            let _ = writeln!(
                report,
                "{}. {event}: {count} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
                n + 1,
                period as f64 / count.max(1) as f64,
                ts.max
            );
            match event.as_str() {
                "command" => {
                    if slowlog_slower_than < 0 {
                        slowlog_off = true;
                    } else if slowlog_slower_than / 1000 > threshold {
                        slowlog_tuning = true;
                    }
                    inspect = true;
                }
                "fast-command" => scheduler = true,
                _ => {}
            }
        }
        if events.is_empty() {
            report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
            return report;
        }
        report.push_str("\nI have a few advices for you:\n\n");
        if slowlog_off {
            let _ = writeln!(report, "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.", threshold * 1000);
        }
        if slowlog_tuning {
            let _ = writeln!(report, "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.", threshold * 1000);
        }
        if inspect {
            report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
        }
        if scheduler {
            report.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n");
        }
        if inspect {
            report.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
        }
        report
    }

    /// LATENCY GRAPH: Redis's header line and an 80-column bar per sample, tallest = high.
    fn graph(&self, event: &str) -> Option<String> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let ts = events.get(event)?;
        let samples: Vec<Sample> = Self::in_order(ts).collect();
        let high = samples.iter().map(|s| s.latency).max().unwrap_or(0);
        let low = samples.iter().map(|s| s.latency).min().unwrap_or(0);
        let mut g = format!(
            "{event} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n",
            ts.max,
            "-".repeat(80)
        );
        let t = now();
        for s in samples.iter().rev().take(80).rev() {
            let width = (s.latency * 60).checked_div(high).unwrap_or(0).max(1) as usize;
            let ago = t - s.time;
            let label = match ago {
                a if a < 60 => format!("{a}s"),
                a if a < 3600 => format!("{}m", a / 60),
                a if a < 86400 => format!("{}h", a / 3600),
                a => format!("{}d", a / 86400),
            };
            let _ = writeln!(g, "{label:>4} {} {}", "#".repeat(width), s.latency);
        }
        Some(g)
    }
}

/// Sub-buckets per power of two: values are kept within 1/16 (6%) of what was measured.
const SUB: usize = 16;
const BUCKETS: usize = 64 * SUB;
/// Redis keeps latencies from 1 ns to 1 s; longer ones count as 1 s.
const MAX_NANOS: u64 = 1_000_000_000;

/// One command's latencies, in nanoseconds.
pub struct Histogram {
    counts: OnceLock<Box<[AtomicU64]>>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: OnceLock::new(),
        }
    }
}

fn bucket(ns: u64) -> usize {
    let v = ns.clamp(1, MAX_NANOS);
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // >= 4
    let sub = ((v >> (e - 4)) as usize) & (SUB - 1);
    (e - 3) * SUB + sub
}

/// The highest value bucket `i` holds.
fn bucket_high(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let (e, sub) = (i / SUB + 3, (i % SUB) as u64);
    ((SUB as u64 + sub + 1) << (e - 4)) - 1
}

impl Histogram {
    pub fn record(&self, ns: u64) {
        let counts = self
            .counts
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
        counts[bucket(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        if let Some(c) = self.counts.get() {
            c.iter().for_each(|b| b.store(0, Ordering::Relaxed));
        }
    }

    fn snapshot(&self) -> Option<Vec<u64>> {
        let c = self.counts.get()?;
        let v: Vec<u64> = c.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        v.iter().any(|&n| n > 0).then_some(v)
    }

    /// The value below which `p` percent of the samples fall, in nanoseconds.
    fn percentile(counts: &[u64], p: f64) -> u64 {
        let total: u64 = counts.iter().sum();
        let want = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= want {
                return bucket_high(i);
            }
        }
        0
    }

    /// INFO latencystats' line for `name`, or None before its first call.
    pub fn info_line(&self, name: &str, out: &mut String) {
        let Some(counts) = self.snapshot() else {
            return;
        };
        let _ = write!(out, "latency_percentiles_usec_{name}:");
        for (j, (label, p)) in [("50", 50.0), ("99", 99.0), ("99.9", 99.9)]
            .iter()
            .enumerate()
        {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "p{label}={:.3}",
                Self::percentile(&counts, *p) as f64 / 1000.0
            );
        }
        out.push_str("\r\n");
    }

    /// LATENCY HISTOGRAM's entry: calls, and the cumulative count at each power-of-two bucket
    /// from 1 µs (Redis's log iteration from 1024 ns, doubling; buckets that add nothing are
    /// left out).
    pub fn cdf(&self) -> Option<Reply> {
        let counts = self.snapshot()?;
        let total: u64 = counts.iter().sum();
        let mut pairs = Vec::new();
        let (mut limit, mut cumulative, mut previous, mut i) = (1024u64, 0u64, 0u64, 0usize);
        while previous < total {
            while i < BUCKETS && bucket_high(i) < limit {
                cumulative += counts[i];
                i += 1;
            }
            if i < BUCKETS && bucket_high(i) == limit {
                cumulative += counts[i];
                i += 1;
            }
            if cumulative > previous {
                pairs.push((
                    Reply::Int((limit / 1000) as i64),
                    Reply::Int(cumulative as i64),
                ));
            }
            previous = cumulative;
            limit = limit.saturating_mul(2);
            if limit > MAX_NANOS * 4 {
                break;
            }
        }
        Some(Reply::Map(vec![
            (Reply::bulk("calls"), Reply::Int(total as i64)),
            (Reply::bulk("histogram_usec"), Reply::Map(pairs)),
        ]))
    }
}

const HELP: [&str; 17] = [
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

/// Finds the histograms LATENCY HISTOGRAM shows: every command's (None), or one's.
pub type Histograms<'a> = &'a dyn Fn(Option<&str>) -> Vec<(String, Reply)>;

/// The LATENCY command. `histogram(name)` finds a command's histogram (None: no such command).
pub fn command(
    monitor: &Monitor,
    argv: &[bytes::Bytes],
    histograms: Histograms,
    slowlog_slower_than: i64,
) -> Reply {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_uppercase();
    let argc = argv.len();
    let name = || String::from_utf8_lossy(&argv[2]).into_owned();
    match sub.as_str() {
        "HISTORY" if argc == 3 => {
            let events = monitor.events.lock().unwrap_or_else(|e| e.into_inner());
            let Some(ts) = events.get(&name()) else {
                return Reply::Array(vec![]);
            };
            Reply::Array(
                Monitor::in_order(ts)
                    .map(|s| Reply::Array(vec![Reply::Int(s.time), Reply::Int(s.latency as i64)]))
                    .collect(),
            )
        }
        "GRAPH" if argc == 3 => match monitor.graph(&name()) {
            Some(g) => Reply::Verbatim(g),
            None => Reply::err("ERR No samples available for event '".to_string() + &name() + "'"),
        },
        "LATEST" if argc == 2 => {
            let events = monitor.events.lock().unwrap_or_else(|e| e.into_inner());
            Reply::Array(
                events
                    .iter()
                    .map(|(event, ts)| {
                        let last = ts.samples[(ts.idx + SAMPLES - 1) % SAMPLES];
                        Reply::Array(vec![
                            Reply::bulk(event.clone()),
                            Reply::Int(last.time),
                            Reply::Int(last.latency as i64),
                            Reply::Int(ts.max as i64),
                        ])
                    })
                    .collect(),
            )
        }
        "DOCTOR" if argc == 2 => Reply::Verbatim(monitor.doctor(slowlog_slower_than)),
        "RESET" => {
            let mut events = monitor.events.lock().unwrap_or_else(|e| e.into_inner());
            if argc == 2 {
                let n = events.len();
                events.clear();
                return Reply::Int(n as i64);
            }
            let mut resets = 0;
            for a in &argv[2..] {
                let a = String::from_utf8_lossy(a);
                let hit: Vec<String> = events
                    .keys()
                    .filter(|k| k.eq_ignore_ascii_case(&a))
                    .cloned()
                    .collect();
                for k in hit {
                    events.remove(&k);
                    resets += 1;
                }
            }
            Reply::Int(resets)
        }
        "HISTOGRAM" => {
            let mut out = Vec::new();
            if argc == 2 {
                out = histograms(None);
            } else {
                for a in &argv[2..] {
                    out.extend(histograms(Some(
                        &String::from_utf8_lossy(a).to_ascii_lowercase(),
                    )));
                }
            }
            Reply::Map(out.into_iter().map(|(n, r)| (Reply::bulk(n), r)).collect())
        }
        "HELP" if argc == 2 => crate::command::help_reply(&HELP),
        _ => Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try LATENCY HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values() {
        for v in [
            1u64,
            2,
            15,
            16,
            17,
            31,
            32,
            1000,
            1024,
            4095,
            123_456,
            999_999_999,
        ] {
            let b = bucket(v);
            assert!(
                bucket_high(b) >= v,
                "{v}: bucket {b} high {}",
                bucket_high(b)
            );
            assert!(b == 0 || bucket_high(b - 1) < v, "{v}");
        }
    }

    #[test]
    fn cdf_counts_up_to_each_power_of_two() {
        let h = Histogram::default();
        for ns in [500, 1500, 1500, 3000, 20_000] {
            h.record(ns);
        }
        let Some(Reply::Map(m)) = h.cdf() else {
            panic!()
        };
        let Reply::Map(buckets) = &m[1].1 else {
            panic!()
        };
        let got: Vec<(i64, i64)> = buckets
            .iter()
            .map(|(k, v)| match (k, v) {
                (Reply::Int(k), Reply::Int(v)) => (*k, *v),
                _ => panic!(),
            })
            .collect();
        assert_eq!(got, [(1, 1), (2, 3), (4, 4), (32, 5)]);
    }
}
