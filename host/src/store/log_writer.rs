//! The request-log writer: a thread that receives finished requests and writes them in
//! batches (rows with their metadata, captured bodies and usage-ledger buckets in one
//! transaction), so the request path never waits on the database. After each batch,
//! observers (metrics, trace export) see the rows; every ten minutes, logs past their
//! tenant's retention are deleted.
//!
//! Every row is first appended to the usage [`journal`](super::journal) on the request
//! path, then handed to the writer over a bounded queue. When the queue is full the
//! row is not dropped: it waits in the journal and the writer reads it from there. A
//! batch the database refuses (a full disk, say) is kept and retried, never dropped;
//! each written batch records how far into the journal it reached, so a crash loses
//! nothing that was acknowledged and writes nothing twice.

use super::journal::{HEADER, Journal, Pos, read_range};
use super::writer_sched::WriterSched;
use super::{CapturedBodies, LogRecord};
use crate::ledger::{Amount, Ledger, LedgerEntry, Limit, ScopeKey, ScopeKind};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a writer holding rows looks for more (and for flush requests).
const POLL: Duration = Duration::from_millis(2);

enum Msg {
    /// A finished request, and where it sits in the journal (`None`: the journal could
    /// not take it; it exists only here).
    Record(Box<LogRecord>, Option<(Pos, Pos)>),
    Flush(mpsc::Sender<()>),
    Shutdown,
}

/// What the writer counts for `/metrics`: rows that waited in the journal, failed
/// journal writes, failed (and retried) batches.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Finished requests that found the writer's queue full and waited in the journal.
    pub log_rows_deferred: std::sync::atomic::AtomicU64,
    /// Failed writes to the usage journal (each refuses new requests until one works).
    pub journal_errors: std::sync::atomic::AtomicU64,
    /// Failed batches of the log writer (retried, never dropped).
    pub log_batch_failures: std::sync::atomic::AtomicU64,
    /// Finished requests in the writer's queue now.
    pub log_rows_queued: std::sync::atomic::AtomicU64,
}

/// Something that sees every finished request after its row is written: it runs on the
/// writer thread, so it must not block (hand slow work to a task of its own).
pub trait LogObserver: Send {
    /// Sees one written batch, oldest first.
    fn observe(&mut self, batch: &[Box<LogRecord>]);
}

/// How long request logs are kept.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Days for tenants without their own setting; 0 keeps logs forever.
    pub default_days: u32,
    /// Tenants' own settings (0 keeps forever).
    pub tenants: HashMap<String, u32>,
    /// Keep the newest row whatever its age, so SQLite never hands out its `rowid`
    /// again: a fleet replica ships rows in `rowid` order.
    pub keep_newest_row: bool,
}

/// The writer's settings.
pub struct WriterOptions {
    /// Most rows written in one transaction.
    pub batch_size: usize,
    /// Longest a row waits before it is written.
    pub flush: Duration,
    /// The ledger whose new limits are stored with each batch.
    pub ledger: Arc<Ledger>,
    /// How long rows are kept, per tenant.
    pub retention: Retention,
    /// Shown every written batch, in order (metrics, trace export).
    pub observers: Vec<Box<dyn LogObserver>>,
    /// Finished requests queued for the writer at most (the rest wait in the journal).
    pub max_queued: usize,
    /// Where the journal lives (`None`: no journal, rows only in memory until written).
    pub journal_dir: Option<std::path::PathBuf>,
    /// Counters of deferred rows and failed batches.
    pub counters: Arc<WriterCounters>,
}

#[cfg(test)]
impl WriterOptions {
    /// A writer for tests: a fresh ledger, no journal, no observers, keep everything.
    pub(crate) fn for_tests(batch_size: usize, flush: Duration) -> Self {
        Self {
            batch_size,
            flush,
            ledger: Arc::new(Ledger::new()),
            retention: Retention::default(),
            observers: Vec::new(),
            max_queued: 1_000,
            journal_dir: None,
            counters: Default::default(),
        }
    }
}

/// Sends finished requests to the writer. Cloning is cheap.
#[derive(Clone)]
pub struct LogSender {
    tx: mpsc::SyncSender<Msg>,
    journal: Option<Arc<Journal>>,
    /// Set when a row found the queue full: the writer reads the journal to catch up.
    deferred: Arc<AtomicBool>,
    counters: Arc<WriterCounters>,
    /// The writer's scheduling class: a sender that finds the queue backing up lifts it.
    sched: Arc<WriterSched>,
}

impl LogSender {
    /// Journals a row (one write, before the request is acknowledged) and queues it
    /// for the writer; never blocks on the writer or the database.
    pub fn send(&self, record: LogRecord) {
        let mut record = Some(Box::new(record));
        if let Some(journal) = &self.journal
            && let Some(r) = &record
        {
            match encode_framed(r) {
                Ok(mut framed) => {
                    let appended = journal.append_framed(&mut framed, |start, end| {
                        if let Some(r) = record.take() {
                            self.queue(r, Some((start, end)));
                        }
                    });
                    if let Err(e) = appended {
                        self.counters.journal_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "cannot append to the usage journal; new requests are refused until it works again");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a log row for the journal"),
            }
        }
        if let Some(r) = record {
            self.queue(r, None);
        }
    }

    fn queue(&self, record: Box<LogRecord>, pos: Option<(Pos, Pos)>) {
        // Counted before it is sent, so the writer never takes away a row not yet added.
        let queued = self
            .counters
            .log_rows_queued
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let sent = self.tx.try_send(Msg::Record(record, pos));
        if sent.is_err() {
            self.counters
                .log_rows_queued
                .fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => self.sched.after_queue(queued),
            Err(TrySendError::Full(Msg::Record(r, Some(_)))) => {
                drop(r);
                self.sched.lift();
                self.deferred.store(true, Ordering::Release);
                self.counters
                    .log_rows_deferred
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.sched.lift();
                tracing::error!(
                    "log writer queue full and the journal unavailable: a log row was lost"
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("request log writer is gone; a log row was dropped");
            }
        }
    }

    /// Whether finished requests can be recorded durably right now; while not, the
    /// gateway refuses new requests rather than serve what it cannot bill.
    pub fn healthy(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.healthy())
    }

    /// Waits until every row finished before this call is in the database.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// The batched writer thread; [`LogWriter::shutdown`] writes what is queued and stops.
pub struct LogWriter {
    tx: LogSender,
    handle: Option<JoinHandle<()>>,
}

impl LogWriter {
    pub(super) fn start(conn: Connection, opts: WriterOptions) -> std::io::Result<Self> {
        let mark = journal_mark(&conn).map_err(std::io::Error::other)?;
        let journal = match &opts.journal_dir {
            Some(dir) => Some(Arc::new(Journal::open(dir, mark.segment)?)),
            None => None,
        };
        let (tx, rx) = mpsc::sync_channel(opts.max_queued.max(1));
        // Lifted only when the queue is nearly full, just before rows would spill into
        // the journal: a writer lifted at its own mark (four batches) on a busy but not
        // saturated core takes the core from requests for work it would have done in
        // the core's idle moments (three plugins at c=64: 10% fewer requests a second).
        let lift_at =
            (opts.max_queued as u64 / 4 * 3).max(behind_rows(opts.batch_size.max(1) as u64));
        let sched = Arc::new(WriterSched::new(lift_at));
        let sender = LogSender {
            tx,
            journal: journal.clone(),
            deferred: Arc::new(AtomicBool::new(false)),
            counters: opts.counters.clone(),
            sched: sched.clone(),
        };
        let deferred = sender.deferred.clone();
        // Everything before the new segment is in the database already (recovered).
        let next = journal.as_ref().map(|j| j.end()).unwrap_or_default();
        if let Some(j) = &journal {
            j.delete_before(next);
        }
        let writer = Writer {
            conn,
            opts,
            journal,
            next,
            deferred,
        };
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // Writing a batch is background work: on a busy core the request
                // threads go first, so a commit does not become a request's tail
                // latency (`writer_sched`).
                let _on = sched.start_on_writer();
                writer.run(rx, &sched)
            })?;
        Ok(Self {
            tx: sender,
            handle: Some(handle),
        })
    }

    /// A handle for request handlers.
    pub fn sender(&self) -> LogSender {
        self.tx.clone()
    }

    /// Writes everything queued so far, then stops the thread.
    pub fn shutdown(mut self) {
        let _ = self.tx.tx.send(Msg::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Queued rows past which the writer is behind: four batches.
fn behind_rows(batch_size: u64) -> u64 {
    4 * batch_size
}

/// How often buckets no window reads any more, and logs past retention, are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows kept in memory while the database refuses batches; beyond them rows wait in
/// the queue and the journal.
const RETAIN_MAX: usize = 50_000;

/// Most rows one look at the journal reads (each read commits before the next).
const CATCH_UP_MAX: usize = 4_096;
/// Longest wait between retries of a refused batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

struct Writer {
    conn: Connection,
    opts: WriterOptions,
    journal: Option<Arc<Journal>>,
    /// The journal position up to which every row is in the database or in the batch.
    next: Pos,
    deferred: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>, sched: &WriterSched) {
        let batch_size = self.opts.batch_size.max(1);
        // A row older than this when written means the writer is not keeping up.
        let behind_ms = 2 * self.opts.flush.as_millis() as i64 + 100;
        let mut batch: Vec<Box<LogRecord>> = Vec::with_capacity(batch_size);
        let mut limits: Vec<Limit> = Vec::new();
        let mut waiters: Vec<mpsc::Sender<()>> = Vec::new();
        let mut backoff: Option<Duration> = None;
        let mut failed_at: Option<Instant> = None;
        // Prune once at start: a gateway that was down for a while catches up at once.
        prune(&self.conn, &self.opts.retention);
        let mut pruned = Instant::now();
        loop {
            let deadline = Instant::now() + self.opts.flush;
            let mut stop = false;
            let room = if backoff.is_some() {
                RETAIN_MAX.saturating_sub(batch.len())
            } else {
                batch_size.saturating_sub(batch.len())
            };
            let mut took = 0;
            // Gather until the batch is full, the flush interval passes, or someone asks.
            // Only an idle writer blocks in `recv` (and is woken by the next row); a
            // writer with rows in hand polls, so a busy gateway does not pay a thread
            // wake-up and a context switch for every row it logs.
            while took < room {
                let idle = batch.is_empty() && waiters.is_empty() && backoff.is_none();
                let msg = if idle {
                    rx.recv_timeout(self.opts.flush.max(Duration::from_millis(100)))
                } else {
                    match rx.try_recv() {
                        Ok(m) => Ok(m),
                        Err(mpsc::TryRecvError::Disconnected) => {
                            Err(mpsc::RecvTimeoutError::Disconnected)
                        }
                        Err(mpsc::TryRecvError::Empty) => {
                            let wait = deadline.saturating_duration_since(Instant::now());
                            if wait.is_zero() {
                                Err(mpsc::RecvTimeoutError::Timeout)
                            } else {
                                std::thread::sleep(wait.min(POLL));
                                continue;
                            }
                        }
                    }
                };
                match msg {
                    Ok(Msg::Record(r, pos)) => {
                        self.opts
                            .counters
                            .log_rows_queued
                            .fetch_sub(1, Ordering::Relaxed);
                        self.take(r, pos, &mut batch);
                        took += 1;
                    }
                    Ok(Msg::Flush(w)) => {
                        waiters.push(w);
                        self.catch_up(&mut batch);
                        break;
                    }
                    Ok(Msg::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        // Drain whatever is already queued: nothing is lost on a clean stop.
                        while let Ok(m) = rx.try_recv() {
                            match m {
                                Msg::Record(r, pos) => {
                                    self.opts
                                        .counters
                                        .log_rows_queued
                                        .fetch_sub(1, Ordering::Relaxed);
                                    self.take(r, pos, &mut batch)
                                }
                                Msg::Flush(w) => waiters.push(w),
                                Msg::Shutdown => {}
                            }
                        }
                        self.catch_up(&mut batch);
                        stop = true;
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                }
            }
            let deferred = self.deferred.swap(false, Ordering::AcqRel);
            if deferred {
                self.catch_up(&mut batch);
            }
            // Keeping up, the writer runs only when the core is otherwise idle; behind
            // (rows waiting in the journal, more than a few batches queued, or the
            // oldest row in hand ended long ago), at its usual priority.
            let lag_ms = batch
                .first()
                .map_or(0, |r| crate::ids::now_ms() - r.ts_ms - r.latency_ms as i64);
            let queued = self.opts.counters.log_rows_queued.load(Ordering::Relaxed);
            sched
                .keep_up(deferred || queued > behind_rows(batch_size as u64) || lag_ms > behind_ms);
            if let Some(j) = &self.journal
                && !j.healthy()
                && j.probe()
            {
                tracing::info!("the usage journal accepts writes again");
            }
            limits.extend(self.opts.ledger.take_new_limits());
            if !batch.is_empty() || !limits.is_empty() {
                match write_batch(
                    &mut self.conn,
                    &batch,
                    &limits,
                    self.journal.as_ref().map(|_| self.next),
                ) {
                    Ok(()) => {
                        for o in &mut self.opts.observers {
                            o.observe(&batch);
                        }
                        batch.clear();
                        limits.clear();
                        if let Some(j) = &self.journal {
                            j.delete_before(self.next);
                        }
                        if let Some(since) = failed_at.take() {
                            tracing::info!(
                                after_ms = since.elapsed().as_millis() as u64,
                                "request logs are written again"
                            );
                        }
                        backoff = None;
                    }
                    Err(e) => {
                        self.opts
                            .counters
                            .log_batch_failures
                            .fetch_add(1, Ordering::Relaxed);
                        if failed_at.is_none() {
                            failed_at = Some(Instant::now());
                        }
                        let wait = backoff
                            .map_or(Duration::from_millis(100), |b| (b * 2).min(MAX_BACKOFF));
                        tracing::error!(error = %e, rows = batch.len(), retry_in_ms = wait.as_millis() as u64, "writing request logs failed; keeping the batch and retrying");
                        backoff = Some(wait);
                        if stop {
                            // Shutting down: what is not written is still in the journal
                            // and is written at the next start.
                            tracing::warn!(
                                rows = batch.len(),
                                "stopping with rows unwritten; they are in the usage journal"
                            );
                        } else {
                            std::thread::sleep(wait);
                        }
                    }
                }
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = Instant::now();
                if let Err(e) = crate::ledger::prune(&self.conn, crate::ids::now_ms()) {
                    tracing::warn!(error = %e, "pruning old usage buckets failed");
                }
                prune(&self.conn, &self.opts.retention);
            }
            if backoff.is_none() {
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            if stop {
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
                return;
            }
        }
    }

    /// Adds a received row to the batch, first reading from the journal any rows that
    /// skipped the queue before it; a row already read from the journal is skipped. When
    /// the gap is too large to read at once, the row is left to a later catch-up (it is
    /// in the journal).
    #[expect(
        clippy::vec_box,
        reason = "rows arrive boxed from the queue; observers take them boxed"
    )]
    fn take(
        &mut self,
        r: Box<LogRecord>,
        pos: Option<(Pos, Pos)>,
        batch: &mut Vec<Box<LogRecord>>,
    ) {
        match pos {
            None => batch.push(r),
            Some((start, _)) if start < self.next => {}
            Some((start, end)) => {
                if start > self.next {
                    self.read_journal(Some(start), batch);
                    if self.next < start {
                        self.deferred.store(true, Ordering::Release);
                        return;
                    }
                }
                batch.push(r);
                self.next = end;
            }
        }
    }

    /// Reads journal rows past `next` (rows that found the queue full), up to the end.
    #[expect(
        clippy::vec_box,
        reason = "rows arrive boxed from the queue; observers take them boxed"
    )]
    fn catch_up(&mut self, batch: &mut Vec<Box<LogRecord>>) {
        self.read_journal(None, batch);
    }

    /// Reads journal rows in `[next, to)` into the batch, at most as many as keep it
    /// under [`RETAIN_MAX`]; sets the deferred flag when rows are left for later.
    #[expect(
        clippy::vec_box,
        reason = "rows arrive boxed from the queue; observers take them boxed"
    )]
    fn read_journal(&mut self, to: Option<Pos>, batch: &mut Vec<Box<LogRecord>>) {
        let Some(j) = &self.journal else { return };
        let to = to.unwrap_or_else(|| j.end());
        if to <= self.next {
            return;
        }
        // A catch-up reads a few batches' worth at a time: the rest stays on disk, not
        // in memory.
        let room = RETAIN_MAX
            .saturating_sub(batch.len())
            .clamp(1, CATCH_UP_MAX);
        match read_range(j.dir(), self.next, Some(to), room) {
            Ok(records) => {
                let full = records.len() >= room;
                for (end, payload) in records {
                    if !payload.is_empty() {
                        match decode(&payload) {
                            Ok(r) => batch.push(Box::new(r)),
                            Err(e) => {
                                tracing::error!(error = %e, "unreadable journal record skipped")
                            }
                        }
                    }
                    self.next = end;
                }
                if full {
                    self.deferred.store(true, Ordering::Release);
                } else {
                    // Past the last whole record (a torn one is never acknowledged).
                    self.next = self.next.max(to);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the usage journal"),
        }
    }
}

/// A log row as journaled: the row itself plus what the row's serde form leaves out.
#[derive(Serialize)]
struct EntryRef<'a> {
    row: &'a LogRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<LedgerRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bodies: Option<&'a CapturedBodies>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    span_us: (i64, i64),
}

#[derive(Serialize)]
struct LedgerRef<'a> {
    tenant: &'a str,
    scopes: ScopesRef<'a>,
    amount: Amount,
    ts_ms: i64,
}

/// Scopes as `[kind label, value]` pairs, written straight from the entry.
struct ScopesRef<'a>(&'a [ScopeKey]);

impl Serialize for ScopesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|k| (k.kind_label(), &*k.value)))
    }
}

#[derive(Deserialize)]
struct Entry {
    row: LogRecord,
    #[serde(default)]
    ledger: Option<LedgerOwned>,
    #[serde(default)]
    bodies: Option<BodiesOwned>,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    span_us: (i64, i64),
}

#[derive(Deserialize)]
struct LedgerOwned {
    tenant: String,
    scopes: Vec<(String, String)>,
    amount: Amount,
    ts_ms: i64,
}

#[derive(Deserialize)]
struct BodiesOwned {
    request: String,
    response: String,
    request_truncated: bool,
    response_truncated: bool,
}

/// Room for most rows' journal records, so encoding one rarely grows its buffer.
const RECORD_CAPACITY: usize = 2048;

/// A row as a journal record: its payload after [`HEADER`] bytes of room for the
/// journal to fill in ([`Journal::append_framed`]).
fn encode_framed(r: &LogRecord) -> serde_json::Result<Vec<u8>> {
    let ledger = r.ledger.as_ref().map(|l| LedgerRef {
        tenant: l.scopes.first().map_or("", |k| &*k.tenant),
        scopes: ScopesRef(&l.scopes),
        amount: l.amount,
        ts_ms: l.ts_ms,
    });
    let mut out = Vec::with_capacity(RECORD_CAPACITY);
    out.extend_from_slice(&[0; HEADER as usize]);
    serde_json::to_writer(
        &mut out,
        &EntryRef {
            row: r,
            ledger,
            bodies: r.bodies.as_deref(),
            traceparent: r.traceparent.as_deref(),
            span_us: r.span_us,
        },
    )?;
    Ok(out)
}

/// A row as a journal payload.
#[cfg(test)]
fn encode(r: &LogRecord) -> serde_json::Result<Vec<u8>> {
    let mut framed = encode_framed(r)?;
    framed.drain(..HEADER as usize);
    Ok(framed)
}

/// A journal payload as a row.
fn decode(payload: &[u8]) -> serde_json::Result<LogRecord> {
    let e: Entry = serde_json::from_slice(payload)?;
    let mut r = e.row;
    r.ledger = e.ledger.map(|l| {
        let tenant: Arc<str> = Arc::from(l.tenant);
        LedgerEntry {
            scopes: l
                .scopes
                .into_iter()
                .filter_map(|(kind, value)| {
                    Some(ScopeKey {
                        tenant: tenant.clone(),
                        kind: ScopeKind::from_label(&kind)?,
                        value: Arc::from(value),
                    })
                })
                .collect(),
            amount: l.amount,
            ts_ms: l.ts_ms,
        }
    });
    r.bodies = e.bodies.map(|b| {
        Box::new(CapturedBodies {
            request: bytes::Bytes::from(b.request),
            response: bytes::Bytes::from(b.response),
            request_truncated: b.request_truncated,
            response_truncated: b.response_truncated,
        })
    });
    r.traceparent = e.traceparent;
    r.span_us = e.span_us;
    Ok(r)
}

/// Writes the journal's rows past the store's mark (those of a gateway that stopped
/// without writing them: a crash, or a database that refused its last batches), in
/// batches, each with its new mark. Returns how many rows were written.
pub(super) fn recover(
    conn: &mut Connection,
    dir: &std::path::Path,
) -> Result<usize, super::StoreError> {
    let mut mark = journal_mark(conn)?;
    let mut written = 0;
    loop {
        let chunk = read_range(dir, mark, None, 1_000)
            .map_err(|e| super::StoreError::Task(format!("reading the usage journal: {e}")))?;
        let Some(end) = chunk.last().map(|(end, _)| *end) else {
            break;
        };
        let rows: Vec<Box<LogRecord>> = chunk
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .filter_map(|(_, p)| match decode(p) {
                Ok(r) => Some(Box::new(r)),
                Err(e) => {
                    tracing::error!(error = %e, "unreadable journal record skipped");
                    None
                }
            })
            .collect();
        write_batch(conn, &rows, &[], Some(end))?;
        written += rows.len();
        mark = end;
    }
    if written > 0 {
        tracing::info!(
            rows = written,
            "wrote request logs recovered from the usage journal"
        );
    }
    Ok(written)
}

/// How far into the journal the database has every row.
fn journal_mark(conn: &Connection) -> rusqlite::Result<Pos> {
    let mut stmt = conn.prepare_cached("SELECT segment, offset FROM journal_state WHERE id = 0")?;
    let mut rows = stmt.query([])?;
    Ok(match rows.next()? {
        Some(r) => Pos {
            segment: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            offset: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        },
        None => Pos::default(),
    })
}

fn write_batch(
    conn: &mut Connection,
    batch: &[Box<LogRecord>],
    limits: &[Limit],
    journal_mark: Option<Pos>,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    if let Some(m) = journal_mark {
        tx.execute(
            "INSERT INTO journal_state (id, segment, offset) VALUES (0, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, offset = excluded.offset",
            params![
                i64::try_from(m.segment).unwrap_or(i64::MAX),
                i64::try_from(m.offset).unwrap_or(i64::MAX)
            ],
        )?;
    }
    {
        let mut row = tx.prepare_cached(
            "INSERT OR REPLACE INTO request_logs (request_id, ts_ms, tenant_id, key_id, trace_id, endpoint, team, user,
               metadata, requested_model, served_model, provider, status, stream, latency_ms, ttft_ms,
               input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, decisions, error, attempts,
               cost_nano, cost, bundle_version, platform_version, max_tokens, body_bytes, message_count, admitted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
        )?;
        let mut bodies = tx.prepare_cached(
            "INSERT OR REPLACE INTO request_bodies
               (request_id, tenant_id, ts_ms, request, response, request_truncated, response_truncated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in batch {
            row.execute(params![
                r.request_id,
                r.ts_ms,
                r.tenant_id,
                r.key_id,
                r.trace_id,
                r.endpoint,
                r.team,
                r.user,
                r.metadata.to_json(),
                r.requested_model,
                r.served_model,
                r.provider,
                r.status,
                r.stream,
                r.latency_ms as i64,
                r.ttft_ms.map(|t| t as i64),
                r.usage.input_tokens as i64,
                r.usage.output_tokens as i64,
                r.usage.cache_read_tokens as i64,
                r.usage.cache_write_tokens as i64,
                serde_json::to_string(&r.decisions).unwrap_or_else(|_| "[]".into()),
                r.error,
                serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".into()),
                i64::try_from(r.cost_nano).unwrap_or(i64::MAX),
                r.cost.as_ref().and_then(|c| serde_json::to_string(c).ok()),
                r.bundle_version,
                r.platform_version,
                r.max_tokens,
                r.body_bytes,
                r.message_count,
                r.admitted,
            ])?;
            if let Some(b) = &r.bodies {
                bodies.execute(params![
                    r.request_id,
                    r.tenant_id,
                    r.ts_ms,
                    String::from_utf8_lossy(&b.request),
                    String::from_utf8_lossy(&b.response),
                    b.request_truncated,
                    b.response_truncated,
                ])?;
            }
        }
    }
    let entries: Vec<_> = batch.iter().filter_map(|r| r.ledger.clone()).collect();
    crate::ledger::write_entries(&tx, &entries)?;
    crate::ledger::write_limits(&tx, limits, crate::ids::now_ms())?;
    tx.commit()
}

/// Rows deleted per statement, so a large purge never holds the database for long.
const PURGE_CHUNK: i64 = 5_000;

/// Deletes logs older than their tenant's retention (with their captured bodies, and the
/// metadata rows releases before the JSON column wrote beside them).
fn prune(conn: &Connection, retention: &Retention) {
    let now = crate::ids::now_ms();
    let cutoff = |days: u32| now - i64::from(days) * 86_400_000;
    let mut deleted = 0usize;
    let mut run = |tenant: Option<&str>, days: u32| {
        if days == 0 {
            return;
        }
        loop {
            let n = purge_chunk(
                conn,
                tenant,
                &retention.tenants,
                cutoff(days),
                retention.keep_newest_row,
            );
            match n {
                Ok(0) => return,
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(error = %e, "deleting expired request logs failed");
                    return;
                }
            }
        }
    };
    for (tenant, days) in &retention.tenants {
        run(Some(tenant), *days);
    }
    run(None, retention.default_days);
    if deleted > 0 {
        tracing::info!(rows = deleted, "deleted request logs past their retention");
    }
}

/// One chunk of expired rows: of `tenant`, or (`None`) of every tenant without its own
/// setting; with `keep_newest`, never the newest row (see [`Retention`]).
fn purge_chunk(
    conn: &Connection,
    tenant: Option<&str>,
    overrides: &HashMap<String, u32>,
    cutoff_ms: i64,
    keep_newest: bool,
) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS purge_ids (id TEXT PRIMARY KEY); DELETE FROM purge_ids;",
    )?;
    let newest = if keep_newest {
        " AND rowid < (SELECT MAX(rowid) FROM request_logs)"
    } else {
        ""
    };
    let picked = match tenant {
        Some(t) => tx.execute(
            &format!(
                "INSERT INTO purge_ids SELECT request_id FROM request_logs
                 WHERE tenant_id = ?1 AND ts_ms < ?2{newest} LIMIT ?3"
            ),
            params![t, cutoff_ms, PURGE_CHUNK],
        )?,
        None => {
            let kept: Vec<&str> = overrides.keys().map(String::as_str).collect();
            let json = serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into());
            tx.execute(
                &format!(
                    "INSERT INTO purge_ids SELECT request_id FROM request_logs
                     WHERE ts_ms < ?1 AND tenant_id NOT IN (SELECT value FROM json_each(?2)){newest}
                     LIMIT ?3"
                ),
                params![cutoff_ms, json, PURGE_CHUNK],
            )?
        }
    };
    if picked > 0 {
        tx.execute_batch(
            "DELETE FROM request_log_meta WHERE request_id IN (SELECT id FROM purge_ids);
             DELETE FROM request_bodies WHERE request_id IN (SELECT id FROM purge_ids);
             DELETE FROM request_logs WHERE request_id IN (SELECT id FROM purge_ids);",
        )?;
    }
    tx.commit()?;
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CapturedBodies, LogQuery, Store};
    use bytes::Bytes;

    fn row(id: &str, tenant: &str, age_days: i64) -> LogRecord {
        LogRecord {
            request_id: id.into(),
            ts_ms: crate::ids::now_ms() - age_days * 86_400_000,
            tenant_id: tenant.into(),
            trace_id: id.into(),
            endpoint: "messages".into(),
            status: 200,
            ..LogRecord::default()
        }
    }

    #[test]
    fn bodies_are_stored_and_expired_rows_purged_per_tenant() {
        let dir =
            std::env::temp_dir().join(format!("tollgate-writer-{}", crate::ids::random_token(8)));
        let store = Store::open(&dir).expect("open");
        let writer = store
            .log_writer(WriterOptions::for_tests(100, Duration::from_millis(10)))
            .expect("writer");
        let mut kept = row("fresh", "a", 0);
        kept.bodies = Some(Box::new(CapturedBodies {
            request: Bytes::from_static(b"{\"q\":1}"),
            response: Bytes::from_static(b"{\"a\":2}"),
            request_truncated: false,
            response_truncated: false,
        }));
        let tx = writer.sender();
        tx.send(kept);
        tx.send(row("old-a", "a", 10));
        tx.send(row("old-b", "b", 10));
        tx.send(row("older-b", "b", 40));
        writer.shutdown();
        let retention = Retention {
            default_days: 30,
            tenants: HashMap::from([("a".to_string(), 5)]),
            keep_newest_row: false,
        };
        let ids = store
            .with_conn_blocking(|c| {
                prune(c, &retention);
                let rows = super::super::logs::query_logs_for_tests(c, &LogQuery::default())?;
                let bodies: i64 =
                    c.query_row("SELECT COUNT(*) FROM request_bodies", [], |r| r.get(0))?;
                Ok((
                    rows.into_iter().map(|r| r.request_id).collect::<Vec<_>>(),
                    bodies,
                ))
            })
            .expect("query");
        let mut left = ids.0;
        left.sort();
        assert_eq!(left, vec!["fresh", "old-b"]);
        assert_eq!(ids.1, 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_fleet_replica_keeps_its_newest_row_so_rowids_are_never_reused() {
        let dir =
            std::env::temp_dir().join(format!("tollgate-writer-{}", crate::ids::random_token(8)));
        let store = Store::open(&dir).expect("open");
        let writer = store
            .log_writer(WriterOptions::for_tests(100, Duration::from_millis(10)))
            .expect("writer");
        let tx = writer.sender();
        for id in ["a", "b", "c"] {
            tx.send(row(id, "t", 40));
        }
        writer.shutdown();
        let retention = Retention {
            default_days: 30,
            keep_newest_row: true,
            ..Retention::default()
        };
        let (left, max) = store
            .with_conn_blocking(|c| {
                prune(c, &retention);
                let left: Vec<String> = c
                    .prepare("SELECT request_id FROM request_logs")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let max: i64 =
                    c.query_row("SELECT MAX(rowid) FROM request_logs", [], |r| r.get(0))?;
                Ok((left, max))
            })
            .expect("query");
        assert_eq!(left, vec!["c".to_string()]);
        assert_eq!(max, 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn billed(id: &str, cost_nano: u64) -> LogRecord {
        let mut r = row(id, "acme", 0);
        r.cost_nano = cost_nano;
        r.cost = Some(crate::pricing::CostBreakdown {
            input_usd: cost_nano as f64 / 1e9,
            total_usd: cost_nano as f64 / 1e9,
            priced_as: Some("claude-x".into()),
            usage_estimated: true,
            ..Default::default()
        });
        r.metadata = crate::metadata::Metadata::from(vec![
            ("project".to_string(), "apollo".to_string()),
            ("env".to_string(), "prod \"eu\"".to_string()),
        ]);
        r.bodies = Some(Box::new(CapturedBodies {
            request: Bytes::from_static("{\"q\":\"\u{e9}\"}".as_bytes()),
            response: Bytes::from_static(b"ok"),
            request_truncated: false,
            response_truncated: true,
        }));
        r.ledger = Some(LedgerEntry {
            scopes: Arc::from(vec![
                ScopeKey::new("acme", ScopeKind::Tenant, "acme"),
                ScopeKey::new("acme", ScopeKind::Metadata("project".into()), "apollo"),
            ]),
            amount: Amount {
                requests: 1,
                tokens: 10,
                cost_nano,
            },
            ts_ms: r.ts_ms,
        });
        r
    }

    /// A journaled writer on `store` with `max_queued` places in its queue.
    fn journaled(
        store: &Store,
        journal: &std::path::Path,
        max_queued: usize,
        counters: &Arc<WriterCounters>,
    ) -> LogWriter {
        store
            .log_writer(WriterOptions {
                batch_size: 50,
                flush: Duration::from_millis(5),
                ledger: Arc::new(Ledger::new()),
                retention: Retention::default(),
                observers: Vec::new(),
                max_queued,
                journal_dir: Some(journal.to_path_buf()),
                counters: counters.clone(),
            })
            .expect("writer")
    }

    fn temp_store(name: &str) -> (std::path::PathBuf, Store) {
        let dir =
            std::env::temp_dir().join(format!("tollgate-{name}-{}", crate::ids::random_token(8)));
        let store = Store::open(&dir).expect("open");
        (dir, store)
    }

    #[test]
    fn connections_checkpoint_the_wal_every_ten_thousand_pages() {
        let (dir, store) = temp_store("checkpoint");
        let pages: i64 = store
            .with_conn_blocking(|c| {
                Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?)
            })
            .expect("pragma");
        assert_eq!(pages, super::super::WAL_CHECKPOINT_PAGES);
        assert_eq!(pages, 10_000);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn spend(store: &Store) -> (i64, i64) {
        store
            .with_conn_blocking(|c| {
                let rows: i64 =
                    c.query_row("SELECT COUNT(*) FROM request_logs", [], |r| r.get(0))?;
                let ledger: i64 = c.query_row(
                    "SELECT COALESCE(SUM(cost_nano), 0) FROM usage_ledger
                     WHERE scope = 'tenant' AND period = 'total'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((rows, ledger))
            })
            .expect("count")
    }

    #[test]
    fn a_record_whose_cost_cannot_be_read_keeps_its_usage_and_ledger_entry() {
        let payload = encode(&billed("odd", 1_000)).expect("encode");
        let mut v: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        v["row"]["cost"] = serde_json::json!("1.5 USD");
        let r = decode(v.to_string().as_bytes()).expect("the row is kept");
        assert_eq!(r.cost, None);
        assert_eq!(r.cost_nano, 1_000);
        assert!(r.ledger.is_some());
        let back = decode(&payload).expect("decodes");
        assert_eq!(back.cost, billed("odd", 1_000).cost);
        assert_eq!(back.metadata, billed("odd", 1_000).metadata);
    }

    #[test]
    fn journaled_rows_survive_a_crash_and_are_written_once() {
        let (dir, store) = temp_store("crash");
        let jdir = dir.join("journal");
        // What the request path does before answering, with no writer running (the
        // process died before its batch).
        let journal = Journal::open(&jdir, 0).expect("journal");
        for i in 0..40 {
            let payload = encode(&billed(&format!("r{i}"), 1_000)).expect("encode");
            journal.append(&payload, |_, _| ()).expect("append");
        }
        drop(journal);
        assert_eq!(spend(&store), (0, 0));
        assert_eq!(store.recover_journal(&jdir).expect("recover"), 40);
        assert_eq!(spend(&store), (40, 40_000));
        // A second start finds nothing new to write.
        assert_eq!(store.recover_journal(&jdir).expect("again"), 0);
        assert_eq!(spend(&store), (40, 40_000));
        let detail = store
            .with_conn_blocking(|c| {
                Ok(c.query_row(
                    "SELECT request, response_truncated FROM request_bodies WHERE request_id = 'r7'",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
                )?)
            })
            .expect("body");
        assert_eq!(detail, ("{\"q\":\"\u{e9}\"}".to_string(), true));
        let (cost, metadata) = store
            .with_conn_blocking(|c| {
                Ok(c.query_row(
                    "SELECT cost, metadata FROM request_logs WHERE request_id = 'r7'",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )?)
            })
            .expect("row");
        assert_eq!(
            cost,
            r#"{"cache_read_usd":0.0,"cache_write_usd":0.0,"input_usd":1e-6,"output_usd":0.0,"priced_as":"claude-x","total_usd":1e-6,"usage_estimated":true}"#
        );
        assert_eq!(metadata, r#"{"env":"prod \"eu\"","project":"apollo"}"#);
        // The writer of the next run deletes the consumed segments.
        let writer = journaled(&store, &jdir, 100, &Default::default());
        writer.sender().send(billed("after", 5));
        writer.shutdown();
        assert_eq!(spend(&store), (41, 40_005));
        assert_eq!(
            crate::store::journal::segments(&jdir)
                .expect("segments")
                .len(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rows_that_find_the_queue_full_wait_in_the_journal_not_dropped() {
        let (dir, store) = temp_store("deferred");
        let counters: Arc<WriterCounters> = Default::default();
        let writer = journaled(&store, &dir.join("journal"), 2, &counters);
        let tx = writer.sender();
        let senders: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        tx.send(billed(&format!("t{t}-{i}"), 1));
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().expect("sender");
        }
        tx.flush_blocking();
        assert_eq!(spend(&store), (1_000, 1_000));
        assert!(counters.log_rows_deferred.load(Ordering::Relaxed) > 0);
        writer.shutdown();
        assert_eq!(spend(&store), (1_000, 1_000));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_refused_batch_is_kept_and_written_when_the_database_takes_it() {
        let (dir, store) = temp_store("refused");
        let counters: Arc<WriterCounters> = Default::default();
        let writer = journaled(&store, &dir.join("journal"), 100, &counters);
        // Make every write fail, as a full disk would.
        store
            .with_conn_blocking(|c| {
                Ok(c.execute_batch("ALTER TABLE request_logs RENAME TO request_logs_away")?)
            })
            .expect("break");
        let tx = writer.sender();
        for i in 0..30 {
            tx.send(billed(&format!("r{i}"), 2));
        }
        let failed = || counters.log_batch_failures.load(Ordering::Relaxed);
        let t0 = Instant::now();
        while failed() == 0 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(failed() > 0, "the batch should have failed");
        store
            .with_conn_blocking(|c| {
                Ok(c.execute_batch("ALTER TABLE request_logs_away RENAME TO request_logs")?)
            })
            .expect("mend");
        tx.flush_blocking();
        assert_eq!(spend(&store), (30, 60));
        writer.shutdown();
        let _ = std::fs::remove_dir_all(dir);
    }
}
