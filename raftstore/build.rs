//! Generates Rust types for `proto/*.proto` with the pure-Rust protobuf compiler (no protoc).

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=proto/raftstore.proto");
    protobuf_codegen_pure::Codegen::new()
        .out_dir(&out)
        .include("proto")
        .input("proto/raftstore.proto")
        .run()
        .expect("protobuf codegen");
    // The generated file starts with inner attributes and doc comments, which `include!` does
    // not accept inside a module.
    let file = out.join("raftstore.rs");
    let text = fs::read_to_string(&file).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("#!["))
        .map(|l| format!("{}\n", l.replacen("//!", "//", 1)))
        .collect();
    fs::write(&file, kept).unwrap();
}
