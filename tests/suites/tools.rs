//! Real tools against a real server process: redis-cli, redis-benchmark, the metrics endpoint.

use std::net::TcpStream;
use std::time::Duration;

use rockraft_tests::{free_port, run_tool, wait_until, workspace_binary, Process};

#[test]
fn redis_cli_drives_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let node = Process::start(&dir.path().join("n"), free_port());
    let port = node.port.to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-p", port.as_str()];
        all.extend_from_slice(args);
        run_tool("redis-cli", &all, None)
    };
    assert_eq!(cli(&["SET", "k", "v"]), (true, "OK\n".into()));
    assert_eq!(cli(&["GET", "k"]), (true, "v\n".into()));
    assert_eq!(cli(&["INCR", "n"]), (true, "1\n".into()));
    assert_eq!(cli(&["DEL", "k"]), (true, "1\n".into()));
    assert_eq!(cli(&["GET", "k"]).1, "\n");
    let (_, out) = cli(&["INCR", "nope", "extra"]);
    assert!(
        out.contains("ERR wrong number of arguments for 'incr' command"),
        "{out}"
    );
    // Interactive-style use: several commands on stdin, RESP3 included.
    let (ok, out) = run_tool(
        "redis-cli",
        &["-p", &port, "-3"],
        Some("SET a 1\nGET a\nHELLO 3\nCLIENT SETNAME cli\nCLIENT GETNAME\n"),
    );
    assert!(ok, "{out}");
    assert!(out.contains("OK") && out.contains("cli"), "{out}");
    let (ok, out) = cli(&["--no-raw", "INFO", "server"]);
    assert!(ok && out.contains("redis_version:7."), "{out}");
}

/// redis-benchmark's whole default list (no `-t`): it stops at the first error reply (Redis
/// 7's benchmark exits on errors), so every test must finish.
fn default_benchmark_completes(port: u16) {
    let (ok, out) = run_tool(
        "redis-benchmark",
        &["-p", &port.to_string(), "-n", "2000", "-c", "10", "-q"],
        None,
    );
    assert!(ok, "{out}");
    let out = out.replace('\r', "\n");
    for test in [
        "PING_INLINE:",
        "PING_MBULK:",
        "SET:",
        "GET:",
        "INCR:",
        "LPUSH:",
        "RPUSH:",
        "LPOP:",
        "RPOP:",
        "SADD:",
        "HSET:",
        "SPOP:",
        "ZADD:",
        "ZPOPMIN:",
        "LPUSH (needed to benchmark LRANGE):",
        "LRANGE_100 (first 100 elements):",
        "LRANGE_300 (first 300 elements):",
        "LRANGE_500 (first 500 elements):",
        "LRANGE_600 (first 600 elements):",
        "MSET (10 keys):",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim().starts_with(test) && l.contains("requests per second")),
            "{test} missing from:\n{out}"
        );
    }
}

#[test]
fn redis_benchmark_default_list_on_one_node_and_a_cluster_leader() {
    let dir = tempfile::tempdir().unwrap();
    let node = Process::start(&dir.path().join("n"), free_port());
    default_benchmark_completes(node.port);
    let cluster = rockraft_tests::ProcessCluster::start(3);
    let leader = cluster.leader();
    default_benchmark_completes(cluster.addr(leader).port());
    assert!(cluster.wait_converged(Duration::from_secs(30)));
}

#[test]
fn redis_benchmark_runs_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let node = Process::start(&dir.path().join("n"), free_port());
    let port = node.port.to_string();
    let (ok, out) = run_tool(
        "redis-benchmark",
        &[
            "-p",
            &port,
            "-t",
            "set,get,ping,incr,mset",
            "-n",
            "3000",
            "-c",
            "20",
            "-q",
        ],
        None,
    );
    assert!(ok, "{out}");
    // Progress updates end in '\r'; the final result of each test is the last one on its line.
    let out = out.replace('\r', "\n");
    for test in [
        "PING_INLINE:",
        "PING_MBULK:",
        "SET:",
        "GET:",
        "INCR:",
        "MSET (10 keys):",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim().starts_with(test) && l.contains("requests per second")),
            "{test} missing from:\n{out}"
        );
    }
    let (ok, out) = run_tool(
        "redis-benchmark",
        &[
            "-p", &port, "-t", "set,get", "-n", "5000", "-c", "10", "-P", "16", "-q",
        ],
        None,
    );
    assert!(ok && out.contains("SET:") && out.contains("GET:"), "{out}");
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let node = Process::start_args(&dir.path().join("n"), free_port(), Some(metrics_port));
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut node.client())
        .unwrap();
    let _: String = redis::cmd("GET")
        .arg("k")
        .query(&mut node.client())
        .unwrap();
    let body = rockraft_tests::scrape_metrics(metrics_port, &["rockraft_commands_total"]);
    assert!(body.contains("rockraft_commands_total"), "{body}");
    for name in [
        "rockraft_commands_total{cmd=\"set\"}",
        "rockraft_command_duration_seconds_bucket",
        "rockraft_raft_term",
        "rockraft_raft_commit_index",
        "rockraft_raft_applied_index",
        "rockraft_raft_log_write_seconds",
        "rockraft_connected_clients",
    ] {
        assert!(body.contains(name), "{name} missing from:\n{body}");
    }
}

#[test]
fn help_documents_every_flag() {
    let bin = rockraft_tests::workspace_binary("rockraft-server");
    let (ok, out) = run_tool(bin.to_str().unwrap(), &["--help"], None);
    assert!(ok);
    for flag in [
        "--bind",
        "--port",
        "--data-dir",
        "--metrics-addr",
        "--log-level",
        "ROCKRAFT_PORT",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
}

/// A base port whose next `n` ports, and those + 10000 (bus) and + 20000 (metrics), are free.
/// The base ports (below 12768) and bus ports stay under the kernel's ephemeral range.
fn free_base_port(n: u16) -> u16 {
    // Tests of this binary run in parallel: never hand out the same range twice.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(11000);
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let start = NEXT.fetch_add(13 * 4, std::sync::atomic::Ordering::SeqCst);
    (start..12700u16)
        .step_by(13)
        .find(|&base| {
            (0..n).all(|i| free(base + i) && free(base + i + 10000) && free(base + i + 20000))
        })
        .expect("a free port range")
}

#[test]
fn ctl_cluster_up_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port(3);
    let ctl = workspace_binary("rockraft-ctl");
    let ctl = ctl.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let b = base.to_string();
    let (ok, out) = run_tool(
        ctl,
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--base-port",
            &b,
            "--dir",
            d,
        ],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains(&format!("redis-cli -c -p {base}")), "{out}");
    let p2 = (base + 1).to_string();
    let p3 = (base + 2).to_string();
    assert_eq!(
        run_tool("redis-cli", &["-c", "-p", &p2, "SET", "k", "v"], None)
            .1
            .trim(),
        "OK"
    );
    assert_eq!(
        run_tool("redis-cli", &["-c", "-p", &p3, "GET", "k"], None)
            .1
            .trim(),
        "v"
    );
    let ports = format!("{base},{p2},{p3}");
    assert!(wait_until(Duration::from_secs(10), || {
        let (ok, out) = run_tool(ctl, &["digest", "--ports", &ports], None);
        ok && out.lines().count() == 3 && {
            let digests: Vec<&str> = out.lines().filter_map(|l| l.split(' ').nth(1)).collect();
            digests.iter().all(|d| *d == digests[0])
        }
    }));
    let (ok, status) = run_tool(ctl, &["-p", &p3, "status"], None);
    assert!(
        ok && status.contains("voters") && status.contains(" 3"),
        "{status}"
    );
    let (ok, out) = run_tool(ctl, &["cluster", "down", "--dir", d], None);
    assert!(ok, "{out}");
    assert!(wait_until(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", base)).is_err()
    }));
}

/// `cluster up`, `cluster down`, `cluster up` on the same ports and directory, ten times in
/// a row: `down` returns only once every node has exited (so every port is free at once), and
/// each `up` brings the same cluster back, every node a voter, with all its data.
#[test]
fn ctl_cluster_up_and_down_ten_times_on_the_same_ports() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port(3);
    let ctl = workspace_binary("rockraft-ctl");
    let ctl = ctl.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let b = base.to_string();
    let up = [
        "cluster",
        "up",
        "--nodes",
        "3",
        "--base-port",
        &b,
        "--dir",
        d,
    ];
    let ports: Vec<u16> = (0..3)
        .flat_map(|i| [base + i, base + i + 10000, base + i + 20000])
        .collect();
    for cycle in 0..10 {
        let (ok, out) = run_tool(ctl, &up, None);
        assert!(ok, "cycle {cycle}: {out}");
        assert!(out.contains("every node a voter"), "cycle {cycle}: {out}");
        if cycle == 0 {
            // A second `up` while it runs says so, and starts nothing.
            let (ok, out) = run_tool(ctl, &up, None);
            assert!(!ok && out.contains("is still running"), "{out}");
        }
        let p = base.to_string();
        let key = format!("k{cycle}");
        let (_, set) = run_tool("redis-cli", &["-c", "-p", &p, "SET", &key, "v"], None);
        assert_eq!(set.trim(), "OK", "cycle {cycle}");
        for earlier in 0..=cycle {
            let (_, got) = run_tool(
                "redis-cli",
                &["-c", "-p", &p, "GET", &format!("k{earlier}")],
                None,
            );
            assert_eq!(got.trim(), "v", "cycle {cycle}: k{earlier}");
        }
        let (ok, out) = run_tool(ctl, &["cluster", "down", "--dir", d], None);
        assert!(ok, "cycle {cycle}: {out}");
        assert!(out.contains("every one has exited"), "{out}");
        for &port in &ports {
            // The kernel may take a moment to release a dead process's listening socket.
            let free = rockraft_tests::wait_until(std::time::Duration::from_secs(5), || {
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            });
            assert!(
                free,
                "cycle {cycle}: port {port} still taken 5 s after cluster down"
            );
        }
    }
}

/// `cluster up` names the port it needs that something else holds, and starts nothing.
#[test]
fn ctl_cluster_up_refuses_a_taken_port() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port(3);
    let ctl = workspace_binary("rockraft-ctl");
    let taken = base + 1 + 10000;
    let _holder = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
    let (ok, out) = run_tool(
        ctl.to_str().unwrap(),
        &[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "port {taken} (needed by the node on {})",
            base + 1
        )) && out.contains("is not free"),
        "{out}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", base)).is_err(),
        "a node was started"
    );
}

/// `rockraft-ctl backup` copies a live node (while a client writes); `rockraft-ctl restore`
/// seeds a new cluster from the copy, and a node that joins it gets the data too.
#[test]
fn ctl_backup_of_a_live_node_seeds_a_new_cluster() {
    let ctl = workspace_binary("rockraft-ctl");
    let ctl = ctl.to_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let node = Process::start(&root.path().join("old"), free_port());
    let mut c = node.client();
    for i in 0..500 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("v")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    // A writer keeps going while the backup is taken.
    let addr = node.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = rockraft_tests::connect(addr).unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                let _: () = redis::cmd("SET")
                    .arg(format!("during{n}"))
                    .arg(n)
                    .query(&mut c)
                    .unwrap();
                n += 1;
            }
        })
    };
    let backup = root.path().join("backup");
    let port = node.port.to_string();
    let (ok, out) = run_tool(
        ctl,
        &["-p", &port, "backup", "--to", backup.to_str().unwrap()],
        None,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("applied_index:"), "{out}");
    // The same directory twice is refused.
    let (ok, out) = run_tool(
        ctl,
        &["-p", &port, "backup", "--to", backup.to_str().unwrap()],
        None,
    );
    assert!(!ok && out.contains("already exists"), "{out}");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let old_cluster = rockraft_tests::info_field(&mut c, "raft", "raft_cluster_id").unwrap();

    let new_dir = root.path().join("new");
    let (ok, out) = run_tool(
        ctl,
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            new_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    let restored = Process::start(&new_dir, free_port());
    let mut r = restored.client();
    for i in 0..500 {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query(&mut r)
            .unwrap();
        assert_eq!(v, Some(i), "k{i}");
    }
    let ttl: i64 = redis::cmd("TTL").arg("ttl").query(&mut r).unwrap();
    assert!(ttl > 900, "{ttl}");
    let after: Option<String> = redis::cmd("GET").arg("after").query(&mut r).unwrap();
    assert_eq!(after, None, "a write made after the backup is in it");
    let new_cluster = rockraft_tests::info_field(&mut r, "raft", "raft_cluster_id").unwrap();
    assert_ne!(new_cluster, old_cluster);
    let _: () = redis::cmd("SET").arg("new").arg("1").query(&mut r).unwrap();
    // The "during" keys in the backup are a prefix of what the writer wrote.
    let during: Vec<String> = redis::cmd("KEYS").arg("during*").query(&mut r).unwrap();
    for n in 0..during.len() {
        assert!(
            during.contains(&format!("during{n}")),
            "backup is not a consistent cut"
        );
    }

    // A node that joins the restored cluster gets the data (its log starts after the backup).
    let joiner = Process::start(&root.path().join("joiner"), free_port());
    rockraft_tests::form_cluster(restored.addr(), &[joiner.addr()]);
    let addrs = [restored.addr(), joiner.addr()];
    assert!(rockraft_tests::converged(&addrs, Duration::from_secs(30)));
    let mut j = joiner.client();
    let _: () = redis::cmd("READONLY").query(&mut j).unwrap();
    let v: Option<u64> = redis::cmd("GET").arg("k42").query(&mut j).unwrap();
    assert_eq!(v, Some(42));
}
