//! The `rockraft-server` binary: flags, logging, signals; everything else is the library.

use rockraft_server::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: allocation and free were a fifth of the server's CPU under
/// pipelined writes (`perf`, issue 6), mostly per-request buffers freed on another thread.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = Config::load();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|e| {
        eprintln!("invalid --log-level '{}': {e}", config.log_level);
        std::process::exit(2);
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    for w in &config.file_warnings {
        tracing::warn!("{w}");
    }
    // A panic anywhere (a failed raft log write, a corrupt entry) stops the whole node: it must
    // not keep answering clients with state that memory and disk disagree on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("fatal: {info}; stopping the node");
        default_hook(info);
        std::process::exit(101);
    }));
    // Crash tests configure failpoints through the FAILPOINTS environment variable; only a
    // build with the `failpoints` feature acts on them.
    let _failpoints = fail::FailScenario::setup();
    if cfg!(not(feature = "failpoints")) && std::env::var_os("FAILPOINTS").is_some() {
        tracing::warn!("FAILPOINTS is set but this build has no failpoints; ignored");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rockraft-io")
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async move {
        let server = match rockraft_server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return 1;
            }
        };
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = server.shutdown_requested() => {}
        }
        tracing::info!("shutting down");
        server.shutdown().await;
        tracing::info!("bye");
        0
    });
    std::process::exit(code);
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
