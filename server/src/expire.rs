//! Background duties of a node: keep links to every member open, and active expiry.
//!
//! Active expiry: the leader finds keys whose time has passed (through the expiry index) and
//! proposes their deletion. Reads already treat them as absent; this reclaims the space and
//! makes the deletion part of the replicated log, judged with the entry's clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rockraft_resp::Reply;
use tokio::sync::broadcast;

use crate::command::now_ms;
use crate::state_machine::encode_command;
use crate::Shared;

const INTERVAL: Duration = Duration::from_millis(100);
const BATCH: usize = 512;

pub async fn run(shared: Arc<Shared>, mut shutdown: broadcast::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.recv() => return,
        }
        for info in shared.book.all() {
            if info.node_id != shared.node_id {
                shared.network.ensure_link(info.node_id);
            }
        }
        if !shared.group.status().is_leader() {
            continue;
        }
        // Keep going while full batches come back, so a burst of expiries drains quickly.
        loop {
            let now = now_ms();
            let due = shared.db.due_expirations(now, BATCH);
            if due.is_empty() {
                break;
            }
            let full = due.len() == BATCH;
            let mut argv = vec![Bytes::from_static(b"rockraft.delexpired")];
            for (at, key) in due {
                argv.push(Bytes::from(at.to_string()));
                argv.push(Bytes::from(key));
            }
            match shared.group.propose(now, encode_command(&argv)).await {
                Ok(Reply::Int(n)) => {
                    shared
                        .stats
                        .expired_keys
                        .fetch_add(n as u64, Ordering::Relaxed);
                    ::metrics::counter!("rockraft_expired_keys_total").increment(n as u64);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("expiry proposal failed: {e}");
                    break;
                }
            }
            if !full {
                break;
            }
        }
    }
}
