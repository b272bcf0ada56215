//! `rockraft-ctl cluster up|down`: a local cluster of rockraft-server processes, like Redis's
//! create-cluster script. Each node gets `<dir>/node-<port>/` for data and `<dir>/node-<port>.log`;
//! the pids go to `<dir>/pids` for `down`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Subcommand;
use rockraft_ctl::members;

#[derive(Subcommand)]
pub enum Action {
    /// Start N nodes on consecutive ports and join them into one cluster; returns once every
    /// node is a voter. On a directory holding the nodes of an earlier `up`, starts that
    /// cluster again with its data.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Client port of the first node; the others follow (peer ports are +10000).
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
        /// Directory for the nodes' data and logs.
        #[arg(long, default_value = "./rockraft-cluster")]
        dir: PathBuf,
        /// The rockraft-server binary (default: next to rockraft-ctl).
        #[arg(long)]
        server_bin: Option<PathBuf>,
    },
    /// Stop the nodes started by `up` (SIGTERM) and wait until every one has exited (SIGKILL
    /// after 30 s, which it reports). The data stays.
    Down {
        #[arg(long, default_value = "./rockraft-cluster")]
        dir: PathBuf,
    },
    /// Wait until the nodes on these client ports (on 127.0.0.1, or --host) are one cluster
    /// of that many voters, no learner among them.
    Wait {
        #[arg(long, value_delimiter = ',', required = true)]
        ports: Vec<u16>,
        /// Give up after this many seconds (exit status 1).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

pub fn run(action: Action, host: &str) -> Result<(), String> {
    match action {
        Action::Up {
            nodes,
            base_port,
            dir,
            server_bin,
        } => up(nodes, base_port, &dir, server_bin),
        Action::Down { dir } => down(&dir),
        Action::Wait { ports, timeout } => {
            let ip: std::net::IpAddr = host
                .parse()
                .map_err(|e| format!("--host {host}: {e} (an IP address)"))?;
            let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::new(ip, p)).collect();
            members::wait_all_voters(&addrs, Duration::from_secs(timeout))?;
            println!("{} voters, no learner", addrs.len());
            Ok(())
        }
    }
}

pub(crate) fn server_binary(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let candidate = me.with_file_name("rockraft-server");
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(format!(
            "{} not found; build it (cargo build --release --workspace --bins) or pass --server-bin",
            candidate.display()
        ))
    }
}

fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(rockraft_ctl::auth::url(&format!("127.0.0.1:{port}"))).ok()?;
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()
}

fn raft_field(port: u16, field: &str) -> Option<String> {
    let mut c = connect(port)?;
    let info: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn node_dir(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("node-{port}"))
}

/// The ports a node on client port `port` binds: client, bus (+10000), metrics (+20000).
fn node_ports(port: u16) -> Result<[u16; 3], String> {
    match (port.checked_add(10000), port.checked_add(20000)) {
        (Some(bus), Some(metrics)) => Ok([port, bus, metrics]),
        _ => Err(format!(
            "client port {port} leaves no room for its bus port (+10000) and metrics port (+20000); use a lower --base-port"
        )),
    }
}

/// Fails, naming the port, if any port the nodes need is taken.
fn check_ports_free(ports: &[u16]) -> Result<(), String> {
    for &port in ports {
        for p in node_ports(port)? {
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", p)) {
                return Err(format!(
                    "port {p} (needed by the node on {port}) is not free: {e}; stop whatever holds it (a cluster from before: rockraft-ctl cluster down --dir <its dir>) or pick another --base-port"
                ));
            }
        }
    }
    Ok(())
}

/// The last lines of a node's log, to say why it stopped.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Pids from `<dir>/pids` whose processes are still running.
fn running_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&pid| is_running_server(pid))
        .collect()
}

/// Whether `pid` is a live (not zombie) rockraft-server process.
fn is_running_server(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    if state.is_none_or(|s| s.starts_with('Z') || s.starts_with('X')) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("rockraft-server"))
}

fn up(nodes: u16, base_port: u16, dir: &Path, server_bin: Option<PathBuf>) -> Result<(), String> {
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let bin = server_binary(server_bin)?;
    let running = running_pids(dir);
    if !running.is_empty() {
        return Err(format!(
            "the cluster in {} is still running (pids {running:?}); stop it first: rockraft-ctl cluster down --dir {}",
            dir.display(),
            dir.display()
        ));
    }
    let ports: Vec<u16> = (0..nodes)
        .map(|i| {
            base_port
                .checked_add(i)
                .ok_or("--base-port + --nodes is past 65535")
        })
        .collect::<Result<_, _>>()?;
    // A directory that holds these nodes' data from an earlier `up` is started again as the
    // cluster it was; anything in between is not guessed at.
    let existing = ports.iter().filter(|&&p| node_dir(dir, p).exists()).count();
    let restart = existing == ports.len();
    if existing > 0 && !restart {
        return Err(format!(
            "{} holds data for {existing} of these {} nodes; remove it or use another --dir",
            dir.display(),
            ports.len()
        ));
    }
    check_ports_free(&ports)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut children = Vec::new();
    for &port in &ports {
        let log_path = dir.join(format!("node-{port}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = Command::new(&bin)
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(node_dir(dir, port))
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", port + 20000))
            // With --pass (or ROCKRAFT_AUTH) the cluster is locked with that password.
            .envs(rockraft_ctl::auth::get().map(|(_, p)| ("ROCKRAFT_REQUIREPASS", p)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        children.push((port, child, log_path));
    }
    let pids: Vec<String> = children
        .iter()
        .map(|(_, c, _)| c.id().to_string())
        .collect();
    std::fs::write(dir.join("pids"), pids.join("\n") + "\n").map_err(|e| e.to_string())?;
    for (port, child, log_path) in &mut children {
        let port = *port;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the node on port {port} exited ({status}); the end of {}:\n{}",
                    log_path.display(),
                    log_tail(log_path, 5)
                ));
            }
            if raft_field(port, "raft_role").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the node on port {port} did not answer within 30 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let addrs: Vec<SocketAddr> = ports
        .iter()
        .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    if restart {
        members::wait_all_voters(&addrs, Duration::from_secs(60))?;
    } else {
        let first = ports[0];
        let deadline = Instant::now() + Duration::from_secs(30);
        while raft_field(first, "raft_role").as_deref() != Some("leader") {
            if Instant::now() >= deadline {
                return Err("the first node did not become leader of itself within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        members::form(&addrs, Duration::from_secs(60))?;
    }
    println!(
        "rockraft cluster of {nodes} node(s) is {} (every node a voter; data and logs in {}):",
        if restart { "up again" } else { "up" },
        dir.display()
    );
    for &port in &ports {
        println!(
            "  127.0.0.1:{port}  (metrics http://127.0.0.1:{}/metrics)",
            port + 20000
        );
    }
    println!("connect: redis-cli -c -p {}", ports[0]);
    println!("stop:    rockraft-ctl cluster down --dir {}", dir.display());
    Ok(())
}

/// How long `down` waits for the nodes to exit after SIGTERM (a leader hands over first)
/// before it kills them.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn down(dir: &Path) -> Result<(), String> {
    let pids_file = dir.join("pids");
    let listed = std::fs::read_to_string(&pids_file)
        .map_err(|e| format!("{}: {e} (no cluster started there?)", pids_file.display()))?;
    let pids: Vec<u32> = listed
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&pid| is_running_server(pid))
        .collect();
    for pid in &pids {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline && pids.iter().any(|&p| is_running_server(p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stuck: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| is_running_server(p))
        .collect();
    for pid in &stuck {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
    let gone = Instant::now() + Duration::from_secs(10);
    while Instant::now() < gone && stuck.iter().any(|&p| is_running_server(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&pids_file);
    if !stuck.is_empty() {
        println!(
            "{} node(s) did not exit within {} s of SIGTERM and were killed (SIGKILL): pids {stuck:?}",
            stuck.len(),
            STOP_TIMEOUT.as_secs()
        );
    }
    println!("stopped {} node(s); every one has exited", pids.len());
    Ok(())
}
