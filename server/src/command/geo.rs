//! Geo commands on sorted sets whose scores are 52-bit geohashes (`types::geohash`): a geo key
//! is a sorted set to every other command, as in Redis.
//!
//! ```text
//! GEOADD key [NX|XX] [CH] longitude latitude member [...]
//! GEODIST key member1 member2 [M|KM|FT|MI]
//! GEOHASH key [member ...]          GEOPOS key [member ...]
//! GEOSEARCH key FROMMEMBER m|FROMLONLAT lon lat BYRADIUS r unit|BYBOX w h unit
//!           [ASC|DESC] [COUNT n [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]
//! GEOSEARCHSTORE dest src … [STOREDIST]
//! GEORADIUS key lon lat radius unit […] [STORE key|STOREDIST key]   (and _RO, BYMEMBER)
//! ```
//!
//! GEOSEARCH and the `_RO` forms are reads; GEORADIUS and GEORADIUSBYMEMBER, which may store,
//! are proposed like every write.

use bytes::Bytes;
use rockraft_resp::Reply;

use super::flags::{DENYOOM, READONLY, WRITE};
use super::{
    parse_i64, spec, type_error, upper, CommandSpec, Kind, ReadCtx, ERR_NOT_FLOAT, ERR_NOT_INTEGER,
    ERR_SYNTAX,
};
use crate::db::Txn;
use crate::strtod;
use crate::types::geohash::{self, Search, Shape};
use crate::types::zset::{self, AddFlags, ScoreRange};
use crate::types::{Collection, Reader};

#[rustfmt::skip]
pub fn commands() -> Vec<CommandSpec> {
    use Kind::{Read, Write};
    let g = "geo";
    vec![
        spec("geoadd", -5, WRITE | DENYOOM, (1, 1, 1), g, "Adds one or more members to a geospatial index. The key is created if it doesn't exist.", Write { prepare: prepare_geoadd, apply: apply_geoadd }),
        spec("geodist", -4, READONLY, (1, 1, 1), g, "Returns the distance between two members of a geospatial index.", Read(geodist)),
        spec("geohash", -2, READONLY, (1, 1, 1), g, "Returns members from a geospatial index as geohash strings.", Read(geohash)),
        spec("geopos", -2, READONLY, (1, 1, 1), g, "Returns the longitude and latitude of members from a geospatial index.", Read(geopos)),
        spec("georadius", -6, WRITE | DENYOOM, (1, 1, 1), g, "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", Write { prepare: super::as_is, apply: apply_search }),
        spec("georadius_ro", -6, READONLY, (1, 1, 1), g, "Returns members from a geospatial index that are within a distance from a coordinate.", Read(search)),
        spec("georadiusbymember", -5, WRITE | DENYOOM, (1, 1, 1), g, "Queries a geospatial index for members within a distance from a member, optionally stores the result.", Write { prepare: super::as_is, apply: apply_search }),
        spec("georadiusbymember_ro", -5, READONLY, (1, 1, 1), g, "Returns members from a geospatial index that are within a distance from a member.", Read(search)),
        spec("geosearch", -7, READONLY, (1, 1, 1), g, "Queries a geospatial index for members inside an area of a box or a circle.", Read(search)),
        spec("geosearchstore", -8, WRITE | DENYOOM, (1, 2, 1), g, "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.", Write { prepare: super::as_is, apply: apply_search }),
    ]
}

/// A double argument as Redis's `getDoubleFromObject` reads it; `msg` is the error.
fn double(b: &[u8], msg: &str) -> Result<f64, Reply> {
    strtod::parse_strict(b).ok_or_else(|| Reply::err(msg))
}

/// A longitude and latitude (`extractLongLatOrReply`).
fn lon_lat(args: &[Bytes]) -> Result<(f64, f64), Reply> {
    let lon = double(&args[0], ERR_NOT_FLOAT)?;
    let lat = double(&args[1], ERR_NOT_FLOAT)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(Reply::err(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Metres per unit.
fn unit(b: &[u8]) -> Result<f64, Reply> {
    match upper(b).as_str() {
        "M" => Ok(1.0),
        "KM" => Ok(1000.0),
        "FT" => Ok(0.3048),
        "MI" => Ok(1609.34),
        _ => Err(Reply::err(
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        )),
    }
}

/// `radius unit`: (radius, metres per unit).
fn radius(args: &[Bytes]) -> Result<(f64, f64), Reply> {
    let r = double(&args[0], "ERR need numeric radius")?;
    if r < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// `width height unit`.
fn boxed(args: &[Bytes]) -> Result<(f64, f64, f64), Reply> {
    let w = double(&args[0], "ERR need numeric width")?;
    let h = double(&args[1], "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(Reply::err("ERR height or width cannot be negative"));
    }
    Ok((w, h, unit(&args[2])?))
}

/// A distance as Redis prints it: 4 decimals of the value rounded half to even.
fn distance_text(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10_000.0).round_ties_even() as i64;
    let a = v.unsigned_abs();
    format!(
        "{}{}.{:04}",
        if v < 0 { "-" } else { "" },
        a / 10_000,
        a % 10_000
    )
}

fn position_reply(lon: f64, lat: f64) -> Reply {
    Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
}

struct Geoadd {
    flags: AddFlags,
    ch: bool,
    pairs: Vec<(f64, Bytes)>,
}

fn parse_geoadd(argv: &[Bytes]) -> Result<Geoadd, Reply> {
    let (mut flags, mut ch) = (AddFlags::default(), false);
    let mut i = 2;
    while i < argv.len() {
        match upper(&argv[i]).as_str() {
            "NX" => flags.nx = true,
            "XX" => flags.xx = true,
            "CH" => ch = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &argv[i..];
    if !rest.len().is_multiple_of(3) || (flags.nx && flags.xx) || rest.is_empty() {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 3);
    for t in rest.chunks_exact(3) {
        let (lon, lat) = lon_lat(t)?;
        let score = geohash::score_of(lon, lat).expect("checked position");
        pairs.push((score, t[2].clone()));
    }
    Ok(Geoadd { flags, ch, pairs })
}

fn prepare_geoadd(argv: &[Bytes], _: u64) -> Result<Option<Vec<Bytes>>, Reply> {
    parse_geoadd(argv)?;
    Ok(None)
}

fn apply_geoadd(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    let g = match parse_geoadd(argv) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let pairs: Vec<(f64, &Bytes)> = g.pairs.iter().map(|(s, m)| (*s, m)).collect();
    match zset::add(txn, &argv[1], g.flags, &pairs) {
        Ok(out) => Reply::Int(if g.ch {
            out.added + out.updated
        } else {
            out.added
        }),
        Err(e) => type_error(e),
    }
}

/// Runs `f` on the sorted set `key` (None when missing) in a consistent view.
fn with_geo(
    ctx: &ReadCtx,
    key: &[u8],
    f: impl Fn(&dyn Reader, Option<&Collection>) -> Reply,
) -> Reply {
    ctx.read(|r| match zset::get(&r, key) {
        Ok(z) => f(r, z.as_ref()),
        Err(e) => type_error(e),
    })
}

fn geodist(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    let to_meters = match argv.len() {
        4 => 1.0,
        5 => match unit(&argv[4]) {
            Ok(u) => u,
            Err(e) => return e,
        },
        _ => return Reply::err(ERR_SYNTAX),
    };
    with_geo(ctx, &argv[1], |r, z| {
        let Some(z) = z else { return Reply::Nil };
        let pos = |m: &[u8]| zset::score(r, z, &argv[1], m).and_then(geohash::position_of);
        match (pos(&argv[2]), pos(&argv[3])) {
            (Some((lon1, lat1)), Some((lon2, lat2))) => Reply::bulk(distance_text(
                geohash::distance(lon1, lat1, lon2, lat2) / to_meters,
            )),
            _ => Reply::Nil,
        }
    })
}

fn geohash(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_geo(ctx, &argv[1], |r, z| {
        Reply::Array(
            argv[2..]
                .iter()
                .map(|m| {
                    z.and_then(|z| zset::score(r, z, &argv[1], m))
                        .and_then(geohash::geohash_string)
                        .map_or(Reply::Nil, Reply::bulk)
                })
                .collect(),
        )
    })
}

fn geopos(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    with_geo(ctx, &argv[1], |r, z| {
        Reply::Array(
            argv[2..]
                .iter()
                .map(|m| {
                    z.and_then(|z| zset::score(r, z, &argv[1], m))
                        .and_then(geohash::position_of)
                        .map_or(Reply::NilArray, |(lon, lat)| position_reply(lon, lat))
                })
                .collect(),
        )
    })
}

/// Which search command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS[_RO] key lon lat radius unit
    Radius,
    /// GEORADIUSBYMEMBER[_RO] key member radius unit
    ByMember,
    /// GEOSEARCH key …
    Search,
    /// GEOSEARCHSTORE dest src …
    SearchStore,
}

fn variant(name: &str) -> (Variant, bool) {
    match name {
        "GEORADIUS" => (Variant::Radius, false),
        "GEORADIUS_RO" => (Variant::Radius, true),
        "GEORADIUSBYMEMBER" => (Variant::ByMember, false),
        "GEORADIUSBYMEMBER_RO" => (Variant::ByMember, true),
        "GEOSEARCH" => (Variant::Search, true),
        _ => (Variant::SearchStore, false),
    }
}

/// One member found.
struct Point {
    member: Vec<u8>,
    score: f64,
    lon: f64,
    lat: f64,
    /// In metres.
    dist: f64,
}

/// What a search produced: a reply, or members to store.
enum Outcome {
    Reply(Reply),
    Store {
        dest: Bytes,
        entries: Vec<zset::Entry>,
    },
}

/// Redis's `georadiusGeneric`: parses in Redis's order (the source's type first, members
/// looked up as they are named), searches the boxes, sorts and replies or stores.
fn run_search(r: &dyn Reader, argv: &[Bytes]) -> Result<Outcome, Reply> {
    let (variant, nostore) = variant(&upper(&argv[0]));
    let src_at = if variant == Variant::SearchStore {
        2
    } else {
        1
    };
    let src = &argv[src_at];
    let z = zset::get(&r, src).map_err(type_error)?;
    let member_position = |z: &Collection, m: &[u8]| {
        zset::score(&r, z, src, m)
            .and_then(geohash::position_of)
            .ok_or_else(|| Reply::err("ERR could not decode requested zset member"))
    };
    let mut centre: Option<(f64, f64)> = None;
    let mut shape: Option<(Shape, f64)> = None;
    let mut store: Option<(Bytes, bool)> = None;
    let base = match variant {
        Variant::Radius => {
            centre = Some(lon_lat(&argv[2..4])?);
            let (rad, u) = radius(&argv[4..6])?;
            shape = Some((Shape::Radius(rad), u));
            6
        }
        Variant::ByMember => {
            if let Some(z) = &z {
                centre = Some(member_position(z, &argv[2])?);
                let (rad, u) = radius(&argv[3..5])?;
                shape = Some((Shape::Radius(rad), u));
            }
            5
        }
        Variant::Search => 2,
        Variant::SearchStore => {
            store = Some((argv[1].clone(), false));
            3
        }
    };
    let searching = matches!(variant, Variant::Search | Variant::SearchStore);
    let (mut with_dist, mut with_hash, mut with_coord, mut any) = (false, false, false, false);
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let mut sort: Option<bool> = None; // Some(descending)
    let mut count: i64 = 0;
    let rest = &argv[base..];
    let mut i = 0;
    while i < rest.len() {
        let left = rest.len() - i - 1;
        match upper(&rest[i]).as_str() {
            "WITHDIST" => with_dist = true,
            "WITHHASH" => with_hash = true,
            "WITHCOORD" => with_coord = true,
            "ANY" => any = true,
            "ASC" => sort = Some(false),
            "DESC" => sort = Some(true),
            "COUNT" if left >= 1 => {
                count = parse_i64(&rest[i + 1]).ok_or_else(|| Reply::err(ERR_NOT_INTEGER))?;
                if count <= 0 {
                    return Err(Reply::err("ERR COUNT must be > 0"));
                }
                i += 1;
            }
            w @ ("STORE" | "STOREDIST") if left >= 1 && !nostore && !searching => {
                store = Some((rest[i + 1].clone(), w == "STOREDIST"));
                i += 1;
            }
            "STOREDIST" if variant == Variant::SearchStore => {
                store = store.map(|(d, _)| (d, true));
            }
            "FROMMEMBER" if left >= 1 && searching && !from_lonlat => {
                if let Some(z) = &z {
                    centre = Some(member_position(z, &rest[i + 1])?);
                }
                from_member = true;
                i += 1;
            }
            "FROMLONLAT" if left >= 2 && searching && !from_member => {
                centre = Some(lon_lat(&rest[i + 1..i + 3])?);
                from_lonlat = true;
                i += 2;
            }
            "BYRADIUS" if left >= 2 && searching && !by_box => {
                let (rad, u) = radius(&rest[i + 1..i + 3])?;
                shape = Some((Shape::Radius(rad), u));
                by_radius = true;
                i += 2;
            }
            "BYBOX" if left >= 3 && searching && !by_radius => {
                let (width, height, u) = boxed(&rest[i + 1..i + 4])?;
                shape = Some((Shape::Box { width, height }, u));
                by_box = true;
                i += 3;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    if store.is_some() && (with_dist || with_hash || with_coord) {
        return Err(Reply::err(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if variant == Variant::SearchStore {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(&argv[0]);
    if searching && !(from_member || from_lonlat) {
        return Err(Reply::err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if searching && !(by_radius || by_box) {
        return Err(Reply::err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(Reply::err("ERR the ANY argument requires COUNT argument"));
    }
    let (Some(z), Some((lon, lat)), Some((shape, to_meters))) = (z, centre, shape) else {
        // No source: an empty reply, or an emptied destination.
        return Ok(match store {
            Some((dest, _)) => Outcome::Store {
                dest,
                entries: Vec::new(),
            },
            None => Outcome::Reply(Reply::Array(vec![])),
        });
    };
    if count != 0 && sort.is_none() && !any {
        sort = Some(false);
    }
    let search = Search {
        lon,
        lat,
        shape,
        to_meters,
    };
    let limit = if any { count as usize } else { 0 };
    let full = |found: &Vec<Point>| limit != 0 && found.len() >= limit;
    let mut found: Vec<Point> = Vec::new();
    for cell in search.boxes() {
        if full(&found) {
            break;
        }
        let (min, max) = geohash::score_range(cell);
        let range = ScoreRange {
            min,
            min_ex: false,
            max,
            max_ex: true,
        };
        zset::scan_by_score(&r, &z, src, &range, &mut |m, score| {
            if let Some((plon, plat)) = geohash::position_of(score) {
                if let Some(dist) = search.distance_if_inside(plon, plat) {
                    found.push(Point {
                        member: m.to_vec(),
                        score,
                        lon: plon,
                        lat: plat,
                        dist,
                    });
                }
            }
            !full(&found)
        });
    }
    if let Some(desc) = sort {
        found.sort_by(|a, b| {
            let o = a
                .dist
                .partial_cmp(&b.dist)
                .unwrap_or(std::cmp::Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    if count > 0 {
        found.truncate(count as usize);
    }
    if let Some((dest, dist)) = store {
        let entries = found
            .into_iter()
            .map(|p| (p.member, if dist { p.dist / to_meters } else { p.score }))
            .collect();
        return Ok(Outcome::Store { dest, entries });
    }
    let options = usize::from(with_dist) + usize::from(with_hash) + usize::from(with_coord);
    let items = found
        .into_iter()
        .map(|p| {
            let member = Reply::Bulk(p.member.into());
            if options == 0 {
                return member;
            }
            let mut item = Vec::with_capacity(options + 1);
            item.push(member);
            if with_dist {
                item.push(Reply::bulk(distance_text(p.dist / to_meters)));
            }
            if with_hash {
                item.push(Reply::Int(geohash::c_to_i64(p.score)));
            }
            if with_coord {
                item.push(position_reply(p.lon, p.lat));
            }
            Reply::Array(item)
        })
        .collect();
    Ok(Outcome::Reply(Reply::Array(items)))
}

fn search(ctx: &ReadCtx, argv: &[Bytes]) -> Reply {
    ctx.read(|r| match run_search(r, argv) {
        Ok(Outcome::Reply(reply)) => reply,
        // The read forms never store.
        Ok(Outcome::Store { .. }) => Reply::err(ERR_SYNTAX),
        Err(e) => e,
    })
}

fn apply_search(txn: &mut Txn, argv: &[Bytes]) -> Reply {
    match run_search(&*txn, argv) {
        Ok(Outcome::Reply(reply)) => reply,
        Ok(Outcome::Store { dest, entries }) => Reply::Int(zset::store(txn, &dest, &entries)),
        Err(e) => e,
    }
}
