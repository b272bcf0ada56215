//! Membership changes of a raft group, one at a time: changes queue behind the one in
//! progress (caught-up learners' promotions go first), a change that waits too long is given
//! up unproposed, and an applied change updates the configuration and the address book.

use std::time::Instant;

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};
use raft::{ProgressState, StateRole};
use tokio::sync::oneshot;

use super::{RaftGroup, Transport};
use crate::apply::{ApplyContext, StateMachine};
use crate::error::{Error, Result};
use crate::keys::{self, CF_RAFT};
use crate::proto::NodeInfo;

/// A membership change waiting for its turn.
pub(super) struct QueuedConfChange {
    pub(super) cc: ConfChangeV2,
    pub(super) queued: Instant,
    pub(super) reply: oneshot::Sender<Result<()>>,
}

impl<SM: StateMachine, T: Transport> RaftGroup<SM, T> {
    /// Proposes the next membership change if none is in progress: a caught-up learner's
    /// promotion first (it adds a vote), else the oldest queued change. Queued changes that
    /// waited `conf_change_wait` are given up (unproposed, so certainly not applied). Returns
    /// whether something was proposed.
    pub(super) fn start_conf_change(&mut self) -> bool {
        if self.conf_queue.is_empty() && self.raw.store().conf_state().learners.is_empty() {
            return false;
        }
        if self.raw.raft.state != StateRole::Leader {
            let err = self.not_leader();
            for q in self.conf_queue.drain(..) {
                let _ = q.reply.send(Err(err.clone()));
            }
            return false;
        }
        self.expire_conf_changes();
        if self.conf_change_busy() {
            return false;
        }
        if let Some(learner) = self.caught_up_learner() {
            let mut change = ConfChangeSingle::default();
            change.set_change_type(ConfChangeType::AddNode);
            change.node_id = learner;
            let mut cc = ConfChangeV2::default();
            cc.mut_changes().push(change);
            tracing::info!(
                group = self.cfg.group_id,
                node = learner,
                "promoting caught-up learner to voter"
            );
            return match self.propose_conf_change(cc) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(group = self.cfg.group_id, "promotion refused: {e}");
                    false
                }
            };
        }
        while let Some(q) = self.conf_queue.pop_front() {
            if q.reply.is_closed() {
                // Its caller gave up waiting; proposing it now would surprise them.
                continue;
            }
            if self.changes_nothing(&q.cc) {
                let _ = q.reply.send(Ok(()));
                continue;
            }
            match self.propose_conf_change(q.cc) {
                Ok((index, term)) => {
                    self.conf_proposal = Some((index, term, q.reply));
                    return true;
                }
                Err(e) => {
                    let _ = q.reply.send(Err(e));
                }
            }
        }
        false
    }

    /// Whether a membership change is in progress (or the leader may not start one yet).
    fn conf_change_busy(&self) -> bool {
        let raft = &self.raw.raft;
        self.conf_proposal.is_some()
            || raft.has_pending_conf()
            || !raft.commit_to_current_term()
            // raft drops proposals while leadership is being handed over: wait for the outcome.
            || raft.lead_transferee.is_some()
    }

    /// Why no membership change can be proposed now, if one cannot.
    fn conf_change_blocker(&self) -> Option<String> {
        let raft = &self.raw.raft;
        if let Some((index, _, _)) = &self.conf_proposal {
            return Some(format!(
                "the membership change at log index {index} is not applied yet"
            ));
        }
        if raft.has_pending_conf() {
            return Some(format!(
                "the membership change at log index {} is not applied yet (applied: {})",
                raft.pending_conf_index, raft.raft_log.applied
            ));
        }
        if !raft.commit_to_current_term() {
            return Some("the leader has not committed an entry of its term yet".into());
        }
        if let Some(to) = raft.lead_transferee {
            return Some(format!("leadership is being handed over to node {to}"));
        }
        None
    }

    /// Gives up the queued changes that waited their whole bound.
    fn expire_conf_changes(&mut self) {
        let wait = self.cfg.conf_change_wait;
        let now = Instant::now();
        if self
            .conf_queue
            .front()
            .is_none_or(|q| now.duration_since(q.queued) < wait)
        {
            return;
        }
        let reason = self
            .conf_change_blocker()
            .unwrap_or_else(|| "caught-up learners were being promoted".into());
        while self
            .conf_queue
            .front()
            .is_some_and(|q| now.duration_since(q.queued) >= wait)
        {
            let q = self.conf_queue.pop_front().expect("front exists");
            tracing::warn!(group = self.cfg.group_id, %reason, "membership change given up");
            let _ = q.reply.send(Err(Error::ConfChangeNotStarted {
                waited_ms: wait.as_millis() as u64,
                reason: reason.clone(),
            }));
        }
    }

    /// A learner whose log is close enough to the leader's to be promoted.
    fn caught_up_learner(&self) -> Option<u64> {
        let last = self.raw.raft.raft_log.last_index();
        let prs = self.raw.raft.prs();
        self.raw
            .store()
            .conf_state()
            .learners
            .iter()
            .copied()
            .find(|&learner| {
                prs.get(learner).is_some_and(|pr| {
                    pr.state == ProgressState::Replicate
                        && pr.recent_active
                        && pr.matched > 0
                        && pr.matched + self.cfg.promote_lag >= last
                })
            })
    }

    /// Whether `cc` would leave the configuration as it is: adding a node that is already a
    /// member (as a learner: never a voter demoted by a late MEET), or removing a non-member.
    fn changes_nothing(&self, cc: &ConfChangeV2) -> bool {
        let cs = self.raw.store().conf_state();
        cc.get_changes().iter().all(|c| match c.get_change_type() {
            ConfChangeType::AddLearnerNode => {
                cs.voters.contains(&c.node_id) || cs.learners.contains(&c.node_id)
            }
            ConfChangeType::AddNode => cs.voters.contains(&c.node_id),
            ConfChangeType::RemoveNode => !self.is_member(c.node_id),
        })
    }

    /// Appends a membership change to the log; its (index, term).
    fn propose_conf_change(&mut self, cc: ConfChangeV2) -> Result<(u64, u64)> {
        // A second voter ends the leader's local reads: stop them before the change exists.
        self.status
            .sole_voter_reads
            .store(false, std::sync::atomic::Ordering::Release);
        let before = self.raw.raft.raft_log.last_index();
        self.raw
            .propose_conf_change(vec![], cc)
            .map_err(|e| Error::ConfChangeRejected(e.to_string()))?;
        let index = self.raw.raft.raft_log.last_index();
        if index == before {
            return Err(Error::ProposalDropped);
        }
        Ok((index, self.raw.raft.term))
    }

    /// Applies a membership change; addresses of added nodes travel in its context.
    pub(super) fn apply_conf_change(
        &mut self,
        entry: &Entry,
        ctx: &mut ApplyContext<'_>,
    ) -> Result<()> {
        let cc = if entry.get_entry_type() == EntryType::EntryConfChange {
            ConfChange::parse_from_bytes(&entry.data).map(|c| {
                let mut single = ConfChangeSingle::default();
                single.set_change_type(c.get_change_type());
                single.node_id = c.node_id;
                let mut v2 = ConfChangeV2::default();
                v2.mut_changes().push(single);
                v2.context = c.context;
                v2
            })
        } else {
            ConfChangeV2::parse_from_bytes(&entry.data)
        }
        .unwrap_or_else(|e| panic!("corrupt conf change at {}: {e}", entry.index));
        fail::fail_point!("conf_change_apply");
        let cs = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => cs,
            Err(e) => {
                tracing::warn!(group = self.cfg.group_id, "conf change rejected: {e}");
                return Err(Error::ConfChangeRejected(e.to_string()));
            }
        };
        if !cc.context.is_empty() {
            if let Ok(info) = NodeInfo::parse_from_bytes(&cc.context) {
                self.record_address(info, ctx);
            }
        }
        for change in cc.get_changes() {
            if change.get_change_type() == ConfChangeType::RemoveNode {
                let key = keys::node_addr_key(self.cfg.group_id, change.node_id);
                ctx.batch().delete_cf(self.engine.cf(CF_RAFT), key);
                self.book.remove(change.node_id);
            }
        }
        tracing::info!(group = self.cfg.group_id, voters = ?cs.voters, learners = ?cs.learners, "membership changed");
        self.raw.mut_store().set_conf_state(cs, ctx.batch());
        self.publish_members();
        Ok(())
    }
}
