//! Starts the desktop app: a Tokio runtime for the engine, and the window.

use messaging_desktop::app::DesktopApp;

fn main() -> anyhow::Result<()> {
    messaging_core::memory::tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Messaging")
            .with_inner_size([1180.0, 760.0])
            .with_min_inner_size([720.0, 480.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "messaging-desktop",
        options,
        Box::new(move |cc| Ok(Box::new(DesktopApp::from_creation(cc, handle)))),
    )
    .map_err(|error| anyhow::anyhow!("the window could not open: {error}"))?;
    drop(runtime);
    Ok(())
}
