//! TLS for clients: `redis-cli --tls` against the TLS port, with and without a client
//! certificate, a plaintext client on the TLS port, and bad certificate files. The
//! certificates are made in the test (rcgen).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rockraft_server::config::Config;
use rockraft_tests::{free_port, InProcess};

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
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(names.clone()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, names[0].clone());
        p.extended_key_usages = vec![usage];
        let k = KeyPair::generate().unwrap();
        let c = p.signed_by(&k, &ca, &ca_key).unwrap();
        (c.pem(), k.serialize_pem())
    };
    let (cert, key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) =
        leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);
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
