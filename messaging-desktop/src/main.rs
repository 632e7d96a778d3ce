//! `messaging-desktop`: the desktop front end, driving the same engine on a local SQLite file.
//!
//! The windowed interface is built in its own piece of work; until then this binary opens the
//! local database (creating and migrating it) and prints what it holds, so the crate already
//! exercises the engine the way the desktop app will.

use anyhow::Context;
use messaging_core::Engine;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    messaging_core::memory::tune_allocator();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://messaging.db".into());
    let engine = Engine::open(&url)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    println!("database: {url}");
    println!("users:    {}", engine.count_users().await?);
    for topic in engine.topics().await? {
        println!(
            "topic {:<20} {} subscriber(s)",
            topic.topic, topic.subscribers
        );
    }
    Ok(())
}
