//! Test harness: rockraft nodes started in this process (through the server's library API) or
//! as real `rockraft-server` processes, each on its own free loopback port and temp directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rockraft_server::{Config, MetricsAddr, ServerHandle};

pub mod differential;

/// A free loopback port for a server a test starts.
///
/// Ports come from 20000-32767, below Linux's ephemeral range (32768-60999), so an outgoing
/// connection can never take a port between this call and the server's bind; a process-wide
/// counter keeps the tests of one binary from handing out the same port twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20000;
    const HIGH: u16 = 32768;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        LOW + (std::process::id() % 40) as u16 * 300,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..(HIGH - LOW) {
        let mut port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= HIGH {
            port = LOW + port % (HIGH - LOW);
            NEXT.store(port + 1, Ordering::SeqCst);
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}-{HIGH}");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Blocks until `addr` answers PING, or panics after `timeout`.
pub fn wait_ready(addr: SocketAddr, timeout: Duration) {
    let ok = wait_until(timeout, || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        // A write only succeeds once the node has elected itself leader (after AUTH, when
        // the tests authenticate).
        let mut request = Vec::new();
        let auth = rockraft_ctl::auth::get();
        if let Some((u, p)) = &auth {
            request.extend(resp(&[b"AUTH", u.as_bytes(), p.as_bytes()]));
        }
        request.extend(resp(&[b"SET", b"__ready_probe__", b"1"]));
        if s.write_all(&request).is_err() {
            return false;
        }
        let mut reader = std::io::BufReader::new(s);
        (0..1 + auth.is_some() as usize).all(|_| {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).is_ok() && line.starts_with("+OK")
        })
    });
    assert!(ok, "server at {addr} not ready within {timeout:?}");
    let mut c = redis::Client::open(rockraft_ctl::auth::url(&addr.to_string()))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg("__ready_probe__")
        .query(&mut c)
        .unwrap();
}

/// A node running in this process, on its own tokio runtime.
pub struct InProcess {
    pub runtime: tokio::runtime::Runtime,
    pub handle: Option<ServerHandle>,
    pub data_dir: PathBuf,
}

impl InProcess {
    pub fn start(data_dir: &Path) -> InProcess {
        Self::start_with(Config::for_data_dir(data_dir))
    }

    pub fn start_with(config: Config) -> InProcess {
        let node = Self::spawn_with(config);
        wait_ready(node.addr(), Duration::from_secs(20));
        node
    }

    /// Starts a node without waiting for it to accept writes (a cluster member has to hear
    /// from its leader first).
    pub fn spawn_with(config: Config) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data_dir = config.data_dir.clone();
        let handle = runtime
            .block_on(rockraft_server::start(config))
            .expect("start node");
        InProcess {
            runtime,
            handle: Some(handle),
            data_dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().addr()
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr())
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Graceful shutdown; the data directory can be opened again afterwards.
    pub fn stop(mut self) -> PathBuf {
        if let Some(h) = self.handle.take() {
            self.runtime.block_on(h.shutdown());
        }
        self.data_dir.clone()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.runtime.block_on(h.shutdown());
        }
    }
}

/// The node's Prometheus text from `/metrics` on `port`, once it has every one of `names`
/// (metrics appear as they are first recorded); what it last served after 10 s otherwise.
pub fn scrape_metrics(port: u16, names: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut body = String::new();
    wait_until(Duration::from_secs(10), || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
        body.clear();
        let _ = s.read_to_string(&mut body);
        names.iter().all(|n| body.contains(n))
    });
    body
}

/// Path of a binary built in this workspace's target directory.
pub fn workspace_binary(name: &str) -> PathBuf {
    // Test executables live in <target>/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --release --workspace --bins)",
        path.display()
    );
    path
}

/// Which server binary to run, with which extra environment.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// A binary of the target directory; default `rockraft-server`.
    pub binary: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The server built with the `failpoints` feature (scripts/test.sh builds it as
    /// `rockraft-server-failpoints`), with `FAILPOINTS` set to `spec`.
    pub fn failpoints(spec: &str) -> Launch {
        Launch {
            binary: Some("rockraft-server-failpoints".into()),
            env: vec![("FAILPOINTS".into(), spec.into())],
        }
    }

    fn binary(&self) -> &str {
        self.binary.as_deref().unwrap_or("rockraft-server")
    }
}

/// A real `rockraft-server` process.
pub struct Process {
    pub child: Child,
    pub port: u16,
    pub bus_port: u16,
    pub data_dir: PathBuf,
    pub metrics_port: Option<u16>,
    log: PathBuf,
}

impl Process {
    pub fn start(data_dir: &Path, port: u16) -> Process {
        Self::start_args(data_dir, port, None)
    }

    pub fn start_args(data_dir: &Path, port: u16, metrics_port: Option<u16>) -> Process {
        let p = Self::spawn(data_dir, port, free_port(), metrics_port);
        wait_ready(p.addr(), Duration::from_secs(30));
        p
    }

    /// Starts a node without waiting for it to accept writes (it may be a cluster member
    /// that has to find its leader first).
    pub fn spawn(data_dir: &Path, port: u16, bus_port: u16, metrics_port: Option<u16>) -> Process {
        Self::spawn_with(data_dir, port, bus_port, metrics_port, &[])
    }

    /// [`Process::spawn`] with extra `rockraft-server` flags.
    pub fn spawn_with(
        data_dir: &Path,
        port: u16,
        bus_port: u16,
        metrics_port: Option<u16>,
        extra: &[&str],
    ) -> Process {
        Self::spawn_full(
            &Launch::default(),
            data_dir,
            port,
            bus_port,
            metrics_port,
            extra,
        )
    }

    /// [`Process::spawn_with`] with another binary or environment (failpoints).
    pub fn spawn_full(
        launch: &Launch,
        data_dir: &Path,
        port: u16,
        bus_port: u16,
        metrics_port: Option<u16>,
        extra: &[&str],
    ) -> Process {
        // Logs live outside the data directory's disk (a test may fill that disk up).
        let log = std::env::temp_dir().join(format!("rockraft-test-node-{port}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let metrics = match metrics_port {
            Some(p) => format!("127.0.0.1:{p}"),
            None => "off".into(),
        };
        let child = Command::new(workspace_binary(launch.binary()))
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--metrics-addr")
            .arg(metrics)
            .arg("--bus-port")
            .arg(bus_port.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn rockraft-server");
        let p = Process {
            child,
            port,
            bus_port,
            data_dir: data_dir.to_path_buf(),
            metrics_port,
            log,
        };
        let addr = p.addr();
        assert!(
            wait_until(Duration::from_secs(30), || TcpStream::connect(addr).is_ok()),
            "{addr} does not accept connections"
        );
        p
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://{}/", self.addr()))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Sends a signal (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// SIGSTOP, then waits (up to 10 s) until every thread of the process is stopped, so that
    /// nothing it had in flight still runs once this returns; false if they did not all stop.
    pub fn pause(&self) -> bool {
        self.signal("STOP");
        wait_until(Duration::from_secs(10), || {
            self.thread_states().iter().all(|s| *s == 'T' || *s == 't')
        })
    }

    /// The scheduler state (`R`, `S`, `D`, `T`…) of each thread of the process.
    pub fn thread_states(&self) -> Vec<char> {
        let dir = format!("/proc/{}/task", self.child.id());
        let Ok(tasks) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                // `pid (comm) S …`: the state follows the last ')'.
                stat.rsplit_once(')')?.1.trim_start().chars().next()
            })
            .collect()
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// Waits for the process to exit on its own (a crash); its exit code, or None if it
    /// is still running after `timeout` (it is then left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw RESP connection for byte-level tests.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one full reply (any RESP2/RESP3 type) as raw bytes.
    pub fn read_reply(&mut self) -> String {
        let mut out = String::new();
        self.read_value(&mut out);
        out
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "connection closed while reading a reply");
        line
    }

    fn read_value(&mut self, out: &mut String) {
        let line = self.read_line();
        out.push_str(&line);
        let body = line.trim_end();
        let (kind, rest) = body.split_at(1);
        let n: i64 = rest.parse().unwrap_or(0);
        match kind {
            "$" | "=" | "!" if n >= 0 => {
                let mut data = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut data).unwrap();
                out.push_str(&String::from_utf8_lossy(&data));
            }
            "*" | "~" | ">" => (0..n.max(0)).for_each(|_| self.read_value(out)),
            "%" => (0..n.max(0) * 2).for_each(|_| self.read_value(out)),
            _ => {}
        }
    }

    /// Sends `bytes` and reads one reply.
    pub fn roundtrip(&mut self, bytes: &[u8]) -> String {
        self.send(bytes);
        self.read_reply()
    }

    /// True when the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

/// Encodes a command as a RESP multibulk.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    rockraft_resp::encode_request(args)
}

/// Runs a test binary's command-line tool and returns (exit ok, stdout).
pub fn run_tool(program: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} must be installed (.ci/run installs it): {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Config for an in-process node whose metrics endpoint is off.
pub fn config(data_dir: &Path) -> Config {
    let mut c = Config::for_data_dir(data_dir);
    c.metrics_addr = Some(MetricsAddr::Off);
    c
}

/// One field of `INFO <section>`.
pub fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Connects to `addr` (short timeouts, so a dead node fails fast).
pub fn connect(addr: SocketAddr) -> Option<redis::Connection> {
    let c = redis::Client::open(rockraft_ctl::auth::url(&addr.to_string())).ok()?;
    let conn = c.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(conn)
}

/// `CLUSTER MEET` every address in `others` through `via` (back to back, on one connection),
/// then waits until every node is a voter (rockraft-ctl's helper: the same as `cluster up`'s).
pub fn form_cluster(via: SocketAddr, others: &[SocketAddr]) {
    let addrs: Vec<SocketAddr> = std::iter::once(via).chain(others.iter().copied()).collect();
    if let Err(e) = rockraft_ctl::members::form(&addrs, Duration::from_secs(60)) {
        panic!("cluster of {} did not form: {e}", addrs.len());
    }
}

/// Waits until the nodes at `addrs` are one cluster of that many voters, or panics.
pub fn wait_all_voters(addrs: &[SocketAddr], timeout: Duration) {
    if let Err(e) = rockraft_ctl::members::wait_all_voters(addrs, timeout) {
        panic!("{e}");
    }
}

/// Waits until every node of `addrs` reports the same data digest and applied index.
pub fn converged(addrs: &[SocketAddr], timeout: Duration) -> bool {
    wait_until(timeout, || {
        let states: Vec<Option<(String, String)>> = addrs
            .iter()
            .map(|a| {
                let mut c = connect(*a)?;
                let d: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).ok()?;
                Some((d, info_field(&mut c, "raft", "raft_applied_index")?))
            })
            .collect();
        states[0].is_some() && states.iter().all(|s| *s == states[0])
    })
}

/// The index of the node that reports itself leader, if exactly one does.
pub fn find_leader(addrs: &[Option<SocketAddr>]) -> Option<usize> {
    let leaders: Vec<usize> = addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let mut c = connect((*a)?)?;
            (info_field(&mut c, "raft", "raft_role")? == "leader").then_some(i)
        })
        .collect();
    (leaders.len() == 1).then(|| leaders[0])
}

/// Waits for exactly one node of `addrs` to report itself leader; returns its index.
pub fn wait_for_leader(addrs: &[Option<SocketAddr>]) -> usize {
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            found = find_leader(addrs);
            found.is_some()
        }),
        "no leader"
    );
    found.unwrap()
}

/// Nodes started in this process and joined into one cluster.
pub struct InProcessCluster {
    pub nodes: Vec<Option<InProcess>>,
    pub dirs: Vec<PathBuf>,
    tweak: fn(&mut Config),
    _root: tempfile::TempDir,
}

impl InProcessCluster {
    pub fn start(n: usize) -> InProcessCluster {
        Self::start_with(n, |_| {})
    }

    /// A cluster whose nodes' configuration `tweak` adjusts (also on [`Self::restart`]).
    pub fn start_with(n: usize, tweak: fn(&mut Config)) -> InProcessCluster {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..n).map(|i| root.path().join(format!("n{i}"))).collect();
        let nodes: Vec<Option<InProcess>> = dirs
            .iter()
            .map(|d| {
                let mut c = Config::for_data_dir(d);
                tweak(&mut c);
                Some(InProcess::start_with(c))
            })
            .collect();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.as_ref().unwrap().addr()).collect();
        form_cluster(addrs[0], &addrs[1..]);
        InProcessCluster {
            nodes,
            dirs,
            tweak,
            _root: root,
        }
    }

    /// Starts stopped node `i` again on its data directory (on new ports; its address is
    /// updated through the log).
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let mut c = Config::for_data_dir(&self.dirs[i]);
        (self.tweak)(&mut c);
        self.nodes[i] = Some(InProcess::spawn_with(c));
    }

    pub fn addrs(&self) -> Vec<Option<SocketAddr>> {
        self.nodes
            .iter()
            .map(|n| n.as_ref().map(|n| n.addr()))
            .collect()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].as_ref().unwrap().addr()
    }

    pub fn client(&self, i: usize) -> redis::Connection {
        connect(self.addr(i)).expect("connect")
    }

    /// Waits for a single leader and returns its index.
    pub fn leader(&self) -> usize {
        wait_for_leader(&self.addrs())
    }

    /// The server state of running node `i`.
    pub fn shared(&self, i: usize) -> std::sync::Arc<rockraft_server::Shared> {
        self.nodes[i]
            .as_ref()
            .unwrap()
            .handle
            .as_ref()
            .unwrap()
            .shared()
            .clone()
    }

    /// The raft id of node `i`.
    pub fn node_id(&self, i: usize) -> u64 {
        self.shared(i).node_id
    }

    /// Installs `filter` on every running node's outgoing raft traffic.
    pub fn add_filter(&self, filter: std::sync::Arc<dyn rockraft_raftstore::SendFilter>) {
        for n in self.nodes.iter().flatten() {
            n.handle
                .as_ref()
                .unwrap()
                .shared()
                .network
                .add_filter(filter.clone());
        }
    }

    /// Cuts the cluster into sides (node indexes); raft traffic crosses no side boundary.
    pub fn partition(&self, sides: &[&[usize]]) {
        let sides = sides
            .iter()
            .map(|side| side.iter().map(|&i| self.node_id(i)).collect())
            .collect();
        self.add_filter(std::sync::Arc::new(
            rockraft_raftstore::filters::Partition { sides },
        ));
    }

    /// Cuts node `i` off from every other node.
    pub fn isolate(&self, i: usize) {
        let others: Vec<usize> = (0..self.nodes.len()).filter(|&j| j != i).collect();
        self.partition(&[&[i], &others]);
    }

    /// Removes every filter: all links work again.
    pub fn heal(&self) {
        for n in self.nodes.iter().flatten() {
            n.handle.as_ref().unwrap().shared().network.clear_filters();
        }
    }

    /// Waits until every running node reports the same data digest and applied index.
    pub fn wait_converged(&self, timeout: Duration) -> bool {
        let addrs: Vec<SocketAddr> = self.addrs().into_iter().flatten().collect();
        converged(&addrs, timeout)
    }

    /// Stops node `i` (gracefully: its ports close as if it died).
    pub fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.stop();
        }
    }
}

/// Real `rockraft-server` processes joined into one cluster.
pub struct ProcessCluster {
    pub nodes: Vec<Option<Process>>,
    pub ports: Vec<(u16, u16)>,
    pub dirs: Vec<PathBuf>,
    /// Flags every node gets, on every start.
    pub extra: Vec<String>,
    _root: tempfile::TempDir,
}

impl ProcessCluster {
    pub fn start(n: usize) -> ProcessCluster {
        Self::start_with(n, &[])
    }

    /// A cluster whose nodes all get the extra `rockraft-server` flags.
    pub fn start_with(n: usize, extra: &[&str]) -> ProcessCluster {
        Self::start_full(n, extra, |_| Launch::default())
    }

    /// A cluster whose node `i` is run as `launch(i)` says.
    pub fn start_full(
        n: usize,
        extra: &[&str],
        launch: impl Fn(usize) -> Launch,
    ) -> ProcessCluster {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..n).map(|i| root.path().join(format!("n{i}"))).collect();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let nodes: Vec<Option<Process>> = dirs
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (d, (p, b)))| {
                let node = Process::spawn_full(&launch(i), d, *p, *b, None, extra);
                wait_ready(node.addr(), Duration::from_secs(30));
                Some(node)
            })
            .collect();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.as_ref().unwrap().addr()).collect();
        form_cluster(addrs[0], &addrs[1..]);
        ProcessCluster {
            nodes,
            ports,
            dirs,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _root: root,
        }
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i].0))
    }

    pub fn addrs(&self) -> Vec<Option<SocketAddr>> {
        (0..self.nodes.len())
            .map(|i| self.nodes[i].as_ref().map(|_| self.addr(i)))
            .collect()
    }

    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len())
            .map(|i| format!("redis://{}/", self.addr(i)))
            .collect()
    }

    pub fn leader(&self) -> usize {
        wait_for_leader(&self.addrs())
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].take() {
            p.kill9();
        }
    }

    /// Restarts node `i` on its old ports and data directory.
    pub fn restart(&mut self, i: usize) {
        self.restart_as(i, &Launch::default());
    }

    /// Restarts node `i` as `launch` says (e.g. with failpoints).
    pub fn restart_as(&mut self, i: usize, launch: &Launch) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let (p, b) = self.ports[i];
        let extra: Vec<&str> = self.extra.iter().map(|s| s.as_str()).collect();
        self.nodes[i] = Some(Process::spawn_full(
            launch,
            &self.dirs[i],
            p,
            b,
            None,
            &extra,
        ));
    }

    /// Waits for node `i` to exit on its own; its exit code. Panics if it does not.
    pub fn wait_crash(&mut self, i: usize, timeout: Duration) -> Option<i32> {
        let p = self.nodes[i].as_mut().expect("node is running");
        let code = p
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("node {i} did not crash within {timeout:?}"));
        self.nodes[i] = None;
        code
    }

    /// Waits until every running node reports the same digest and applied index.
    /// Waits until every running node has the same data and applied index. If they never
    /// do, the end of each node's log is printed, to show why.
    pub fn wait_converged(&self, timeout: Duration) -> bool {
        let addrs: Vec<SocketAddr> = self.addrs().into_iter().flatten().collect();
        let ok = converged(&addrs, timeout);
        if !ok {
            for (i, n) in self.nodes.iter().enumerate() {
                let Some(n) = n else { continue };
                let log = n.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- node {i} log (last 40 lines, newest first) ---");
                for line in tail {
                    eprintln!("{line}");
                }
            }
        }
        ok
    }
}

/// A length-prefixed bus frame a rogue process would send to node `to` of cluster `cluster_id`:
/// a raft message of type `t` from a made-up node 42 at a term far ahead (an append carries
/// one entry of its own).
pub fn rogue_frame(
    cluster_id: u64,
    to: u64,
    t: rockraft_raftstore::eraftpb::MessageType,
) -> Vec<u8> {
    use protobuf::Message as _;
    use rockraft_raftstore::eraftpb::{Entry, Message, MessageType};
    use rockraft_raftstore::proto::{NodeInfo, PeerMessage};
    let mut m = Message::default();
    m.set_msg_type(t);
    m.to = to;
    m.from = 42;
    m.term = 1_000;
    m.log_term = 1_000;
    m.index = 1_000_000;
    m.commit = 1_000_000;
    if t == MessageType::MsgAppend {
        let e = Entry {
            term: 1_000,
            index: 1_000_001,
            data: b"rogue".to_vec().into(),
            ..Default::default()
        };
        m.mut_entries().push(e);
    }
    let pm = PeerMessage {
        cluster_id,
        group_id: rockraft_server::DATA_GROUP_ID,
        from: protobuf::SingularPtrField::some(NodeInfo {
            node_id: 42,
            host: "127.0.0.1".into(),
            port: 1,
            bus_port: 1,
            ..Default::default()
        }),
        message: m.write_to_bytes().unwrap(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap();
    let mut out = (pm.len() as u32).to_be_bytes().to_vec();
    out.extend(pm);
    out
}
