//! rockraft-ctl: the operator's command line for rockraft nodes.

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
    /// Show the node's raft state: role, term, leader, commit and applied index.
    Status,
    /// Check that the node answers, and print its round-trip time.
    Ping,
}

fn main() {
    let cli = Cli::parse();
    let url = format!("redis://{}:{}/", cli.host, cli.port);
    let result = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .and_then(|mut conn| match cli.command {
            Cmd::Status => {
                let info: String = redis::cmd("INFO").arg("raft").query(&mut conn)?;
                for line in info.lines().filter(|l| l.starts_with("raft_")) {
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    println!("{:<20} {}", k.trim_start_matches("raft_"), v);
                }
                Ok(())
            }
            Cmd::Ping => {
                let started = std::time::Instant::now();
                let pong: String = redis::cmd("PING").query(&mut conn)?;
                println!(
                    "{pong} from {}:{} in {:?}",
                    cli.host,
                    cli.port,
                    started.elapsed()
                );
                Ok(())
            }
        });
    if let Err(e) = result {
        eprintln!("rockraft-ctl: {}:{}: {e}", cli.host, cli.port);
        std::process::exit(1);
    }
}
