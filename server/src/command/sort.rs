//! SORT and SORT_RO, as Redis 7.0's sort.c: the elements of a list, set or sorted set, sorted
//! numerically (or ALPHA), optionally by other keys (BY), returning them or other keys (GET),
//! or storing the result as a list (STORE).
//!
//! ```text
//! SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC|DESC] [ALPHA] [STORE destination]
//! ```
//! SORT is a write (its STORE form writes), so it goes through the log and is applied where the
//! data is; SORT_RO is a read. BY and GET look up other keys, which one raft group allows (a
//! sharded key space will limit them to the key's slot, as Redis Cluster does).

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, READONLY, WRITE};
use super::{
    as_is, parse_i64, spec, type_error, upper, CommandSpec, Kind, ReadCtx, ERR_NOT_INTEGER,
    ERR_SYNTAX,
};
use crate::db::{Txn, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};
use crate::types::{list, set, zset, Collection, Error, Reader};

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "generic";
    vec![
        spec("sort", -2, WRITE | DENYOOM, (1, 1, 1), g, "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.", Write { prepare: as_is, apply: apply_sort }),
        spec("sort_ro", -2, READONLY, (1, 1, 1), g, "Returns the sorted elements of a list, a set, or a sorted set.", Read(sort_ro)),
    ]
}

struct Options {
    desc: bool,
    alpha: bool,
    limit: (i64, i64),
    store: Option<Bytes>,
    by: Option<Bytes>,
    /// BY a pattern without `*`: nothing to sort by.
    dont_sort: bool,
    gets: Vec<Bytes>,
}

fn parse(argv: &[Bytes], read_only: bool) -> Result<Options, Reply> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit: (0, -1),
        store: None,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        match upper(&argv[j]).as_str() {
            "ASC" => o.desc = false,
            "DESC" => o.desc = true,
            "ALPHA" => o.alpha = true,
            "LIMIT" if left >= 2 => {
                let start = parse_i64(&argv[j + 1]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                let count = parse_i64(&argv[j + 2]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                o.limit = (start, count);
                j += 2;
            }
            "STORE" if !read_only && left >= 1 => {
                o.store = Some(argv[j + 1].clone());
                j += 1;
            }
            "BY" if left >= 1 => {
                o.dont_sort = !argv[j + 1].contains(&b'*');
                o.by = Some(argv[j + 1].clone());
                j += 1;
            }
            "GET" if left >= 1 => {
                o.gets.push(argv[j + 1].clone());
                j += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    Ok(o)
}

/// `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is replaced by
/// the element, and `key->field` reads a hash field. None when there is no such value.
fn lookup(r: &(impl Reader + ?Sized), pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(p) if p + 2 < after.len() => (&after[..p], Some(&after[p + 2..])),
        _ => (after, None),
    };
    let key = [&pattern[..star], element, rest].concat();
    let value = r.live(&key)?;
    match field {
        Some(f) => {
            let h = Collection::get(r, TYPE_HASH, &key).ok()??;
            r.element(&key, h.meta.version, f)
        }
        None => (value.kind == TYPE_STRING).then(|| value.data.to_vec()),
    }
}

/// C's `strtod` as SORT uses it: the whole string, no overflow or underflow, not NaN.
fn sort_score(b: &[u8]) -> Option<f64> {
    let v = crate::strtod::parse_loose(b)?;
    let range_error = (v.is_infinite()
        && !b.to_ascii_lowercase().ends_with(b"inf")
        && !b.to_ascii_lowercase().ends_with(b"infinity"))
        || (v != 0.0 && v.abs() < f64::MIN_POSITIVE)
        || (v == 0.0
            && b.iter()
                .take_while(|c| !matches!(c, b'e' | b'E' | b'p' | b'P'))
                .any(|c| c.is_ascii_digit() && *c != b'0')
            && !b.starts_with(b"0x"));
    (!range_error).then_some(v)
}

/// The bytes up to the first NUL (what `strcoll` compares in the C locale).
fn c_string(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |p| &b[..p])
}

/// What SORT answers with or stores: elements, or GET's values (None: no such key).
type Output = Vec<Option<Vec<u8>>>;

/// Runs SORT; the elements to reply with or store (or the numeric conversion error).
fn run(
    r: &(impl Reader + ?Sized),
    argv: &[Bytes],
    o: &Options,
) -> Result<Result<Output, Reply>, Error> {
    let key = &argv[1];
    let value = r.live(key);
    let kind = match &value {
        None => TYPE_LIST,
        Some(v) if matches!(v.kind, TYPE_LIST | TYPE_SET | TYPE_ZSET) => v.kind,
        Some(_) => return Err(Error::WrongType),
    };
    let mut dont_sort = o.dont_sort;
    let mut alpha = o.alpha;
    let mut by = o.by.clone();
    if dont_sort && kind == TYPE_SET && o.store.is_some() {
        // A set has no order of its own: a stored result is sorted (ALPHA) to be the same
        // everywhere.
        dont_sort = false;
        alpha = true;
        by = None;
    }
    let c = value.and_then(|_| Collection::get(r, kind, key).ok().flatten());
    let len = c.as_ref().map_or(0, |c| c.meta.size) as i64;
    let start = o.limit.0.max(0).min(len);
    let count = o.limit.1.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    let mut start = start;
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let mut elements: Vec<Vec<u8>> = match (&c, kind) {
        (None, _) => Vec::new(),
        (Some(c), TYPE_LIST) => {
            if c.meta.size == 0 {
                Vec::new()
            } else {
                list::range(r, c, key, 0, c.meta.size - 1)
            }
        }
        (Some(c), TYPE_SET) => set::members(r, c, key),
        (Some(c), _) => zset::all(r, c, key).into_iter().map(|(m, _)| m).collect(),
    };
    if dont_sort && matches!(kind, TYPE_LIST | TYPE_ZSET) && o.desc {
        // The native order, backwards.
        elements.reverse();
    }
    let mut int_error = false;
    if !dont_sort {
        let mut keyed: Vec<(Vec<u8>, f64, Option<Vec<u8>>)> = elements
            .into_iter()
            .map(|e| {
                let by_value = match &by {
                    Some(p) => lookup(r, p, &e),
                    None => Some(e.clone()),
                };
                let (mut score, mut cmp) = (0.0, None);
                if let Some(bv) = by_value {
                    if alpha {
                        if by.is_some() {
                            cmp = Some(bv);
                        }
                    } else {
                        match sort_score(&bv) {
                            Some(s) => score = s,
                            None => int_error = true,
                        }
                    }
                }
                (e, score, cmp)
            })
            .collect();
        // A stable sort, as glibc's qsort (a merge sort) is.
        keyed.sort_by(|a, b| {
            let ord = if !alpha {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            } else if by.is_some() {
                match (&a.2, &b.2) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) if o.store.is_some() => x.cmp(y),
                    (Some(x), Some(y)) => c_string(x).cmp(c_string(y)),
                }
            } else if o.store.is_some() {
                a.0.cmp(&b.0)
            } else {
                c_string(&a.0).cmp(c_string(&b.0))
            };
            if o.desc {
                ord.reverse()
            } else {
                ord
            }
        });
        elements = keyed.into_iter().map(|(e, _, _)| e).collect();
    }
    if int_error {
        return Ok(Err(Reply::err(
            "ERR One or more scores can't be converted into double",
        )));
    }
    let picked = if end >= start && start >= 0 {
        &elements[start as usize..=(end as usize).min(elements.len().saturating_sub(1))]
    } else {
        &elements[..0]
    };
    let mut out = Vec::new();
    for e in picked {
        if o.gets.is_empty() {
            out.push(Some(e.clone()));
        }
        for g in &o.gets {
            out.push(lookup(r, g, e));
        }
    }
    Ok(Ok(out))
}

fn reply(out: Output) -> Reply {
    Reply::Array(
        out.into_iter()
            .map(|v| v.map_or(Reply::Nil, |b| Reply::Bulk(b.into())))
            .collect(),
    )
}

fn apply_sort(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let o = match parse(argv, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let out = match run(&*txn, argv, &o) {
        Err(e) => return type_error(e),
        Ok(Err(e)) => return e,
        Ok(Ok(out)) => out,
    };
    let Some(dst) = &o.store else {
        return reply(out);
    };
    txn.del(dst);
    let n = out.len() as i64;
    if n > 0 {
        let values: Vec<Bytes> = out
            .into_iter()
            .map(|v| Bytes::from(v.unwrap_or_default()))
            .collect();
        if let Err(e) = list::push(txn, dst, &values, list::End::Right, false) {
            return type_error(e);
        }
    }
    Reply::Int(n)
}

fn sort_ro(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let o = match parse(argv, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    ctx.read(|at| match run(&at, argv, &o) {
        Err(e) => type_error(e),
        Ok(Err(e)) => e,
        Ok(Ok(out)) => reply(out),
    })
}
