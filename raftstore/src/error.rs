//! Errors of the raft store.

/// What went wrong with a proposal, a read, or the storage below them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// This node is not the leader; `leader` is the node it believes leads, if any.
    #[error("not leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// The proposal's log index was taken by an entry of another term: it will never apply.
    #[error("proposal was replaced by an entry of another term")]
    EntryReplaced,
    /// The proposal may or may not have been applied (a snapshot replaced the log that held
    /// it); only reading the data can tell.
    #[error("proposal outcome unknown")]
    OutcomeUnknown,
    /// raft-rs refused the proposal (e.g. a leader transfer is in progress); it was not logged.
    #[error("proposal dropped by raft")]
    ProposalDropped,
    /// A read could not be confirmed by a quorum in time.
    #[error("read index not confirmed in time")]
    ReadTimeout,
    /// A membership change waited its whole bound behind the one in progress (changes are
    /// made one at a time) and was given up without being proposed: it will never apply.
    #[error("membership change not started within {waited_ms} ms: {reason}")]
    ConfChangeNotStarted { waited_ms: u64, reason: String },
    /// raft-rs refused to apply a membership change.
    #[error("membership change rejected: {0}")]
    ConfChangeRejected(String),
    /// The raft group has shut down.
    #[error("raft group stopped")]
    Stopped,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("corrupted data: {0}")]
    Corrupted(String),
}

pub type Result<T> = std::result::Result<T, Error>;
