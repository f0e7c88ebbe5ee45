//! The audit writer: daily JSONL files `audit-YYYY-MM-DD.jsonl` in the
//! configured directory, written by one thread per directory in batches.
//! It recovers the chain's head at start, cuts a torn last line left by a
//! crash, and enforces `retention_days`, keeping the head of what it
//! removes in `chain-anchor.json` so verification still holds.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_proto::pack::policies::{AuditDestination, AuditLogger as Config};
use tokio::sync::{mpsc, oneshot};

use super::Counter;
use super::chain::{self, GENESIS};

const BATCH: usize = 256;

/// A record on its way to the writer, and who to tell once it is written.
type Queued = (Value, oneshot::Sender<()>);
pub const ANCHOR: &str = "chain-anchor.json";

#[derive(Clone)]
struct Settings {
    immutable: bool,
    retention_days: Option<u64>,
    max_disk_bytes: Option<u64>,
}

pub struct Sink {
    // Unbounded: a request admitted while the queue had room always gets
    // its record written (lossless), however long it then streams. The
    // bound is applied at admission against `pending()`, so the queue
    // holds at most `capacity` plus the requests in flight.
    tx: mpsc::UnboundedSender<Queued>,
    /// `queue_capacity`: records waiting for the writer before admission
    /// says no.
    pub(super) capacity: u64,
    settings: Arc<Mutex<Settings>>,
    pub(super) dropped: Counter,
    /// Records handed to the writer, and records it has written: equal
    /// when nothing is pending (what a graceful shutdown waits for).
    pub(super) queued: Counter,
    written: Arc<Counter>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Sink>>> {
    static SINKS: OnceLock<Mutex<HashMap<PathBuf, Weak<Sink>>>> = OnceLock::new();
    SINKS.get_or_init(Default::default)
}

impl Sink {
    /// The sink for `cfg.path`, shared with earlier config versions that
    /// still use it (so one directory always has one writer and one chain).
    pub fn open(cfg: &Config) -> std::io::Result<Arc<Sink>> {
        fs::create_dir_all(&cfg.path)?;
        let dir = fs::canonicalize(&cfg.path)?;
        let settings = Settings {
            immutable: cfg.immutable,
            // With destination api the directory is a spool that the shipper
            // drains; retention applies where the records end up.
            retention_days: match cfg.destination {
                AuditDestination::Api => None,
                AuditDestination::File => cfg.retention_days,
            },
            max_disk_bytes: cfg.max_disk_bytes,
        };
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sink) = reg.get(&dir).and_then(Weak::upgrade) {
            *sink.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
            return Ok(sink);
        }
        let head = recover(&dir)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(settings));
        let written = Arc::new(Counter::new(0));
        let writer = Writer {
            written: written.clone(),
            dir: dir.clone(),
            settings: shared.clone(),
            head,
            day: String::new(),
            file: None,
            disk_bytes: 0,
            repair: None,
        };
        std::thread::Builder::new()
            .name("sluice-audit".into())
            .spawn(move || writer.run(rx))?;
        let sink = Arc::new(Sink {
            tx,
            capacity: cfg.queue_capacity as u64,
            settings: shared,
            dropped: Counter::new(0),
            queued: Counter::new(0),
            written,
        });
        reg.insert(dir, Arc::downgrade(&sink));
        Ok(sink)
    }

    /// Queues one record for the writer (never blocks, never drops:
    /// admission bounded the queue already). The receiver resolves once the
    /// record is in the file.
    pub(super) fn send(&self, record: Value) -> oneshot::Receiver<()> {
        let (ack, written) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send((record, ack)).is_err() {
            // The writer thread is gone (it only ends with the process).
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("audit writer has stopped; record lost");
        }
        written
    }

    /// Records handed over and not yet written.
    pub(super) fn pending(&self) -> u64 {
        self.queued
            .load(Ordering::SeqCst)
            .saturating_sub(self.written.load(Ordering::SeqCst))
    }

    /// Waits until every record queued so far is written, or `timeout`.
    /// Returns whether everything was written.
    fn drain(&self, timeout: Duration) -> bool {
        let target = self.queued.load(Ordering::SeqCst);
        let deadline = std::time::Instant::now() + timeout;
        while self.written.load(Ordering::SeqCst) < target {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// At graceful shutdown: waits (up to `timeout` in all) until every open
/// sink has written what it was given, so a restart loses no record.
pub fn drain_all(timeout: Duration) -> bool {
    let sinks: Vec<Arc<Sink>> = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    let deadline = std::time::Instant::now() + timeout;
    sinks
        .iter()
        .all(|s| s.drain(deadline.saturating_duration_since(std::time::Instant::now())))
}

/// The last link written: `(seq, hash)`.
type Head = (u64, String);

struct Writer {
    written: Arc<Counter>,
    dir: PathBuf,
    settings: Arc<Mutex<Settings>>,
    head: Head,
    day: String,
    file: Option<File>,
    /// Bytes in the directory's audit files.
    disk_bytes: u64,
    /// A file and the length to cut it back to (a failed write's remains).
    repair: Option<(PathBuf, u64)>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Queued>) {
        while let Some((first, ack)) = rx.blocking_recv() {
            let (mut batch, mut acks) = (vec![first], vec![ack]);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok((v, ack)) => {
                        batch.push(v);
                        acks.push(ack);
                    }
                    Err(_) => break,
                }
            }
            // Sealed and encoded once; a failed write of those bytes is
            // retried until it succeeds: meanwhile the queue fills and
            // on_failure takes over at admission.
            let n = batch.len() as u64;
            let (out, head) = self.encode(batch);
            let mut delay = Duration::from_millis(100);
            loop {
                match self.write(&out) {
                    Ok(()) => {
                        self.head = head;
                        self.written.fetch_add(n, Ordering::SeqCst);
                        // In the file: a process killed from here on loses
                        // none of these records, so their answers may go.
                        for ack in acks {
                            let _ = ack.send(());
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::error!(dir = %self.dir.display(), error = %e, "audit write failed; retrying");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }

    /// The batch's lines, chained onto the current head when the log is
    /// immutable, and the head after them (committed once they are written).
    fn encode(&self, batch: Vec<Value>) -> (Vec<u8>, Head) {
        let immutable = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .immutable;
        let mut out = Vec::with_capacity(batch.len() * 1024);
        let mut head = self.head.clone();
        for v in batch {
            let Value::Object(record) = v else { continue };
            if immutable {
                let seq = head.0 + 1;
                let hash = chain::seal_into(record, seq, &head.1, &mut out);
                head = (seq, hash);
            } else {
                chain::canonical(&Value::Object(record), &mut out);
            }
            out.push(b'\n');
        }
        (out, head)
    }

    fn write(&mut self, out: &[u8]) -> std::io::Result<()> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // A partial write that could not be cut back is cut before
        // anything else goes into the directory.
        if let Some((path, len)) = self.repair.take() {
            let cut = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(len));
            if let Err(e) = cut {
                self.repair = Some((path, len));
                return Err(e);
            }
        }
        let day = today();
        if day != self.day || self.file.is_none() {
            if let Some(days) = settings.retention_days {
                enforce_retention(&self.dir, &day, days)?;
            }
            self.disk_bytes = disk_usage(&self.dir)?;
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(format!("audit-{day}.jsonl")))?,
            );
            self.day = day;
        }
        if let Some(max) = settings.max_disk_bytes
            && self.disk_bytes + out.len() as u64 > max
        {
            // Files may have been removed since (shipped spool days).
            self.disk_bytes = disk_usage(&self.dir)?;
        }
        if let Some(max) = settings.max_disk_bytes
            && self.disk_bytes + out.len() as u64 > max
        {
            // Not written: the batch is retried, the queue fills and
            // on_failure decides — nothing is dropped silently.
            return Err(std::io::Error::other(format!(
                "audit directory holds {} bytes and max_disk_bytes is {max}",
                self.disk_bytes
            )));
        }
        let file = self.file.as_mut().expect("opened above");
        if let Err((e, cut_to)) = append_whole(file, out) {
            if let Some(len) = cut_to {
                self.repair = Some((self.dir.join(format!("audit-{}.jsonl", self.day)), len));
                self.file = None;
            }
            return Err(e);
        }
        self.disk_bytes += out.len() as u64;
        Ok(())
    }
}

/// A file the writer appends to, as far as [`append_whole`] needs it.
trait Append: Write {
    fn len(&self) -> std::io::Result<u64>;
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl Append for File {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Appends the whole batch or nothing. A write that fails part-way (a full
/// disk takes what fits) is cut back to where it began: otherwise the
/// retry would follow a torn line and write the batch's first records
/// twice, breaking the chain. If even the cut fails, the error carries the
/// length to cut back to before anything else is written.
fn append_whole(file: &mut impl Append, out: &[u8]) -> Result<(), (std::io::Error, Option<u64>)> {
    let start = file.len().map_err(|e| (e, None))?;
    let Err(e) = file.write_all(out).and_then(|()| file.flush()) else {
        return Ok(());
    };
    match file.truncate(start) {
        Ok(()) => Err((e, None)),
        Err(cut) => Err((
            std::io::Error::other(format!("{e}; cutting the partial write back failed: {cut}")),
            Some(start),
        )),
    }
}

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Audit files in `dir`, oldest first (regular files only: never read a
/// device or a pipe someone put there).
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    out.sort();
    Ok(out)
}

fn disk_usage(dir: &Path) -> std::io::Result<u64> {
    Ok(files(dir)?
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum())
}

fn last_line(path: &Path) -> std::io::Result<Option<String>> {
    let mut last = None;
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    Ok(last)
}

/// Where the chain stands: the last sealed record, else the anchor, else genesis.
fn recover(dir: &Path) -> std::io::Result<Head> {
    let files = files(dir)?;
    if let Some(newest) = files.last() {
        cut_torn_line(newest)?;
    }
    for f in files.iter().rev() {
        if let Some(line) = last_line(f)? {
            if let Ok(link) = chain::check(&line) {
                return Ok((link.seq, link.hash));
            }
            // Unsealed records (immutable was off): the chain starts over.
            return Ok((0, GENESIS.to_string()));
        }
    }
    Ok(read_anchor(dir).unwrap_or((0, GENESIS.to_string())))
}

/// A crash mid-write leaves a last line without its newline: cut it off,
/// so the chain continues from the last whole record.
fn cut_torn_line(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    if buf.is_empty() || buf.ends_with(b"\n") {
        return Ok(());
    }
    let keep = buf
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    tracing::warn!(file = %path.display(), bytes = buf.len() - keep, "cutting a torn last audit line left by a crash");
    f.set_len(keep as u64)?;
    f.seek(SeekFrom::End(0))?;
    Ok(())
}

pub fn read_anchor(dir: &Path) -> Option<Head> {
    let v: Value = serde_json::from_str(&fs::read_to_string(dir.join(ANCHOR)).ok()?).ok()?;
    Some((
        v.get("last_seq")?.as_u64()?,
        v.get("last_hash")?.as_str()?.to_string(),
    ))
}

/// Removes files older than `days` (by the date in their name), first
/// recording the newest removed link in the anchor file.
fn enforce_retention(dir: &Path, today: &str, days: u64) -> std::io::Result<()> {
    let Ok(today) = time::Date::parse(
        today,
        &time::macros::format_description!("[year]-[month]-[day]"),
    ) else {
        return Ok(());
    };
    let cutoff = today - time::Duration::days(days as i64);
    let old: Vec<PathBuf> = files(dir)?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let date = name.trim_start_matches("audit-").trim_end_matches(".jsonl");
            time::Date::parse(
                date,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .is_ok_and(|d| d < cutoff)
        })
        .collect();
    let Some(newest_old) = old.last() else {
        return Ok(());
    };
    if let Some(link) = last_line(newest_old)?.and_then(|l| chain::check(&l).ok()) {
        let anchor = json!({"last_seq": link.seq, "last_hash": link.hash, "removed_through": newest_old.file_name().and_then(|n| n.to_str())});
        let tmp = dir.join(format!("{ANCHOR}.tmp"));
        fs::write(&tmp, anchor.to_string())?;
        fs::rename(&tmp, dir.join(ANCHOR))?;
    }
    for f in &old {
        fs::remove_file(f)?;
        tracing::info!(file = %f.display(), "audit retention: removed");
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn write_records(dir: &Path, day: &str, start_seq: u64, prev: &str, n: usize) -> String {
        let mut prev = prev.to_string();
        let mut text = String::new();
        for i in 0..n {
            let mut r = json!({"request_id": format!("r{i}")})
                .as_object()
                .unwrap()
                .clone();
            prev = chain::seal(&mut r, start_seq + i as u64, &prev);
            text += &serde_json::to_string(&r).unwrap();
            text.push('\n');
        }
        fs::write(dir.join(format!("audit-{day}.jsonl")), text).unwrap();
        prev
    }

    #[test]
    fn retention_removes_old_days_and_anchors_the_chain() {
        let dir = std::env::temp_dir().join(format!("sluice-audit-ret-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let h1 = write_records(&dir, "2020-01-01", 1, GENESIS, 2);
        let h2 = write_records(&dir, "2020-01-02", 3, &h1, 2);
        write_records(&dir, "2020-01-09", 5, &h2, 1);
        enforce_retention(&dir, "2020-01-10", 7).unwrap();
        let names: Vec<_> = files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["audit-2020-01-09.jsonl"]);
        assert_eq!(read_anchor(&dir), Some((4, h2)));
        assert!(
            super::super::verify::verify(&dir)
                .unwrap()
                .first_break
                .is_none()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A disk that takes `room` more bytes, then fails like a full one.
    struct FullDisk {
        data: Vec<u8>,
        room: usize,
        cut_fails: bool,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Append for FullDisk {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.data.len() as u64)
        }
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            if self.cut_fails {
                return Err(std::io::Error::other("read-only"));
            }
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_partial_write_on_a_full_disk_leaves_no_torn_or_doubled_records() {
        let mut disk = FullDisk {
            data: b"{\"seq\":1}\n".to_vec(),
            room: 15,
            cut_fails: false,
        };
        let batch = b"{\"seq\":2}\n{\"seq\":3}\n";
        let (e, cut_to) = append_whole(&mut disk, batch).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        assert_eq!(cut_to, None);
        assert_eq!(disk.data, b"{\"seq\":1}\n", "the partial batch is cut back");
        // Space freed: the retry writes the batch exactly once.
        disk.room = 1 << 10;
        append_whole(&mut disk, batch).unwrap();
        assert_eq!(disk.data, b"{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3}\n");

        // When the cut itself fails, the caller learns where to cut to.
        let mut disk = FullDisk {
            data: b"{\"seq\":1}\n".to_vec(),
            room: 4,
            cut_fails: true,
        };
        let (_, cut_to) = append_whole(&mut disk, batch).unwrap_err();
        assert_eq!(cut_to, Some(10));
    }

    #[test]
    fn recovery_cuts_a_torn_line_and_continues_the_chain() {
        let dir = std::env::temp_dir().join(format!("sluice-audit-rec-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let h = write_records(&dir, "2020-01-01", 1, GENESIS, 3);
        let path = dir.join("audit-2020-01-01.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"request_id\":\"torn").unwrap();
        assert_eq!(recover(&dir).unwrap(), (3, h));
        assert!(fs::read_to_string(&path).unwrap().ends_with("}\n"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
