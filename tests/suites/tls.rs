//! TLS: for clients (`redis-cli --tls` and redis-rs over rustls against the TLS port, with and
//! without a client certificate, a plaintext client on the TLS port, bad certificate files, a
//! node with no plaintext port) and for the cluster bus (`--tls-cluster yes`: three nodes
//! replicate and stream a snapshot over mutual TLS; peers without the cluster's certificate
//! are ignored). The certificates are made in the test (rcgen).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rockraft_server::config::Config;
use rockraft_tests::{free_port, info_field, wait_until, InProcess, InProcessCluster};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rockraft test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>, usage: &[ExtendedKeyUsagePurpose]| {
        let mut p = CertificateParams::new(names.clone()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, names[0].clone());
        p.extended_key_usages = usage.to_vec();
        let k = KeyPair::generate().unwrap();
        let c = p.signed_by(&k, &ca, &ca_key).unwrap();
        (c.pem(), k.serialize_pem())
    };
    // A node's certificate serves its TLS port and, on a --tls-cluster bus, both ends of a
    // peer connection: it allows server and client authentication.
    let (cert, key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client_cert, client_key) = leaf(
        vec!["client".into()],
        &[ExtendedKeyUsagePurpose::ClientAuth],
    );
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Certs {
        ca: write("ca.pem", &ca.pem()),
        cert: write("server.pem", &cert),
        key: write("server.key", &key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

fn tls_node(dir: &Path, certs: &Certs, auth_clients: &str) -> (InProcess, u16) {
    let tls_port = free_port();
    let mut cfg = Config::for_data_dir(dir.join("node"));
    cfg.tls_port = Some(tls_port);
    cfg.tls_cert_file = Some(certs.cert.clone());
    cfg.tls_key_file = Some(certs.key.clone());
    cfg.tls_ca_cert_file = Some(certs.ca.clone());
    cfg.tls_auth_clients = auth_clients.into();
    (InProcess::start_with(cfg), tls_port)
}

/// `redis-cli --tls …` with `args`; (success, stdout + stderr).
fn redis_cli(port: u16, tls: &[&Path], with_cert: Option<&Certs>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("redis-cli");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"]);
    for ca in tls {
        c.arg("--cacert").arg(ca);
    }
    if let Some(certs) = with_cert {
        c.arg("--cert").arg(&certs.client_cert);
        c.arg("--key").arg(&certs.client_key);
    }
    let out = c.args(args).output().expect("redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !text.contains("Could not"), text)
}

#[test]
fn redis_cli_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let (node, port) = tls_node(dir.path(), &certs, "yes");
    let (ok, out) = redis_cli(port, &[&certs.ca], Some(&certs), &["SET", "k", "over tls"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = redis_cli(port, &[&certs.ca], Some(&certs), &["GET", "k"]);
    assert!(ok && out.trim() == "over tls", "{out}");
    // The same data on the plaintext port.
    let mut c = node.client();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "over tls");
    // No client certificate: refused under tls-auth-clients yes.
    let (ok, out) = redis_cli(port, &[&certs.ca], None, &["PING"]);
    assert!(!ok || !out.contains("PONG"), "{out}");
    // A plaintext client on the TLS port gets nothing useful, and nobody else notices.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
    let _ = raw.write_all(b"*1\r\n$4\r\nPING\r\n");
    let (ok, out) = redis_cli(port, &[&certs.ca], Some(&certs), &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("PONG"));
}

#[test]
fn tls_without_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let (_node, port) = tls_node(dir.path(), &certs, "no");
    let (ok, out) = redis_cli(port, &[&certs.ca], None, &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
    let (_node2, port2) = tls_node(&dir.path().join("o"), &certs, "optional");
    for with in [None, Some(&certs)] {
        let (ok, out) = redis_cli(port2, &[&certs.ca], with, &["PING"]);
        assert!(ok && out.trim() == "PONG", "{out}");
    }
}

#[test]
fn a_missing_certificate_stops_the_node_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let out = Command::new(rockraft_tests::workspace_binary("rockraft-server"))
        .args(["--port", "0", "--bus-port", "0", "--metrics-addr", "off"])
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .args(["--tls-port", &free_port().to_string()])
        .arg("--tls-cert-file")
        .arg(dir.path().join("missing.pem"))
        .arg("--tls-key-file")
        .arg(&certs.key)
        .arg("--tls-ca-cert-file")
        .arg(&certs.ca)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.pem"), "{err}");
}

/// CONFIG SET tls-cert-file/tls-key-file loads a new certificate for the next handshakes; a
/// file that cannot be loaded changes nothing.
#[test]
fn config_set_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_certs(dir.path());
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = make_certs(&second_dir);
    let (node, port) = tls_node(dir.path(), &first, "no");
    let mut c = node.client();
    let (ok, out) = redis_cli(port, &[&first.ca], None, &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
    let bad: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-cert-file")
        .arg(dir.path().join("nope.pem").to_str().unwrap())
        .query(&mut c);
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("Unable to update TLS configuration"));
    let (ok, out) = redis_cli(port, &[&first.ca], None, &["PING"]);
    assert!(
        ok && out.trim() == "PONG",
        "a failed reload changed the certificate: {out}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-cert-file")
        .arg(second.cert.to_str().unwrap())
        .arg("tls-key-file")
        .arg(second.key.to_str().unwrap())
        .query(&mut c)
        .unwrap();
    let now: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("tls-cert-file")
        .query(&mut c)
        .unwrap();
    assert_eq!(now[1], second.cert.to_str().unwrap());
    let (ok, out) = redis_cli(port, &[&second.ca], None, &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
    let (ok, out) = redis_cli(port, &[&first.ca], None, &["PING"]);
    assert!(
        !ok || !out.contains("PONG"),
        "the old certificate is still served: {out}"
    );
}

/// A redis-rs connection over TLS (rustls) to `port`, trusting `certs.ca`, presenting the client
/// certificate when `with_cert`.
fn tls_client(port: u16, certs: &Certs, with_cert: bool) -> redis::RedisResult<redis::Connection> {
    let read = |p: &Path| std::fs::read(p).unwrap();
    let client = redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{port}/"),
        redis::TlsCertificates {
            client_tls: with_cert.then(|| redis::ClientTlsConfig {
                client_cert: read(&certs.client_cert),
                client_key: read(&certs.client_key),
            }),
            root_cert: Some(read(&certs.ca)),
        },
    )?;
    let c = client.get_connection_with_timeout(Duration::from_secs(5))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(c)
}

#[test]
fn redis_rs_over_rustls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let (_node, port) = tls_node(dir.path(), &certs, "yes");
    let mut c = tls_client(port, &certs, true).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    // Without a client certificate the node refuses the connection.
    let refused = tls_client(port, &certs, false)
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    assert!(refused.is_err(), "{refused:?}");
}

/// redis-py (Debian's python3-redis, which the test command installs) with `ssl=True`.
#[test]
fn redis_py_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let (_node, port) = tls_node(dir.path(), &certs, "yes");
    let script = format!(
        "import redis\n\
         r = redis.Redis(host='127.0.0.1', port={port}, ssl=True, ssl_ca_certs={ca:?},\n\
         \x20   ssl_certfile={cert:?}, ssl_keyfile={key:?}, socket_timeout=10)\n\
         r.set('py', 'over tls')\n\
         print(r.get('py').decode())\n",
        ca = certs.ca.to_str().unwrap(),
        cert = certs.client_cert.to_str().unwrap(),
        key = certs.client_key.to_str().unwrap(),
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("/usr/bin/python3 (scripts/deps.sh installs python3-redis)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim() == "over tls", "{text}");
}

/// CONFIG SET tls-cert-file keeps the connections already open.
#[test]
fn a_certificate_reload_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_certs(dir.path());
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = make_certs(&second_dir);
    let (node, port) = tls_node(dir.path(), &first, "yes");
    let mut open = tls_client(port, &first, true).unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("1")
        .query(&mut open)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-cert-file")
        .arg(second.cert.to_str().unwrap())
        .arg("tls-key-file")
        .arg(second.key.to_str().unwrap())
        .query(&mut node.client())
        .unwrap();
    let v: i64 = redis::cmd("INCR").arg("k").query(&mut open).unwrap();
    assert_eq!(v, 2);
}

/// `--port 0` disables the plaintext listener (the node serves only its TLS port), as in
/// Redis; with no TLS port either, the node does not start.
#[test]
fn port_0_serves_only_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let nowhere = Command::new(rockraft_tests::workspace_binary("rockraft-server"))
        .args(["--port", "0", "--metrics-addr", "off"])
        .args(["--bus-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("n0"))
        .output()
        .unwrap();
    assert!(!nowhere.status.success());
    let err = String::from_utf8_lossy(&nowhere.stderr);
    assert!(err.contains("not listen anywhere"), "{err}");

    let (tls_port, bus_port) = (free_port(), free_port());
    let log = dir.path().join("node.log");
    let mut child = Command::new(rockraft_tests::workspace_binary("rockraft-server"))
        .args(["--port", "0", "--metrics-addr", "off"])
        .args(["--tls-port", &tls_port.to_string()])
        .args(["--bus-port", &bus_port.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("n1"))
        .arg("--tls-cert-file")
        .arg(&certs.cert)
        .arg("--tls-key-file")
        .arg(&certs.key)
        .arg("--tls-ca-cert-file")
        .arg(&certs.ca)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut c = None;
    for _ in 0..300 {
        if let Ok(mut conn) = tls_client(tls_port, &certs, true) {
            if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                c = Some(conn);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = c.expect("the TLS port answers");
    let port: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(&mut c)
        .unwrap();
    assert_eq!(port, ["port", "0"]);
    let info: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
    assert!(info.contains("tcp_port:0\r\n"), "{info}");
    // The node knows itself by its TLS port only.
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).unwrap();
    assert!(
        nodes.contains(&format!("127.0.0.1:{tls_port}@{bus_port}")),
        "{nodes}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("addr=none") && text.contains(&format!("tls=127.0.0.1:{tls_port}")),
        "{text}"
    );
}

/// The certificates every node of the `--tls-cluster` tests uses.
fn cluster_certs() -> &'static Certs {
    static CERTS: std::sync::OnceLock<(tempfile::TempDir, Certs)> = std::sync::OnceLock::new();
    &CERTS
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let certs = make_certs(dir.path());
            (dir, certs)
        })
        .1
}

/// A node of a cluster whose bus is on mutual TLS, with a TLS port of its own; a short log, so
/// a follower that falls behind catches up from a snapshot.
fn on_tls_cluster(c: &mut Config) {
    let certs = cluster_certs();
    c.tls_cluster = true;
    c.tls_port = Some(free_port());
    c.tls_cert_file = Some(certs.cert.clone());
    c.tls_key_file = Some(certs.key.clone());
    c.tls_ca_cert_file = Some(certs.ca.clone());
    c.raft_log_max_entries = 64;
}

/// The client ports a `CLUSTER SLOTS` reply names.
fn slot_ports(reply: &redis::Value) -> Vec<i64> {
    let redis::Value::Array(ranges) = reply else {
        panic!("{reply:?}")
    };
    let mut ports = Vec::new();
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            panic!("{range:?}")
        };
        for node in &parts[2..] {
            let redis::Value::Array(n) = node else {
                panic!("{node:?}")
            };
            let redis::Value::Int(p) = n[1] else {
                panic!("{node:?}")
            };
            ports.push(p);
        }
    }
    ports.sort_unstable();
    ports
}

#[test]
fn a_tls_cluster_replicates_and_streams_snapshots_over_mutual_tls() {
    let mut cluster = InProcessCluster::start_with(3, on_tls_cluster);
    let certs = cluster_certs();
    let l = cluster.leader();
    let leader = cluster.shared(l);
    let mut c = tls_client(leader.me.tls_port as u16, certs, true).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    // A follower that misses more than the log keeps gets a snapshot, streamed over TLS.
    let f = (l + 1) % 3;
    cluster.stop(f);
    // One at a time: pipelined writes would share log entries, and the log must pass 64.
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let sent = leader.network.snapshots_sent();
    cluster.restart(f);
    assert!(
        wait_until(Duration::from_secs(30), || leader.network.snapshots_sent()
            > sent),
        "no snapshot was streamed to the restarted follower"
    );
    assert!(cluster.wait_converged(Duration::from_secs(30)));
    let mut fc = cluster.client(f);
    let _: () = redis::cmd("READONLY").query(&mut fc).unwrap();
    let v: String = redis::cmd("GET").arg("key:299").query(&mut fc).unwrap();
    assert_eq!(v, "299");
    // The nodes' certificates pass each other's checks: no peer connection was refused.
    for i in 0..3 {
        assert_eq!(
            info_field(&mut cluster.client(i), "raft", "raft_bus_auth_failures").as_deref(),
            Some("0"),
            "node {i}"
        );
    }
    // Cluster replies name TLS ports to TLS clients, plaintext ports to plaintext ones.
    let mut tls_ports: Vec<i64> = (0..3)
        .map(|i| cluster.shared(i).me.tls_port as i64)
        .collect();
    let mut plain_ports: Vec<i64> = (0..3).map(|i| cluster.addr(i).port() as i64).collect();
    tls_ports.sort_unstable();
    plain_ports.sort_unstable();
    let l = cluster.leader();
    let leader = cluster.shared(l);
    let over_tls: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).unwrap();
    assert_eq!(slot_ports(&over_tls), tls_ports);
    let plain: redis::Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut cluster.client(l))
        .unwrap();
    assert_eq!(slot_ports(&plain), plain_ports);
    let f = (l + 2) % 3;
    let mut fc = tls_client(cluster.shared(f).me.tls_port as u16, certs, true).unwrap();
    let moved = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .query::<()>(&mut fc)
        .unwrap_err();
    let to = |e: &redis::RedisError| e.redirect_node().map(|(addr, _slot)| addr.to_string());
    assert_eq!(
        to(&moved),
        Some(format!("127.0.0.1:{}", leader.me.tls_port)),
        "{moved}"
    );
    let moved = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .query::<()>(&mut cluster.client(f))
        .unwrap_err();
    assert_eq!(
        to(&moved),
        Some(format!("127.0.0.1:{}", cluster.addr(l).port())),
        "{moved}"
    );
}

/// A TLS client configuration trusting the cluster's CA and presenting `identity` (a
/// certificate and key), or no certificate.
fn rogue_tls(identity: Option<&Certs>) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&cluster_certs().ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some(certs) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// A process that knows a node's bus address and the cluster id but holds no certificate of
/// the cluster's CA sends a vote request and an append in plaintext, over TLS with another
/// CA's certificate and over TLS with none, and a node of another CA is met: the cluster ignores all of it
/// (counted in INFO raft) and keeps its leader, term and data.
#[test]
fn peers_without_the_cluster_certificate_are_ignored() {
    use rockraft_raftstore::eraftpb::MessageType;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = InProcessCluster::start_with(3, on_tls_cluster);
    let l = cluster.leader();
    let shared = cluster.shared(l);
    let mut c = cluster.client(l);
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let term = info_field(&mut c, "raft", "raft_term").unwrap();
    let digest: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    // A vote request and an append, back to back on each connection.
    let mut vote = Vec::new();
    for t in [MessageType::MsgRequestVote, MessageType::MsgAppend] {
        vote.extend(rockraft_tests::rogue_frame(
            shared.network.cluster_id(),
            shared.node_id,
            t,
        ));
    }
    let bus = std::net::SocketAddr::from(([127, 0, 0, 1], shared.me.bus_port as u16));
    let mut plain = std::net::TcpStream::connect(bus).unwrap();
    let _ = plain.write_all(&vote);
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = plain.read_to_end(&mut Vec::new());
    let other_dir = tempfile::tempdir().unwrap();
    let other = make_certs(other_dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for identity in [Some(&other), None] {
        let connector = rogue_tls(identity);
        let answered = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(bus).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            // Under TLS 1.3 the dialer may believe the handshake done before the listener
            // has checked its certificate: the frame is then sent and must go nowhere.
            let handshake = connector.connect(name, tcp);
            let Ok(Ok(mut tls)) = tokio::time::timeout(Duration::from_secs(10), handshake).await
            else {
                return 0;
            };
            let _ = tls.write_all(&vote).await;
            let mut buf = [0u8; 64];
            tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or(0)
        });
        assert_eq!(
            answered,
            0,
            "the bus answered a peer with {:?}",
            identity.map(|_| "another CA")
        );
    }
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(&mut c, "raft", "raft_bus_auth_failures")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 3)
    }));
    // A node whose certificate another CA signed cannot be met into the cluster.
    let outsider_dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(outsider_dir.path().join("node"));
    on_tls_cluster(&mut cfg);
    cfg.tls_cert_file = Some(other.cert.clone());
    cfg.tls_key_file = Some(other.key.clone());
    cfg.tls_ca_cert_file = Some(other.ca.clone());
    let outsider = InProcess::start_with(cfg);
    let outsider_tls = outsider.handle.as_ref().unwrap().shared().me.tls_port;
    let met: redis::RedisResult<()> = redis::cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(outsider_tls)
        .query(&mut c);
    let e = met.unwrap_err().to_string();
    assert!(e.contains("cannot meet"), "{e}");
    assert_eq!(
        info_field(&mut c, "raft", "raft_voters").as_deref(),
        Some("3")
    );
    assert_eq!(
        info_field(&mut c, "raft", "raft_learners").as_deref(),
        Some("0")
    );
    // Nothing changed: same leader, same term, same data everywhere.
    assert_eq!(
        info_field(&mut c, "raft", "raft_role").as_deref(),
        Some("leader")
    );
    assert_eq!(info_field(&mut c, "raft", "raft_term").unwrap(), term);
    let _: () = redis::cmd("SET").arg("k2").arg("v2").query(&mut c).unwrap();
    let _: i64 = redis::cmd("DEL").arg("k2").query(&mut c).unwrap();
    assert!(cluster.wait_converged(Duration::from_secs(20)));
    let after: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    assert_eq!(after, digest);
}
