//! The command line: parse arguments, call the engine, print results for people.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use messaging_core::ingest::{IngestReport, IngestSource, UserFileFormat};
use messaging_core::{Engine, EngineError};

use crate::config::Config;

/// The WhatsApp messaging platform.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Import a file into the database.
    Ingest {
        #[command(subcommand)]
        what: IngestCommand,
    },
    /// Create the database or bring its schema up to date, then exit.
    Migrate,
    /// Load the sample files, a demo template, segment and campaigns, launch the demo
    /// campaign, and serve: the product at work on the sandbox provider in one command.
    Demo {
        /// The folder with `users.csv`, `users.json` and `events.jsonl`.
        #[arg(long, default_value = "samples")]
        samples: PathBuf,
        /// Load the demo and exit instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
}

#[derive(Subcommand, Debug)]
enum IngestCommand {
    /// Users from CSV (header line) or JSON (array or one object per line).
    Users {
        /// The file to import; `-` reads standard input.
        file: PathBuf,
        /// The file's format; guessed from its extension when not given.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Trigger events from JSONL (one JSON object per line).
    Events {
        /// The file to import; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(clap::Args, Debug)]
struct OutputArgs {
    /// Print the report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Exit with status 2 when any row was invalid.
    #[arg(long)]
    fail_on_invalid: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Csv,
    Json,
}

impl Args {
    /// Whether the arguments ask for the server.
    pub fn is_serve(&self) -> bool {
        matches!(
            self.command,
            None | Some(Command::Serve)
                | Some(Command::Demo {
                    no_serve: false,
                    ..
                })
        )
    }
}

/// Runs the command the arguments name.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::http::serve(config).await,
        Command::Demo { samples, no_serve } => {
            // Before the database is opened, so a demo that cannot run creates nothing.
            messaging_core::engine::check_demo_samples(&samples)?;
            let engine = open_engine(&config).await?;
            let summary = engine.load_demo(&samples).await.with_context(|| {
                format!(
                    "cannot load the demo from {} (run it from the project folder, or pass \
                     --samples DIR)",
                    samples.display()
                )
            })?;
            for (file, report) in &summary.imports {
                println!(
                    "{file}: {} rows, {} new, {} updated, {} duplicates, {} invalid",
                    report.total,
                    report.inserted,
                    report.updated,
                    report.duplicates,
                    report.invalid
                );
                print_invalid_rows(report);
            }
            if summary.created {
                println!(
                    "created the demo templates, segment and campaigns; \"{}\" launched with {} \
                     messages",
                    messaging_core::engine::DEMO_CAMPAIGN,
                    summary.launched_messages
                );
            } else {
                println!("the demo campaigns exist already; nothing new created");
            }
            if config.twilio_configured() {
                println!(
                    "note: Twilio credentials are set; the demo templates carry a placeholder \
                     Content SID that Twilio refuses (21655). Unset them to watch the sandbox."
                );
            }
            if no_serve {
                return Ok(());
            }
            println!(
                "serving on http://{}: Swagger UI at /apidocs/, messages at /api/v1/messages, \
                 statistics at /api/v1/stats",
                config.bind
            );
            drop(engine);
            crate::http::serve(config).await
        }
        Command::Migrate => {
            open_engine(&config).await?;
            println!(
                "database {} is up to date",
                messaging_core::store::redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Ingest { what } => {
            let engine = open_engine(&config).await?;
            let (ingestion, by_name, output) = match what {
                IngestCommand::Users {
                    file,
                    format,
                    output,
                } => {
                    let format = match format {
                        Some(Format::Csv) => UserFileFormat::Csv,
                        Some(Format::Json) => UserFileFormat::Json,
                        None => UserFileFormat::from_path(&file)
                            .with_context(|| unknown_format(&file))?,
                    };
                    let (input, progress) = open_input(&file)?;
                    let ingestion = engine.ingest_users(input, format, source(&file)).await;
                    progress.finish_and_clear();
                    (stopped_with_report(ingestion)?, Vec::new(), output)
                }
                IngestCommand::Events { file, output } => {
                    let (input, progress) = open_input(&file)?;
                    let answer = engine.ingest_events(input, source(&file)).await;
                    progress.finish_and_clear();
                    let answer = stopped_with_report(answer.map(|a| (a.ingestion, a.by_name)))?;
                    (answer.0, answer.1, output)
                }
            };
            let report = &ingestion.report;
            if output.json {
                let by_name: Vec<_> = by_name
                    .iter()
                    .map(|n| {
                        let mut entry = serde_json::to_value(n).unwrap_or_default();
                        entry["note"] = serde_json::json!(n.explanation());
                        entry
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "id": ingestion.id,
                        "report": report,
                        "by_event_name": by_name,
                    }))?
                );
            } else {
                print_report(report);
                for name in &by_name {
                    if let Some(note) = name.explanation() {
                        println!("{}: {note}", name.name);
                    } else {
                        for t in &name.triggered {
                            println!(
                                "{}: campaign \"{}\" ran {} times, {} messages",
                                name.name, t.campaign.name, t.runs, t.messages
                            );
                        }
                    }
                }
                println!("recorded as ingestion {}", ingestion.id);
            }
            if output.fail_on_invalid && report.invalid > 0 {
                std::process::exit(2);
            }
            Ok(())
        }
    }
}

/// The source an import of `path` is recorded with: the file's name.
fn source(path: &Path) -> IngestSource {
    if path == Path::new("-") {
        return IngestSource::File("stdin".to_owned());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    IngestSource::File(name)
}

/// When an import stopped part-way, shows what it did before the error is reported.
fn stopped_with_report<T>(result: Result<T, EngineError>) -> Result<T, EngineError> {
    if let Err(EngineError::Ingest(error)) = &result
        && let Some(report) = error.partial_report()
    {
        println!("the import stopped part-way; rows handled before the stop:");
        print_report(report);
        println!();
    }
    result
}

async fn open_engine(config: &Config) -> anyhow::Result<Engine> {
    Engine::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            messaging_core::store::redact_url(&config.database_url)
        )
    })
}

type Input = Box<dyn std::io::Read + Send>;

/// Opens the input with a progress bar over its bytes (a spinner for standard input).
fn open_input(path: &Path) -> anyhow::Result<(Input, ProgressBar)> {
    if path == Path::new("-") {
        let spinner = ProgressBar::new_spinner();
        spinner.set_message("reading standard input");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        return Ok((Box::new(spinner.wrap_read(std::io::stdin())), spinner));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{} is a directory, not a file", path.display());
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )
        .expect("the progress template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(format!("ingesting {}", path.display()));
    Ok((Box::new(bar.wrap_read(file)), bar))
}

fn print_report(report: &IngestReport) {
    println!("rows read:   {}", report.total);
    println!("inserted:    {}", report.inserted);
    println!("updated:     {}", report.updated);
    println!("duplicates:  {}", report.duplicates);
    println!("invalid:     {}", report.invalid);
    print_invalid_rows(report);
}

/// Why the format of `file` must be given, with the command to type.
fn unknown_format(file: &Path) -> String {
    let program = "messaging-server ingest users";
    if file == Path::new("-") {
        format!(
            "standard input has no file name to tell its format by; say it with --format:\n  \
             {program} - --format csv < users.csv\n  {program} - --format json < users.json"
        )
    } else {
        format!(
            "cannot tell the format of {0} from its name (.csv, .txt, .json, .jsonl or .ndjson); say \
             it with --format:\n  {program} {0} --format csv",
            file.display()
        )
    }
}

/// The invalid rows of a report (the first 50), each with its line, field and reason.
fn print_invalid_rows(report: &IngestReport) {
    const SHOWN: usize = 50;
    if !report.errors.is_empty() {
        println!();
        println!("invalid rows:");
        for error in report.errors.iter().take(SHOWN) {
            let field = if error.field.is_empty() {
                "row"
            } else {
                &error.field
            };
            println!("  line {:>6}  {:<14} {}", error.line, field, error.reason);
        }
        let more = (report.errors.len().saturating_sub(SHOWN)) as u64 + report.errors_not_listed;
        if more > 0 {
            println!("  … and {more} more (use --json for the full list)");
        }
    }
}
