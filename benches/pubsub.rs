//! Pub/sub load (issue 16's figures): subscribers spread over the given servers (10 on each
//! by default), all on one channel, and publisher connections on the first server sending
//! PUBLISH one at a time, each message carrying its send time. Prints publishes per second,
//! deliveries per second and the delivery latency (p50 and p99, ms) over every subscriber.
//! Usage: pubsubload --ports P1[,P2,…] [--subs 10] [--publishers 8] [--seconds 10] [--size 64]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn encode(args: &[&[u8]]) -> Vec<u8> {
    rockraft_resp::encode_request(args)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    if r.read_line(&mut l).expect("read") == 0 {
        panic!("server closed the connection");
    }
    l.trim_end().to_string()
}

/// Reads one bulk string's payload (after its `$n` line).
fn bulk(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let head = line(r);
    let n: usize = head[1..].parse().expect("bulk length");
    let mut buf = vec![0u8; n + 2];
    r.read_exact(&mut buf).expect("bulk");
    buf.truncate(n);
    buf
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let ports: Vec<u16> = opt("--ports", "6379")
        .split(',')
        .map(|p| p.parse().expect("port"))
        .collect();
    let subs: usize = opt("--subs", "10").parse().unwrap();
    let publishers: usize = opt("--publishers", "8").parse().unwrap();
    let seconds: u64 = opt("--seconds", "10").parse().unwrap();
    let size: usize = opt("--size", "64").parse().unwrap();

    let (lat_tx, lat_rx) = mpsc::channel::<Vec<u32>>();
    let mut readers = Vec::new();
    for &port in &ports {
        for _ in 0..subs {
            let (mut w, mut r) = connect(port);
            w.write_all(&encode(&[b"SUBSCRIBE", b"bench"])).unwrap();
            // The confirmation: *3, $9, subscribe, $5, bench, :1.
            for _ in 0..6 {
                line(&mut r);
            }
            let tx = lat_tx.clone();
            readers.push(std::thread::spawn(move || {
                let _keep = w;
                let mut lat = Vec::new();
                loop {
                    // *3 / $7 message / $5 bench / $n payload
                    line(&mut r);
                    bulk(&mut r);
                    bulk(&mut r);
                    let payload = bulk(&mut r);
                    if payload.starts_with(b"STOP") {
                        break;
                    }
                    let sent: u64 = std::str::from_utf8(&payload[..16])
                        .unwrap()
                        .parse()
                        .unwrap();
                    lat.push(now_us().saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                }
                let _ = tx.send(lat);
            }));
        }
    }
    drop(lat_tx);
    std::thread::sleep(Duration::from_millis(500));
    let published = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut pubs = Vec::new();
    for _ in 0..publishers {
        let published = published.clone();
        let port = ports[0];
        pubs.push(std::thread::spawn(move || {
            let (mut w, mut r) = connect(port);
            let mut payload = vec![b'x'; size.max(16)];
            while Instant::now() < deadline {
                payload[..16].copy_from_slice(format!("{:016}", now_us()).as_bytes());
                w.write_all(&encode(&[b"PUBLISH", b"bench", &payload]))
                    .unwrap();
                let reply = line(&mut r);
                assert!(reply.starts_with(':'), "PUBLISH answered {reply}");
                published.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for p in pubs {
        p.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the last messages arrive, then tell the subscribers to stop.
    std::thread::sleep(Duration::from_secs(1));
    let (mut w, mut r) = connect(ports[0]);
    w.write_all(&encode(&[b"PUBLISH", b"bench", b"STOP"]))
        .unwrap();
    line(&mut r);
    let mut all: Vec<u32> = lat_rx.iter().flatten().collect();
    for r in readers {
        let _ = r.join();
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let n = published.load(Ordering::Relaxed) as f64;
    println!(
        "{:.0} {:.0} {:.3} {:.3}",
        n / elapsed,
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}
