//! rockraft-ctl: the operator's command line for rockraft nodes.

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
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the node's raft state: role, term, leader, commit and applied index, members.
    Status,
    /// Check that the node answers, and print its round-trip time.
    Ping,
    /// Start or stop a local cluster of rockraft-server processes.
    Cluster {
        #[command(subcommand)]
        action: cluster::Action,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Cluster { action } => cluster::run(action),
        Cmd::Status | Cmd::Ping => node_command(&cli.host, cli.port, &cli.command),
    };
    if let Err(e) = result {
        eprintln!("rockraft-ctl: {e}");
        std::process::exit(1);
    }
}

fn node_command(host: &str, port: u16, command: &Cmd) -> Result<(), String> {
    let url = format!("redis://{host}:{port}/");
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
        Cmd::Cluster { .. } => unreachable!(),
    }
    Ok(())
}
