//! The fault campaign's checker must catch a broken server. A server built with failpoints
//! and `stale_reads` on serves every read locally without ReadIndex; under partitions that
//! returns stale data, and `rockraft-ctl campaign` has to say so and exit 1. (scripts/test.sh
//! runs a campaign against the real server, which must pass.)

use std::process::Command;

use rockraft_tests::workspace_binary;

#[test]
fn a_campaign_catches_stale_reads() {
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
        .arg("--server-bin")
        .arg(workspace_binary("rockraft-server-failpoints"))
        .env("FAILPOINTS", "stale_reads=return")
        .output()
        .expect("run rockraft-ctl campaign");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT LINEARIZABLE"), "{text}");
    assert!(text.contains("result: FAIL"), "{text}");
}
