//! `messaging-server`: the platform's HTTP server and command line.
//!
//! ```text
//! messaging-server                      # serve (the default)
//! messaging-server ingest users FILE    # import users from CSV or JSON
//! messaging-server ingest events FILE   # record trigger events from JSONL
//! messaging-server migrate              # create or upgrade the database
//! ```

use messaging_server::cli;

use std::io::IsTerminal;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    messaging_core::memory::tune_allocator();
    let _ = dotenvy::dotenv();
    let args = cli::Args::parse();
    // The server logs its life; one-shot commands print their own results and log only trouble.
    let default_filter = if args.is_serve() {
        "info,poem=warn"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    cli::run(args).await
}
