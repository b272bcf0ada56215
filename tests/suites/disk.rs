//! A disk that fills up: the node stops acknowledging writes (it stops, with a clear log line),
//! and every write it did acknowledge is on disk. Needs root, to mount a small tmpfs.

use std::process::Command;
use std::time::Duration;

use redis::cmd;
use rockraft_tests::{free_port, wait_until, Process};

/// A small tmpfs, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a tmpfs at {} failed: this test needs root",
            at.display()
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_node_and_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&root.path().join("disk"), "24m");
    let data = disk.0.join("n");
    let mut node = Process::start(&data, free_port());
    let mut c = node.client();
    // Random bytes: the raft log and RocksDB compress, and must not fit them in 24 MB.
    let value: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
    let mut acked = Vec::new();
    for i in 0..2000 {
        let r: redis::RedisResult<()> = cmd("SET").arg(format!("k{i}")).arg(&value).query(&mut c);
        match r {
            Ok(()) => acked.push(i),
            Err(_) => break,
        }
    }
    assert!(acked.len() < 2000, "24 MB cannot hold 128 MB of values");
    assert!(
        acked.len() > 10,
        "some writes fit before the disk filled: {}",
        acked.len()
    );
    // The node stopped rather than carry on with a log it could not write.
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            node.child.try_wait(),
            Ok(Some(_))
        )),
        "the node must stop when it cannot write its log"
    );
    let log = node.log();
    assert!(
        log.contains("fatal") && (log.contains("No space left") || log.contains("space")),
        "a clear log line names the problem:\n{log}"
    );
    drop(node);
    // Move the data to a disk with room and start again: every acknowledged write is there.
    let moved = root.path().join("moved");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(ok.success());
    drop(disk);
    let node = Process::start(&moved, free_port());
    let mut c = node.client();
    for i in &acked {
        let v: Option<Vec<u8>> = cmd("GET").arg(format!("k{i}")).query(&mut c).unwrap();
        assert_eq!(
            v.as_deref(),
            Some(&value[..]),
            "acknowledged write k{i} lost"
        );
    }
}
