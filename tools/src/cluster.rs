//! `rockraft-ctl cluster up|down`: a local cluster of rockraft-server processes, like Redis's
//! create-cluster script. Each node gets `<dir>/node-<port>/` for data and `<dir>/node-<port>.log`;
//! the pids go to `<dir>/pids` for `down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Action {
    /// Start N nodes on consecutive ports and join them into one cluster.
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
    /// Stop the nodes started by `up` (SIGTERM).
    Down {
        #[arg(long, default_value = "./rockraft-cluster")]
        dir: PathBuf,
    },
}

pub fn run(action: Action) -> Result<(), String> {
    match action {
        Action::Up {
            nodes,
            base_port,
            dir,
            server_bin,
        } => up(nodes, base_port, &dir, server_bin),
        Action::Down { dir } => down(&dir),
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
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("timed out waiting for {what}"))
}

fn raft_field(port: u16, field: &str) -> Option<String> {
    let mut c = connect(port)?;
    let info: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn up(nodes: u16, base_port: u16, dir: &Path, server_bin: Option<PathBuf>) -> Result<(), String> {
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let bin = server_binary(server_bin)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut pids = Vec::new();
    let ports: Vec<u16> = (0..nodes).map(|i| base_port + i).collect();
    for &port in &ports {
        let log = std::fs::File::create(dir.join(format!("node-{port}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join(format!("node-{port}")))
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", port + 20000))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        pids.push(child.id().to_string());
    }
    std::fs::write(dir.join("pids"), pids.join("\n") + "\n").map_err(|e| e.to_string())?;
    for &port in &ports {
        wait_for(
            &format!("node on port {port}"),
            Duration::from_secs(30),
            || raft_field(port, "raft_role").is_some(),
        )?;
    }
    let first = ports[0];
    wait_for("the first node to lead", Duration::from_secs(30), || {
        raft_field(first, "raft_role").as_deref() == Some("leader")
    })?;
    let mut c = connect(first).ok_or("cannot connect to the first node")?;
    for &port in &ports[1..] {
        let r: redis::RedisResult<String> = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(port)
            .query(&mut c);
        r.map_err(|e| format!("CLUSTER MEET 127.0.0.1 {port}: {e}"))?;
    }
    let want = nodes.to_string();
    wait_for(
        "every node to become a voter",
        Duration::from_secs(60),
        || {
            raft_field(first, "raft_voters").as_deref() == Some(want.as_str())
                && raft_field(first, "raft_learners").as_deref() == Some("0")
        },
    )?;
    println!(
        "rockraft cluster of {nodes} node(s) is up (data and logs in {}):",
        dir.display()
    );
    for &port in &ports {
        println!(
            "  127.0.0.1:{port}  (metrics http://127.0.0.1:{}/metrics)",
            port + 20000
        );
    }
    println!("connect: redis-cli -c -p {first}");
    println!("stop:    rockraft-ctl cluster down --dir {}", dir.display());
    Ok(())
}

fn down(dir: &Path) -> Result<(), String> {
    let pids = std::fs::read_to_string(dir.join("pids"))
        .map_err(|e| format!("{}: {e}", dir.join("pids").display()))?;
    for pid in pids.lines().filter(|l| !l.trim().is_empty()) {
        let _ = Command::new("kill").arg("-TERM").arg(pid.trim()).status();
    }
    let _ = std::fs::remove_file(dir.join("pids"));
    println!("stopped {} node(s)", pids.lines().count());
    Ok(())
}
