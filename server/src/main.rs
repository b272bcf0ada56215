//! The `rockraft-server` binary: flags, logging, signals; everything else is the library.

use clap::Parser;
use rockraft_server::Config;
use tracing_subscriber::EnvFilter;

fn main() {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|e| {
        eprintln!("invalid --log-level '{}': {e}", config.log_level);
        std::process::exit(2);
    });
    tracing_subscriber::fmt().with_env_filter(filter).init();
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
        wait_for_signal().await;
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
