//! Nothing to link: the crate exists for its `hot_path` criterion benchmark
//! (`cargo bench -p rockraft-benches`).
