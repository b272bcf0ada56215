//! Fuzzing the RESP front end of a real node: random command vectors (real command names,
//! hostile arguments) encoded as RESP or inline, then mutated (bytes flipped, inserted,
//! deleted, truncated, spliced). After every few cases a clean connection checks that the node
//! is alive and answers correctly. A panic anywhere stops the process (exit 101), so it fails
//! the check; a hang fails it through the read timeout.
//!
//! `ROCKRAFT_FUZZ_SEED` replays a run; `ROCKRAFT_FUZZ_SECS` runs longer (default 8 s).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use rockraft_tests::*;

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Commands that would disturb the checker rather than the parser (its keys, the client
/// limit, membership, files on disk) are left out; everything else is fair game.
const NAMES: &[&str] = &[
    "GET",
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "MGET",
    "MSET",
    "MSETNX",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "APPEND",
    "STRLEN",
    "GETRANGE",
    "SETRANGE",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "KEYS",
    "SCAN",
    "RENAME",
    "RENAMENX",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "PERSIST",
    "EXPIRETIME",
    "PEXPIRETIME",
    "PING",
    "ECHO",
    "HELLO",
    "SELECT",
    "CLIENT",
    "READONLY",
    "READWRITE",
    "ASKING",
    "INFO",
    "COMMAND",
    "DBSIZE",
    "TIME",
    "NOSUCHCOMMAND",
    "get",
    "sEt",
    "",
];

const ARGS: &[&str] = &[
    "k",
    "k2",
    "{k}x",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "NX",
    "XX",
    "GT",
    "LT",
    "KEEPTTL",
    "GET",
    "MATCH",
    "COUNT",
    "TYPE",
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "inf",
    "-inf",
    "nan",
    "0.1",
    "",
    " ",
    "\"",
    "'",
    "\\",
    "\r\n",
    "*",
    "$",
    "ID",
    "SETNAME",
    "LIST",
    "INFO",
    "GETKEYS",
    "DOCS",
    "3",
    "2",
];

fn random_command(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut argv = vec![pick(rng, NAMES).as_bytes().to_vec()];
    for _ in 0..rng.random_range(0..6) {
        let arg = match rng.random_range(0..4) {
            0 => (0..rng.random_range(0..30))
                .map(|_| rng.random::<u8>())
                .collect(),
            1 => vec![b'x'; rng.random_range(0..5000)],
            _ => pick(rng, ARGS).as_bytes().to_vec(),
        };
        argv.push(arg);
    }
    argv
}

fn encode(rng: &mut StdRng, argv: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_range(0..4) == 0 {
        // Inline form.
        let mut out = Vec::new();
        for (i, a) in argv.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(a);
        }
        out.extend_from_slice(b"\r\n");
        return out;
    }
    let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
    resp(&refs)
}

fn mutate(rng: &mut StdRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(0..4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[at] = rng.random::<u8>(),
            1 => bytes.insert(at, b"*$:+-\r\n0123456789"[rng.random_range(0..17)]),
            2 => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.random_range(0..20)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => bytes[at] = b"0123456789-"[rng.random_range(0..11)],
        }
    }
    bytes
}

/// One to four random commands, encoded, most of them mutated.
fn random_batch(rng: &mut StdRng) -> Vec<u8> {
    let mut batch = Vec::new();
    for _ in 0..1 + rng.random_range(0..4) {
        let cmd = random_command(rng);
        let bytes = encode(rng, &cmd);
        let bytes = if rng.random_range(0..3) == 0 {
            bytes
        } else {
            mutate(rng, bytes)
        };
        batch.extend_from_slice(&bytes);
    }
    batch
}

/// The clean connection's check: a write and a read of its own key, exact answers.
fn check(addr: std::net::SocketAddr, i: u64, seed: u64) {
    let mut c = Raw::connect(addr);
    let key = format!("fuzz-check:{i}");
    let value = format!("value-{i}");
    assert_eq!(
        c.roundtrip(&resp(&[b"SET", key.as_bytes(), value.as_bytes()])),
        "+OK\r\n",
        "node broken after case {i} (seed {seed})"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"GET", key.as_bytes()])),
        format!("${}\r\n{value}\r\n", value.len()),
        "wrong answer after case {i} (seed {seed})"
    );
}

#[test]
fn mutated_requests_never_break_the_node() {
    let seed = std::env::var("ROCKRAFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let secs: u64 = std::env::var("ROCKRAFT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    eprintln!("fuzz seed {seed} (ROCKRAFT_FUZZ_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut node = Process::start(dir.path(), free_port());
    let addr = node.addr();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut fuzz: Option<TcpStream> = None;
    let mut cases = 0u64;
    while Instant::now() < deadline && cases < 1_000_000 {
        if fuzz.is_none() || rng.random_range(0..20) == 0 {
            let s = TcpStream::connect(addr).expect("node accepts connections");
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            fuzz = Some(s);
        }
        let s = fuzz.as_mut().unwrap();
        let batch = random_batch(&mut rng);
        if s.write_all(&batch).is_err() {
            fuzz = None;
        } else {
            // Drain whatever came back; a closed connection is a fine answer to garbage.
            let mut buf = [0u8; 65536];
            if let Ok(0) = s.read(&mut buf) {
                fuzz = None;
            }
        }
        cases += 1;
        if cases.is_multiple_of(25) {
            check(addr, cases, seed);
        }
    }
    check(addr, cases, seed);
    assert!(
        node.wait_exit(Duration::ZERO).is_none(),
        "the node exited (seed {seed})"
    );
    assert!(cases > 100, "only {cases} cases ran");
    eprintln!("{cases} fuzz cases, node fine");
}

/// The same fuzzing against a locked node, never authenticated: every reply is NOAUTH (or,
/// for garbage, a protocol error that closes the connection, or AUTH's WRONGPASS and the like
/// for the four commands allowed before authentication), and nothing is written.
#[test]
fn unauthenticated_requests_get_nothing_but_noauth() {
    let seed = std::env::var("ROCKRAFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202u64);
    let secs: u64 = std::env::var("ROCKRAFT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let pass = "fuzz-locked-pw";
    let port = free_port();
    let mut node = Process::spawn_full(
        &Launch::default(),
        dir.path(),
        port,
        free_port(),
        None,
        &["--requirepass", pass],
    );
    let addr = node.addr();
    // Locked once the password is the cluster's (proposed by the node itself).
    let authed = || -> Raw {
        let mut c = Raw::connect(addr);
        assert_eq!(c.roundtrip(&resp(&[b"AUTH", pass.as_bytes()])), "+OK\r\n");
        c
    };
    assert!(wait_until(Duration::from_secs(20), || {
        let mut c = authed();
        c.roundtrip(&resp(&[b"ACL", b"USERS"])).contains("default")
            && c.roundtrip(&resp(&[b"CONFIG", b"GET", b"requirepass"]))
                .contains(pass)
    }));
    let digest_before = authed().roundtrip(&resp(&[b"DEBUG", b"DIGEST"]));
    let allowed = |line: &str| {
        line == "-NOAUTH Authentication required."
            || line.starts_with("-ERR Protocol error")
            || line.starts_with("-NOAUTH HELLO must be called")
            || line.starts_with("-WRONGPASS")
            || line.starts_with("-ERR wrong number of arguments for 'auth'")
            || line.starts_with("-ERR syntax error")
            || line.starts_with("-ERR wrong number of arguments for 'hello'")
            || line.starts_with("-ERR Syntax error in HELLO option")
            || line.starts_with("-NOPROTO")
            || line.starts_with("-ERR Protocol version")
            || line == "+RESET"
            || line == "+OK"
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cases = 0u64;
    let mut replies = 0u64;
    while Instant::now() < deadline && cases < 200_000 {
        let mut s = TcpStream::connect(addr).expect("node accepts connections");
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let batch = random_batch(&mut rng);
        let _ = s.write_all(&batch);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        for line in String::from_utf8_lossy(&out)
            .split("\r\n")
            .filter(|l| !l.is_empty())
        {
            assert!(
                allowed(line),
                "an unauthenticated client got {line:?} (ROCKRAFT_FUZZ_SEED={seed}, case {cases})\nrequest: {:?}",
                String::from_utf8_lossy(&batch)
            );
            replies += 1;
        }
        cases += 1;
    }
    let mut c = authed();
    assert_eq!(
        c.roundtrip(&resp(&[b"DBSIZE"])),
        ":0\r\n",
        "something was written"
    );
    assert_eq!(c.roundtrip(&resp(&[b"DEBUG", b"DIGEST"])), digest_before);
    assert!(node.wait_exit(Duration::ZERO).is_none(), "the node exited");
    assert!(
        cases > 50 && replies > 50,
        "{cases} cases, {replies} replies"
    );
    eprintln!("{cases} unauthenticated fuzz cases, {replies} replies, all refused");
}
