//! The deployment files (deploy/) against real processes: the Grafana dashboard asks only for
//! metrics a live node exports, and the join, ready and leave scripts the StatefulSet and the
//! compose file run form a cluster and shrink it. (`deploy/validate.sh` checks the files
//! against their schemas and linters; `scripts/test.sh` runs it.)

use std::path::PathBuf;
use std::process::Command;

use redis::cmd;
use rockraft_tests::{free_port, Process};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn check(scrape: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.txt");
    std::fs::write(&file, scrape).unwrap();
    let out = Command::new("python3")
        .arg(deploy_dir().join("check_dashboard.py"))
        .arg(deploy_dir().join("grafana/rockraft.json"))
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_dashboard_asks_only_for_metrics_a_live_node_exports() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let node = Process::start_args(dir.path(), free_port(), Some(metrics_port));
    let _: () = cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut node.client())
        .unwrap();
    let want = [
        "rockraft_commands_total",
        "rockraft_raft_leader_changes_total",
    ];
    let body = rockraft_tests::scrape_metrics(metrics_port, &want);
    assert!(want.iter().all(|n| body.contains(n)), "{body}");
    let (ok, report) = check(&body);
    assert!(ok, "{report}");
    // The check can fail: a scrape without the snapshot counters does.
    let cut: String = body
        .lines()
        .filter(|l| !l.contains("rockraft_snapshots_sent_total"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, report) = check(&cut);
    assert!(
        !ok && report.contains("missing: rockraft_snapshots_sent_total"),
        "{report}"
    );
}

#[test]
fn the_join_ready_and_leave_scripts_form_and_shrink_a_cluster() {
    let out = Command::new("bash")
        .arg(deploy_dir().join("test_scripts.sh"))
        .env(
            "TEST_PORTS",
            (0..6)
                .map(|_| free_port().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("node 3 removed, 2 voters take writes"),
        "{text}"
    );
}
