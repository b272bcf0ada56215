//! rockraft-ctl: the operator's command line for rockraft nodes.

mod campaign;
mod cluster;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rockraft-ctl", version, about = "Operate rockraft nodes")]
struct Cli {
    /// Node to talk to.
    #[arg(
        long,
        global = true,
        env = "ROCKRAFT_HOST",
        default_value = "127.0.0.1"
    )]
    host: String,
    /// Client port of the node.
    #[arg(
        long,
        short,
        global = true,
        env = "ROCKRAFT_PORT",
        default_value_t = 6379
    )]
    port: u16,
    /// User to authenticate as (default: the default user).
    #[arg(long, global = true)]
    user: Option<String>,
    /// Password to authenticate with; `ROCKRAFT_AUTH` (`user:pass`, or a password) also sets
    /// both.
    #[arg(long, global = true, hide_env_values = true)]
    pass: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the node's raft state: role, term, leader, commit and applied index, members.
    Status,
    /// Check that the node answers, and print its round-trip time.
    Ping,
    /// Print the data digest (DEBUG DIGEST) and applied index of one or more nodes; exits 1 when
    /// nodes at the same applied index differ.
    Digest {
        /// Client ports of the nodes to compare (default: --port).
        #[arg(long, value_delimiter = ',')]
        ports: Vec<u16>,
    },
    /// Write a consistent copy of the node's store (a RocksDB checkpoint of the live node) to
    /// DIR, a new directory on the node's host.
    Backup {
        #[arg(long = "to", value_name = "DIR")]
        to: std::path::PathBuf,
    },
    /// Make a data directory for the first node of a new cluster from a backup: the node
    /// starts with the backup's data, a new node id and cluster id, and itself as the only
    /// member; add nodes with CLUSTER MEET.
    Restore {
        /// The backup (a directory written by `rockraft-ctl backup`).
        #[arg(long, value_name = "DIR")]
        from: std::path::PathBuf,
        /// The new node's data directory (must not exist, or be empty).
        #[arg(long, value_name = "DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Run a fault campaign against a local cluster and check its history for
    /// linearizability and lost writes; exits 1 on any anomaly.
    Campaign(campaign::Args),
    /// Check a history written by `campaign --history` for linearizability again.
    CheckHistory { file: std::path::PathBuf },
    /// Start or stop a local cluster of rockraft-server processes.
    Cluster {
        #[command(subcommand)]
        action: cluster::Action,
    },
}

fn main() {
    let cli = Cli::parse();
    rockraft_ctl::auth::from_env();
    if cli.pass.is_some() {
        rockraft_ctl::auth::set(cli.user.as_deref(), cli.pass.as_deref());
    }
    let result = match cli.command {
        Cmd::Cluster { action } => cluster::run(action, &cli.host),
        Cmd::Campaign(args) => campaign::run(args),
        Cmd::CheckHistory { ref file } => campaign::check_history(file),
        Cmd::Digest { ref ports } => digest(
            &cli.host,
            if ports.is_empty() {
                vec![cli.port]
            } else {
                ports.clone()
            },
        ),
        Cmd::Backup { ref to } => backup(&cli.host, cli.port, to),
        Cmd::Restore {
            ref from,
            ref data_dir,
        } => restore(from, data_dir),
        Cmd::Status | Cmd::Ping => node_command(&cli.host, cli.port, &cli.command),
    };
    if let Err(e) = result {
        eprintln!("rockraft-ctl: {e}");
        std::process::exit(1);
    }
}

fn backup(host: &str, port: u16, to: &std::path::Path) -> Result<(), String> {
    let dir = std::path::absolute(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let url = rockraft_ctl::auth::url(&format!("{host}:{port}"));
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let reply: String = redis::cmd("RRBACKUP")
        .arg(dir.to_string_lossy().as_ref())
        .query(&mut conn)
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    println!(
        "backup of {host}:{port} written to {} ({reply})",
        dir.display()
    );
    Ok(())
}

fn restore(from: &std::path::Path, data_dir: &std::path::Path) -> Result<(), String> {
    if !from.join("CURRENT").is_file() {
        return Err(format!(
            "{} is not a backup (no RocksDB CURRENT file)",
            from.display()
        ));
    }
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map_err(|e| e.to_string())?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", data_dir.display()));
    }
    // The server keeps its RocksDB in <data dir>/db.
    let db = data_dir.join("db");
    std::fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), db.join(entry.file_name()))
            .map_err(|e| format!("copy {}: {e}", entry.path().display()))?;
    }
    let engine = rockraft_raftstore::Engine::open(data_dir).map_err(|e| e.to_string())?;
    let (ident, index) =
        rockraft_raftstore::node::seed_new_cluster(&engine, rockraft_raftstore::DATA_GROUP_ID)
            .map_err(|e| e.to_string())?;
    println!(
        "restored {} into {} at applied index {index}: node {}, new cluster {:016x}",
        from.display(),
        data_dir.display(),
        rockraft_raftstore::node::redis_node_id(ident.node_id),
        ident.cluster_id
    );
    println!(
        "start it with: rockraft-server --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

fn digest(host: &str, ports: Vec<u16>) -> Result<(), String> {
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    let mut differ = false;
    for port in ports {
        let url = rockraft_ctl::auth::url(&format!("{host}:{port}"));
        let mut conn = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .map_err(|e| format!("{host}:{port}: {e}"))?;
        let digest: String = redis::cmd("DEBUG")
            .arg("DIGEST")
            .query(&mut conn)
            .map_err(|e| format!("{host}:{port}: {e}"))?;
        let info: String = redis::cmd("INFO")
            .arg("raft")
            .query(&mut conn)
            .map_err(|e| format!("{host}:{port}: {e}"))?;
        let applied = info
            .lines()
            .find_map(|l| l.strip_prefix("raft_applied_index:"))
            .unwrap_or("?")
            .trim()
            .to_string();
        println!("{host}:{port} {digest} applied_index={applied}");
        if let Some(other) = seen.insert(applied, digest.clone()) {
            differ |= other != digest;
        }
    }
    if differ {
        return Err("nodes at the same applied index have different data".into());
    }
    Ok(())
}

fn node_command(host: &str, port: u16, command: &Cmd) -> Result<(), String> {
    let url = rockraft_ctl::auth::url(&format!("{host}:{port}"));
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    match command {
        Cmd::Status => {
            let info: String = redis::cmd("INFO")
                .arg("raft")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            for line in info.lines().filter(|l| l.starts_with("raft_")) {
                let (k, v) = line.split_once(':').unwrap_or((line, ""));
                println!("{:<16} {}", k.trim_start_matches("raft_"), v);
            }
        }
        Cmd::Ping => {
            let started = std::time::Instant::now();
            let pong: String = redis::cmd("PING")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            println!("{pong} from {host}:{port} in {:?}", started.elapsed());
        }
        _ => unreachable!(),
    }
    Ok(())
}
