//! Linearizability of a register history, key by key (a P-compositional check): the
//! Wing–Gong–Lowe search with a cache of (linearized set, state), as in Lowe's "Testing for
//! linearizability" and porcupine.
//!
//! An operation whose outcome is unknown (timeout, lost connection) may have taken effect at
//! any point within [`UNKNOWN_WINDOW`] of its invocation, or never, with any output. (Jepsen
//! allows "any time, ever"; bounding it keeps the search small, and can only make the check
//! stricter: an effect later than that would be reported, never hidden. In rockraft a pending
//! write is decided within an election or two, and clients give up after seconds.) An
//! operation that definitely failed is left out.
//!
//! The cache key is the set of resolved operations (Zobrist-hashed, 128 bits) and the state.

use std::collections::HashSet;

/// How long after its invocation an operation with an unknown outcome may take effect.
pub const UNKNOWN_WINDOW: u64 = 60_000_000_000;

/// What a client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Get,
    Set(i64),
    Incr,
    Del,
}

/// One completed or pending operation on one key.
#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub call: Call,
    /// Nanoseconds since the campaign started.
    pub invoke: u64,
    /// `None`: outcome unknown.
    pub complete: Option<u64>,
    /// GET: the value read; INCR: the new value; DEL: keys removed; SET: nothing.
    pub output: Option<i64>,
}

type State = Option<i64>;

/// Applies `op` to `state`: the new state, or `None` if `op`'s output contradicts `state`.
fn step(state: State, op: &Op) -> Option<State> {
    let known = op.complete.is_some();
    match op.call {
        Call::Get => (!known || op.output == state).then_some(state),
        Call::Set(v) => Some(Some(v)),
        Call::Incr => {
            let next = state.unwrap_or(0) + 1;
            (!known || op.output == Some(next)).then_some(Some(next))
        }
        Call::Del => {
            let removed = i64::from(state.is_some());
            (!known || op.output == Some(removed)).then_some(None)
        }
    }
}

/// The result of checking one key.
#[derive(Debug)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable: the operations around the point where every order failed.
    Violation {
        linearized: usize,
        around: Vec<Op>,
    },
    /// The search gave up (budget of steps spent): neither proven nor refuted.
    Undecided,
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// Events in time order as a doubly linked list (index 0 is the head), so that placing an
/// operation removes its two events and undoing it puts them back ("dancing links").
struct Events {
    ev: Vec<Event>,
    call_of: Vec<usize>,
    ret_of: Vec<usize>,
}

impl Events {
    fn new(ops: &[Op]) -> Events {
        let n = ops.len();
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke, true, i));
            let end = op
                .complete
                .unwrap_or(op.invoke.saturating_add(UNKNOWN_WINDOW));
            order.push((end, false, i));
        }
        // At equal times a return comes first: that operation finished before the other began.
        order.sort_by_key(|&(t, is_call, i)| (t, is_call, i));
        let mut ev = vec![Event {
            op: usize::MAX,
            is_call: false,
            prev: 0,
            next: usize::from(!order.is_empty()),
        }];
        let (mut call_of, mut ret_of) = (vec![0; n], vec![0; n]);
        for (k, &(_, is_call, i)) in order.iter().enumerate() {
            let idx = k + 1;
            ev.push(Event {
                op: i,
                is_call,
                prev: idx - 1,
                next: if k + 1 == order.len() { 0 } else { idx + 1 },
            });
            if is_call {
                call_of[i] = idx;
            } else {
                ret_of[i] = idx;
            }
        }
        Events {
            ev,
            call_of,
            ret_of,
        }
    }

    fn is_empty(&self) -> bool {
        self.ev[0].next == 0
    }

    fn remove(&mut self, i: usize) {
        for e in [self.call_of[i], self.ret_of[i]] {
            let (p, nx) = (self.ev[e].prev, self.ev[e].next);
            self.ev[p].next = nx;
            self.ev[nx].prev = p;
        }
    }

    fn restore(&mut self, i: usize) {
        for e in [self.ret_of[i], self.call_of[i]] {
            let (p, nx) = (self.ev[e].prev, self.ev[e].next);
            self.ev[p].next = e;
            self.ev[nx].prev = e;
        }
    }

    /// What may come next: every operation invoked before the first pending return, those
    /// with a known outcome first (the likely explanation, so a linearizable history is
    /// found without wandering through subsets of unknown ones), then the unknown ones, then,
    /// if the first pending return is an unknown operation's window closing, dropping it.
    /// Also the operation of that first return (where a failed search got stuck).
    ///
    /// With `lazy`, an unknown operation is offered only if it lets the known operation whose
    /// window closes first, and which cannot take effect now, take effect next: a fast pass,
    /// sound when it succeeds (what it finds is a linearization), but it may miss one, so a
    /// failure is checked again without.
    fn choices(&self, ops: &[Op], state: State, lazy: bool) -> (Vec<Choice>, usize) {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        let mut e = self.ev[0].next;
        while e != 0 && self.ev[e].is_call {
            let i = self.ev[e].op;
            if ops[i].complete.is_some() {
                known.push(Choice::Place(i));
            } else {
                unknown.push(Choice::Place(i));
            }
            e = self.ev[e].next;
        }
        let first_return = if e == 0 { usize::MAX } else { self.ev[e].op };
        if lazy {
            // Only unknown operations that let the operation whose window closes first (if
            // it is a known one that cannot take effect now) take effect next.
            let blocked: Vec<usize> = (first_return != usize::MAX
                && ops[first_return].complete.is_some()
                && step(state, &ops[first_return]).is_none())
            .then_some(first_return)
            .into_iter()
            .collect();
            // Unknown INCRs are interchangeable, and so are unknown DELs: only the earliest
            // of each is offered. A run of INCRs may be needed to reach a value.
            let first_of = |call: Call| {
                unknown.iter().find_map(|c| match c {
                    Choice::Place(i) if ops[*i].call == call => Some(*i),
                    _ => None,
                })
            };
            let (first_incr, first_del) = (first_of(Call::Incr), first_of(Call::Del));
            let incrs = unknown
                .iter()
                .filter(|c| matches!(c, Choice::Place(i) if ops[*i].call == Call::Incr))
                .count() as i64;
            unknown.retain(|c| {
                let Choice::Place(i) = *c else {
                    return false;
                };
                let call = ops[i].call;
                if (call == Call::Incr && Some(i) != first_incr)
                    || (call == Call::Del && Some(i) != first_del)
                {
                    return false;
                }
                step(state, &ops[i]).is_some_and(|after| {
                    blocked.iter().any(|k| {
                        step(after, &ops[*k]).is_some()
                            || (call == Call::Incr
                                && reachable_by_incrs(after, needs(&ops[*k]), incrs - 1))
                            || (matches!(call, Call::Set(_))
                                && reachable_by_incrs(after, needs(&ops[*k]), incrs))
                    })
                })
            });
        }
        known.append(&mut unknown);
        if e != 0 && ops[first_return].complete.is_none() {
            known.push(Choice::Drop(first_return));
        }
        (known, first_return)
    }
}

/// The integer state a known GET or INCR needs before it (None when it needs no particular
/// integer).
fn needs(op: &Op) -> Option<i64> {
    match (op.call, op.output) {
        (Call::Get, Some(v)) => Some(v),
        (Call::Incr, Some(v)) => Some(v - 1),
        _ => None,
    }
}

/// Whether `n` or fewer increments take `from` to `target`.
fn reachable_by_incrs(from: State, target: Option<i64>, n: i64) -> bool {
    let (Some(t), base) = (target, from.unwrap_or(0)) else {
        return false;
    };
    t > base && t - base <= n
}

#[derive(Clone, Copy)]
enum Choice {
    /// The operation takes effect here.
    Place(usize),
    /// An operation with an unknown outcome never took effect.
    Drop(usize),
}

struct Frame {
    op: usize,
    state_before: State,
    choices: Vec<Choice>,
    next: usize,
}

/// Checks one key's history; `budget` bounds the search's steps.
///
/// Three passes, cheapest first; the first two are sound when they succeed, since an
/// operation with an unknown outcome may always not have happened, and what they find is a
/// linearization:
/// 1. without the unknown operations at all;
/// 2. with them, each placed only right before a known operation that needs it by its
///    deadline (lazy);
/// 3. the full search, which alone can prove a violation.
pub fn check(ops: &[Op], budget: u64) -> Verdict {
    let known: Vec<Op> = ops
        .iter()
        .filter(|o| o.complete.is_some())
        .cloned()
        .collect();
    if known.len() < ops.len() && matches!(search(&known, budget, false), Verdict::Linearizable) {
        return Verdict::Linearizable;
    }
    match search(ops, budget, true) {
        Verdict::Linearizable => Verdict::Linearizable,
        _ => search(ops, budget, false),
    }
}

fn search(ops: &[Op], budget: u64, lazy: bool) -> Verdict {
    let n = ops.len();
    let mut events = Events::new(ops);
    // Zobrist keys of the operations: the hash of a set is the XOR of its members' keys.
    let keys: Vec<(u64, u64)> = (0..n as u64)
        .map(|i| (splitmix(i * 2 + 1), splitmix(i * 2 + 2)))
        .collect();
    let mut resolved = (0u64, 0u64);
    let toggle = |h: &mut (u64, u64), i: usize| {
        h.0 ^= keys[i].0;
        h.1 ^= keys[i].1;
    };
    let mut cache: HashSet<((u64, u64), State)> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state: State = None;
    let (mut choices, mut first_return) = events.choices(ops, state, lazy);
    let mut next = 0;
    let mut steps = 0u64;
    let (mut best, mut stuck_at) = (0usize, 0usize);
    while !events.is_empty() {
        steps += 1;
        if steps > budget {
            return Verdict::Undecided;
        }
        if let Some(&choice) = choices.get(next) {
            next += 1;
            let (i, after) = match choice {
                Choice::Place(i) => (i, step(state, &ops[i])),
                Choice::Drop(i) => (i, Some(state)),
            };
            let Some(after) = after else {
                continue;
            };
            toggle(&mut resolved, i);
            if !cache.insert((resolved, after)) {
                toggle(&mut resolved, i);
                continue;
            }
            stack.push(Frame {
                op: i,
                state_before: state,
                choices: std::mem::take(&mut choices),
                next,
            });
            state = after;
            events.remove(i);
            (choices, first_return) = events.choices(ops, state, lazy);
            next = 0;
            best = best.max(stack.len());
            continue;
        }
        // Nothing fits here: undo the last choice and try its next alternative.
        if stack.len() >= best && first_return != usize::MAX {
            stuck_at = first_return;
        }
        let Some(f) = stack.pop() else {
            return violation(ops, best, stuck_at);
        };
        state = f.state_before;
        toggle(&mut resolved, f.op);
        events.restore(f.op);
        choices = f.choices;
        next = f.next;
        first_return = usize::MAX;
    }
    Verdict::Linearizable
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The operations overlapping the one that could not be placed (the smallest window that
/// shows the contradiction), in invocation order.
fn violation(ops: &[Op], best: usize, stuck: usize) -> Verdict {
    let s = &ops[stuck];
    let end = |o: &Op| {
        o.complete
            .unwrap_or(o.invoke.saturating_add(UNKNOWN_WINDOW))
    };
    let (lo, hi) = (s.invoke, end(s));
    let mut around: Vec<Op> = ops
        .iter()
        .filter(|o| o.invoke <= hi && end(o) >= lo)
        .cloned()
        .collect();
    // The last write that finished before the window, which the reads should see.
    if let Some(w) = ops
        .iter()
        .filter(|o| o.complete.is_some_and(|c| c < lo) && o.call != Call::Get)
        .max_by_key(|o| o.complete)
    {
        around.push(w.clone());
    }
    around.sort_by_key(|o| o.invoke);
    around.truncate(40);
    Verdict::Violation {
        linearized: best,
        around,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, invoke: u64, complete: Option<u64>, output: Option<i64>) -> Op {
        Op {
            client: 0,
            call,
            invoke,
            complete,
            output,
        }
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert!(matches!(check(&[], 10), Verdict::Linearizable));
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            op(Call::Set(5), 0, Some(1), None),
            op(Call::Get, 2, Some(3), Some(5)),
            op(Call::Incr, 4, Some(5), Some(6)),
            op(Call::Del, 6, Some(7), Some(1)),
            op(Call::Get, 8, Some(9), None),
        ];
        assert!(matches!(check(&h, 1_000_000), Verdict::Linearizable));
    }

    #[test]
    fn a_stale_read_is_a_violation() {
        // SET 1 finished, then SET 2 finished, then a read still sees 1.
        let h = [
            op(Call::Set(1), 0, Some(1), None),
            op(Call::Set(2), 2, Some(3), None),
            op(Call::Get, 4, Some(5), Some(1)),
        ];
        match check(&h, 1_000_000) {
            Verdict::Violation { around, .. } => {
                assert!(around.iter().any(|o| o.call == Call::Get));
            }
            v => panic!("missed a stale read: {v:?}"),
        }
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // The read overlaps SET 2: it may see 1 or 2.
        for seen in [1, 2] {
            let h = [
                op(Call::Set(1), 0, Some(1), None),
                op(Call::Set(2), 2, Some(10), None),
                op(Call::Get, 3, Some(4), Some(seen)),
            ];
            assert!(matches!(check(&h, 1_000_000), Verdict::Linearizable));
        }
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        // A timed-out SET 7: later reads may see it, or not, but not flip-flop back.
        let happened = [
            op(Call::Set(1), 0, Some(1), None),
            op(Call::Set(7), 2, None, None),
            op(Call::Get, 3, Some(4), Some(1)),
            op(Call::Get, 5, Some(6), Some(7)),
        ];
        assert!(matches!(check(&happened, 1_000_000), Verdict::Linearizable));
        let flip = [
            op(Call::Set(1), 0, Some(1), None),
            op(Call::Set(7), 2, None, None),
            op(Call::Get, 3, Some(4), Some(7)),
            op(Call::Get, 5, Some(6), Some(1)),
        ];
        assert!(matches!(check(&flip, 1_000_000), Verdict::Violation { .. }));
    }

    #[test]
    fn an_unknown_write_is_not_seen_after_its_window() {
        let late = [
            op(Call::Set(1), 0, Some(1), None),
            op(Call::Set(7), 2, None, None),
            op(
                Call::Get,
                UNKNOWN_WINDOW + 10,
                Some(UNKNOWN_WINDOW + 11),
                Some(1),
            ),
            op(
                Call::Get,
                UNKNOWN_WINDOW + 20,
                Some(UNKNOWN_WINDOW + 21),
                Some(7),
            ),
        ];
        assert!(matches!(check(&late, 1_000_000), Verdict::Violation { .. }));
    }

    #[test]
    fn an_unknown_delete_explains_a_read_beside_a_blind_write() {
        // Seen in a campaign: a DEL timed out while its leader was paused; later a read
        // saw the key gone while a concurrent SET (which fits anywhere) was in flight.
        let h = [
            op(Call::Set(5), 0, Some(1), None),
            op(Call::Del, 2, None, None),
            op(Call::Get, 10, Some(13), None),
            op(Call::Set(6), 11, Some(12), None),
            op(Call::Get, 14, Some(15), Some(6)),
        ];
        assert!(matches!(check(&h, 1_000_000), Verdict::Linearizable));
    }

    #[test]
    fn a_run_of_unknown_increments_explains_a_jump() {
        // Three INCRs timed out; a later INCR returns the value after all three and its own.
        let h = [
            op(Call::Set(10), 0, Some(1), None),
            op(Call::Incr, 2, None, None),
            op(Call::Incr, 3, None, None),
            op(Call::Set(99), 4, None, None),
            op(Call::Incr, 5, None, None),
            op(Call::Incr, 20, Some(21), Some(14)),
        ];
        assert!(matches!(check(&h, 1_000_000), Verdict::Linearizable));
        // A timed-out SET, then a timed-out INCR, then one that returns the sum.
        let h = [
            op(Call::Set(10), 0, Some(1), None),
            op(Call::Set(50), 2, None, None),
            op(Call::Incr, 3, None, None),
            op(Call::Incr, 20, Some(21), Some(52)),
        ];
        assert!(matches!(check(&h, 1_000_000), Verdict::Linearizable));
    }

    #[test]
    fn many_unknown_writes_stay_cheap() {
        // 200 timed-out writes that never happened, among 2,000 acknowledged operations.
        let mut h = Vec::new();
        for k in 0..2000u64 {
            let t = k * 10;
            if k % 10 == 0 {
                h.push(op(Call::Set(1_000_000 + k as i64), t, None, None));
            }
            h.push(op(Call::Set(k as i64), t, Some(t + 3), None));
            h.push(op(Call::Get, t + 4, Some(t + 6), Some(k as i64)));
        }
        assert!(matches!(check(&h, 10_000_000), Verdict::Linearizable));
    }

    #[test]
    fn a_lost_increment_is_a_violation() {
        // Two INCRs both acknowledged with 1.
        let h = [
            op(Call::Incr, 0, Some(3), Some(1)),
            op(Call::Incr, 1, Some(2), Some(1)),
        ];
        assert!(matches!(check(&h, 1_000_000), Verdict::Violation { .. }));
    }
}
