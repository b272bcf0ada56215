//! Transaction and blocking-queue round trips (issue 14's figures), against one server, from
//! native threads with blocking sockets (redis-benchmark sends one command per request, so it
//! cannot send a transaction or pair a push with a blocked pop):
//!   tx     MULTI; INCR a; INCR b; INCR c; EXEC, sent as one write per transaction;
//!   queue  pairs of connections: a consumer blocked in BRPOP q<n> 0, and a producer that
//!          LPUSHes q<n> once the consumer is waiting again, so every element wakes a blocked
//!          client.
//! Prints transactions (or push-to-pop deliveries) per second.
//! Usage: txqueue --port P --kind tx|queue [--conns 48] [--seconds 10]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

/// One reply, reduced to what the load needs: None for a nil, else its first line.
impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.w.write_all(b).expect("send");
    }

    fn reply(&mut self) -> Option<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line).expect("read") == 0 {
            panic!("server closed the connection");
        }
        let line = line.trim_end().to_string();
        let (kind, rest) = line.split_at(1);
        match kind {
            "-" => panic!("error reply: {rest}"),
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return None;
                }
                for _ in 0..n {
                    self.reply();
                }
                Some(line)
            }
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return None;
                }
                let mut buf = vec![0; n as usize + 2];
                self.r.read_exact(&mut buf).unwrap();
                Some(line)
            }
            "_" => None,
            _ => Some(line),
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .or(default)
        .unwrap_or_else(|| panic!("missing {name}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port", None);
    let kind: String = arg(&args, "--kind", None);
    let conns: usize = arg(&args, "--conns", Some(48));
    let seconds: f64 = arg(&args, "--seconds", Some(10.0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut threads = Vec::new();
    match kind.as_str() {
        "tx" => {
            let tx = [
                encode(&["MULTI"]),
                encode(&["INCR", "a"]),
                encode(&["INCR", "b"]),
                encode(&["INCR", "c"]),
                encode(&["EXEC"]),
            ]
            .concat();
            for _ in 0..conns {
                let (tx, done) = (tx.clone(), done.clone());
                threads.push(std::thread::spawn(move || {
                    let mut c = Conn::open(port);
                    while Instant::now() < deadline {
                        c.send(&tx);
                        for _ in 0..4 {
                            c.reply();
                        }
                        assert!(c.reply().is_some(), "EXEC aborted");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
        "queue" => {
            for i in 0..(conns / 2).max(1) {
                let key = format!("q{i}");
                // The consumer tells the producer when it is about to block again.
                let (ready_tx, ready_rx) = mpsc::channel::<()>();
                let (done, stop, k) = (done.clone(), stop.clone(), key.clone());
                threads.push(std::thread::spawn(move || {
                    let mut c = Conn::open(port);
                    let pop = encode(&["BRPOP", &k, "1"]);
                    while !stop.load(Ordering::Relaxed) {
                        c.send(&pop);
                        if ready_tx.send(()).is_err() {
                            break;
                        }
                        if c.reply().is_some() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
                threads.push(std::thread::spawn(move || {
                    let mut c = Conn::open(port);
                    let push = encode(&["LPUSH", &key, "x"]);
                    while Instant::now() < deadline {
                        if ready_rx.recv().is_err() {
                            break;
                        }
                        // Let the BRPOP reach the server and block first.
                        std::thread::sleep(Duration::from_micros(100));
                        c.send(&push);
                        c.reply();
                    }
                }));
            }
        }
        other => panic!("unknown --kind {other}"),
    }
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let total = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    println!("{:.0}", total as f64 / elapsed);
}
