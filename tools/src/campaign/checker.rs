//! Linearizability of a register history, key by key (a P-compositional check): the
//! Wing–Gong–Lowe search with a cache of (linearized set, state), as in Lowe's "Testing for
//! linearizability" and porcupine.
//!
//! An operation whose outcome is unknown (timeout, lost connection) may have taken effect at
//! any point after its invocation, or never: it is given a return time after every other
//! operation and any output. An operation that definitely failed is left out.

use std::collections::HashSet;

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

/// Checks one key's history; `budget` bounds the search's steps.
pub fn check(ops: &[Op], budget: u64) -> Verdict {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events in time order; unknown returns after everything. Index 0 is the list head.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke, true, i));
        order.push((op.complete.unwrap_or(u64::MAX), false, i));
    }
    // At equal times a return comes first: that operation finished before the other began.
    order.sort_by_key(|&(t, is_call, i)| (t, is_call, i));
    let mut ev = vec![Event {
        op: usize::MAX,
        is_call: false,
        prev: 0,
        next: 1,
    }];
    let mut ret_of = vec![0usize; n];
    let mut call_of = vec![0usize; n];
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
    let lift = |ev: &mut Vec<Event>, e: usize| {
        let (p, nx) = (ev[e].prev, ev[e].next);
        ev[p].next = nx;
        ev[nx].prev = p;
    };
    let unlift = |ev: &mut Vec<Event>, e: usize| {
        let (p, nx) = (ev[e].prev, ev[e].next);
        ev[p].next = e;
        ev[nx].prev = e;
    };
    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut entry = ev[0].next;
    let mut steps = 0u64;
    let mut best = 0usize;
    let mut stuck_at = 0usize;
    while ev[0].next != 0 {
        steps += 1;
        if steps > budget {
            return Verdict::Undecided;
        }
        let e = ev[entry];
        if e.is_call {
            let i = e.op;
            if let Some(next_state) = step(state, &ops[i]) {
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone(), next_state)) {
                    stack.push((i, state));
                    state = next_state;
                    lift(&mut ev, call_of[i]);
                    lift(&mut ev, ret_of[i]);
                    if stack.len() > best {
                        best = stack.len();
                    }
                    entry = ev[0].next;
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            entry = e.next;
        } else {
            // This operation returned before it could be placed: undo the last choice.
            if stack.len() >= best {
                stuck_at = e.op;
            }
            let Some((i, prev_state)) = stack.pop() else {
                return violation(ops, best, stuck_at);
            };
            state = prev_state;
            linearized[i / 64] &= !(1 << (i % 64));
            unlift(&mut ev, ret_of[i]);
            unlift(&mut ev, call_of[i]);
            entry = ev[call_of[i]].next;
        }
    }
    Verdict::Linearizable
}

/// The operations overlapping the one that could not be placed (the smallest window that
/// shows the contradiction), in invocation order.
fn violation(ops: &[Op], best: usize, stuck: usize) -> Verdict {
    let s = &ops[stuck];
    let (lo, hi) = (s.invoke, s.complete.unwrap_or(u64::MAX));
    let mut around: Vec<Op> = ops
        .iter()
        .filter(|o| o.invoke <= hi && o.complete.unwrap_or(u64::MAX) >= lo)
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
    fn a_lost_increment_is_a_violation() {
        // Two INCRs both acknowledged with 1.
        let h = [
            op(Call::Incr, 0, Some(3), Some(1)),
            op(Call::Incr, 1, Some(2), Some(1)),
        ];
        assert!(matches!(check(&h, 1_000_000), Verdict::Violation { .. }));
    }
}
