//! The Prometheus endpoint, and the names of the server's metrics.
//!
//! Exported: `rockraft_commands_total{cmd}`, `rockraft_command_duration_seconds{cmd}`,
//! `rockraft_connected_clients`, `rockraft_raft_term`, `rockraft_raft_commit_index`,
//! `rockraft_raft_applied_index`, `rockraft_raft_log_write_seconds` (the synced raft log write:
//! fsync latency), `rockraft_expired_keys_total`, `rockraft_raft_leader_changes_total`,
//! `rockraft_raft_is_leader`, `rockraft_raft_log_entries`, `rockraft_raft_log_bytes`,
//! `rockraft_raft_proposals_merged_total` (proposals that shared a log entry with others),
//! `rockraft_snapshots_{generated,sent,send_failed,received,installed}_total`, and the bus and
//! pub/sub counters below. Every counter is registered at start, so a dashboard's queries find
//! it at 0 before its first event (`deploy/grafana/rockraft.json` is checked against a scrape).

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Serves `/metrics` on `addr`. Only one recorder can exist per process.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("metrics endpoint on {addr}: {e}"))?;
    metrics::describe_counter!(
        "rockraft_commands_total",
        "Commands executed, by command name."
    );
    metrics::describe_histogram!(
        "rockraft_command_duration_seconds",
        "Time from reading a command to its reply being ready."
    );
    metrics::describe_gauge!("rockraft_connected_clients", "Connected clients.");
    metrics::describe_gauge!("rockraft_raft_term", "Current raft term.");
    metrics::describe_gauge!("rockraft_raft_commit_index", "Raft commit index.");
    metrics::describe_gauge!("rockraft_raft_applied_index", "Raft applied index.");
    metrics::describe_histogram!(
        "rockraft_raft_log_write_seconds",
        "Latency of the synced raft log write (one fsync per ready turn)."
    );
    metrics::describe_counter!(
        "rockraft_raft_leader_changes_total",
        "Times this node learned of a new raft leader."
    );
    metrics::describe_gauge!("rockraft_raft_is_leader", "1 on the raft leader, else 0.");
    metrics::describe_gauge!("rockraft_raft_log_entries", "Entries in the raft log.");
    metrics::describe_counter!(
        "rockraft_raft_proposals_merged_total",
        "Proposals that shared a raft log entry with others of the same turn."
    );
    metrics::describe_gauge!(
        "rockraft_raft_log_bytes",
        "Bytes of the raft log's entries."
    );
    for name in COUNTERS {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!("rockraft_raft_is_leader").set(0.0);
    Ok(())
}

/// The counters without labels, registered at start.
const COUNTERS: [&str; 13] = [
    "rockraft_expired_keys_total",
    "rockraft_raft_leader_changes_total",
    "rockraft_snapshots_generated_total",
    "rockraft_snapshots_sent_total",
    "rockraft_snapshots_send_failed_total",
    "rockraft_snapshots_received_total",
    "rockraft_snapshots_installed_total",
    "rockraft_bus_auth_failures_total",
    "rockraft_raft_messages_from_non_members_total",
    "rockraft_raft_messages_to_another_node_total",
    "rockraft_raft_proposals_merged_total",
    "rockraft_pubsub_published_total",
    "rockraft_pubsub_clients_disconnected_total",
];
