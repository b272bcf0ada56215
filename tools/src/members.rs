//! Forming a cluster and knowing when it has formed. `rockraft-ctl cluster up`, the fault
//! campaign, the benchmarks (through `cluster up`) and the test harness all use these, so
//! "the cluster is up" means the same everywhere: every node is a voter, none is a learner,
//! and all of them name the same leader. A node that CLUSTER NODES merely lists may still be
//! a learner, which cannot vote: killing the leader then can leave the cluster without a
//! quorum.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long one MEET may take: the invited node answers, the change waits its turn behind
/// any in progress (bounded by the server's write timeout), then is applied.
const MEET_TIMEOUT: Duration = Duration::from_secs(90);

fn connect(addr: SocketAddr, read_timeout: Duration) -> Result<redis::Connection, String> {
    let client =
        redis::Client::open(crate::auth::url(&addr.to_string())).map_err(|e| e.to_string())?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| format!("{addr}: {e}"))?;
    conn.set_read_timeout(Some(read_timeout))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Sends `CLUSTER MEET` for every node of `joining` to `via`, back to back on one connection
/// (as an init script would); every one must answer OK.
pub fn meet(via: SocketAddr, joining: &[SocketAddr]) -> Result<(), String> {
    let mut c = connect(via, MEET_TIMEOUT)?;
    for node in joining {
        let r: redis::RedisResult<String> = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg(node.ip().to_string())
            .arg(meet_port(*node))
            .query(&mut c);
        match r {
            Ok(s) if s == "OK" => {}
            Ok(other) => return Err(format!("CLUSTER MEET {node} via {via}: {other}")),
            Err(e) => return Err(format!("CLUSTER MEET {node} via {via}: {e}")),
        }
    }
    Ok(())
}

/// The port a MEET names for the node at `addr`: its TLS port when its cluster talks TLS
/// (`--tls-cluster yes`: MEET then names TLS ports, as in Redis), else `addr`'s own.
fn meet_port(addr: SocketAddr) -> u16 {
    let get = |c: &mut redis::Connection, name: &str| -> Option<String> {
        let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(c).ok()?;
        v.get(1).cloned()
    };
    let tls_port = connect(addr, Duration::from_secs(5))
        .ok()
        .and_then(|mut c| {
            (get(&mut c, "tls-cluster")? == "yes").then_some(())?;
            get(&mut c, "tls-port")?
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
        });
    tls_port.unwrap_or(addr.port())
}

/// The membership one node reports (`INFO raft`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub membership: String,
    pub voters: usize,
    pub learners: usize,
    pub leader_id: u64,
    pub cluster_id: String,
}

/// What `addr` reports, if it answers.
pub fn view(addr: SocketAddr) -> Option<MemberView> {
    let mut c = connect(addr, Duration::from_secs(5)).ok()?;
    let info: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    Some(MemberView {
        membership: field("raft_membership")?,
        voters: field("raft_voters")?.parse().ok()?,
        learners: field("raft_learners")?.parse().ok()?,
        leader_id: field("raft_leader_id")?.parse().ok()?,
        cluster_id: field("raft_cluster_id")?,
    })
}

/// Whether the nodes at `addrs` form one cluster of exactly `addrs.len()` voters: each is a
/// voter, none sees a learner, and all name the same leader in the same cluster.
pub fn all_voters(addrs: &[SocketAddr]) -> Result<(), String> {
    let mut first: Option<(SocketAddr, MemberView)> = None;
    for &addr in addrs {
        let v = view(addr).ok_or_else(|| format!("{addr} does not answer INFO raft"))?;
        if v.membership != "voter" || v.voters != addrs.len() || v.learners != 0 {
            return Err(format!(
                "{addr} is a {} and sees {} voter(s) and {} learner(s), not {} voters",
                v.membership,
                v.voters,
                v.learners,
                addrs.len()
            ));
        }
        if v.leader_id == 0 {
            return Err(format!("{addr} knows no leader"));
        }
        match &first {
            None => first = Some((addr, v)),
            Some((a, f)) if f.leader_id != v.leader_id || f.cluster_id != v.cluster_id => {
                return Err(format!(
                    "{a} and {addr} disagree on the leader or the cluster"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Waits until [`all_voters`] holds, up to `timeout`; the last reason it did not, otherwise.
pub fn wait_all_voters(addrs: &[SocketAddr], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let why = match all_voters(addrs) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the cluster did not become {} voters within {timeout:?}: {why}",
                addrs.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Joins every other node of `addrs` to the cluster of `addrs[0]` (MEETs sent to it back to
/// back) and waits until all of them are voters.
pub fn form(addrs: &[SocketAddr], timeout: Duration) -> Result<(), String> {
    let Some((&via, others)) = addrs.split_first() else {
        return Err("no nodes".into());
    };
    meet(via, others)?;
    wait_all_voters(addrs, timeout)
}
