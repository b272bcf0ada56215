//! The wire format, byte for byte: replies and error strings as Redis 7 sends them,
//! pipelining, inline commands, RESP3, and what malformed input does to a connection.

use rockraft_tests::{resp, InProcess, Raw};

fn node() -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcess::start(&dir.path().join("n"));
    (dir, node)
}

#[test]
fn replies_are_byte_identical_to_redis() {
    let (_d, n) = node();
    let mut c = Raw::connect(n.addr());
    assert_eq!(c.roundtrip(&resp(&[b"PING"])), "+PONG\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"PING", b"hi"])), "$2\r\nhi\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"SET", b"k", b"v"])), "+OK\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"GET", b"k"])), "$1\r\nv\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"GET", b"missing"])), "$-1\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"DEL", b"k", b"missing"])), ":1\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"INCR", b"n"])), ":1\r\n");
    assert_eq!(
        c.roundtrip(&resp(&[b"MGET", b"n", b"none"])),
        "*2\r\n$1\r\n1\r\n$-1\r\n"
    );
    assert_eq!(c.roundtrip(&resp(&[b"TYPE", b"n"])), "+string\r\n");
    assert_eq!(c.roundtrip(&resp(&[b"TYPE", b"none"])), "+none\r\n");
}

#[test]
fn error_strings_match_redis_and_keep_the_connection() {
    let (_d, n) = node();
    let mut c = Raw::connect(n.addr());
    assert_eq!(
        c.roundtrip(&resp(&[b"GET"])),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"FOO", b"a", b"b"])),
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(c.roundtrip(&resp(&[b"SET", b"s", b"abc"])), "+OK\r\n");
    assert_eq!(
        c.roundtrip(&resp(&[b"INCR", b"s"])),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"SET", b"k", b"v", b"BOGUS"])),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"SET", b"k", b"v", b"EX", b"0"])),
        "-ERR invalid expire time in 'set' command\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"INCRBYFLOAT", b"s", b"x"])),
        "-ERR value is not a valid float\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"SELECT", b"1"])),
        "-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"CLIENT", b"NOPE"])),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"RENAME", b"nokey", b"x"])),
        "-ERR no such key\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"SET", b"big", b"9223372036854775807"])),
        "+OK\r\n"
    );
    assert_eq!(
        c.roundtrip(&resp(&[b"INCR", b"big"])),
        "-ERR increment or decrement would overflow\r\n"
    );
    // Still usable after all of that.
    assert_eq!(c.roundtrip(&resp(&[b"PING"])), "+PONG\r\n");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_d, n) = node();
    let mut c = Raw::connect(n.addr());
    let mut batch = Vec::new();
    for i in 0..100 {
        batch.extend(resp(&[
            b"SET",
            format!("p{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        batch.extend(resp(&[b"GET", format!("p{i}").as_bytes()]));
        batch.extend(resp(&[b"INCR", b"counter"]));
    }
    c.send(&batch);
    for i in 0..100 {
        assert_eq!(c.read_reply(), "+OK\r\n");
        assert_eq!(
            c.read_reply(),
            format!("${}\r\n{i}\r\n", i.to_string().len())
        );
        assert_eq!(c.read_reply(), format!(":{}\r\n", i + 1));
    }
}

#[test]
fn inline_commands() {
    let (_d, n) = node();
    let mut c = Raw::connect(n.addr());
    assert_eq!(c.roundtrip(b"PING\r\n"), "+PONG\r\n");
    assert_eq!(c.roundtrip(b"set greeting \"hello world\"\r\n"), "+OK\r\n");
    assert_eq!(c.roundtrip(b"GET greeting\n"), "$11\r\nhello world\r\n");
    // Blank lines are ignored, as in Redis.
    assert_eq!(c.roundtrip(b"\r\n\r\nPING\r\n"), "+PONG\r\n");
}

#[test]
fn resp3_after_hello_3() {
    let (_d, n) = node();
    let mut c = Raw::connect(n.addr());
    let hello = c.roundtrip(&resp(&[b"HELLO", b"3"]));
    assert!(
        hello.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{hello}"
    );
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"), "{hello}");
    assert_eq!(c.roundtrip(&resp(&[b"GET", b"missing"])), "_\r\n");
    let cfg = c.roundtrip(&resp(&[b"CONFIG", b"GET", b"databases"]));
    assert_eq!(cfg, "%1\r\n$9\r\ndatabases\r\n$1\r\n1\r\n");
    assert_eq!(
        c.roundtrip(&resp(&[b"HELLO", b"4"])),
        "-NOPROTO unsupported protocol version\r\n"
    );
    // Back to RESP2.
    assert!(c.roundtrip(&resp(&[b"HELLO", b"2"])).starts_with("*14\r\n"));
    assert_eq!(c.roundtrip(&resp(&[b"GET", b"missing"])), "$-1\r\n");
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let (_d, n) = node();
    let mut good = Raw::connect(n.addr());
    assert_eq!(good.roundtrip(&resp(&[b"SET", b"k", b"v"])), "+OK\r\n");
    for (input, error) in [
        (
            &b"*x\r\n"[..],
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut bad = Raw::connect(n.addr());
        assert_eq!(
            bad.roundtrip(input),
            error,
            "for {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(bad.is_closed(), "connection should close after {error}");
    }
    assert_eq!(good.roundtrip(&resp(&[b"GET", b"k"])), "$1\r\nv\r\n");
}

#[test]
fn bulk_over_the_limit_is_refused_before_its_body() {
    let (_d, n) = node();
    let mut admin = Raw::connect(n.addr());
    assert_eq!(
        admin.roundtrip(&resp(&[b"CONFIG", b"SET", b"proto-max-bulk-len", b"1024"])),
        "+OK\r\n"
    );
    let mut c = Raw::connect(n.addr());
    // Only the header is sent: the node must not wait for 2000 bytes that never come.
    assert_eq!(
        c.roundtrip(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n"),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(c.is_closed());
    let mut ok = Raw::connect(n.addr());
    let value = vec![b'x'; 1024];
    assert_eq!(ok.roundtrip(&resp(&[b"SET", b"k", &value])), "+OK\r\n");
}

#[test]
fn large_values_round_trip() {
    let (_d, n) = node();
    let mut c = n.client();
    let value: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut c)
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert_eq!(back, value);
}

#[test]
fn garbage_never_takes_the_node_down() {
    let (_d, n) = node();
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..50 {
        let mut junk = Vec::new();
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(b"*$\r\n0123456789-+:abcSETGET \"'"[(seed % 29) as usize]);
        }
        if let Ok(mut s) = std::net::TcpStream::connect(n.addr()) {
            use std::io::Write;
            let _ = s.write_all(&junk);
        }
    }
    let mut c = Raw::connect(n.addr());
    assert_eq!(c.roundtrip(&resp(&[b"PING"])), "+PONG\r\n");
}
