//! The fault campaign's checker must catch a broken server. A server built with failpoints
//! and `stale_reads` on serves every read locally without ReadIndex (stale under
//! partitions), and with `ack_without_write` it acknowledges 1% of SETs without writing them;
//! `rockraft-ctl campaign` has to flag a key and count lost writes, and exit 1. Usually it
//! proves the violation ("NOT LINEARIZABLE"); when the history around the stale read is too
//! tangled to prove within the search budget it says "undecided", which also fails the run.
//! (scripts/test.sh runs a campaign against the real server, which must pass; the checker's
//! own tests check simulated histories of a real register, with hundreds of timed-out writes
//! per key, and require every one decided.)

use std::process::Command;

use rockraft_tests::workspace_binary;

#[test]
fn a_campaign_catches_a_broken_server() {
    let out = Command::new(workspace_binary("rockraft-ctl"))
        .args([
            "campaign",
            "--nodes",
            "3",
            "--duration",
            "16",
            "--seed",
            "5",
        ])
        .args(["--nemeses", "partition", "--keys", "2", "--fault-secs", "6"])
        .args(["--concurrency", "4"])
        .arg("--server-bin")
        .arg(workspace_binary("rockraft-server-failpoints"))
        .env(
            "FAILPOINTS",
            "stale_reads=return;ack_without_write=1%return",
        )
        .output()
        .expect("run rockraft-ctl campaign");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("NOT LINEARIZABLE") || text.contains("undecided"),
        "{text}"
    );
    assert!(!text.contains("0 anomalies, 0 undecided"), "{text}");
    assert!(!text.contains("acknowledged writes lost: 0 "), "{text}");
    assert!(text.contains("result: FAIL"), "{text}");
}
