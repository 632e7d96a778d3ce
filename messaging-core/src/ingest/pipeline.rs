//! The ingestion pipeline: a parser on a blocking thread hands batches of parsed records over a
//! small bounded channel to the writer, which stores each batch in one transaction. The two
//! run side by side, and the channel's bound keeps memory flat.

use std::future::Future;

use tokio::sync::mpsc;

use super::{BATCH_SIZE, IngestError, IngestReport, MAX_LISTED_ERRORS, RowError};
use crate::domain::FieldError;
use crate::store::StoreError;

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Inserted,
    Updated,
    Duplicate,
}

impl From<crate::domain::UpsertOutcome> for Outcome {
    fn from(outcome: crate::domain::UpsertOutcome) -> Self {
        match outcome {
            crate::domain::UpsertOutcome::Inserted => Outcome::Inserted,
            crate::domain::UpsertOutcome::Updated => Outcome::Updated,
        }
    }
}

impl From<crate::store::RecordOutcome> for Outcome {
    fn from(outcome: crate::store::RecordOutcome) -> Self {
        match outcome {
            crate::store::RecordOutcome::Recorded => Outcome::Inserted,
            crate::store::RecordOutcome::Duplicate => Outcome::Duplicate,
        }
    }
}

/// A parsed record on its way to the store, and whether the parser already saw its key.
pub(crate) struct Parsed<T> {
    pub(crate) record: T,
    pub(crate) repeat: bool,
}

/// The parser's side: collects records into batches and tallies invalid rows.
pub(crate) struct Sink<T> {
    sender: mpsc::Sender<Vec<Parsed<T>>>,
    /// The writer says here when it has finished a batch. The parser hands over a batch only
    /// after the previous one was written, so at most two batches exist at a time: the one
    /// being written and the one being filled.
    written: std::sync::mpsc::Receiver<()>,
    in_flight: bool,
    batch: Vec<Parsed<T>>,
    report: IngestReport,
}

/// The writer has stopped (it failed); the parser should stop too.
pub(crate) struct WriterStopped;

impl<T> Sink<T> {
    /// A valid record; `repeat` when its key appeared earlier in the same input.
    pub(crate) fn valid(&mut self, record: T, repeat: bool) -> Result<(), WriterStopped> {
        self.report.total += 1;
        self.batch.push(Parsed { record, repeat });
        if self.batch.len() >= BATCH_SIZE {
            self.flush()?;
        }
        Ok(())
    }

    /// An invalid row and all its problems.
    pub(crate) fn invalid(&mut self, line: u64, errors: Vec<FieldError>) {
        self.report.total += 1;
        self.report.invalid += 1;
        for error in errors {
            if self.report.errors.len() < MAX_LISTED_ERRORS {
                self.report.errors.push(RowError {
                    line,
                    field: error.field,
                    reason: error.reason,
                });
            } else {
                self.report.errors_not_listed += 1;
            }
        }
    }

    fn flush(&mut self) -> Result<(), WriterStopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.in_flight {
            self.written.recv().map_err(|_| WriterStopped)?;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_SIZE));
        self.sender
            .blocking_send(batch)
            .map_err(|_| WriterStopped)?;
        self.in_flight = true;
        Ok(())
    }
}

/// Runs `parse` on a blocking thread and `write` on the caller's task until the input ends.
/// `write` answers one [`Outcome`] per record of the batch it is given.
pub(crate) async fn run<T, P, W, F>(parse: P, mut write: W) -> Result<IngestReport, IngestError>
where
    T: Send + 'static,
    P: FnOnce(&mut Sink<T>) -> Result<(), IngestError> + Send + 'static,
    W: FnMut(Vec<T>) -> F,
    F: Future<Output = Result<Vec<Outcome>, StoreError>>,
{
    let (sender, mut receiver) = mpsc::channel::<Vec<Parsed<T>>>(1);
    let (done, written) = std::sync::mpsc::channel();
    let parser = tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            sender,
            written,
            in_flight: false,
            batch: Vec::with_capacity(BATCH_SIZE),
            report: IngestReport::default(),
        };
        let parsed = parse(&mut sink);
        // A flush can only fail if the writer stopped; its error is the one to report.
        let _ = sink.flush();
        (parsed, sink.report)
    });

    let mut written = IngestReport::default();
    let mut write_error = None;
    while let Some(batch) = receiver.recv().await {
        let repeats: Vec<bool> = batch.iter().map(|p| p.repeat).collect();
        let records = batch.into_iter().map(|p| p.record).collect();
        match write(records).await {
            Ok(outcomes) => {
                for (outcome, repeat) in outcomes.into_iter().zip(repeats) {
                    match (repeat, outcome) {
                        (true, _) | (_, Outcome::Duplicate) => written.duplicates += 1,
                        (false, Outcome::Inserted) => written.inserted += 1,
                        (false, Outcome::Updated) => written.updated += 1,
                    }
                }
            }
            Err(error) => {
                write_error = Some(error);
                break;
            }
        }
        // The parser may have stopped already; then nobody needs to know.
        let _ = done.send(());
    }
    // Closing both channels wakes a parser waiting to hand over a batch or for an
    // acknowledgement, so it stops instead of waiting forever.
    drop(receiver);
    drop(done);
    let (parsed, mut report) = parser.await.map_err(|_| StoreError::WorkerGone)?;
    report.inserted = written.inserted;
    report.updated = written.updated;
    report.duplicates = written.duplicates;
    // Rows the writer never got (after a failed write) are not in the report's counts.
    report.total = report.inserted + report.updated + report.duplicates + report.invalid;
    let cause = match (write_error, parsed) {
        (Some(error), _) => IngestError::Store(error),
        (None, Err(error)) => error,
        (None, Ok(())) => return Ok(report),
    };
    Err(if report.total == 0 {
        cause
    } else {
        IngestError::Stopped {
            cause: Box::new(cause),
            report: Box::new(report),
            ingestion: None,
        }
    })
}
