//! Consumer-group load (issue 16's figures): fills a stream with `--entries` entries, then
//! `--consumers` connections of one group read it with XREADGROUP (COUNT `--count`, `>`) and
//! acknowledge each batch with one XACK, until the stream is drained. Prints the entries read
//! and acknowledged per second.
//! Usage: streamload --port P [--entries 50000] [--consumers 8] [--count 10] [--size 64]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A reply, as far as this load needs one.
enum Resp {
    Line(String),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

fn read(r: &mut BufReader<TcpStream>) -> Resp {
    let mut l = String::new();
    if r.read_line(&mut l).expect("read") == 0 {
        panic!("server closed the connection");
    }
    let l = l.trim_end();
    let (kind, rest) = l.split_at(1);
    match kind {
        "+" | ":" => Resp::Line(rest.to_string()),
        "-" => panic!("error reply: {rest}"),
        "$" => {
            let n: i64 = rest.parse().expect("bulk length");
            if n < 0 {
                return Resp::Bulk(None);
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).expect("bulk");
            buf.truncate(n as usize);
            Resp::Bulk(Some(buf))
        }
        "*" => {
            let n: i64 = rest.parse().expect("array length");
            if n < 0 {
                return Resp::Array(None);
            }
            Resp::Array(Some((0..n).map(|_| read(r)).collect()))
        }
        other => panic!("unexpected reply type {other:?}"),
    }
}

fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn send(s: &mut TcpStream, args: &[&[u8]]) {
    s.write_all(&rockraft_resp::encode_request(args))
        .expect("write");
}

/// The entry IDs of an XREADGROUP reply (none: the stream is drained).
fn ids(reply: Resp) -> Vec<Vec<u8>> {
    let Resp::Array(Some(streams)) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Resp::Array(Some(mut kv)) = s else {
            continue;
        };
        let Resp::Array(Some(entries)) = kv.swap_remove(1) else {
            continue;
        };
        for e in entries {
            if let Resp::Array(Some(mut pair)) = e {
                if let Resp::Bulk(Some(id)) = pair.swap_remove(0) {
                    out.push(id);
                }
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let port: u16 = opt("--port", "6379").parse().expect("port");
    let entries: usize = opt("--entries", "50000").parse().expect("entries");
    let consumers: usize = opt("--consumers", "8").parse().expect("consumers");
    let count: usize = opt("--count", "10").parse().expect("count");
    let size: usize = opt("--size", "64").parse().expect("size");
    let value = vec![b'v'; size];

    let (mut s, mut r) = connect(port);
    send(&mut s, &[b"DEL", b"bench:stream"]);
    read(&mut r);
    send(
        &mut s,
        &[
            b"XGROUP",
            b"CREATE",
            b"bench:stream",
            b"g",
            b"$",
            b"MKSTREAM",
        ],
    );
    read(&mut r);
    // Filled in pipelined batches (not measured).
    for start in (0..entries).step_by(100) {
        let n = (entries - start).min(100);
        for _ in 0..n {
            send(&mut s, &[b"XADD", b"bench:stream", b"*", b"f", &value]);
        }
        for _ in 0..n {
            read(&mut r);
        }
    }

    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..consumers)
        .map(|c| {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut s, mut r) = connect(port);
                let name = format!("c{c}");
                let count = count.to_string();
                loop {
                    send(
                        &mut s,
                        &[
                            b"XREADGROUP",
                            b"GROUP",
                            b"g",
                            name.as_bytes(),
                            b"COUNT",
                            count.as_bytes(),
                            b"STREAMS",
                            b"bench:stream",
                            b">",
                        ],
                    );
                    let got = ids(read(&mut r));
                    if got.is_empty() {
                        return;
                    }
                    let mut ack: Vec<&[u8]> = vec![b"XACK", b"bench:stream", b"g"];
                    ack.extend(got.iter().map(Vec::as_slice));
                    send(&mut s, &ack);
                    match read(&mut r) {
                        Resp::Line(n) => {
                            done.fetch_add(n.parse::<u64>().expect("count"), Ordering::Relaxed);
                        }
                        _ => panic!("XACK answered something else"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let acked = done.load(Ordering::Relaxed);
    assert_eq!(
        acked as usize, entries,
        "every entry read and acknowledged once"
    );
    println!("{:.1}", acked as f64 / secs);
}
