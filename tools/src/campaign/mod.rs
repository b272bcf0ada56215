//! `rockraft-ctl campaign`: a black-box fault campaign, after Jepsen. Starts a cluster of
//! real `rockraft-server` processes whose peer traffic goes through proxies this runner
//! controls, runs clients doing GET/SET/INCR/DEL on a few keys (a register workload, every
//! operation recorded with its invoke and complete times) plus writes of unique keys, and
//! injects faults: kill -9 and restart, SIGSTOP/SIGCONT, partitions (halves, one-way, the
//! leader alone), delays, leader transfers, and membership changes (FORGET, wipe, MEET).
//! Then it heals everything and checks linearizability per key and that every acknowledged
//! unique-key write is still there. Exits 1 on any anomaly or lost write.
//!
//! Two more workloads run alongside:
//! - **queue**: clients LPUSH unique elements to one list and pop them with BRPOP or BLMOVE
//!   (into a second list). At the end no acknowledged push may be missing beyond what the
//!   pops of unknown outcome can explain, no element may have been delivered twice, and no
//!   element may appear that nobody pushed.
//! - **Lua CAS**: clients read a counter with EVAL_RO and increment it with an EVAL
//!   compare-and-set; no two acknowledged CASes took the same value, and the final value is
//!   between the acknowledged increments and those plus the unknown ones.
//! - **WATCH counter**: clients increment one counter with WATCH, GET, MULTI, SET, EXEC,
//!   retrying when EXEC answers nil. The final value must be at least the acknowledged
//!   increments and at most those plus the increments of unknown outcome.

pub mod checker;
mod proxy;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checker::{Call, Op, Verdict};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use rockraft_ctl::members;

const ALL_NEMESES: &[&str] = &[
    "kill",
    "pause",
    "partition",
    "oneway",
    "isolate-leader",
    "delay",
    "transfer",
    "member",
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seconds of faults and load (then healing and checking).
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Faults to mix, comma-separated: kill, pause, partition, oneway, isolate-leader, delay,
    /// transfer, member; or all.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    nemeses: Vec<String>,
    /// Seed of every random choice (default: from the clock); printed, so a run can be
    /// replayed as far as timing allows.
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Registers (keys) the clients share.
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Seconds each fault lasts.
    #[arg(long, default_value_t = 6)]
    fault_secs: u64,
    /// Seconds of calm after each fault.
    #[arg(long, default_value_t = 4)]
    quiet_secs: u64,
    /// The rockraft-server binary (default: next to rockraft-ctl).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Directory for the nodes' data and logs (default: a new temporary directory, removed
    /// when the campaign passes).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Writes every operation here, one per line.
    #[arg(long)]
    history: Option<PathBuf>,
}

struct Node {
    child: Option<Child>,
    port: u16,
    bus: u16,
    proxy: u16,
    dir: PathBuf,
    id: u64,
    paused: bool,
}

struct Cluster {
    nodes: Vec<Node>,
    bin: PathBuf,
    net: Arc<proxy::Net>,
    root: PathBuf,
    /// The campaign cluster's id: a wiped node leads a cluster of its own until it joins.
    cluster_id: String,
    /// The client ports clients may pick. A wiped node is left out until it has joined: until
    /// then it is a one-node cluster of its own, and what it acknowledged would be elsewhere.
    client_ports: Arc<Mutex<Vec<u16>>>,
}

fn free_port(rng: &mut StdRng) -> u16 {
    // Below the kernel's ephemeral range (so no outgoing connection takes it meanwhile) and
    // below the test harness's range.
    loop {
        let p = 15000 + rng.random_range(0..4999) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

fn connect(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(rockraft_ctl::auth::url(&format!("127.0.0.1:{port}"))).ok()?;
    let conn = c.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(conn)
}

fn info(port: u16, field: &str) -> Option<String> {
    let mut c = connect(port)?;
    let s: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Cluster {
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("n{i}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&self.bin)
            .args(["--port", &n.port.to_string()])
            .args(["--bus-port", &n.bus.to_string()])
            .args(["--advertise-bus-port", &n.proxy.to_string()])
            .args(["--metrics-addr", "off"])
            .args(["--raft-log-max-entries", "2000"])
            .arg("--data-dir")
            .arg(&n.dir)
            // With --pass (or ROCKRAFT_AUTH) the cluster is locked with that password.
            .envs(rockraft_ctl::auth::get().map(|(_, p)| ("ROCKRAFT_REQUIREPASS", p)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        n.child = Some(child);
        n.paused = false;
        let port = n.port;
        if !wait_until(Duration::from_secs(30), || connect(port).is_some()) {
            return Err(format!("node {i} does not accept connections"));
        }
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut connect(port).ok_or("connect")?)
            .map_err(|e| e.to_string())?;
        self.nodes[i].id = u64::from_str_radix(&id[id.len().saturating_sub(16)..], 16)
            .map_err(|e| e.to_string())?;
        self.publish_ids();
        Ok(())
    }

    fn publish_ids(&self) {
        self.net.set_ids(
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.id, i))
                .collect(),
        );
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&mut self, i: usize, sig: &str) {
        if let Some(c) = &self.nodes[i].child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
            self.nodes[i].paused = sig == "STOP";
        }
    }

    /// The leader of the campaign's cluster (never a wiped node leading only itself).
    fn leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            let port = self.nodes[i].port;
            self.nodes[i].child.is_some()
                && !self.nodes[i].paused
                && info(port, "raft_role").as_deref() == Some("leader")
                && info(port, "raft_cluster_id").as_deref() == Some(self.cluster_id.as_str())
        })
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nodes[i].port))
    }

    fn meet(&self, via: usize, i: usize) -> bool {
        members::meet(self.addr(via), &[self.addr(i)]).is_ok()
    }

    /// Every node a voter of one cluster, none a learner (the helper `cluster up` uses).
    fn wait_all_voters(&self, timeout: Duration) -> Result<(), String> {
        let addrs: Vec<SocketAddr> = (0..self.nodes.len()).map(|i| self.addr(i)).collect();
        members::wait_all_voters(&addrs, timeout)
    }

    /// Heals the network, resumes paused nodes and restarts dead ones.
    fn heal(&mut self) -> Result<(), String> {
        self.net.heal();
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.signal(i, "CONT");
            }
            if self.nodes[i].child.is_none() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Brings back into the cluster any node a failed membership change left outside it
    /// (wiped and MEET again, as an operator would).
    fn ensure_members(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let mut listed = false;
            let found = wait_until(Duration::from_secs(30), || {
                let Some(l) = self.leader() else {
                    return false;
                };
                let nodes: Option<String> = connect(self.nodes[l].port)
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("NODES").query(&mut c).ok());
                listed = nodes.is_some_and(|t| t.contains(&format!("{:040x}", self.nodes[i].id)));
                true
            });
            if !found {
                return Err("no leader after healing".into());
            }
            if listed {
                continue;
            }
            println!("n{i} is not a member after healing: wiping it and adding it again");
            if !self.rejoin(i)? {
                return Err(format!("cannot add n{i} back"));
            }
        }
        Ok(())
    }

    /// Wipes node `i` and adds it to the cluster again; clients use it again once it has
    /// joined. False if MEET did not succeed.
    fn rejoin(&mut self, i: usize) -> Result<bool, String> {
        let port = self.nodes[i].port;
        self.client_ports.lock().unwrap().retain(|&p| p != port);
        self.kill(i);
        let _ = std::fs::remove_dir_all(&self.nodes[i].dir);
        self.spawn(i)?;
        let met = wait_until(Duration::from_secs(20), || {
            self.leader().is_some_and(|l| l != i && self.meet(l, i))
        });
        let joined = met
            && wait_until(Duration::from_secs(20), || {
                info(port, "raft_cluster_id").as_deref() == Some(self.cluster_id.as_str())
            });
        if joined {
            self.client_ports.lock().unwrap().push(port);
        }
        Ok(joined)
    }

    fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.signal(i, "CONT");
            }
            self.kill(i);
        }
        self.net.stop();
    }
}

/// The outcome of one client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fail,
    Unknown,
}

struct Record {
    key: usize,
    op: Op,
    outcome: Outcome,
}

#[derive(Default)]
struct Recorded {
    ops: Vec<Record>,
    /// Unique keys whose SET was acknowledged, and writes of them attempted.
    acked: Vec<String>,
    ack_attempts: usize,
    queue: QueueRecord,
    counter: CounterRecord,
    script: ScriptRecord,
}

/// The Lua compare-and-set workload's record of one client.
#[derive(Default)]
struct ScriptRecord {
    /// CASes that answered 1 (the increment happened), with the value they expected.
    acked: Vec<i64>,
    unknown: u64,
    /// CASes that answered 0 (another client moved the value first), retried.
    lost_races: u64,
}

/// The Lua compare-and-set: increments KEYS[1] if it still holds ARGV[1].
const CAS_SCRIPT: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
    if v == tonumber(ARGV[1]) then redis.call('SET', KEYS[1], v + 1) return 1 end return 0";
const CAS_KEY: &str = "campaign:cas";

/// The queue workload's record of one client.
#[derive(Default)]
struct QueueRecord {
    /// Elements whose push was acknowledged, or whose outcome is unknown.
    pushed: Vec<String>,
    pushed_unknown: Vec<String>,
    /// Elements an acknowledged BRPOP delivered.
    popped: Vec<String>,
    /// Elements an acknowledged BLMOVE delivered (and moved to the second list).
    moved: Vec<String>,
    /// Pops answered with an unknown outcome (each may have taken one element).
    pops_unknown: usize,
    /// Pops that found nothing before their timeout.
    pops_empty: usize,
}

/// The WATCH counter workload's record of one client.
#[derive(Default)]
struct CounterRecord {
    acked: u64,
    unknown: u64,
    /// EXECs answered nil: a watched change, retried.
    aborted: u64,
}

const QUEUE: &str = "campaign:queue";
const QUEUE_DONE: &str = "campaign:done";
const COUNTER: &str = "campaign:counter";

fn classify(e: &redis::RedisError) -> (Outcome, Option<u16>) {
    let text = e.to_string();
    if text.contains("MOVED") {
        let port = text
            .split_whitespace()
            .filter_map(|t| t.rsplit_once(':'))
            .find_map(|(_, p)| {
                p.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            });
        return (Outcome::Fail, port);
    }
    // EXECABORT: a queued command was refused (MOVED while queuing); nothing ran.
    if text.contains("CLUSTERDOWN") || text.contains("TRYAGAIN") || text.contains("EXECABORT") {
        return (Outcome::Fail, None);
    }
    (Outcome::Unknown, None)
}

fn client(
    id: usize,
    ports: Arc<Mutex<Vec<u16>>>,
    keys: usize,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Recorded {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Recorded::default();
    let mut conn: Option<redis::Connection> = None;
    let mut target: Option<u16> = None;
    let mut counter = 0i64;
    let now = || start.elapsed().as_nanos() as u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            let port = target.take().unwrap_or_else(|| {
                let p = ports.lock().unwrap();
                p[rng.random_range(0..p.len())]
            });
            conn = connect(port);
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let c = conn.as_mut().expect("connected");
        counter += 1;
        let workload = rng.random_range(0..20);
        if workload < 2 {
            let failed = queue_op(c, id, counter, &mut rng, &mut out.queue, &mut target);
            if failed {
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        if workload == 2 {
            if counter_op(c, &mut out.counter, &mut target) {
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        if workload == 3 {
            if cas_op(c, &mut out.script, &mut target) {
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        if rng.random_range(0..10) == 0 {
            // A unique key, to count lost acknowledged writes at the end.
            let key = format!("ack:{id}:{counter}");
            out.ack_attempts += 1;
            match redis::cmd("SET").arg(&key).arg(1).query::<String>(c) {
                Ok(_) => out.acked.push(key),
                Err(e) => {
                    let (_, redirect) = classify(&e);
                    target = redirect;
                    conn = None;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            continue;
        }
        let key = rng.random_range(0..keys);
        let name = format!("r{key}");
        let call = match rng.random_range(0..10) {
            0..=3 => Call::Get,
            4..=6 => Call::Set((id as i64) * 1_000_000_000 + counter),
            7 | 8 => Call::Incr,
            _ => Call::Del,
        };
        let invoke = now();
        let result: redis::RedisResult<Option<i64>> = match call {
            Call::Get => redis::cmd("GET").arg(&name).query(c),
            Call::Set(v) => redis::cmd("SET")
                .arg(&name)
                .arg(v)
                .query::<String>(c)
                .map(|_| None),
            Call::Incr => redis::cmd("INCR").arg(&name).query::<i64>(c).map(Some),
            Call::Del => redis::cmd("DEL").arg(&name).query::<i64>(c).map(Some),
        };
        let complete = now();
        let (outcome, output) = match result {
            Ok(v) => (Outcome::Ok, v),
            Err(e) => {
                let (mut outcome, redirect) = classify(&e);
                if call == Call::Get && outcome == Outcome::Unknown {
                    // A read that got no answer changed nothing: leave it out.
                    outcome = Outcome::Fail;
                }
                target = redirect;
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
                (outcome, None)
            }
        };
        out.ops.push(Record {
            key,
            op: Op {
                client: id,
                call,
                invoke,
                complete: (outcome == Outcome::Ok).then_some(complete),
                output,
            },
            outcome,
        });
    }
    out
}

/// One queue operation: a push of a unique element, or a blocking pop. True when the
/// connection must be dropped (an error).
fn queue_op(
    c: &mut redis::Connection,
    id: usize,
    counter: i64,
    rng: &mut StdRng,
    rec: &mut QueueRecord,
    target: &mut Option<u16>,
) -> bool {
    let mut moving = false;
    let result = match rng.random_range(0..3) {
        0 => {
            let element = format!("q:{id}:{counter}");
            match redis::cmd("LPUSH").arg(QUEUE).arg(&element).query::<i64>(c) {
                Ok(_) => {
                    rec.pushed.push(element);
                    return false;
                }
                Err(e) => {
                    let (outcome, redirect) = classify(&e);
                    if outcome == Outcome::Unknown {
                        rec.pushed_unknown.push(element);
                    }
                    *target = redirect;
                    return true;
                }
            }
        }
        1 => redis::cmd("BRPOP")
            .arg(QUEUE)
            .arg(0.3)
            .query::<Option<(String, String)>>(c)
            .map(|r| r.map(|(_, e)| e)),
        _ => {
            moving = true;
            redis::cmd("BLMOVE")
                .arg(QUEUE)
                .arg(QUEUE_DONE)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(0.3)
                .query::<Option<String>>(c)
        }
    };
    match result {
        Ok(Some(e)) if moving => rec.moved.push(e),
        Ok(Some(e)) => rec.popped.push(e),
        Ok(None) => rec.pops_empty += 1,
        Err(e) => {
            let (outcome, redirect) = classify(&e);
            if outcome == Outcome::Unknown {
                rec.pops_unknown += 1;
            }
            *target = redirect;
            return true;
        }
    }
    false
}

/// One increment of the WATCH counter, retried while EXEC answers nil. True when the
/// connection must be dropped (an error).
fn counter_op(
    c: &mut redis::Connection,
    rec: &mut CounterRecord,
    target: &mut Option<u16>,
) -> bool {
    for _ in 0..20 {
        let watched = redis::cmd("WATCH")
            .arg(COUNTER)
            .query::<()>(c)
            .and_then(|_| redis::cmd("GET").arg(COUNTER).query::<Option<i64>>(c));
        let value = match watched {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                // Nothing was written yet.
                *target = classify(&e).1;
                return true;
            }
        };
        let exec: redis::RedisResult<Option<(String,)>> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(COUNTER)
            .arg(value + 1)
            .query(c);
        match exec {
            Ok(Some(_)) => {
                rec.acked += 1;
                return false;
            }
            Ok(None) => rec.aborted += 1,
            Err(e) => return drop_after(&e, &mut rec.unknown, target),
        }
    }
    false
}

/// After a failed request: counts it as unknown if it may have happened, remembers where a
/// redirect points; the connection is dropped (true).
fn drop_after(e: &redis::RedisError, unknown: &mut u64, target: &mut Option<u16>) -> bool {
    let (outcome, redirect) = classify(e);
    if outcome == Outcome::Unknown {
        *unknown += 1;
    }
    *target = redirect;
    true
}

/// One increment through the Lua compare-and-set: read the value with EVAL_RO, then EVAL
/// the CAS, retried while it answers 0. True when the connection must be dropped.
fn cas_op(c: &mut redis::Connection, rec: &mut ScriptRecord, target: &mut Option<u16>) -> bool {
    for _ in 0..20 {
        let read = redis::cmd("EVAL_RO")
            .arg("return redis.call('GET', KEYS[1])")
            .arg(1)
            .arg(CAS_KEY)
            .query::<Option<i64>>(c);
        let value = match read {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                *target = classify(&e).1;
                return true;
            }
        };
        match redis::cmd("EVAL")
            .arg(CAS_SCRIPT)
            .arg(1)
            .arg(CAS_KEY)
            .arg(value)
            .query::<i64>(c)
        {
            Ok(1) => {
                rec.acked.push(value);
                return false;
            }
            Ok(_) => rec.lost_races += 1,
            Err(e) => return drop_after(&e, &mut rec.unknown, target),
        }
    }
    false
}

/// Checks the queue and the counter against what the clients recorded; prints the figures;
/// true when they pass.
fn check_queue_and_counter(cluster: &Cluster, recorded: &[Recorded]) -> Result<bool, String> {
    use std::collections::{HashMap, HashSet};
    let read = |args: &[&str]| -> Result<redis::Value, String> {
        for _ in 0..100 {
            if let Some(v) = cluster
                .leader()
                .and_then(|l| connect(cluster.nodes[l].port))
                .and_then(|mut c| {
                    let mut cmd = redis::cmd(args[0]);
                    for a in &args[1..] {
                        cmd.arg(*a);
                    }
                    cmd.query::<redis::Value>(&mut c).ok()
                })
            {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("cannot read {}", args.join(" ")))
    };
    let strings = |v: redis::Value| -> Vec<String> {
        redis::from_redis_value::<Vec<String>>(v).unwrap_or_default()
    };
    let left = strings(read(&["LRANGE", QUEUE, "0", "-1"])?);
    let done = strings(read(&["LRANGE", QUEUE_DONE, "0", "-1"])?);
    let mut ok = true;
    let pushed: HashSet<&String> = recorded.iter().flat_map(|r| &r.queue.pushed).collect();
    let maybe: HashSet<&String> = recorded
        .iter()
        .flat_map(|r| &r.queue.pushed_unknown)
        .collect();
    let mut delivered: HashMap<&String, usize> = HashMap::new();
    // Where every element ended: delivered by BRPOP, still queued, or moved by BLMOVE (the
    // second list holds the acknowledged moves and those of unknown outcome).
    for e in recorded
        .iter()
        .flat_map(|r| &r.queue.popped)
        .chain(&left)
        .chain(&done)
    {
        *delivered.entry(e).or_default() += 1;
    }
    let in_done: HashSet<&String> = done.iter().collect();
    let moved_lost = recorded
        .iter()
        .flat_map(|r| &r.queue.moved)
        .filter(|e| !in_done.contains(e))
        .count();
    let doubled: Vec<&&String> = delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(e, _)| e)
        .collect();
    let invented: Vec<&&String> = delivered
        .keys()
        .filter(|e| !pushed.contains(**e) && !maybe.contains(**e))
        .collect();
    let missing = pushed
        .iter()
        .filter(|e| !delivered.contains_key(**e))
        .count();
    let pops_unknown: usize = recorded.iter().map(|r| r.queue.pops_unknown).sum();
    let pops: usize = recorded
        .iter()
        .map(|r| r.queue.popped.len() + r.queue.moved.len())
        .sum();
    let empty: usize = recorded.iter().map(|r| r.queue.pops_empty).sum();
    println!(
        "queue: {} pushes acknowledged ({} unknown), {pops} elements popped, {empty} pops timed out empty, {pops_unknown} pops of unknown outcome, {} left; doubled {}, lost {} (at most {pops_unknown} explained by unknown pops), never pushed {}, moved but not in the second list {moved_lost}",
        pushed.len(),
        maybe.len(),
        left.len(),
        doubled.len(),
        missing,
        invented.len()
    );
    for e in doubled.iter().take(10) {
        println!("DOUBLED queue element: {e}");
    }
    if !doubled.is_empty() || !invented.is_empty() || missing > pops_unknown || moved_lost > 0 {
        ok = false;
    }
    let value: i64 = redis::from_redis_value::<Option<i64>>(read(&["GET", COUNTER])?)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let acked: u64 = recorded.iter().map(|r| r.counter.acked).sum();
    let unknown: u64 = recorded.iter().map(|r| r.counter.unknown).sum();
    let aborted: u64 = recorded.iter().map(|r| r.counter.aborted).sum();
    let fine = value as u64 >= acked && value as u64 <= acked + unknown && value >= 0;
    println!(
        "WATCH counter: {acked} increments acknowledged, {unknown} unknown, {aborted} EXECs aborted by a watched change and retried; final value {value} ({})",
        if fine { "within bounds" } else { "OUT OF BOUNDS: lost or invented updates" }
    );
    // The Lua CAS: each acknowledged success moved the value from the one it expected, so no
    // two of them expected the same value (else one overwrote the other: a lost update), and
    // the final value counts them (plus at most the unknown ones).
    let cas_value: i64 = redis::from_redis_value::<Option<i64>>(read(&["GET", CAS_KEY])?)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let expected: Vec<i64> = recorded
        .iter()
        .flat_map(|r| r.script.acked.iter().copied())
        .collect();
    let cas_acked = expected.len() as u64;
    let cas_unknown: u64 = recorded.iter().map(|r| r.script.unknown).sum();
    let races: u64 = recorded.iter().map(|r| r.script.lost_races).sum();
    let (twice, cas_fine) = cas_verdict(expected, cas_value, cas_unknown);
    println!(
        "Lua CAS: {cas_acked} increments acknowledged, {cas_unknown} unknown, {races} lost races retried, {twice} from a value another acknowledged CAS also took; final value {cas_value} ({})",
        if cas_fine { "within bounds" } else { "VIOLATION: lost or invented updates" }
    );
    Ok(ok && fine && cas_fine)
}

/// The Lua CAS check: (acknowledged CASes that took a value another one also took, whether
/// the history is possible).
fn cas_verdict(mut expected: Vec<i64>, value: i64, unknown: u64) -> (usize, bool) {
    let acked = expected.len() as u64;
    expected.sort_unstable();
    let twice = expected.windows(2).filter(|w| w[0] == w[1]).count();
    let fine = twice == 0 && value >= 0 && value as u64 >= acked && value as u64 <= acked + unknown;
    (twice, fine)
}

struct Window {
    name: String,
    start: u64,
    end: u64,
}

/// Applies one fault; returns its description.
fn inject(cluster: &mut Cluster, name: &str, rng: &mut StdRng) -> Result<String, String> {
    let n = cluster.nodes.len();
    let leader = cluster.leader();
    Ok(match name {
        "kill" => {
            let i = if rng.random_range(0..2) == 0 {
                leader.unwrap_or(0)
            } else {
                rng.random_range(0..n)
            };
            cluster.kill(i);
            format!("kill -9 n{i}")
        }
        "pause" => {
            let i = if rng.random_range(0..2) == 0 {
                leader.unwrap_or(0)
            } else {
                rng.random_range(0..n)
            };
            cluster.signal(i, "STOP");
            format!("SIGSTOP n{i}")
        }
        "partition" => {
            let mut order: Vec<usize> = (0..n).collect();
            for k in (1..n).rev() {
                order.swap(k, rng.random_range(0..k + 1));
            }
            let minority = &order[..n / 2];
            let majority = &order[n / 2..];
            for &a in minority {
                for &b in majority {
                    cluster.net.cut(a, b);
                    cluster.net.cut(b, a);
                }
            }
            format!("partition {minority:?} | {majority:?}")
        }
        "isolate-leader" => {
            let l = leader.unwrap_or(0);
            for b in (0..n).filter(|&b| b != l) {
                cluster.net.cut(l, b);
                cluster.net.cut(b, l);
            }
            format!("isolate leader n{l}")
        }
        "oneway" => {
            let a = leader.unwrap_or_else(|| rng.random_range(0..n));
            for b in (0..n).filter(|&b| b != a) {
                cluster.net.cut(a, b);
            }
            format!("one-way: n{a} cannot send")
        }
        "delay" => {
            let ms = 50 + rng.random_range(0..150) as u64;
            cluster.net.set_delay(ms);
            format!("delay {ms} ms on every link")
        }
        "transfer" => {
            let followers: Vec<usize> = (0..n).filter(|&i| Some(i) != leader).collect();
            let f = followers[rng.random_range(0..followers.len())];
            if let Some(mut c) = connect(cluster.nodes[f].port) {
                let _: redis::RedisResult<String> =
                    redis::cmd("CLUSTER").arg("FAILOVER").query(&mut c);
            }
            format!("leader transfer to n{f}")
        }
        "member" => {
            let Some(l) = leader else {
                return Ok("membership change skipped (no leader)".into());
            };
            let others: Vec<usize> = (0..n).filter(|&i| i != l).collect();
            let m = others[rng.random_range(0..others.len())];
            let id = format!("{:040x}", cluster.nodes[m].id);
            // A FORGET may wait behind a change in progress (up to the write timeout, then
            // TRYAGAIN: not applied); give it that long. One whose outcome is unknown, or
            // that applies later, leaves the node out, which ensure_members repairs.
            let forgot = connect(cluster.nodes[l].port).is_some_and(|mut c| {
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                redis::cmd("CLUSTER")
                    .arg("FORGET")
                    .arg(&id)
                    .query::<String>(&mut c)
                    .is_ok()
            });
            if !forgot {
                return Ok(format!("membership change of n{m} refused"));
            }
            let ok = cluster.rejoin(m)?;
            format!(
                "FORGET n{m}, wipe, MEET again{}",
                if ok { "" } else { " (MEET failed)" }
            )
        }
        other => return Err(format!("unknown nemesis {other}")),
    })
}

pub fn run(args: Args) -> Result<(), String> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }) | 1;
    let nemeses: Vec<String> = if args.nemeses.iter().any(|n| n == "all") {
        ALL_NEMESES.iter().map(|s| s.to_string()).collect()
    } else {
        args.nemeses.clone()
    };
    for n in &nemeses {
        if !ALL_NEMESES.contains(&n.as_str()) {
            return Err(format!("unknown nemesis {n}; one of {ALL_NEMESES:?}"));
        }
    }
    if args.nodes < 3 {
        return Err("a campaign needs at least 3 nodes".into());
    }
    println!(
        "campaign: nodes={} duration={}s nemeses={} seed={seed} concurrency={} keys={}",
        args.nodes,
        args.duration,
        nemeses.join(","),
        args.concurrency,
        args.keys
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let bin = crate::cluster::server_binary(args.server_bin.clone())?;
    let (root, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("rockraft-campaign-{seed}")),
            true,
        ),
    };
    if temporary {
        // Left by an earlier run with the same seed that was interrupted.
        let _ = std::fs::remove_dir_all(&root);
    } else if std::fs::read_dir(&root).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("{} is not empty", root.display()));
    }
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let net = Arc::new(proxy::Net::default());
    let mut nodes = Vec::new();
    for i in 0..args.nodes {
        let (port, bus) = (free_port(&mut rng), free_port(&mut rng));
        let proxy = proxy::start(net.clone(), i, ([127, 0, 0, 1], bus).into())
            .map_err(|e| e.to_string())?;
        nodes.push(Node {
            child: None,
            port,
            bus,
            proxy,
            dir: root.join(format!("n{i}")),
            id: 0,
            paused: false,
        });
    }
    let mut cluster = Cluster {
        nodes,
        bin,
        net: net.clone(),
        root: root.clone(),
        cluster_id: String::new(),
        client_ports: Arc::new(Mutex::new(Vec::new())),
    };
    let result = campaign(&mut cluster, &args, &nemeses, &mut rng, seed);
    cluster.stop_all();
    match result {
        Ok(true) => {
            if temporary {
                let _ = std::fs::remove_dir_all(&root);
            }
            println!("result: PASS");
            Ok(())
        }
        Ok(false) => {
            println!("result: FAIL (node logs and data in {})", root.display());
            std::process::exit(1);
        }
        Err(e) => Err(format!("{e} (node logs in {})", root.display())),
    }
}

fn campaign(
    cluster: &mut Cluster,
    args: &Args,
    nemeses: &[String],
    rng: &mut StdRng,
    seed: u64,
) -> Result<bool, String> {
    for i in 0..cluster.nodes.len() {
        cluster.spawn(i)?;
    }
    cluster.cluster_id = info(cluster.nodes[0].port, "raft_cluster_id").ok_or("no cluster id")?;
    let n = cluster.nodes.len();
    let addrs: Vec<SocketAddr> = (0..n).map(|i| cluster.addr(i)).collect();
    members::form(&addrs, Duration::from_secs(60))?;
    println!(
        "cluster of {n} formed; load and faults for {}s",
        args.duration
    );

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    *cluster.client_ports.lock().unwrap() = cluster.nodes.iter().map(|n| n.port).collect();
    let ports = cluster.client_ports.clone();
    let clients: Vec<_> = (0..args.concurrency)
        .map(|id| {
            let (ports, stop) = (ports.clone(), stop.clone());
            let (keys, s) = (args.keys, seed.wrapping_mul(id as u64 + 7));
            std::thread::spawn(move || client(id, ports, keys, s, start, stop))
        })
        .collect();
    let now = || start.elapsed().as_nanos() as u64;
    let mut windows = Vec::new();
    let end = Duration::from_secs(args.duration);
    while start.elapsed() < end {
        let name = &nemeses[rng.random_range(0..nemeses.len())];
        let t0 = now();
        let what = inject(cluster, name, rng)?;
        println!("{:>7.1}s  fault: {what}", start.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_secs(args.fault_secs));
        cluster.heal()?;
        windows.push(Window {
            name: what,
            start: t0,
            end: now(),
        });
        let t1 = now();
        std::thread::sleep(Duration::from_secs(args.quiet_secs));
        windows.push(Window {
            name: "(healed)".into(),
            start: t1,
            end: now(),
        });
    }
    stop.store(true, Ordering::Relaxed);
    let recorded: Vec<Recorded> = clients
        .into_iter()
        .map(|h| h.join().map_err(|_| "a client thread panicked".to_string()))
        .collect::<Result<_, _>>()?;

    // Everything healed: all nodes must come back to one state.
    cluster.heal()?;
    cluster.ensure_members()?;
    let settled = match cluster.wait_all_voters(Duration::from_secs(60)) {
        Ok(()) => true,
        Err(e) => {
            println!("membership: {e}");
            false
        }
    };
    let converged = settled && converged(cluster);
    println!(
        "after healing: membership {}, data {}",
        if settled { "settled" } else { "NOT settled" },
        if converged {
            "identical on every node"
        } else {
            "NOT identical"
        }
    );

    // Lost acknowledged writes, read through the leader (linearizable reads).
    let acked: Vec<String> = recorded.iter().flat_map(|r| r.acked.clone()).collect();
    let attempts: usize = recorded.iter().map(|r| r.ack_attempts).sum();
    let lost = count_missing(cluster, &acked)?;

    let mut recorded = recorded;
    let mut all: Vec<Record> = recorded
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.ops))
        .collect();
    let recorded_tail = recorded;
    all.sort_by_key(|r| r.op.invoke);
    if let Some(path) = &args.history {
        write_history(path, &all).map_err(|e| e.to_string())?;
    }
    let count = |o: Outcome| all.iter().filter(|r| r.outcome == o).count();
    println!(
        "operations: {} register ops (ok {}, failed {}, unknown {}), {} unique-key writes ({} acknowledged)",
        all.len(),
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Unknown),
        attempts,
        acked.len()
    );
    println!("availability (acknowledged / attempted, by window):");
    for w in &windows {
        let inside: Vec<&Record> = all
            .iter()
            .filter(|r| r.op.invoke >= w.start && r.op.invoke < w.end)
            .collect();
        let ok = inside.iter().filter(|r| r.outcome == Outcome::Ok).count();
        println!(
            "  {:>6.1}s-{:>6.1}s  {:>5.1}%  ({ok}/{})  {}",
            w.start as f64 / 1e9,
            w.end as f64 / 1e9,
            if inside.is_empty() {
                0.0
            } else {
                100.0 * ok as f64 / inside.len() as f64
            },
            inside.len(),
            w.name
        );
    }

    let (anomalies, undecided) = check_all(&all, args.keys);
    println!("acknowledged writes lost: {lost} of {}", acked.len());
    let workloads = check_queue_and_counter(cluster, &recorded_tail)?;
    Ok(anomalies == 0 && undecided == 0 && lost == 0 && converged && workloads)
}

/// Checks every key's history; prints what it finds; returns (anomalies, undecided).
fn check_all(all: &[Record], keys: usize) -> (usize, usize) {
    let checking = Instant::now();
    let mut anomalies = 0;
    let mut undecided = 0;
    for key in 0..keys {
        let ops: Vec<Op> = all
            .iter()
            .filter(|r| r.key == key && r.outcome != Outcome::Fail)
            .map(|r| r.op.clone())
            .collect();
        // 200 search steps per operation (a step takes well under a microsecond), and at
        // least 20 million: with 10 clients on one key, 300k operations need ~40 million.
        let budget = (ops.len() as u64 * 200).max(20_000_000);
        let mut verdict = checker::check(&ops, budget);
        let mut shown = ops.len();
        if matches!(verdict, Verdict::Undecided) {
            // Where the trouble starts: the shortest prefix that does not check quickly. A
            // violation in a prefix is a violation of the history.
            let (mut lo, mut hi) = (0, ops.len());
            while lo + 1 < hi {
                let mid = (lo + hi) / 2;
                match checker::check(&checker::prefix(&ops, mid), 2_000_000) {
                    Verdict::Linearizable => lo = mid,
                    _ => hi = mid,
                }
            }
            if let v @ Verdict::Violation { .. } =
                checker::check(&checker::prefix(&ops, hi), budget)
            {
                verdict = v;
                shown = hi;
            } else {
                println!(
                    "key r{key}: the history up to operation {lo} checks, up to {hi} it is undecided; the operations before {hi}:"
                );
                for o in &ops[hi.saturating_sub(20)..hi] {
                    println!("    {}", describe(o));
                }
            }
        }
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Undecided => {
                undecided += 1;
                println!(
                    "key r{key}: search budget spent ({} ops): undecided",
                    ops.len()
                );
            }
            Verdict::Violation { linearized, around } => {
                anomalies += 1;
                println!(
                    "key r{key}: NOT LINEARIZABLE ({linearized} of the first {shown} ops placed); the operations around the failure:"
                );
                for o in around {
                    println!("    {}", describe(&o));
                }
            }
        }
    }
    println!(
        "linearizability: {keys} keys checked in {:.1}s, {anomalies} anomalies, {undecided} undecided",
        checking.elapsed().as_secs_f64()
    );
    (anomalies, undecided)
}

/// `rockraft-ctl check-history FILE`: checks a history written by `campaign --history`.
pub fn check_history(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut all = Vec::new();
    let secs = |t: &str| -> Result<u64, String> {
        let v: f64 = t
            .trim_end_matches('s')
            .parse()
            .map_err(|e| format!("{t}: {e}"))?;
        Ok((v * 1e9).round() as u64)
    };
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("line {}: cannot parse {line:?}", n + 1);
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 10 {
            return Err(bad());
        }
        let key: usize = t[0].trim_start_matches('r').parse().map_err(|_| bad())?;
        let outcome = match t[1] {
            "Ok" => Outcome::Ok,
            "Fail" => Outcome::Fail,
            _ => Outcome::Unknown,
        };
        let client: usize = t[3].parse().map_err(|_| bad())?;
        let (call, rest) = match t[4] {
            "GET" => (Call::Get, &t[5..]),
            "INCR" => (Call::Incr, &t[5..]),
            "DEL" => (Call::Del, &t[5..]),
            "SET" => (Call::Set(t[5].parse().map_err(|_| bad())?), &t[6..]),
            _ => return Err(bad()),
        };
        // invoked T completed T|unknown -> OUTPUT
        let invoke = secs(rest[1])?;
        let complete = if rest[3] == "unknown" {
            None
        } else {
            Some(secs(rest[3])?)
        };
        let output = rest[5]
            .strip_prefix("Some(")
            .and_then(|v| v.strip_suffix(')'))
            .map(|v| v.parse().map_err(|_| bad()))
            .transpose()?;
        all.push(Record {
            key,
            op: Op {
                client,
                call,
                invoke,
                complete,
                output,
            },
            outcome,
        });
    }
    let keys = all.iter().map(|r| r.key + 1).max().unwrap_or(0);
    let (anomalies, undecided) = check_all(&all, keys);
    if anomalies + undecided > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn converged(cluster: &Cluster) -> bool {
    wait_until(Duration::from_secs(60), || {
        let states: Vec<Option<(String, String)>> = cluster
            .nodes
            .iter()
            .map(|n| {
                let mut c = connect(n.port)?;
                let d: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).ok()?;
                Some((d, info(n.port, "raft_applied_index")?))
            })
            .collect();
        states[0].is_some() && states.iter().all(|s| *s == states[0])
    })
}

fn count_missing(cluster: &Cluster, keys: &[String]) -> Result<usize, String> {
    let mut missing = 0;
    for chunk in keys.chunks(500) {
        let mut tries = 0;
        loop {
            tries += 1;
            let got: Option<Vec<Option<String>>> = cluster
                .leader()
                .and_then(|l| connect(cluster.nodes[l].port))
                .and_then(|mut c| redis::cmd("MGET").arg(chunk).query(&mut c).ok());
            if let Some(values) = got {
                for (k, v) in chunk.iter().zip(values) {
                    if v.is_none() {
                        missing += 1;
                        println!("LOST acknowledged write: {k}");
                    }
                }
                break;
            }
            if tries > 100 {
                return Err("cannot read back the acknowledged writes".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(missing)
}

fn describe(o: &Op) -> String {
    let what = match o.call {
        Call::Get => "GET".to_string(),
        Call::Set(v) => format!("SET {v}"),
        Call::Incr => "INCR".into(),
        Call::Del => "DEL".into(),
    };
    let done = match o.complete {
        Some(c) => format!("{:.6}s", c as f64 / 1e9),
        None => "unknown".into(),
    };
    format!(
        "client {:>3} {:<24} invoked {:.6}s completed {:<12} -> {:?}",
        o.client,
        what,
        o.invoke as f64 / 1e9,
        done,
        o.output
    )
}

fn write_history(path: &PathBuf, all: &[Record]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in all {
        writeln!(f, "r{} {:?} {}", r.key, r.outcome, describe(&r.op))?;
    }
    f.flush()
}

#[cfg(test)]
mod cas_tests {
    #[test]
    fn the_cas_check_catches_lost_and_invented_updates() {
        use super::cas_verdict;
        assert_eq!(cas_verdict(vec![0, 1, 2], 3, 0), (0, true));
        assert_eq!(cas_verdict(vec![0, 2], 3, 1), (0, true));
        // Two acknowledged CASes from 1: one overwrote the other.
        assert_eq!(cas_verdict(vec![0, 1, 1], 2, 0), (1, false));
        // An acknowledged increment missing, or one nobody made.
        assert!(!cas_verdict(vec![0, 1, 2], 2, 0).1);
        assert!(!cas_verdict(vec![0, 1], 4, 1).1);
    }
}
