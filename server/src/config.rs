//! Command-line flags; each also reads an environment variable (`ROCKRAFT_…`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// rockraft-server: a Redis-protocol server whose data is replicated with Raft and stored in
/// RocksDB. Every acknowledged write is committed to a synced raft log.
#[derive(Parser, Clone, Debug)]
#[command(name = "rockraft-server", version, about, long_about = None)]
pub struct Config {
    /// A configuration file in redis.conf syntax (`port 7001`, `dir /var/lib/rockraft`, one
    /// directive a line, Redis's names); flags and environment variables override it, and
    /// CONFIG REWRITE writes changed settings back to it.
    #[arg(long, env = "ROCKRAFT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The configuration file, named first as `redis-server /etc/redis/redis.conf` (the same
    /// as `--config`).
    #[arg(value_name = "CONFIG_FILE", conflicts_with = "config")]
    pub config_file_arg: Option<PathBuf>,

    /// Address to listen on for clients.
    #[arg(long, env = "ROCKRAFT_BIND", default_value = "127.0.0.1")]
    pub bind: String,

    /// Port to listen on for plaintext clients; 0 disables the plaintext listener (then the
    /// node serves only its TLS port, as Redis's `port 0`).
    #[arg(long, env = "ROCKRAFT_PORT", default_value_t = 6379)]
    pub port: u16,

    /// Port for raft traffic between nodes (default: client port + 10000, as Redis Cluster's bus).
    #[arg(long, env = "ROCKRAFT_BUS_PORT")]
    pub bus_port: Option<u16>,

    /// Host other nodes and clients are told to use for this node (MOVED, CLUSTER NODES);
    /// default: the bind address (127.0.0.1 when binding 0.0.0.0).
    #[arg(long, env = "ROCKRAFT_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,

    /// Peer port other nodes are told to use for this node (default: the bus port bound), as
    /// Redis's cluster-announce-bus-port: for NAT, port forwarding, or a proxy in between.
    #[arg(long, env = "ROCKRAFT_ADVERTISE_BUS_PORT")]
    pub advertise_bus_port: Option<u16>,

    /// Directory holding the node's RocksDB (raft log, raft state and data).
    #[arg(long, env = "ROCKRAFT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Address of the Prometheus `/metrics` HTTP endpoint (default: the bind address, port =
    /// client port + 20000); `off` disables it.
    #[arg(long, env = "ROCKRAFT_METRICS_ADDR", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<MetricsAddr>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive list.
    #[arg(long, env = "ROCKRAFT_LOG", default_value = "info")]
    pub log_level: String,

    /// Most clients connected at once; more are refused with Redis's error.
    #[arg(long, env = "ROCKRAFT_MAXCLIENTS", default_value_t = 10000)]
    pub maxclients: u64,

    /// Largest bulk string a client may send, in bytes (Redis's proto-max-bulk-len).
    #[arg(long, env = "ROCKRAFT_PROTO_MAX_BULK_LEN", default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: u64,

    /// How long a write waits to be committed and applied before the client is told its
    /// outcome is unknown, in milliseconds.
    #[arg(long, env = "ROCKRAFT_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,

    /// Compact the raft log once it holds more entries than this (the older half is removed,
    /// never past the applied index). A follower further behind catches up from a snapshot.
    #[arg(long, env = "ROCKRAFT_RAFT_LOG_MAX_ENTRIES", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(2..))]
    pub raft_log_max_entries: u64,

    /// Compact the raft log once its entries take more bytes than this.
    #[arg(long, env = "ROCKRAFT_RAFT_LOG_MAX_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub raft_log_max_bytes: u64,

    /// The default user's password (Redis's requirepass). The cluster's users are replicated
    /// state: this password is enforced by this node until the cluster has a default user of
    /// its own, and proposed as the cluster's when this node leads one that has none.
    /// `CONFIG SET requirepass` changes it for every node.
    #[arg(long, env = "ROCKRAFT_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,

    /// With no password for the default user, refuse clients that do not connect from
    /// 127.0.0.1 or ::1 (Redis's protected-mode).
    #[arg(long, env = "ROCKRAFT_PROTECTED_MODE", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub protected_mode: bool,

    /// An ACL file in Redis's format (`user <name> rule…` per line): `ACL LOAD` proposes its
    /// users as the cluster's, `ACL SAVE` writes the cluster's users to it.
    #[arg(long, env = "ROCKRAFT_ACLFILE")]
    pub aclfile: Option<PathBuf>,

    /// A secret every node of the cluster shares: each peer (bus) connection proves it with a
    /// challenge and an HMAC when it opens (the secret never crosses the wire), so a process
    /// that does not know it cannot vote, append, send a snapshot or be met into the cluster.
    #[arg(long, env = "ROCKRAFT_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,

    /// Port for TLS clients (none: no TLS listener).
    #[arg(long, env = "ROCKRAFT_TLS_PORT")]
    pub tls_port: Option<u16>,

    /// The server's certificate chain (PEM), for the TLS port.
    #[arg(long, env = "ROCKRAFT_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// The server's private key (PEM).
    #[arg(long, env = "ROCKRAFT_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, env = "ROCKRAFT_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,

    /// Whether TLS clients must present a certificate: yes, no, or optional (Redis's
    /// tls-auth-clients).
    #[arg(long, env = "ROCKRAFT_TLS_AUTH_CLIENTS", default_value = "yes")]
    pub tls_auth_clients: String,

    /// TLS versions to accept: "TLSv1.2", "TLSv1.3", or both separated by a space.
    #[arg(
        long,
        env = "ROCKRAFT_TLS_PROTOCOLS",
        default_value = "TLSv1.2 TLSv1.3"
    )]
    pub tls_protocols: String,

    /// Put the cluster bus (raft messages and the snapshot stream) on mutual TLS: every peer
    /// presents the node's certificate and must present one the CA signed (Redis's
    /// tls-cluster). Cluster commands then tell TLS clients each node's TLS port.
    #[arg(long, env = "ROCKRAFT_TLS_CLUSTER", default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub tls_cluster: bool,

    /// Not a flag: for tests and embedding, a port of 0 (client, TLS) picks a free port
    /// instead of disabling the listener.
    #[arg(skip)]
    pub zero_port_picks_free: bool,

    /// Not a flag: the file's settings for CONFIG SET to apply as the node starts.
    #[arg(skip)]
    pub file_settings: Vec<crate::config_file::RuntimeSetting>,

    /// Not a flag: the file's directives that were ignored, and why (logged at start).
    #[arg(skip)]
    pub file_warnings: Vec<String>,

    /// A file holding the cluster secret (its first line), instead of `--cluster-secret`.
    #[arg(
        long,
        env = "ROCKRAFT_CLUSTER_SECRET_FILE",
        conflicts_with = "cluster_secret"
    )]
    pub cluster_secret_file: Option<PathBuf>,
}

impl Config {
    /// The cluster secret from `--cluster-secret` or its file; an error names the file.
    pub fn secret(&self) -> Result<Option<Vec<u8>>, String> {
        if let Some(s) = &self.cluster_secret {
            return Ok((!s.is_empty()).then(|| s.as_bytes().to_vec()));
        }
        let Some(path) = &self.cluster_secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --cluster-secret-file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim();
        if line.is_empty() {
            return Err(format!("--cluster-secret-file {} is empty", path.display()));
        }
        Ok(Some(line.as_bytes().to_vec()))
    }
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

/// Where metrics are served, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    At(SocketAddr),
}

fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr::Off);
    }
    s.parse()
        .map(MetricsAddr::At)
        .map_err(|e| format!("expected HOST:PORT or 'off': {e}"))
}

impl Config {
    /// Where metrics are served: `--metrics-addr`, or the bind address at client port + 20000.
    pub fn metrics(&self, client_port: u16) -> Result<MetricsAddr, String> {
        match self.metrics_addr {
            Some(m) => Ok(m),
            None => match client_port.checked_add(20000) {
                Some(port) => parse_metrics_addr(&format!("{}:{port}", self.bind)),
                None => {
                    tracing::warn!(
                        "client port {client_port} + 20000 is not a port: metrics are off; set --metrics-addr"
                    );
                    Ok(MetricsAddr::Off)
                }
            },
        }
    }

    /// The host this node advertises.
    pub fn advertised_host(&self) -> String {
        match &self.advertise_host {
            Some(h) => h.clone(),
            None if self.bind == "0.0.0.0" || self.bind == "::" => "127.0.0.1".into(),
            None => self.bind.clone(),
        }
    }

    /// A configuration for tests and embedding: loopback, a free port, no metrics endpoint.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            config: None,
            config_file_arg: None,
            file_settings: Vec::new(),
            file_warnings: Vec::new(),
            bind: "127.0.0.1".into(),
            port: 0,
            bus_port: Some(0),
            advertise_host: None,
            advertise_bus_port: None,
            data_dir: data_dir.into(),
            metrics_addr: Some(MetricsAddr::Off),
            log_level: "info".into(),
            maxclients: 10000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            write_timeout_ms: 10_000,
            raft_log_max_entries: 20_000,
            raft_log_max_bytes: 64 << 20,
            requirepass: None,
            protected_mode: true,
            aclfile: None,
            cluster_secret: None,
            cluster_secret_file: None,
            tls_port: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: "yes".into(),
            tls_protocols: "TLSv1.2 TLSv1.3".into(),
            tls_cluster: false,
            zero_port_picks_free: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no_flags_take_a_value() {
        let c = Config::try_parse_from(["rockraft-server"]).unwrap();
        assert!(c.protected_mode && !c.tls_cluster && !c.zero_port_picks_free);
        let c = Config::try_parse_from([
            "rockraft-server",
            "--protected-mode",
            "no",
            "--tls-cluster",
            "yes",
        ])
        .unwrap();
        assert!(!c.protected_mode && c.tls_cluster);
        assert!(Config::try_parse_from(["rockraft-server", "--tls-cluster", "maybe"]).is_err());
    }
}
