//! Differential testing against real Redis: the same seeded random command sequences go to a
//! `redis-server` and to rockraft, and every reply must be the same bytes, up to what Redis
//! itself leaves unspecified (the order of HKEYS and the like, the choices of HRANDFIELD, the
//! exact TTL a moment later). A difference is shrunk to the shortest sequence that still
//! shows it (greedy delta debugging, as proptest does) and reported with its seed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One reply, as parsed from RESP2.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resp::Simple(s) => write!(f, "+{}", String::from_utf8_lossy(s)),
            Resp::Error(s) => write!(f, "-{}", String::from_utf8_lossy(s)),
            Resp::Int(i) => write!(f, ":{i}"),
            Resp::Bulk(None) => write!(f, "(nil)"),
            Resp::Bulk(Some(b)) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Resp::Array(None) => write!(f, "(nil array)"),
            Resp::Array(Some(items)) => {
                write!(f, "[")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{it}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// A server under test, spoken to over one RESP2 connection.
pub struct Target {
    pub name: String,
    addr: SocketAddr,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// A second connection (another client, for WATCH interleavings), opened when needed.
    other: Option<Box<Target>>,
}

impl Target {
    pub fn connect(name: &str, addr: SocketAddr) -> Target {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{name} at {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Target {
            name: name.into(),
            addr,
            stream,
            reader,
            other: None,
        }
    }

    /// Sends one command on the second connection and reads its reply.
    pub fn call_other(&mut self, argv: &[Vec<u8>]) -> Resp {
        let (name, addr) = (self.name.clone(), self.addr);
        self.other
            .get_or_insert_with(|| Box::new(Target::connect(&name, addr)))
            .call(argv)
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, argv: &[Vec<u8>]) -> Resp {
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        self.stream
            .write_all(&rockraft_resp::encode_request(&args))
            .unwrap();
        read_resp(&mut self.reader)
    }

    /// Sends one command without reading its reply.
    pub fn send(&mut self, argv: &[Vec<u8>]) {
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        self.stream
            .write_all(&rockraft_resp::encode_request(&args))
            .unwrap();
    }

    /// Sends commands in one write (a pipeline) without reading their replies.
    pub fn send_all(&mut self, cmds: &[Vec<Vec<u8>>]) {
        let mut out = Vec::new();
        for argv in cmds {
            let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
            out.extend_from_slice(&rockraft_resp::encode_request(&args));
        }
        self.stream.write_all(&out).unwrap();
    }

    /// Reads the next reply or pushed message.
    pub fn read(&mut self) -> Resp {
        read_resp(&mut self.reader)
    }

    /// Empties the server (between sequences).
    pub fn flush(&mut self) {
        let r = self.call(&[b"FLUSHALL".to_vec()]);
        assert_eq!(r, Resp::Simple(b"OK".to_vec()), "FLUSHALL on {}", self.name);
        for what in ["SCRIPT", "FUNCTION"] {
            let r = self.call(&[what.as_bytes().to_vec(), b"FLUSH".to_vec()]);
            assert_eq!(
                r,
                Resp::Simple(b"OK".to_vec()),
                "{what} FLUSH on {}",
                self.name
            );
        }
    }
}

fn read_resp(r: &mut BufReader<TcpStream>) -> Resp {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    assert!(line.ends_with(b"\r\n"), "truncated reply line {line:?}");
    line.truncate(line.len() - 2);
    let (kind, rest) = line.split_first().expect("empty reply line");
    let num = || -> i64 { std::str::from_utf8(rest).unwrap().parse().unwrap() };
    match kind {
        b'+' => Resp::Simple(rest.to_vec()),
        b'-' => Resp::Error(rest.to_vec()),
        b':' => Resp::Int(num()),
        b'$' => {
            let n = num();
            if n < 0 {
                return Resp::Bulk(None);
            }
            let mut data = vec![0u8; n as usize + 2];
            r.read_exact(&mut data).unwrap();
            data.truncate(n as usize);
            Resp::Bulk(Some(data))
        }
        b'*' => {
            let n = num();
            if n < 0 {
                return Resp::Array(None);
            }
            Resp::Array(Some((0..n).map(|_| read_resp(r)).collect()))
        }
        // RESP3: a push or a map is an array marked with its kind; a set an array.
        b'>' | b'%' | b'~' => {
            let mut n = num();
            let mut items = Vec::new();
            match kind {
                b'>' => items.push(Resp::Simple(b"push".to_vec())),
                b'%' => {
                    items.push(Resp::Simple(b"map".to_vec()));
                    n *= 2;
                }
                _ => {}
            }
            items.extend((0..n).map(|_| read_resp(r)));
            Resp::Array(Some(items))
        }
        b'_' => Resp::Bulk(None),
        b'#' => Resp::Simple(rest.to_vec()),
        b',' => Resp::Bulk(Some(rest.to_vec())),
        other => panic!("unexpected reply type {:?}", *other as char),
    }
}

/// A `redis-server` of this machine on a port of its own, stopped on drop.
pub struct RedisServer {
    child: Child,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A redis-server with extra configuration flags (`--aclfile …`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let port = crate::free_port();
        let dir = std::env::temp_dir();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let up = crate::wait_until(Duration::from_secs(20), || {
            TcpStream::connect(addr).is_ok_and(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(1))).ok();
                let mut buf = [0u8; 7];
                s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
            })
        });
        assert!(up, "redis-server did not start on {addr}");
        RedisServer { child, addr }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A generated command.
pub type Cmd = Vec<Vec<u8>>;

fn sha1_hex(body: &str) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Random commands over a few keys, fields and edge values, so that types collide
/// (WRONGTYPE), counters overflow and parsers meet everything they must refuse.
pub struct Generator {
    rng: StdRng,
}

const KEYS: [&str; 5] = ["k0", "k1", "k2", "{k}3", "{k}4"];

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())].clone()
    }

    fn key(&mut self) -> Vec<u8> {
        b(self.pick(&KEYS))
    }

    fn field(&mut self) -> Vec<u8> {
        let fields = [
            "f0",
            "f1",
            "f2",
            "f3",
            "",
            "field with spaces",
            "\u{e9}t\u{e9}",
        ];
        if self.rng.random_ratio(1, 30) {
            return vec![0xff, 0xfe, 0x00, b'x'];
        }
        b(self.pick(&fields))
    }

    fn int(&mut self) -> Vec<u8> {
        let ints = [
            "0",
            "1",
            "-1",
            "7",
            "100",
            "-100",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "01",
            "+1",
            " 1",
            "1.0",
            "abc",
            "",
        ];
        if self.rng.random_ratio(2, 3) {
            return b(&self.rng.random_range(-50i64..50).to_string());
        }
        b(self.pick(&ints))
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..10) {
            0..=3 => self.int(),
            4 => b(self.pick(&["1.5", "-0.5", "3.0e3", "inf", "-inf", "nan", "1e308", "0.1"])),
            5 => vec![b'x'; self.rng.random_range(0..300)],
            6 => vec![0xff, 0x00, 0xc3],
            _ => b(self.pick(&["v", "hello", "", "42abc", " "])),
        }
    }

    fn count(&mut self) -> Vec<u8> {
        b(self.pick(&[
            "0",
            "1",
            "2",
            "3",
            "5",
            "100",
            "-1",
            "-3",
            "-7",
            "x",
            "-9223372036854775808",
        ]))
    }

    fn member(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..6) {
            0 => self.int(),
            1 => self.field(),
            _ => b(self.pick(&["a", "b", "c", "d", "1", "2", "10", "-3"])),
        }
    }

    /// A key for streams: their own, now and then a shared one (type errors).
    fn stream_key(&mut self) -> Vec<u8> {
        if self.rng.random_ratio(1, 8) {
            return self.key();
        }
        b(self.pick(&["s0", "s0", "s0", "{k}s1"]))
    }

    /// A stream ID argument: small explicit IDs (deterministic), now and then `*` (a clock
    /// ID, normalised in replies) and malformed ones.
    fn stream_id(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..12) {
            0..=5 => {
                let ms = self.rng.random_range(0..8);
                match self.rng.random_range(0..4) {
                    0 => b(&ms.to_string()),
                    1 => b(&format!("{ms}-*")),
                    _ => b(&format!("{ms}-{}", self.rng.random_range(0..4))),
                }
            }
            6 => b("0-0"),
            7 => b(self.pick(&["*", "*", "18446744073709551615-18446744073709551615"])),
            8 => b(self.pick(&["-", "+", "$", ">", "(1-1", "(0-0"])),
            9 => b(self.pick(&["abc", "1-x", "-1", "1-", "01-1", " 2", "+3", "1-2-3", ""])),
            _ => b(&format!("{}-{}", self.rng.random_range(0..8), u64::MAX)),
        }
    }

    fn stream_range_id(&mut self) -> Vec<u8> {
        if self.rng.random_ratio(1, 3) {
            return b(self.pick(&["-", "+", "-", "+"]));
        }
        let id = self.stream_id();
        if self.rng.random_ratio(1, 4) {
            return [b"(".as_slice(), &id].concat();
        }
        id
    }

    fn stream_group(&mut self) -> Vec<u8> {
        b(self.pick(&["g1", "g1", "g2", "missing"]))
    }

    fn stream_consumer(&mut self) -> Vec<u8> {
        b(self.pick(&["c1", "c1", "c2", "c3", ""]))
    }

    /// Idle-time arguments: 0 or an hour, whose effect does not depend on timing.
    fn stream_idle(&mut self) -> Vec<u8> {
        b(self.pick(&["0", "0", "3600000", "-5", "x"]))
    }

    fn stream_trim(&mut self, c: &mut Cmd) {
        if self.rng.random_ratio(1, 2) {
            c.push(b(self.pick(&["MAXLEN", "MINID", "maxlen", "LIMIT"])));
            if self.rng.random_ratio(1, 3) {
                c.push(b(self.pick(&["=", "~", "="])));
            }
            if c[c.len() - 1].eq_ignore_ascii_case(b"MINID")
                || c[c.len() - 2].eq_ignore_ascii_case(b"MINID")
            {
                c.push(self.stream_id());
            } else {
                c.push(b(self.pick(&["0", "1", "2", "3", "5", "-1", "x"])));
            }
            if self.rng.random_ratio(1, 6) {
                c.push(b("LIMIT"));
                c.push(b(self.pick(&["0", "1", "100", "-1"])));
            }
        }
    }

    fn stream_command(&mut self) -> Cmd {
        let k = self.stream_key();
        match self.rng.random_range(0..40) {
            0..=9 => {
                let mut c = vec![b("XADD"), k];
                if self.rng.random_ratio(1, 10) {
                    c.push(b("NOMKSTREAM"));
                }
                self.stream_trim(&mut c);
                c.push(self.stream_id());
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.field());
                    c.push(self.value());
                }
                if self.rng.random_ratio(1, 20) {
                    c.pop();
                }
                c
            }
            10 | 11 => {
                let mut c = vec![b(self.pick(&["XRANGE", "XREVRANGE"])), k];
                c.push(self.stream_range_id());
                c.push(self.stream_range_id());
                if self.rng.random_ratio(1, 2) {
                    c.push(b(self.pick(&["COUNT", "COUNT", "LIMIT"])));
                    c.push(self.count());
                }
                c
            }
            12 => vec![b("XLEN"), k],
            13 => {
                let mut c = vec![b("XDEL"), k];
                for _ in 0..self.rng.random_range(1..3) {
                    c.push(self.stream_id());
                }
                c
            }
            14 => {
                let mut c = vec![b("XTRIM"), k];
                self.stream_trim(&mut c);
                c
            }
            15..=17 => {
                let mut c = vec![b("XREAD")];
                if self.rng.random_ratio(1, 2) {
                    c.push(b("COUNT"));
                    c.push(self.count());
                }
                if self.rng.random_ratio(1, 6) {
                    c.push(b("BLOCK"));
                    c.push(b(self.pick(&["10", "10", "-1", "x"])));
                }
                if self.rng.random_ratio(1, 20) {
                    c.push(b(self.pick(&["NOACK", "GROUP"])));
                }
                c.push(b("STREAMS"));
                let keys = self.rng.random_range(1..3);
                let ks: Vec<Vec<u8>> = (0..keys).map(|_| self.stream_key()).collect();
                c.extend(ks);
                for _ in 0..keys {
                    c.push(self.stream_id());
                }
                if self.rng.random_ratio(1, 20) {
                    c.pop();
                }
                c
            }
            18..=22 => {
                let mut c = vec![
                    b("XREADGROUP"),
                    b("GROUP"),
                    self.stream_group(),
                    self.stream_consumer(),
                ];
                if self.rng.random_ratio(1, 2) {
                    c.push(b("COUNT"));
                    c.push(self.count());
                }
                if self.rng.random_ratio(1, 4) {
                    c.push(b("NOACK"));
                }
                if self.rng.random_ratio(1, 8) {
                    c.push(b("BLOCK"));
                    c.push(b(self.pick(&["10", "-1"])));
                }
                c.push(b("STREAMS"));
                c.push(k);
                c.push(if self.rng.random_ratio(2, 3) {
                    b(">")
                } else {
                    self.stream_id()
                });
                c
            }
            23..=25 => {
                let sub = self.pick(&[
                    "CREATE",
                    "CREATE",
                    "SETID",
                    "DESTROY",
                    "CREATECONSUMER",
                    "DELCONSUMER",
                    "HELP",
                    "create",
                    "NOPE",
                ]);
                let mut c = vec![b("XGROUP"), b(sub)];
                if sub == "HELP" {
                    return c;
                }
                c.push(k);
                c.push(self.stream_group());
                match sub {
                    "CREATE" | "create" | "SETID" => {
                        c.push(if self.rng.random_ratio(1, 3) {
                            b("$")
                        } else {
                            self.stream_id()
                        });
                        if self.rng.random_ratio(1, 2) {
                            c.push(b(self.pick(&[
                                "MKSTREAM",
                                "MKSTREAM",
                                "ENTRIESREAD",
                                "FOO",
                            ])));
                            if c[c.len() - 1] == b"ENTRIESREAD" {
                                c.push(b(self.pick(&["0", "2", "-1", "-2", "x"])));
                            }
                        }
                    }
                    "CREATECONSUMER" | "DELCONSUMER" => c.push(self.stream_consumer()),
                    _ => {}
                }
                c
            }
            26 | 27 => {
                let mut c = vec![b("XACK"), k, self.stream_group()];
                for _ in 0..self.rng.random_range(1..3) {
                    c.push(self.stream_id());
                }
                c
            }
            28..=30 => {
                let mut c = vec![b("XPENDING"), k, self.stream_group()];
                if self.rng.random_ratio(2, 3) {
                    if self.rng.random_ratio(1, 3) {
                        c.push(b("IDLE"));
                        c.push(self.stream_idle());
                    }
                    c.push(self.stream_range_id());
                    c.push(self.stream_range_id());
                    c.push(self.count());
                    if self.rng.random_ratio(1, 2) {
                        c.push(self.stream_consumer());
                    }
                }
                c
            }
            31 | 32 => {
                let mut c = vec![
                    b("XCLAIM"),
                    k,
                    self.stream_group(),
                    self.stream_consumer(),
                    self.stream_idle(),
                ];
                for _ in 0..self.rng.random_range(1..3) {
                    c.push(self.stream_id());
                }
                for _ in 0..self.rng.random_range(0..3) {
                    let opt = self.pick(&[
                        "FORCE",
                        "JUSTID",
                        "RETRYCOUNT",
                        "IDLE",
                        "TIME",
                        "LASTID",
                        "BOGUS",
                    ]);
                    c.push(b(opt));
                    match opt {
                        "RETRYCOUNT" => c.push(b(self.pick(&["0", "5", "x"]))),
                        "IDLE" => c.push(self.stream_idle()),
                        "TIME" => c.push(b(self.pick(&["0", "1", "x"]))),
                        "LASTID" => c.push(self.stream_id()),
                        _ => {}
                    }
                }
                c
            }
            33 => {
                let mut c = vec![
                    b("XAUTOCLAIM"),
                    k,
                    self.stream_group(),
                    self.stream_consumer(),
                    self.stream_idle(),
                    self.stream_range_id(),
                ];
                if self.rng.random_ratio(1, 2) {
                    c.push(b("COUNT"));
                    c.push(b(self.pick(&["1", "2", "0", "100", "x"])));
                }
                if self.rng.random_ratio(1, 3) {
                    c.push(b("JUSTID"));
                }
                c
            }
            34..=36 => {
                let sub = self.pick(&["STREAM", "STREAM", "GROUPS", "CONSUMERS", "HELP", "NOPE"]);
                let mut c = vec![b("XINFO"), b(sub)];
                if sub == "HELP" {
                    return c;
                }
                c.push(k);
                if sub == "CONSUMERS" {
                    c.push(self.stream_group());
                }
                if sub == "STREAM" && self.rng.random_ratio(1, 4) {
                    c.push(b(self.pick(&["FULL", "FULL", "PARTIAL"])));
                    if self.rng.random_ratio(1, 2) {
                        c.push(b("COUNT"));
                        c.push(b(self.pick(&["0", "1", "-1", "x"])));
                    }
                }
                c
            }
            37 => {
                let mut c = vec![b("XSETID"), k, self.stream_id()];
                if self.rng.random_ratio(1, 2) {
                    c.push(b(self.pick(&["ENTRIESADDED", "MAXDELETEDID", "BOGUS"])));
                    c.push(if self.rng.random_ratio(1, 2) {
                        self.count()
                    } else {
                        self.stream_id()
                    });
                }
                c
            }
            38 if self.rng.random_ratio(1, 4) => vec![b("OBJECT"), b("ENCODING"), k],
            38 => vec![b(self.pick(&["TYPE", "DEL", "EXISTS"])), k],
            _ => vec![b("RENAME"), k, b(self.pick(&["s0", "{k}s1", "k0"]))],
        }
    }

    /// One random command.
    pub fn command(&mut self) -> Cmd {
        match self.rng.random_range(0..34) {
            31..=33 => self.stream_command(),
            28 | 29 => self.script_command(),
            30 => self.function_command(),
            21..=23 => self.hll_command(),
            24..=27 => self.geo_command(),
            0..=2 => self.set_command(),
            3..=5 => self.list_command(),
            6..=9 => self.zset_command(),
            10 | 11 => self.generic_command(),
            16 | 17 => self.transaction(),
            18 => self.blocking_command(),
            19 | 20 => self.bitmap_command(),
            _ => self.string_or_hash_command(),
        }
    }

    /// A key for HyperLogLogs: their own keys, as a PFCOUNT in Redis rewrites the value's
    /// cached count (rockraft's does not, see command/hll.rs), which string commands on the
    /// same key would see. Now and then a shared key, for the type errors.
    fn hll_key(&mut self) -> Vec<u8> {
        if self.rng.random_ratio(1, 8) {
            return self.key();
        }
        b(self.pick(&["hll0", "hll0", "{k}hll1"]))
    }

    fn hll_command(&mut self) -> Cmd {
        let k = b(self.pick(&["hll0", "hll0", "{k}hll1"]));
        match self.rng.random_range(0..14) {
            0..=5 => {
                let mut c = vec![b("PFADD"), k];
                // Sometimes enough elements to pass the sparse limit (~1500) in a few adds.
                let n = match self.rng.random_range(0..10) {
                    0 => 0,
                    1..=4 => self.rng.random_range(1..6),
                    5..=7 => self.rng.random_range(100..900),
                    // Enough to turn a sparse HLL dense at once.
                    _ => self.rng.random_range(1500..4000),
                };
                let range = if self.rng.random_ratio(1, 2) {
                    50
                } else {
                    5000
                };
                for _ in 0..n {
                    c.push(b(&format!("e{}", self.rng.random_range(0..range))));
                }
                c
            }
            6 | 7 => {
                let mut c = vec![b("PFCOUNT"), self.hll_key()];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.hll_key());
                }
                c
            }
            8 => {
                let mut c = vec![b("PFMERGE"), k];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.hll_key());
                }
                c
            }
            9 => vec![b("GET"), k],
            10 => vec![b(self.pick(&["STRLEN", "TYPE", "TTL", "DEL"])), k],
            11 => vec![b("EXPIRE"), k, b("100")],
            // Values a PFADD must refuse as not being HyperLogLogs.
            12 if self.rng.random_ratio(2, 3) => vec![b("DEL"), k],
            12 => vec![
                b("SET"),
                k,
                self.pick(&[
                    b"HYLL".to_vec(),
                    b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff".to_vec(),
                    b"HYLL\0\0\0\0\0\0\0\0\0\0\0\0\x7f\xff".to_vec(),
                    b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0\x7f\xff".to_vec(),
                ]),
            ],
            _ => vec![b("PFCOUNT"), self.key()],
        }
    }

    /// A coordinate: near Sicily, so searches find members, and distinct per member (ties in
    /// distance would be ordered by Redis's unstable partial sort); now and then an edge.
    fn lon_lat(&mut self, member: &[u8]) -> (Vec<u8>, Vec<u8>) {
        if self.rng.random_ratio(1, 25) {
            let lon = self.pick(&["180", "-180", "181", "abc", "0", "inf", "13.5"]);
            let lat = self.pick(&[
                "85.05112878",
                "-85.05112878",
                "85.06",
                "x",
                "0",
                "-90",
                "37.5",
            ]);
            return (b(lon), b(lat));
        }
        let h = member
            .iter()
            .fold(17u64, |h, &c| h.wrapping_mul(31).wrapping_add(u64::from(c)));
        let slot = (h % 100_000) as f64;
        let jitter = f64::from(self.rng.random_range(0..3u32));
        let lon = 12.0 + slot * 0.000_04 + jitter;
        let lat = 36.5 + (slot * 0.000_03) % 2.5 + jitter * 0.1;
        (b(&format!("{lon:.6}")), b(&format!("{lat:.6}")))
    }

    /// Mostly keys of their own (so searches find members), else a shared one.
    fn geo_key(&mut self) -> Vec<u8> {
        if self.rng.random_ratio(1, 3) {
            return self.key();
        }
        b(self.pick(&["geo0", "geo0", "{k}geo1"]))
    }

    fn geo_unit(&mut self) -> Vec<u8> {
        b(self.pick(&["m", "km", "km", "km", "KM", "mi", "ft", "yd"]))
    }

    fn geo_radius(&mut self) -> Vec<Vec<u8>> {
        let r = self.pick(&[
            "0", "1", "50", "100", "200", "200", "300", "500", "500", "5000", "20000", "-1", "x",
        ]);
        vec![b(r), self.geo_unit()]
    }

    fn geo_options(&mut self, c: &mut Cmd, with: bool) {
        for _ in 0..self.rng.random_range(0..4) {
            match self.rng.random_range(0..7) {
                0 if with => c.push(b(self.pick(&["WITHDIST", "WITHCOORD", "WITHHASH"]))),
                1 | 2 => c.push(b(self.pick(&["ASC", "DESC"]))),
                3 | 4 => {
                    c.push(b("COUNT"));
                    c.push(b(self.pick(&["1", "2", "3", "10", "0", "-1"])));
                    if self.rng.random_ratio(1, 3) {
                        c.push(b("ANY"));
                    }
                }
                5 => c.push(b("ANY")),
                _ => {}
            }
        }
    }

    /// Geo commands on the shared keys, so they meet sorted sets with any scores and other
    /// types.
    fn geo_command(&mut self) -> Cmd {
        let k = self.geo_key();
        let m = self.member();
        match self.rng.random_range(0..12) {
            0..=4 => {
                let mut c = vec![b("GEOADD"), k];
                if self.rng.random_ratio(1, 4) {
                    c.push(b(self.pick(&["NX", "XX", "CH", "GT"])));
                }
                for _ in 0..self.rng.random_range(1..9) {
                    let m = self.member();
                    let (lon, lat) = self.lon_lat(&m);
                    c.extend([lon, lat, m]);
                }
                c
            }
            5 => {
                let mut c = vec![b("GEODIST"), k, m, self.member()];
                if self.rng.random_ratio(1, 2) {
                    c.push(self.geo_unit());
                }
                c
            }
            6 => {
                let mut c = vec![b(self.pick(&["GEOHASH", "GEOPOS"])), k];
                for _ in 0..self.rng.random_range(0..4) {
                    c.push(self.member());
                }
                c
            }
            7..=9 => {
                let store = self.rng.random_ratio(1, 4);
                let mut c = if store {
                    vec![b("GEOSEARCHSTORE"), self.geo_key(), k]
                } else {
                    vec![b("GEOSEARCH"), k]
                };
                if self.rng.random_ratio(1, 2) {
                    c.extend([b("FROMMEMBER"), m]);
                } else {
                    let (lon, lat) = self.lon_lat(b"centre");
                    c.extend([b("FROMLONLAT"), lon, lat]);
                }
                if self.rng.random_ratio(1, 2) {
                    c.push(b("BYRADIUS"));
                    c.extend(self.geo_radius());
                } else {
                    c.push(b("BYBOX"));
                    c.push(b(self.pick(&["0", "10", "100", "400", "5000", "-1"])));
                    c.push(b(self.pick(&["0", "10", "100", "400", "5000", "y"])));
                    c.push(self.geo_unit());
                }
                self.geo_options(&mut c, !store);
                if store && self.rng.random_ratio(1, 2) {
                    c.push(b("STOREDIST"));
                }
                c
            }
            _ => {
                let by_member = self.rng.random_ratio(1, 2);
                let ro = self.rng.random_ratio(1, 2);
                let name = match (by_member, ro) {
                    (false, false) => "GEORADIUS",
                    (false, true) => "GEORADIUS_RO",
                    (true, false) => "GEORADIUSBYMEMBER",
                    (true, true) => "GEORADIUSBYMEMBER_RO",
                };
                let mut c = vec![b(name), k];
                if by_member {
                    c.push(m);
                } else {
                    let (lon, lat) = self.lon_lat(b"centre");
                    c.extend([lon, lat]);
                }
                c.extend(self.geo_radius());
                let store = self.rng.random_ratio(1, 4);
                let with = !store || self.rng.random_ratio(1, 5);
                self.geo_options(&mut c, with);
                if store {
                    c.push(b(self.pick(&["STORE", "STOREDIST"])));
                    c.push(self.geo_key());
                }
                c
            }
        }
    }

    fn bit_index(&mut self) -> Vec<u8> {
        if self.rng.random_ratio(1, 10) {
            return b(self.pick(&[
                "x",
                "-0",
                "4294967296",
                "9223372036854775807",
                "-9223372036854775808",
                "#3",
            ]));
        }
        b(&self.rng.random_range(-40i64..60).to_string())
    }

    /// Bit commands on the same keys as everything else (so they meet strings made by SET and
    /// APPEND, and other types).
    fn bitmap_command(&mut self) -> Cmd {
        let k = self.key();
        let unit = |g: &mut Generator, c: &mut Cmd| {
            if g.rng.random_ratio(1, 2) {
                c.push(b(g.pick(&["BIT", "BYTE", "bit", "BITS"])));
            }
        };
        match self.rng.random_range(0..9) {
            0 | 1 => {
                let offset = if self.rng.random_ratio(1, 20) {
                    b(self.pick(&["-1", "x", "4294967296", "-4294967295"]))
                } else {
                    b(&self.rng.random_range(0u64..100).to_string())
                };
                vec![
                    b("SETBIT"),
                    k,
                    offset,
                    b(self.pick(&["0", "1", "1", "2", "-1", "x"])),
                ]
            }
            2 => vec![
                b("GETBIT"),
                k,
                b(&self.rng.random_range(0u64..120).to_string()),
            ],
            3 => {
                let mut c = vec![b("BITCOUNT"), k];
                match self.rng.random_range(0..4) {
                    0 => {}
                    1 => c.push(self.bit_index()),
                    _ => {
                        c.push(self.bit_index());
                        c.push(self.bit_index());
                        unit(self, &mut c);
                    }
                }
                c
            }
            4 => {
                let mut c = vec![b("BITPOS"), k, b(self.pick(&["0", "1", "1", "2", "x"]))];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.bit_index());
                }
                if c.len() >= 5 {
                    unit(self, &mut c);
                }
                c
            }
            5 => {
                let op = self.pick(&["AND", "OR", "XOR", "NOT", "not", "NAND"]);
                let mut c = vec![b("BITOP"), b(op), self.key(), k];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.key());
                }
                c
            }
            _ => {
                let name = if self.rng.random_ratio(1, 4) {
                    "BITFIELD_RO"
                } else {
                    "BITFIELD"
                };
                let mut c = vec![b(name), k];
                for _ in 0..self.rng.random_range(0..4) {
                    let ty = b(self.pick(&[
                        "u8", "i8", "u1", "i64", "u63", "u64", "i5", "u16", "x8", "i0",
                    ]));
                    let offset = if self.rng.random_ratio(1, 3) {
                        b(&format!("#{}", self.rng.random_range(0..8)))
                    } else {
                        b(&self.rng.random_range(0u64..80).to_string())
                    };
                    match self.rng.random_range(0..5) {
                        0 | 1 => {
                            c.extend([b("GET"), ty, offset]);
                        }
                        2 => {
                            c.extend([b("SET"), ty, offset, self.int()]);
                        }
                        3 => {
                            c.extend([b("INCRBY"), ty, offset, self.int()]);
                        }
                        _ => {
                            c.extend([
                                b("OVERFLOW"),
                                b(self.pick(&["WRAP", "SAT", "FAIL", "fail", "NONE"])),
                            ]);
                        }
                    }
                }
                c
            }
        }
    }

    /// A blocking pop whose wait is short (nothing else would wake it): it pops at once, or
    /// times out with nil, or is refused. Inside a transaction it never blocks.
    fn blocking_command(&mut self) -> Cmd {
        let timeout = b(self.pick(&["0.01", "0.001", "0.02", "x", "-1", "1e400", "0x1p-10", ""]));
        let (k, k2) = (self.key(), self.key());
        let end = |g: &mut Generator| b(g.pick(&["LEFT", "RIGHT", "left", "UP"]));
        match self.rng.random_range(0..8) {
            0 => vec![b("BLPOP"), k, k2, timeout],
            1 => vec![b("BRPOP"), k, timeout],
            2 => vec![b("BRPOPLPUSH"), k, k2, timeout],
            3 => {
                let (from, to) = (end(self), end(self));
                vec![b("BLMOVE"), k, k2, from, to, timeout]
            }
            4 => {
                let mut c = vec![
                    b("BLMPOP"),
                    timeout,
                    b(self.pick(&["1", "2", "0", "x"])),
                    k,
                    k2,
                    end(self),
                ];
                if self.rng.random_ratio(1, 2) {
                    c.push(b("COUNT"));
                    c.push(self.count());
                }
                c
            }
            5 => vec![b("BZPOPMIN"), k, k2, timeout],
            6 => vec![b("BZPOPMAX"), k, timeout],
            _ => {
                let mut c = vec![
                    b("BZMPOP"),
                    timeout,
                    b(self.pick(&["1", "2", "0"])),
                    k,
                    k2,
                    b(self.pick(&["MIN", "MAX", "MID"])),
                ];
                if self.rng.random_ratio(1, 2) {
                    c.push(b("COUNT"));
                    c.push(self.count());
                }
                c
            }
        }
    }

    /// A command that can go inside a transaction and be compared there: no pseudo-command,
    /// no random removal (SPOP, whose choice the harness aligns only at top level), no SORT
    /// (see `first_difference`), OBJECT (encoding history) or DUMP (its encodings; compared
    /// by the value it decodes to at top level only).
    fn queued_command(&mut self) -> Cmd {
        loop {
            let c = match self.rng.random_range(0..40) {
                0 => vec![b("NOSUCHCOMMAND"), self.key()],
                1 => vec![b("GET")],
                2 => vec![
                    b(self.pick(&["MULTI", "WATCH", "PING", "ECHO"])),
                    self.key(),
                ],
                3 => vec![b("PING")],
                _ => self.command(),
            };
            let name = name_of(&c);
            // An HLL's bytes differ in their cached count (see `normalize`).
            let hll_bytes = name == "GET"
                && c.get(1)
                    .is_some_and(|k| k.ends_with(b"hll1") || k.starts_with(b"hll"));
            if !hll_bytes
                && !matches!(
                    name.as_str(),
                    "HSCANALL"
                        | "SSCANALL"
                        | "ZSCANALL"
                        | "SPOP"
                        | "SORT"
                        | "SORT_RO"
                        | "OBJECT"
                        | "DUMP"
                        | "TX"
                        | "WATCHTX"
                )
            {
                return c;
            }
        }
    }

    /// A pseudo-command for a transaction: `TX <argc> <args…> …` runs MULTI, each command,
    /// then EXEC (or DISCARD); `WATCHTX <keys> <argc> <args…> <argc> <args…> …` first WATCHes
    /// keys, then has another connection run a command (the first one listed, possibly a
    /// no-op), then the transaction.
    fn transaction(&mut self) -> Cmd {
        let watch = self.rng.random_ratio(1, 2);
        let mut c = vec![b(if watch { "WATCHTX" } else { "TX" })];
        if watch {
            let keys: Vec<Vec<u8>> = (0..self.rng.random_range(1..3))
                .map(|_| self.key())
                .collect();
            c.push(b(&keys.len().to_string()));
            let k = keys[0].clone();
            c.extend(keys);
            let other: Cmd = match self.rng.random_range(0..10) {
                0 => vec![b("SET"), k, self.value()],
                1 => vec![b("DEL"), k],
                2 => vec![b("SADD"), k, self.member()],
                3 => vec![b("HSET"), k, self.field(), self.value()],
                4 => vec![b("LPUSH"), k, self.member()],
                5 => vec![b("EXPIRE"), k, b("100")],
                6 => vec![b("ZADD"), k, b("1"), self.member()],
                7 => self.command(),
                _ => vec![b("GET"), k],
            };
            let other = if matches!(
                name_of(&other).as_str(),
                "TX" | "WATCHTX" | "SPOP" | "HSCANALL" | "SSCANALL" | "ZSCANALL"
            ) {
                vec![b("PING")]
            } else {
                other
            };
            c.push(b(&other.len().to_string()));
            c.extend(other);
        }
        for _ in 0..self.rng.random_range(0..5) {
            let q = self.queued_command();
            c.push(b(&q.len().to_string()));
            c.extend(q);
        }
        if self.rng.random_ratio(1, 12) {
            // Ends with DISCARD instead of EXEC.
            c.push(b("1"));
            c.push(b("DISCARD"));
        }
        c
    }

    fn pattern(&mut self) -> Vec<u8> {
        b(self.pick(&[
            "#", "k*", "{k}*", "nosort", "k*->f0", "{k}*->f1", "*", "k", "x*y",
        ]))
    }

    fn generic_command(&mut self) -> Cmd {
        let k = self.key();
        match self.rng.random_range(0..15) {
            0 | 1 => {
                let mut c = vec![b("COPY"), k, self.key()];
                if self.rng.random_ratio(1, 2) {
                    c.push(b(self.pick(&["REPLACE", "replace", "REPLAC"])));
                }
                if self.rng.random_ratio(1, 10) {
                    c.push(b("DB"));
                    c.push(b(self.pick(&["0", "x"])));
                }
                c
            }
            2 => vec![b("RANDOMKEY")],
            3 => vec![b("TOUCH"), k, self.key()],
            4 => {
                let sub = self.pick(&[
                    "ENCODING", "ENCODING", "REFCOUNT", "FREQ", "IDLETIME", "HELP", "NOPE",
                ]);
                vec![b("OBJECT"), b(sub), k]
            }
            5..=8 => {
                let mut c = vec![b(self.pick(&["SORT", "SORT", "SORT_RO"])), k];
                for _ in 0..self.rng.random_range(0..4) {
                    match self.rng.random_range(0..8) {
                        0 => c.push(b(self.pick(&["ASC", "DESC", "desc"]))),
                        1 | 2 => c.push(b("ALPHA")),
                        3 => {
                            c.push(b("LIMIT"));
                            c.push(b(self.pick(&["0", "1", "2", "-1", "10"])));
                            c.push(b(self.pick(&["1", "2", "-1", "0", "x"])));
                        }
                        4 => {
                            c.push(b("BY"));
                            c.push(self.pattern());
                        }
                        5 => {
                            c.push(b("GET"));
                            c.push(self.pattern());
                        }
                        6 => {
                            c.push(b("STORE"));
                            c.push(self.key());
                        }
                        _ => c.push(b("FOO")),
                    }
                }
                c
            }
            9 | 10 => {
                let mut c = vec![b("LCS"), k, self.key()];
                for _ in 0..self.rng.random_range(0..3) {
                    match self.rng.random_range(0..5) {
                        0 => c.push(b("LEN")),
                        1 => c.push(b("IDX")),
                        2 => c.push(b("WITHMATCHLEN")),
                        3 => {
                            c.push(b("MINMATCHLEN"));
                            c.push(b(self.pick(&["0", "1", "2", "-1", "x"])));
                        }
                        _ => c.push(b("BAR")),
                    }
                }
                c
            }
            11 => vec![b("SUBSTR"), k, self.index(), self.index()],
            12 => vec![b("DUMP"), k],
            _ => self.restore(k),
        }
    }

    /// RESTORE of a value this generator serializes itself (every type, or a bad payload),
    /// with Redis's options: both servers must read it alike, and DUMP must give it back.
    fn restore(&mut self, k: Vec<u8>) -> Cmd {
        use rockraft_server::rdb::{dump, Object};
        let n = self.rng.random_range(0..4usize);
        let distinct = |g: &mut Self| -> Vec<Vec<u8>> {
            let mut v: Vec<Vec<u8>> = (0..n).map(|_| g.value()).collect();
            v.sort();
            v.dedup();
            v
        };
        let object = match self.rng.random_range(0..5) {
            0 => Object::String(self.value()),
            1 => Object::List((0..n).map(|_| self.value()).collect()),
            2 => Object::Set(distinct(self)),
            3 => Object::ZSet(
                distinct(self)
                    .into_iter()
                    .map(|m| (m, self.rng.random_range(-3i32..4) as f64 / 2.0))
                    .collect(),
            ),
            _ => Object::Hash(
                distinct(self)
                    .into_iter()
                    .map(|f| (f, self.value()))
                    .collect(),
            ),
        };
        let mut payload = dump(&object);
        match self.rng.random_range(0..12) {
            0 => {
                let last = payload.len() - 1;
                payload[last] ^= 1; // checksum
            }
            1 => payload.truncate(self.rng.random_range(0..payload.len())),
            _ => {}
        }
        // "1" only as an absolute time (long past); a relative 1 ms would race the next read.
        let ttl = self.pick(&["0", "0", "0", "100000", "-1", "x", "1"]);
        let mut c = vec![b("RESTORE"), k, b(ttl), payload];
        if ttl == "1" {
            c.push(b("ABSTTL"));
        }
        for _ in 0..self.rng.random_range(0..3) {
            match self.rng.random_range(0..6) {
                0 | 1 => c.push(b("REPLACE")),
                2 => c.push(b("ABSTTL")),
                3 => {
                    c.push(b("IDLETIME"));
                    c.push(b(self.pick(&["10", "-1", "x"])));
                }
                4 => {
                    c.push(b("FREQ"));
                    c.push(b(self.pick(&["5", "256", "x"])));
                }
                _ => c.push(b("NOPE")),
            }
        }
        c
    }

    fn score(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..8) {
            0..=3 => b(&self.rng.random_range(-5i64..6).to_string()),
            4 => b(self.pick(&[
                "1.5",
                "-2.5",
                "0.1",
                "0.2",
                "1e20",
                "123456789012345678",
                "-0",
            ])),
            5 => b(self.pick(&["inf", "-inf", "+inf", "0x10", "3.0"])),
            6 => b(self.pick(&["nan", "abc", "", " 1", "1e400", "1e-400"])),
            _ => b(&self.rng.random_range(0..3).to_string()),
        }
    }

    fn score_bound(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..6) {
            0 | 1 => b(&self.rng.random_range(-5i64..6).to_string()),
            2 => {
                let n = self.rng.random_range(-5i64..6);
                b(&format!("({n}"))
            }
            3 => b(self.pick(&["-inf", "+inf", "(-inf", "(+inf", "inf"])),
            4 => b(self.pick(&["1.5", "(1.5", "0.1", "(", "", " 2", "x", "nan", "1e400"])),
            _ => b(&self.rng.random_range(0..3).to_string()),
        }
    }

    fn lex_bound(&mut self) -> Vec<u8> {
        let m = String::from_utf8_lossy(&self.member()).into_owned();
        match self.rng.random_range(0..6) {
            0 => b("-"),
            1 => b("+"),
            2 => b(&format!("[{m}")),
            3 => b(&format!("({m}")),
            4 => b(self.pick(&["[", "(", "a", "+a", "-", "+"])),
            _ => b(&format!("[{m}")),
        }
    }

    fn zset_options(&mut self, c: &mut Cmd, opts: &[&str]) {
        for _ in 0..self.rng.random_range(0..3) {
            let o = self.pick(opts);
            c.push(b(o));
            if o.eq_ignore_ascii_case("LIMIT") {
                c.push(b(self.pick(&["0", "1", "2", "-1", "x"])));
                c.push(b(self.pick(&["1", "2", "-1", "0", "5"])));
            }
        }
    }

    fn zset_command(&mut self) -> Cmd {
        let k = self.key();
        match self.rng.random_range(0..34) {
            0..=5 => {
                let mut c = vec![b("ZADD"), k];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(b(
                        self.pick(&["NX", "XX", "GT", "LT", "CH", "INCR", "nx", "ch"])
                    ));
                }
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.score());
                    c.push(self.member());
                }
                if self.rng.random_ratio(1, 20) {
                    c.pop();
                }
                c
            }
            6 => vec![b("ZINCRBY"), k, self.score(), self.member()],
            7 => vec![b("ZREM"), k, self.member(), self.member()],
            8 => vec![b("ZCARD"), k],
            9 => vec![b("ZSCORE"), k, self.member()],
            10 => vec![b("ZMSCORE"), k, self.member(), self.member()],
            11 => vec![b(self.pick(&["ZRANK", "ZREVRANK"])), k, self.member()],
            12 => vec![b("ZCOUNT"), k, self.score_bound(), self.score_bound()],
            13 => vec![b("ZLEXCOUNT"), k, self.lex_bound(), self.lex_bound()],
            14 | 15 => {
                let mut c = vec![b("ZRANGE"), k];
                match self.rng.random_range(0..3) {
                    0 => {
                        c.push(self.index());
                        c.push(self.index());
                    }
                    1 => {
                        c.push(self.score_bound());
                        c.push(self.score_bound());
                        c.push(b("BYSCORE"));
                    }
                    _ => {
                        c.push(self.lex_bound());
                        c.push(self.lex_bound());
                        c.push(b("BYLEX"));
                    }
                }
                self.zset_options(
                    &mut c,
                    &["REV", "WITHSCORES", "LIMIT", "BYSCORE", "rev", "withscores"],
                );
                c
            }
            16 => {
                let name = self.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]);
                let mut c = vec![b(name), k, self.score_bound(), self.score_bound()];
                self.zset_options(&mut c, &["WITHSCORES", "LIMIT", "REV", "withscores"]);
                c
            }
            17 => {
                let name = self.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]);
                let mut c = vec![b(name), k, self.lex_bound(), self.lex_bound()];
                self.zset_options(&mut c, &["LIMIT", "LIMIT", "WITHSCORES"]);
                c
            }
            18 => {
                let mut c = vec![b("ZREVRANGE"), k, self.index(), self.index()];
                self.zset_options(&mut c, &["WITHSCORES", "LIMIT"]);
                c
            }
            19 => {
                let mut c = vec![b("ZRANGESTORE"), self.key(), k];
                if self.rng.random_ratio(1, 2) {
                    c.push(self.index());
                    c.push(self.index());
                } else {
                    c.push(self.score_bound());
                    c.push(self.score_bound());
                    c.push(b("BYSCORE"));
                }
                self.zset_options(&mut c, &["REV", "LIMIT", "WITHSCORES"]);
                c
            }
            20 | 21 => {
                let mut c = vec![b(self.pick(&["ZPOPMIN", "ZPOPMAX"])), k];
                if self.rng.random_ratio(1, 2) {
                    c.push(self.count());
                }
                c
            }
            22 => {
                let n = self.rng.random_range(0..4);
                let mut c = vec![b("ZMPOP"), b(&n.to_string())];
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.key());
                }
                c.push(b(self.pick(&["MIN", "MAX", "min", "MID"])));
                if self.rng.random_ratio(1, 2) {
                    c.push(b(self.pick(&["COUNT", "count"])));
                    c.push(self.count());
                }
                c
            }
            23 => {
                let mut c = vec![b("ZRANDMEMBER"), k];
                if self.rng.random_ratio(3, 4) {
                    c.push(self.count());
                    if self.rng.random_ratio(1, 2) {
                        c.push(b(self.pick(&["WITHSCORES", "withscores", "WITHSCORE"])));
                    }
                }
                c
            }
            24 => vec![b("ZREMRANGEBYRANK"), k, self.index(), self.index()],
            25 => vec![
                b("ZREMRANGEBYSCORE"),
                k,
                self.score_bound(),
                self.score_bound(),
            ],
            26 => vec![b("ZREMRANGEBYLEX"), k, self.lex_bound(), self.lex_bound()],
            27..=29 => {
                let name = self.pick(&[
                    "ZUNION",
                    "ZINTER",
                    "ZDIFF",
                    "ZINTERCARD",
                    "ZUNIONSTORE",
                    "ZINTERSTORE",
                    "ZDIFFSTORE",
                ]);
                let store = name.ends_with("STORE");
                let mut c = vec![b(name)];
                if store {
                    c.push(k);
                }
                let n = self.rng.random_range(0..4);
                c.push(b(&n.to_string()));
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.key());
                }
                for _ in 0..self.rng.random_range(0..3) {
                    match self.rng.random_range(0..5) {
                        0 => {
                            c.push(b("WEIGHTS"));
                            for _ in 0..n.max(1) {
                                c.push(b(self.pick(&["1", "2", "0", "-1", "0.5", "inf", "x"])));
                            }
                        }
                        1 => {
                            c.push(b("AGGREGATE"));
                            c.push(b(self.pick(&["SUM", "MIN", "MAX", "max", "AVG"])));
                        }
                        2 => c.push(b("WITHSCORES")),
                        3 => {
                            c.push(b("LIMIT"));
                            c.push(b(self.pick(&["0", "1", "2", "-1"])));
                        }
                        _ => c.push(b("FOO")),
                    }
                }
                c
            }
            30 => vec![b("ZSCANALL"), k],
            31 => {
                let name = self.pick(&[
                    "ZADD",
                    "ZRANGE",
                    "ZPOPMIN",
                    "ZRANGESTORE",
                    "ZUNION",
                    "ZMPOP",
                    "ZINCRBY",
                    "ZSCORE",
                ]);
                let mut c = vec![b(name)];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.key());
                }
                c
            }
            _ => vec![b("ZADD"), k, self.score(), self.member()],
        }
    }

    fn index(&mut self) -> Vec<u8> {
        if self.rng.random_ratio(1, 10) {
            return self.int();
        }
        b(&self.rng.random_range(-6i64..7).to_string())
    }

    fn end(&mut self) -> Vec<u8> {
        b(self.pick(&["LEFT", "RIGHT", "left", "right", "LEFT", "RIGHT", "UP"]))
    }

    fn list_command(&mut self) -> Cmd {
        let k = self.key();
        match self.rng.random_range(0..24) {
            0..=4 => {
                let name = self.pick(&["LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]);
                let mut c = vec![b(name), k];
                for _ in 0..self.rng.random_range(1..5) {
                    c.push(self.member());
                }
                c
            }
            5 | 6 => {
                let mut c = vec![b(self.pick(&["LPOP", "RPOP"])), k];
                if self.rng.random_ratio(1, 2) {
                    c.push(self.count());
                }
                if self.rng.random_ratio(1, 30) {
                    c.push(b("1"));
                }
                c
            }
            7 => vec![b("LLEN"), k],
            8 => vec![b("LINDEX"), k, self.index()],
            9 => vec![b("LSET"), k, self.index(), self.member()],
            10 | 11 => vec![b("LRANGE"), k, self.index(), self.index()],
            12 => vec![b("LTRIM"), k, self.index(), self.index()],
            13 => {
                let side = self.pick(&["BEFORE", "AFTER", "after", "MIDDLE"]);
                vec![b("LINSERT"), k, b(side), self.member(), self.member()]
            }
            14 => vec![b("LREM"), k, self.index(), self.member()],
            15 | 16 => {
                let mut c = vec![b("LPOS"), k, self.member()];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(b(self.pick(&["RANK", "COUNT", "MAXLEN", "rank", "FOO"])));
                    c.push(b(self.pick(&[
                        "1",
                        "2",
                        "-1",
                        "-2",
                        "0",
                        "3",
                        "x",
                        "-9223372036854775808",
                    ])));
                }
                c
            }
            17 => {
                let (from, to) = (self.end(), self.end());
                vec![b("LMOVE"), k, self.key(), from, to]
            }
            18 => vec![b("RPOPLPUSH"), k, self.key()],
            19 => {
                let n = self.rng.random_range(0..4);
                let mut c = vec![b("LMPOP"), b(&n.to_string())];
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.key());
                }
                c.push(self.end());
                if self.rng.random_ratio(1, 2) {
                    c.push(b(self.pick(&["COUNT", "count", "CNT"])));
                    c.push(self.count());
                }
                c
            }
            20 => {
                let name = self.pick(&[
                    "LPUSH", "LPOP", "LRANGE", "LSET", "LINSERT", "LMOVE", "LMPOP", "LPOS",
                ]);
                let mut c = vec![b(name)];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.key());
                }
                c
            }
            _ => vec![b("RPUSH"), k, self.member(), self.member()],
        }
    }

    fn set_command(&mut self) -> Cmd {
        let k = self.key();
        match self.rng.random_range(0..22) {
            0..=4 => {
                let mut c = vec![b("SADD"), k];
                for _ in 0..self.rng.random_range(1..5) {
                    c.push(self.member());
                }
                c
            }
            5 => vec![b("SREM"), k, self.member(), self.member()],
            6 => vec![b("SCARD"), k],
            7 => vec![b("SISMEMBER"), k, self.member()],
            8 => vec![b("SMISMEMBER"), k, self.member(), self.member()],
            9 => vec![b("SMEMBERS"), k],
            10 => {
                let mut c = vec![b("SPOP"), k];
                if self.rng.random_ratio(2, 3) {
                    c.push(self.count());
                }
                if self.rng.random_ratio(1, 20) {
                    c.push(b("1"));
                }
                c
            }
            11 => {
                let mut c = vec![b("SRANDMEMBER"), k];
                if self.rng.random_ratio(3, 4) {
                    c.push(self.count());
                }
                if self.rng.random_ratio(1, 20) {
                    c.push(b("1"));
                }
                c
            }
            12 => vec![b("SMOVE"), k, self.key(), self.member()],
            13 => {
                let name = self.pick(&["SINTER", "SUNION", "SDIFF"]);
                let mut c = vec![b(name), k];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.key());
                }
                c
            }
            14 => {
                let name = self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]);
                let mut c = vec![b(name), k, self.key()];
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.key());
                }
                c
            }
            15 => {
                let n = self.rng.random_range(0..4);
                let mut c = vec![b("SINTERCARD"), b(&n.to_string())];
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.key());
                }
                if self.rng.random_ratio(1, 2) {
                    c.push(b(self.pick(&["LIMIT", "limit", "LIMITS"])));
                    c.push(b(self.pick(&["0", "1", "2", "-1", "x"])));
                }
                c
            }
            16 => vec![b("SSCANALL"), k],
            17 => {
                let name =
                    self.pick(&["SADD", "SREM", "SCARD", "SMOVE", "SINTERCARD", "SISMEMBER"]);
                let mut c = vec![b(name)];
                for _ in 0..self.rng.random_range(0..2) {
                    c.push(self.key());
                }
                c
            }
            _ => vec![b("SADD"), k, self.member()],
        }
    }

    /// A command a script may call whose reply is the same in Redis and rockraft inside a
    /// script too (no random choice, no unordered collection, no TTL, no encoding history;
    /// nothing blocking or refused in scripts).
    fn scriptable_command(&mut self) -> Cmd {
        loop {
            let c = self.command();
            let name = name_of(&c);
            let refused = matches!(
                name.as_str(),
                "HSCANALL"
                    | "SSCANALL"
                    | "ZSCANALL"
                    | "TX"
                    | "WATCHTX"
                    | "SPOP"
                    | "SRANDMEMBER"
                    | "HRANDFIELD"
                    | "ZRANDMEMBER"
                    | "RANDOMKEY"
                    | "OBJECT"
                    | "DUMP"
                    | "RESTORE"
                    | "TTL"
                    | "PTTL"
                    | "HKEYS"
                    | "HVALS"
                    | "HGETALL"
                    | "SMEMBERS"
                    | "SINTER"
                    | "SUNION"
                    | "SDIFF"
                    | "KEYS"
                    | "SORT"
                    | "SORT_RO"
                    | "EVAL"
                    | "EVALSHA"
                    | "EVAL_RO"
                    | "EVALSHA_RO"
                    | "SCRIPT"
                    | "FUNCTION"
                    | "FCALL"
                    | "FCALL_RO"
                    | "GET"
                    // Idle times and delivery clocks, normalised only at top level.
                    | "XPENDING"
                    | "XINFO"
                    | "XCLAIM"
                    | "XAUTOCLAIM"
            ) || name.starts_with('B')
                || name.starts_with("PF")
                || name.starts_with("GEO");
            if !refused {
                return c;
            }
        }
    }

    /// Scripts: calls of generated commands, KEYS/ARGV, conversions of every Lua type, the
    /// errors Redis words in its own way, and the script cache.
    fn script_command(&mut self) -> Cmd {
        fn lua_str(b: &[u8]) -> String {
            let mut out = String::from("\"");
            for &c in b {
                if c.is_ascii_alphanumeric() || c == b' ' || c == b'_' || c == b':' || c == b'.' {
                    out.push(c as char);
                } else {
                    out.push_str(&format!("\\{c:03}"));
                }
            }
            out.push('"');
            out
        }
        const BODIES: &[&str] = &[
            "return {1, 2, {3, 'x'}, nil, 4}",
            "return {1.9, -2.5, 1e20, 0/0 == 0/0}",
            "return {true, false}",
            "return {ok = 'FINE'}",
            "return {err = 'MYERR custom'}",
            "return redis.error_reply('BAD thing')",
            "return redis.status_reply('DONE')",
            "return {double = 3.25}",
            "redis.setresp(3) return {map = {a = 1}}",
            "redis.setresp(3) return redis.call('GET', 'nokey')",
            "return redis.sha1hex('abc')",
            "return string.format('%d %s %5.2f', 42, 'x', 3.14159)",
            "return table.concat({'a', 'b', 'c'}, '-')",
            "return tostring(math.floor(7.9)) .. tostring(math.max(1, 5))",
            "return x",
            "y = 1",
            "error('boom')",
            "error({err = 'CODE spelled'})",
            "return redis.call('NOSUCH')",
            "return redis.call('GET')",
            "return redis.call('GET', {})",
            "return redis.call('BLPOP', 'q', 0)",
            "return 'a' ..",
            "return pcall(redis.call, 'NOSUCH')",
            "local ok, e = pcall(redis.call, 'NOSUCH') return e",
            "return redis.pcall('INCR', 'k0')",
            "return redis.call('INCR', 'k0')",
            "return type(os)",
            "return #ARGV + #KEYS",
            "return KEYS",
            "return ARGV",
            "return redis.call('PING')",
            "return redis.call('TYPE', KEYS[1] or 'k0')",
            "return redis.setresp(4)",
            "return redis.log(redis.LOG_NOTICE, 'hello')",
            "#!lua flags=no-writes\nreturn redis.call('SET', 'k0', 'x')",
            "#!lua flags=bogus\nreturn 1",
            "#!lua\nreturn redis.call('EXISTS', 'k0')",
            "return cjson.encode({1, {a = 'b/c'}, true, 2.5, 'x\\ny'})",
            r#"return cjson.encode(cjson.decode(ARGV[1] or '[1, {"k": null}]'))"#,
            "return cjson.decode('[1, 2')",
            "return cjson.encode({[1] = 1, [30] = 2})",
            "return {cmsgpack.unpack(cmsgpack.pack(1, -300, 1.5, 'str', {1, 2, {x = 1}}))}",
            "return cmsgpack.pack({1, 2, 3}, 70000, -5000000000)",
            "return cmsgpack.unpack('\\193')",
            "return {bit.band(0xff, 0x0f), bit.bxor(-1, 5), bit.lshift(1, 35), bit.tohex(-2), bit.tobit(4294967297)}",
            "local t = redis.call('SMEMBERS', KEYS[1] or 'k0') table.sort(t) return cjson.encode(t)",
            "#!lua flags=no-writes\nreturn redis.call('EXISTS', KEYS[1] or 'k0')",
            "return {struct.unpack('>i2Hc0', struct.pack('>i2Hc0', -300, 65535, ARGV[1] or 'xy'))}",
            "return struct.pack('<!4bidhs', 1, -2, 2.5, 7, 'z') .. struct.size('!8bd')",
            "return {struct.unpack('c0', 'abc')}",
            "return struct.pack('i40', 1)",
        ];
        let keys_args = |g: &mut Generator, c: &mut Cmd| {
            let n = g.rng.random_range(0..3usize);
            c.push(b(&n.to_string()));
            for _ in 0..n {
                c.push(g.key());
            }
            for _ in 0..g.rng.random_range(0..3) {
                c.push(g.value());
            }
        };
        match self.rng.random_range(0..12) {
            0..=4 => {
                let calls: Vec<String> = (0..self.rng.random_range(1..4))
                    .map(|_| {
                        let c = self.scriptable_command();
                        let args: Vec<String> = c.iter().map(|a| lua_str(a)).collect();
                        format!("redis.pcall({})", args.join(", "))
                    })
                    .collect();
                let body = if calls.len() == 1 && self.rng.random_ratio(1, 2) {
                    format!("return {}", calls[0])
                } else {
                    format!("return {{{}}}", calls.join(", "))
                };
                vec![b("EVAL"), b(&body), b("0")]
            }
            5 | 6 => {
                let name = self.pick(&[
                    "SET", "INCRBY", "RPUSH", "SADD", "HSET", "ZADD", "APPEND", "DEL", "EXISTS",
                    "STRLEN", "LLEN",
                ]);
                let body = match name {
                    "HSET" | "ZADD" => format!(
                        "return redis.pcall('{name}', KEYS[1], ARGV[1] or '1', ARGV[2] or 'f')"
                    ),
                    "DEL" | "EXISTS" | "STRLEN" | "LLEN" => {
                        format!("return redis.pcall('{name}', KEYS[1] or 'k0')")
                    }
                    _ => format!("return redis.pcall('{name}', KEYS[1] or 'k0', ARGV[1] or '1')"),
                };
                let ro =
                    matches!(name, "EXISTS" | "STRLEN" | "LLEN") && self.rng.random_ratio(1, 2);
                let mut c = vec![b(if ro { "EVAL_RO" } else { "EVAL" }), b(&body)];
                keys_args(self, &mut c);
                c
            }
            7..=9 => {
                let body = self.pick(BODIES);
                let mut c = vec![b(self.pick(&["EVAL", "EVAL", "EVAL_RO"])), b(body)];
                keys_args(self, &mut c);
                c
            }
            10 => {
                let body = self.pick(&BODIES[..6]);
                match self.rng.random_range(0..3) {
                    0 => vec![b("SCRIPT"), b("LOAD"), b(body)],
                    1 => vec![
                        b("SCRIPT"),
                        b("EXISTS"),
                        b(&sha1_hex(body)),
                        b("ffffffffffffffffffffffffffffffffffffffff"),
                    ],
                    _ => vec![b("SCRIPT"), b(self.pick(&["FLUSH", "KILL", "NOPE"]))],
                }
            }
            _ => {
                let body = self.pick(&BODIES[..6]);
                let sha = if self.rng.random_ratio(1, 5) {
                    "ffffffffffffffffffffffffffffffffffffffff".to_string()
                } else {
                    sha1_hex(body)
                };
                let mut c = vec![b(self.pick(&["EVALSHA", "EVALSHA_RO"])), b(&sha)];
                keys_args(self, &mut c);
                c
            }
        }
    }

    fn string_or_hash_command(&mut self) -> Cmd {
        let k = self.key();
        let cmd: Cmd = match self.rng.random_range(0..34) {
            // Strings, so hashes meet other types.
            0 => vec![b("SET"), k, self.value()],
            1 => vec![b("GET"), k],
            2 => vec![b("INCR"), k],
            3 => vec![b("INCRBY"), k, self.int()],
            4 => vec![b("APPEND"), k, self.value()],
            5 => vec![b("DEL"), k, self.key()],
            6 => vec![b("EXISTS"), k, self.key()],
            7 => vec![b("TYPE"), k],
            8 => vec![b("RENAME"), k, self.key()],
            9 => vec![b("EXPIRE"), k, b(self.pick(&["100", "1000", "0", "-1"]))],
            10 => vec![b("TTL"), k],
            11 => vec![b("STRLEN"), k],
            12 => vec![b("MGET"), k, self.key()],
            13 => vec![b("RENAMENX"), k, self.key()],
            14 => vec![b("PERSIST"), k],
            // Hashes.
            15..=18 => {
                let mut c = vec![b(self.pick(&["HSET", "HSET", "HMSET"])), k];
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.field());
                    c.push(self.value());
                }
                if self.rng.random_ratio(1, 15) {
                    c.pop();
                }
                c
            }
            19 => vec![b("HSETNX"), k, self.field(), self.value()],
            20 | 21 => vec![b("HGET"), k, self.field()],
            22 => vec![b("HMGET"), k, self.field(), self.field()],
            23 => {
                let mut c = vec![b("HDEL"), k];
                for _ in 0..self.rng.random_range(1..4) {
                    c.push(self.field());
                }
                c
            }
            24 => vec![b("HEXISTS"), k, self.field()],
            25 => vec![b("HLEN"), k],
            26 => vec![b("HSTRLEN"), k, self.field()],
            27 => vec![b(self.pick(&["HKEYS", "HVALS", "HGETALL"])), k],
            28 => vec![b("HINCRBY"), k, self.field(), self.int()],
            29 => {
                let by = self.pick(&[
                    "1", "1.5", "-2.25", "0.1", "abc", "inf", "1e308", "5e-324", "nan", "10",
                ]);
                vec![b("HINCRBYFLOAT"), k, self.field(), b(by)]
            }
            30 => {
                let mut c = vec![b("HRANDFIELD"), k];
                if self.rng.random_ratio(3, 4) {
                    c.push(self.count());
                    if self.rng.random_ratio(1, 2) {
                        c.push(b(self.pick(&["WITHVALUES", "withvalues", "WITHVALUE"])));
                    }
                }
                c
            }
            31 => vec![b("HSCANALL"), k],
            32 => {
                // Wrong arities.
                let name = self.pick(&[
                    "HSET", "HGET", "HDEL", "HLEN", "HINCRBY", "HGETALL", "HSETNX", "HMGET",
                ]);
                let n = self.rng.random_range(0..2);
                let mut c = vec![b(name)];
                c.extend((0..n).map(|_| self.field()));
                c
            }
            _ => vec![b("HINCRBY"), k, self.field(), self.int()],
        };
        cmd
    }

    /// A sequence of `len` commands. Some dwell on HyperLogLogs or geo (half their
    /// commands), so keys grow enough to turn dense or to be found by searches, or on
    /// functions, so libraries are loaded when they are called.
    pub fn sequence(&mut self, len: usize) -> Vec<Cmd> {
        let focus = self.rng.random_range(0..8);
        (0..len)
            .map(|_| match focus {
                0 if self.rng.random_ratio(1, 2) => self.hll_command(),
                1 if self.rng.random_ratio(1, 2) => self.geo_command(),
                2 if self.rng.random_ratio(1, 3) => self.function_command(),
                3 if self.rng.random_ratio(1, 2) => self.stream_command(),
                _ => self.command(),
            })
            .collect()
    }
}

fn name_of(cmd: &Cmd) -> String {
    String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase()
}

/// Runs `cmd` on `t`, expanding the pseudo-commands (`HSCANALL key`: HSCAN until the cursor
/// is 0, the pairs collected).
pub fn run(t: &mut Target, cmd: &Cmd) -> Resp {
    if matches!(name_of(cmd).as_str(), "TX" | "WATCHTX") {
        return run_transaction(t, cmd);
    }
    let (scan, width) = match name_of(cmd).as_str() {
        "HSCANALL" => ("HSCAN", 2),
        "SSCANALL" => ("SSCAN", 1),
        "ZSCANALL" => ("ZSCAN", 2),
        _ => return t.call(cmd),
    };
    let mut cursor = b"0".to_vec();
    let mut pairs = Vec::new();
    for _ in 0..10_000 {
        let reply = t.call(&[b(scan), cmd[1].clone(), cursor.clone(), b("COUNT"), b("3")]);
        let Resp::Array(Some(parts)) = reply else {
            return reply;
        };
        let (Resp::Bulk(Some(next)), Resp::Array(Some(items))) = (&parts[0], &parts[1]) else {
            return Resp::Array(Some(parts));
        };
        for pair in items.chunks(width) {
            pairs.push(Resp::Array(Some(pair.to_vec())));
        }
        if next == b"0" {
            break;
        }
        cursor = next.clone();
    }
    pairs.sort();
    pairs.dedup();
    Resp::Array(Some(pairs))
}

/// The parts of a `TX` / `WATCHTX` pseudo-command: (keys to watch, the other connection's
/// command, the queued commands).
fn transaction_parts(cmd: &Cmd) -> (Vec<Vec<u8>>, Option<Cmd>, Vec<Cmd>) {
    let watch = name_of(cmd) == "WATCHTX";
    let mut rest = cmd[1..].iter();
    let next_cmd = |rest: &mut std::slice::Iter<Vec<u8>>| -> Option<Cmd> {
        let n: usize = std::str::from_utf8(rest.next()?).ok()?.parse().ok()?;
        Some(rest.by_ref().take(n).cloned().collect())
    };
    let (keys, other) = if watch {
        let keys = next_cmd(&mut rest).unwrap_or_default();
        (keys, next_cmd(&mut rest))
    } else {
        (Vec::new(), None)
    };
    let mut queued = Vec::new();
    while let Some(c) = next_cmd(&mut rest) {
        queued.push(c);
    }
    (keys, other, queued)
}

/// Runs a transaction pseudo-command: the replies of WATCH, the other connection's command,
/// MULTI, each queued command and EXEC (or DISCARD), in one array.
fn run_transaction(t: &mut Target, cmd: &Cmd) -> Resp {
    let (keys, other, queued) = transaction_parts(cmd);
    let mut out = Vec::new();
    if !keys.is_empty() {
        let mut watch = vec![b("WATCH")];
        watch.extend(keys);
        out.push(t.call(&watch));
    }
    if let Some(other) = other {
        out.push(normalize(&other, run_other(t, &other)));
    }
    out.push(t.call(&[b("MULTI")]));
    let discard = queued.last().is_some_and(|c| name_of(c) == "DISCARD");
    for q in &queued {
        out.push(t.call(q));
    }
    if !discard {
        let exec = t.call(&[b("EXEC")]);
        // Each command's reply, normalized as it would be on its own.
        let exec = match exec {
            Resp::Array(Some(replies)) => {
                let accepted: Vec<&Cmd> = queued
                    .iter()
                    .zip(&out[out.len() - queued.len()..])
                    .filter(|(_, r)| **r == Resp::Simple(b("QUEUED")))
                    .map(|(c, _)| c)
                    .collect();
                Resp::Array(Some(
                    replies
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| match accepted.get(i) {
                            Some(c) => normalize(c, r),
                            None => r,
                        })
                        .collect(),
                ))
            }
            other => other,
        };
        out.push(exec);
    }
    Resp::Array(Some(out))
}

impl Generator {
    /// Functions: libraries loaded, replaced and deleted, their functions called (one of
    /// them runs a generated command), and the errors of bad libraries.
    fn function_command(&mut self) -> Cmd {
        const LIBRARIES: &[&str] = &[
            "#!lua name=dlib\n\
             redis.register_function('d_set', function(keys, args) return redis.pcall('SET', keys[1] or 'k0', args[1] or 'v') end)\n\
             redis.register_function{function_name='d_get', flags={'no-writes'}, description='reads', \
               callback=function(keys) return redis.pcall('GET', keys[1] or 'k0') end}\n\
             redis.register_function('d_call', function(keys, args) return redis.pcall(unpack(args)) end)",
            "#!lua name=dlib\n\
             redis.register_function('d_set', function(keys, args) return redis.pcall('APPEND', keys[1] or 'k0', args[1] or 'v') end)",
            "#!lua name=elib\n\
             local pack = function(x) return struct.pack('>I2', x) end\n\
             redis.register_function('e_err', function() error('boom') end)\n\
             redis.register_function{function_name='e_ro', flags={'no-writes', 'allow-oom'}, \
               callback=function(keys) return redis.call('DEL', keys[1] or 'k0') end}\n\
             redis.register_function('e_keys', function() return KEYS end)\n\
             redis.register_function('e_struct', function(keys, args) return pack(#args) end)",
            "#!lua name=clash\nredis.register_function('d_get', function() return 1 end)",
            "#!lua name=bad\nlocal n = string.len('x')",
            "#!lua name=bad\nredis.register_function('x', 1)",
            "#!lua name=bad\nreturn 1",
            "#!lua name=bad\nx = 1",
            "#!lua name=bad-name\n",
            "#!lua name=bad\nreturn +",
            "return 1",
        ];
        match self.rng.random_range(0..10) {
            0 | 1 => {
                let mut c = vec![b("FUNCTION"), b("LOAD")];
                if self.rng.random_ratio(1, 2) {
                    c.push(b("REPLACE"));
                }
                c.push(b(self.pick(LIBRARIES)));
                c
            }
            2 => match self.rng.random_range(0..6) {
                0 => vec![
                    b("FUNCTION"),
                    b("DELETE"),
                    b(self.pick(&["dlib", "elib", "nope"])),
                ],
                1 => vec![b("FUNCTION"), b("STATS")],
                2 => vec![b("FUNCTION"), b("FLUSH")],
                3 => vec![b("FUNCTION"), b("KILL")],
                4 if self.rng.random_ratio(1, 2) => vec![b("FUNCTION"), b("NOPE")],
                4 => vec![b("FUNCTION"), b("DUMP"), b("x")],
                _ => {
                    let mut c = vec![b("FUNCTION"), b("LIST")];
                    if self.rng.random_ratio(1, 2) {
                        c.push(b("WITHCODE"));
                    }
                    if self.rng.random_ratio(1, 2) {
                        c.push(b("LIBRARYNAME"));
                        c.push(b(self.pick(&["d*", "elib", "*", "none"])));
                    }
                    c
                }
            },
            3 | 4 => {
                let mut c = vec![b("FCALL"), b("d_call"), b("0")];
                c.extend(self.scriptable_command());
                c
            }
            _ => {
                let name = self.pick(&[
                    "d_set", "d_get", "e_err", "e_ro", "e_keys", "e_struct", "nofunc",
                ]);
                let mut c = vec![b(self.pick(&["FCALL", "FCALL", "FCALL_RO"])), b(name)];
                let n = self.rng.random_range(0..3usize);
                c.push(b(if self.rng.random_ratio(1, 20) {
                    "x"
                } else {
                    ["0", "1", "2"][n]
                }));
                for _ in 0..n {
                    c.push(self.key());
                }
                for _ in 0..self.rng.random_range(0..3) {
                    c.push(self.value());
                }
                c
            }
        }
    }
}

/// The other connection's command (a plain command: no pseudo-commands reach it).
fn run_other(t: &mut Target, cmd: &Cmd) -> Resp {
    t.call_other(cmd)
}

/// The part of a reply Redis specifies: unordered replies sorted, TTLs by sign, random
/// choices by size (their membership is checked by [`check_random`]).
pub fn normalize(cmd: &Cmd, reply: Resp) -> Resp {
    let name = name_of(cmd);
    let reply = clock_ids(reply);
    if name.starts_with('X') {
        return normalize_stream(cmd, reply);
    }
    if name.starts_with('Z') || name.starts_with("BZ") {
        // A score of -0 prints as "0" from Redis's listpack and "-0" from its skiplist (which
        // a sorted set keeps once it grew, or SORT touched it); rockraft prints "0".
        return normalize_plain(cmd, zero_scores(reply));
    }
    normalize_plain(cmd, reply)
}

/// Whether `b` is a stream ID made from a clock (`*`): a millisecond time, a sequence.
fn is_clock_id(b: &[u8]) -> bool {
    let Some(dash) = b.iter().position(|&c| c == b'-') else {
        return false;
    };
    let (ms, seq) = (&b[..dash], &b[dash + 1..]);
    (13..=20).contains(&ms.len())
        && ms.iter().all(u8::is_ascii_digit)
        && !seq.is_empty()
        && seq.iter().all(u8::is_ascii_digit)
}

/// Stream IDs from clocks (XADD `*`): each side's clock differs, so they compare as one.
fn clock_ids(reply: Resp) -> Resp {
    match reply {
        Resp::Bulk(Some(v)) if is_clock_id(&v) => Resp::Simple(b("<clock id>")),
        Resp::Array(Some(items)) => Resp::Array(Some(items.into_iter().map(clock_ids).collect())),
        other => other,
    }
}

/// Streams: idle times (how long since a delivery) and absolute delivery or seen times
/// depend on timing; Redis's radix-tree sizes on its memory layout (rockraft has none).
fn normalize_stream(cmd: &Cmd, reply: Resp) -> Resp {
    fn times(reply: Resp) -> Resp {
        match reply {
            Resp::Int(t) if t > 1_000_000_000_000 => Resp::Simple(b("<clock>")),
            Resp::Array(Some(items)) => {
                let mut out = Vec::with_capacity(items.len());
                let mut zero_next = false;
                for it in items {
                    let it = if zero_next { Resp::Int(0) } else { times(it) };
                    zero_next = matches!(&it, Resp::Bulk(Some(k))
                        if k == b"idle" || k == b"radix-tree-keys" || k == b"radix-tree-nodes");
                    out.push(it);
                }
                Resp::Array(Some(out))
            }
            other => other,
        }
    }
    let reply = times(reply);
    match (name_of(cmd).as_str(), reply) {
        // [id, consumer, idle, deliveries]
        ("XPENDING", Resp::Array(Some(items))) if cmd.len() > 3 => Resp::Array(Some(
            items
                .into_iter()
                .map(|e| match e {
                    Resp::Array(Some(mut f)) if f.len() == 4 => {
                        f[2] = Resp::Int(0);
                        Resp::Array(Some(f))
                    }
                    other => other,
                })
                .collect(),
        )),
        (_, other) => other,
    }
}

fn zero_scores(reply: Resp) -> Resp {
    match reply {
        Resp::Bulk(Some(b)) if b == b"-0" => Resp::Bulk(Some(b"0".to_vec())),
        Resp::Array(Some(items)) => Resp::Array(Some(items.into_iter().map(zero_scores).collect())),
        other => other,
    }
}

/// A DUMP payload as the value it holds: Redis and rockraft serialize the same value in
/// different encodings (listpacks, intsets… against plain ones), so payloads compare by what
/// they decode to. Members of sets and fields of hashes in order; stream times dropped.
fn dumped_value(payload: &[u8]) -> Resp {
    use rockraft_server::rdb::{restore, Object};
    let text = match restore(payload) {
        Err(e) => format!("undecodable DUMP payload: {e:?}"),
        Ok(Object::Set(mut m)) => {
            m.sort();
            format!("set {m:?}")
        }
        Ok(Object::Hash(mut h)) => {
            h.sort();
            format!("hash {h:?}")
        }
        // Redis writes a large sorted set from its highest score down.
        Ok(Object::ZSet(mut z)) => {
            // -0 is 0 (see zero_scores).
            z.iter_mut().filter(|e| e.1 == 0.0).for_each(|e| e.1 = 0.0);
            z.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            format!("zset {z:?}")
        }
        Ok(Object::Stream(mut st)) => {
            let clock = |id: (u64, u64)| {
                if id.0 >= 1_000_000_000_000 {
                    (0, 0)
                } else {
                    id
                }
            };
            for e in &mut st.entries {
                e.0 = clock(e.0);
            }
            for g in &mut st.groups {
                g.last_id = clock(g.last_id);
                g.consumers.iter_mut().for_each(|c| c.1 = 0);
                for p in &mut g.pending {
                    p.0 = clock(p.0);
                    p.1 = 0;
                }
            }
            st.last_id = clock(st.last_id);
            st.first_id = clock(st.first_id);
            st.max_deleted = clock(st.max_deleted);
            format!("stream {st:?}")
        }
        Ok(o) => format!("{o:?}"),
    };
    Resp::Simple(text.into_bytes())
}

fn normalize_plain(cmd: &Cmd, reply: Resp) -> Resp {
    match (name_of(cmd).as_str(), reply) {
        ("DUMP", Resp::Bulk(Some(payload))) => dumped_value(&payload),
        // A library's functions and the libraries come in Redis's hash order; rockraft's
        // are sorted by name.
        ("FUNCTION", Resp::Array(Some(libraries))) if cmd[1].eq_ignore_ascii_case(b"LIST") => {
            let mut libraries: Vec<Resp> = libraries
                .into_iter()
                .map(|lib| match lib {
                    Resp::Array(Some(mut fields)) => {
                        if let Some(Resp::Array(Some(functions))) = fields.get_mut(5) {
                            functions.sort();
                        }
                        Resp::Array(Some(fields))
                    }
                    other => other,
                })
                .collect();
            libraries.sort();
            Resp::Array(Some(libraries))
        }
        (
            "HKEYS" | "HVALS" | "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF",
            Resp::Array(Some(mut items)),
        ) => {
            items.sort();
            Resp::Array(Some(items))
        }
        ("HGETALL", Resp::Array(Some(items))) => {
            let mut pairs: Vec<Resp> = items
                .chunks(2)
                .map(|p| Resp::Array(Some(p.to_vec())))
                .collect();
            pairs.sort();
            Resp::Array(Some(pairs))
        }
        ("TTL" | "PTTL", Resp::Int(n)) if n > 0 => Resp::Simple(b("positive ttl")),
        // An HLL's cached count: Redis's PFCOUNT stores it, rockraft's does not (hll.rs).
        ("GET", Resp::Bulk(Some(mut v))) if v.len() >= 16 && v.starts_with(b"HYLL") => {
            v[8..16].fill(0);
            Resp::Bulk(Some(v))
        }
        // Redis's string encodings depend on how the value was made (APPEND makes "raw",
        // even of "49"); rockraft's on its content (README).
        ("OBJECT", Resp::Bulk(Some(e)))
            if cmd[1].eq_ignore_ascii_case(b"ENCODING")
                && (e == b"raw" || e == b"embstr" || e == b"int") =>
        {
            Resp::Simple(b("a string encoding"))
        }
        ("OBJECT", Resp::Int(_)) if cmd[1].eq_ignore_ascii_case(b"REFCOUNT") => {
            Resp::Simple(b("a refcount"))
        }
        // rockraft keeps no access times (README).
        ("OBJECT", Resp::Int(_)) if cmd[1].eq_ignore_ascii_case(b"IDLETIME") => {
            Resp::Simple(b("an idle time"))
        }
        ("RANDOMKEY", Resp::Bulk(Some(_))) => Resp::Simple(b("a key")),
        // A set's own order (no sorting: BY a constant), or ties among equal BY values, are
        // Redis's hash order; compare what was returned, not its order.
        // With LIMIT, which of the tied elements make the cut is that order too.
        ("SORT" | "SORT_RO", Resp::Array(Some(items)))
            if cmd.iter().any(|a| a.eq_ignore_ascii_case(b"BY"))
                && cmd.iter().any(|a| a.eq_ignore_ascii_case(b"LIMIT")) =>
        {
            Resp::Int(items.len() as i64)
        }
        ("SORT" | "SORT_RO", Resp::Array(Some(mut items)))
            if cmd.iter().any(|a| a.eq_ignore_ascii_case(b"BY")) =>
        {
            items.sort();
            Resp::Array(Some(items))
        }
        ("HRANDFIELD" | "SRANDMEMBER" | "SPOP" | "ZRANDMEMBER", Resp::Array(Some(items))) => {
            Resp::Int(items.len() as i64)
        }
        ("HRANDFIELD" | "SRANDMEMBER" | "SPOP" | "ZRANDMEMBER", Resp::Bulk(Some(_))) => {
            Resp::Simple(b("one element"))
        }
        (_, other) => other,
    }
}

/// For a random choice, whether every element it returned belongs to the key (asked of the
/// same target); None when the command made no random choice.
pub fn check_random(t: &mut Target, cmd: &Cmd, reply: &Resp) -> Option<String> {
    let name = name_of(cmd);
    let (probe, want) = match name.as_str() {
        "HRANDFIELD" => ("HEXISTS", 1),
        "SRANDMEMBER" => ("SISMEMBER", 1),
        "RANDOMKEY" => ("EXISTS", 1),
        "ZRANDMEMBER" => ("ZRANK", -1),
        // A popped member is no longer there.
        "SPOP" => ("SISMEMBER", 0),
        _ => return None,
    };
    let with_values = match name.as_str() {
        "HRANDFIELD" => cmd
            .get(3)
            .is_some_and(|o| o.eq_ignore_ascii_case(b"WITHVALUES")),
        "ZRANDMEMBER" => cmd
            .get(3)
            .is_some_and(|o| o.eq_ignore_ascii_case(b"WITHSCORES")),
        _ => false,
    };
    let fields: Vec<Vec<u8>> = match reply {
        Resp::Bulk(Some(f)) => vec![f.clone()],
        Resp::Array(Some(items)) => items
            .iter()
            .step_by(if with_values { 2 } else { 1 })
            .filter_map(|i| match i {
                Resp::Bulk(Some(f)) => Some(f.clone()),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let count_positive = cmd.get(2).is_some_and(|c| !c.starts_with(b"-"));
    if (count_positive && cmd.len() > 2) || name == "SPOP" {
        let mut distinct = fields.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != fields.len() {
            return Some(format!("{}: repeated fields for a positive count", t.name));
        }
    }
    for f in fields {
        let exists = if name == "RANDOMKEY" {
            t.call(&[b(probe), f.clone()])
        } else {
            t.call(&[b(probe), cmd[1].clone(), f.clone()])
        };
        // want -1: any integer (a rank), not nil.
        let ok = match want {
            -1 => matches!(exists, Resp::Int(_)),
            w => exists == Resp::Int(w),
        };
        if !ok {
            return Some(format!(
                "{}: {name} returned {:?}, but {probe} says {exists}",
                t.name,
                String::from_utf8_lossy(&f)
            ));
        }
    }
    None
}

/// The elements of a reply (bulk strings, top level), for the SPOP fix-up.
fn elements(reply: &Resp) -> Vec<Vec<u8>> {
    match reply {
        Resp::Bulk(Some(m)) => vec![m.clone()],
        Resp::Array(Some(items)) => items
            .iter()
            .filter_map(|i| match i {
                Resp::Bulk(Some(m)) => Some(m.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// After a random removal (SPOP), makes the oracle hold what the target holds: puts back the
/// members Redis popped and pops those rockraft popped. Both chose at random, and every later
/// command must see the same set.
fn align_after_random_removal(oracle: &mut Target, cmd: &Cmd, theirs: &Resp, ours: &Resp) {
    if name_of(cmd) != "SPOP" {
        return;
    }
    let (put_back, take) = (elements(theirs), elements(ours));
    if put_back.is_empty() || put_back == take {
        return;
    }
    let mut sadd = vec![b("SADD"), cmd[1].clone()];
    sadd.extend(put_back);
    oracle.call(&sadd);
    let mut srem = vec![b("SREM"), cmd[1].clone()];
    srem.extend(take);
    oracle.call(&srem);
}

/// Redis converts a collection to its big encoding for good (when it grew, or for SORT), so
/// it may say `hashtable` or `skiplist` where rockraft, which decides by the current size,
/// says the compact one. The other way round is a difference.
fn history_encoding(cmd: &Cmd, redis: &Resp, rockraft: &Resp) -> bool {
    let is_encoding = name_of(cmd) == "OBJECT"
        && cmd
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"ENCODING"));
    matches!(
        (redis, rockraft),
        (Resp::Bulk(Some(r)), Resp::Bulk(Some(o)))
            if is_encoding
                && (r == b"hashtable" || r == b"skiplist")
                && (o == b"listpack" || o == b"intset")
    )
}

/// Redis's SORT turns a small sorted set into a skiplist for good, and lex ranges over
/// members of different scores then answer differently (README: rockraft answers as the
/// listpack does). A DUMP and RESTORE gives the oracle its listpack back, TTL kept.
fn undo_sort_conversion(oracle: &mut Target, key: &[u8]) {
    if oracle.call(&[b("TYPE"), key.to_vec()]) != Resp::Simple(b("zset")) {
        return;
    }
    let Resp::Bulk(Some(dump)) = oracle.call(&[b("DUMP"), key.to_vec()]) else {
        return;
    };
    let ttl = match oracle.call(&[b("PTTL"), key.to_vec()]) {
        Resp::Int(ms) if ms > 0 => ms,
        _ => 0,
    };
    let restored = oracle.call(&[
        b("RESTORE"),
        key.to_vec(),
        b(&ttl.to_string()),
        dump,
        b("REPLACE"),
    ]);
    assert_eq!(restored, Resp::Simple(b("OK")), "RESTORE after SORT");
}

/// The first command of `seq` whose (normalized) replies differ between `oracle` and `t`:
/// (position, oracle's reply, t's reply). Both start empty.
pub fn first_difference(
    oracle: &mut Target,
    t: &mut Target,
    seq: &[Cmd],
) -> Option<(usize, String, String)> {
    oracle.flush();
    t.flush();
    for (i, cmd) in seq.iter().enumerate() {
        if matches!(name_of(cmd).as_str(), "SORT" | "SORT_RO") {
            // Redis's SORT reads errno after strtod without clearing it first, so an earlier
            // overflow elsewhere (a ZCOUNT to 1e400, say) makes it fail spuriously. A ZADD XX
            // on a missing key clears errno (string2d does) and changes nothing.
            oracle.call(&[b("ZADD"), b("__errno__"), b("XX"), b("0"), b("m")]);
        }
        let want = run(oracle, cmd);
        let got = run(t, cmd);
        if matches!(name_of(cmd).as_str(), "SORT" | "SORT_RO") {
            undo_sort_conversion(oracle, &cmd[1]);
        }
        if std::env::var("ROCKRAFT_DIFF_SHOW").is_ok_and(|names| {
            names
                .split(',')
                .any(|n| n.eq_ignore_ascii_case(&name_of(cmd)))
        }) {
            // To see what the generator exercises: ROCKRAFT_DIFF_SHOW=GEOSEARCH,PFCOUNT.
            println!("{} -> {want}", show(cmd));
        }
        if let Some(why) = check_random(t, cmd, &got) {
            return Some((i, format!("{want}"), why));
        }
        align_after_random_removal(oracle, cmd, &want, &got);
        let (w, g) = (normalize(cmd, want), normalize(cmd, got));
        if w != g && !history_encoding(cmd, &w, &g) {
            return Some((i, format!("{w}"), format!("{g}")));
        }
    }
    None
}

/// Whether `cmd` may go in a pipeline of [`first_pipelined_difference`]: not a pseudo-command
/// (they take several round trips), not one that blocks, not a random choice (those are
/// checked one by one, see [`check_random`]), and not WATCH (connection state).
pub fn pipelinable(cmd: &Cmd) -> bool {
    const NOT: &[&str] = &[
        "TX",
        "WATCHTX",
        "HSCANALL",
        "SSCANALL",
        "ZSCANALL",
        "SORT",
        "SORT_RO",
        "SPOP",
        "SRANDMEMBER",
        "HRANDFIELD",
        "ZRANDMEMBER",
        "RANDOMKEY",
        "WATCH",
        "XREAD",
        "XREADGROUP",
        "WAIT",
        "EVAL",
        "EVALSHA",
        "FCALL",
        "FCALL_RO",
    ];
    let name = name_of(cmd);
    let blocking = name.starts_with('B') && !name.starts_with("BIT");
    !blocking && !NOT.contains(&name.as_str())
}

/// Sends the pipelinable commands of `seq` to both servers, each as one pipeline (a server
/// that proposes writes as they arrive puts many in one raft entry), and returns the first
/// whose (normalized) replies differ: (the command, oracle's reply, t's reply). Both start
/// empty.
pub fn first_pipelined_difference(
    oracle: &mut Target,
    t: &mut Target,
    seq: &[Cmd],
) -> Option<(String, String, String)> {
    oracle.flush();
    t.flush();
    let cmds: Vec<Cmd> = seq.iter().filter(|c| pipelinable(c)).cloned().collect();
    oracle.send_all(&cmds);
    t.send_all(&cmds);
    for cmd in &cmds {
        let (want, got) = (normalize(cmd, oracle.read()), normalize(cmd, t.read()));
        if want != got && !history_encoding(cmd, &want, &got) {
            return Some((show(cmd), format!("{want}"), format!("{got}")));
        }
    }
    None
}

/// Shrinks a differing sequence: drops commands one at a time while a difference remains.
pub fn shrink(oracle: &mut Target, t: &mut Target, seq: Vec<Cmd>) -> Vec<Cmd> {
    let mut seq = match first_difference(oracle, t, &seq) {
        Some((i, _, _)) => seq[..=i].to_vec(),
        None => return seq,
    };
    // Replays are slow with blocking commands in them: shrink for two minutes at most.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut i = 0;
    while i < seq.len() && std::time::Instant::now() < deadline {
        let mut shorter = seq.clone();
        shorter.remove(i);
        match first_difference(oracle, t, &shorter) {
            Some((j, _, _)) => seq = shorter[..=j].to_vec(),
            None => i += 1,
        }
    }
    seq
}

/// A command as a line of text (for reports).
pub fn show(cmd: &Cmd) -> String {
    cmd.iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a);
            if s.is_empty() || s.contains(' ') || a.iter().any(|c| !c.is_ascii_graphic()) {
                format!("{s:?}")
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
