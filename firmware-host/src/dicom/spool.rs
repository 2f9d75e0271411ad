//! The spool: every instance the node accepts is on disk, synced, before its C-STORE
//! response says success, so an acknowledged instance survives a crash or a power cut.
//! Instances are DICOM Part 10 files named by their SOP Instance UID, which makes a second
//! copy of the same instance (a resend after a lost response) one file, not two.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::config::OnConflict;

/// Where received instances go, under the configured spool folder.
const RECEIVED: &str = "received";
/// Where derived instances wait for the destination, under the spool folder.
pub(crate) const OUTBOX: &str = "outbox";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The instance cannot be read in its transfer syntax, or lacks what it must carry.
    #[error("the data set cannot be read: {0}")]
    Unreadable(String),
    /// The data set is not the instance or class its command announced.
    #[error("{0}")]
    Mismatch(String),
    /// An instance of this SOP Instance UID is stored already, with other content, and
    /// `on_conflict` says to refuse the second.
    #[error("{0}")]
    Conflict(String),
    /// Too little room left to take the instance and still process what is acknowledged.
    #[error("spool full: {0}")]
    Full(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What storing an instance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    New(PathBuf),
    /// The instance was already in the spool: acknowledged, not written twice.
    Duplicate(PathBuf),
    /// An instance of this UID with other content is in the spool; that one is kept
    /// (`on_conflict = "keep_first"`).
    Conflicting(PathBuf),
}

/// The header fields the node routes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIds {
    pub sop_class: String,
    pub sop_instance: String,
    pub study: String,
    pub series: String,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Bytes kept free on the spool's disk beyond what acknowledged instances need.
    min_free: u64,
    /// Makes temporary names unique between concurrent associations.
    counter: AtomicU64,
    /// The bytes acknowledged and not yet processed, as last counted on disk plus what was
    /// stored since: walking the spool for every C-STORE made a study of n instances cost
    /// n^2 directory reads.
    pending: Mutex<Pending>,
}

/// A count of the spool's pending bytes and when it was taken from the disk.
#[derive(Debug)]
struct Pending {
    bytes: u64,
    counted: Option<Instant>,
}

/// How long a count of the pending bytes stands before the spool is walked again. Between
/// walks it only grows by what is stored (what gets processed meanwhile still counts), so it
/// errs on the side of refusing.
const PENDING_RECOUNT: Duration = Duration::from_secs(1);

impl Spool {
    /// Opens (creating) the spool under `dir`. Temporary files a crash left behind are
    /// removed: their instances were never acknowledged, so the sender still has them.
    pub fn open(dir: &Path, min_free_mib: u64) -> Result<Self, SpoolError> {
        let received = dir.join(RECEIVED);
        fs::create_dir_all(&received).map_err(io(&received))?;
        for entry in fs::read_dir(&received).map_err(io(&received))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".partial-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Spool {
            dir: dir.into(),
            min_free: min_free_mib << 20,
            counter: AtomicU64::new(0),
            pending: Mutex::new(Pending {
                bytes: 0,
                counted: None,
            }),
        })
    }

    /// The folder holding the received instances.
    pub fn received(&self) -> PathBuf {
        self.dir.join(RECEIVED)
    }

    /// Checks `dataset` (encoded in `transfer_syntax`) against the instance its command
    /// announced and writes it as a Part 10 file, synced, under its SOP Instance UID.
    pub fn store(
        &self,
        announced: (&str, &str),
        transfer_syntax: &str,
        dataset: &[u8],
        on_conflict: OnConflict,
    ) -> Result<(Stored, InstanceIds), SpoolError> {
        let ids = read_ids(transfer_syntax, dataset)?;
        let (class, instance) = announced;
        if ids.sop_instance != instance || ids.sop_class != class {
            return Err(SpoolError::Mismatch(format!(
                "the data set is {} of class {}, the command announced {instance} of class {class}",
                ids.sop_instance, ids.sop_class
            )));
        }
        for (name, uid) in [
            ("SOPInstanceUID", &ids.sop_instance),
            ("SeriesInstanceUID", &ids.series),
            ("StudyInstanceUID", &ids.study),
        ] {
            if !is_uid(uid) {
                return Err(SpoolError::Unreadable(format!(
                    "{name} {uid:?} is not a UID (PS3.5 9.1)"
                )));
            }
        }
        let received = self.received();
        let path = received.join(format!("{}.dcm", ids.sop_instance));
        self.check_room(dataset.len() as u64)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = received.join(format!(".partial-{}-{n}", std::process::id()));
        // A hard link is made only where no file is: of two associations storing one
        // instance at once, one stores it and the other finds it there.
        let written = write_part10(&tmp, &ids, transfer_syntax, dataset)
            .and_then(|()| fs::hard_link(&tmp, &path));
        let stored = match written {
            Ok(()) => File::open(&received)
                .and_then(|d| d.sync_all())
                .map(|()| Stored::New(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match (fs::read(&tmp), fs::read(&path)) {
                    (Ok(new), Ok(old)) if new == old => Ok(Stored::Duplicate(path.clone())),
                    (Ok(_), Ok(_)) => match on_conflict {
                        OnConflict::KeepFirst => Ok(Stored::Conflicting(path.clone())),
                        OnConflict::Refuse => {
                            let _ = fs::remove_file(&tmp);
                            return Err(SpoolError::Conflict(format!(
                                "SOPInstanceUID {} is stored already with other content",
                                ids.sop_instance
                            )));
                        }
                    },
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let _ = fs::remove_file(&tmp);
        match stored {
            Ok(stored) => Ok((stored, ids)),
            Err(source) => Err(SpoolError::Io { path, source }),
        }
    }
}

impl Spool {
    /// Refuses an instance the disk could take only by leaving no room to process what is
    /// already acknowledged: each received instance not yet in the outbox will need about
    /// its own size again for its derived copy, and `min_free` stays free besides.
    fn check_room(&self, incoming: u64) -> Result<(), SpoolError> {
        let Some(free) = free_bytes(&self.dir) else {
            return Ok(());
        };
        let mut count = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if count
            .counted
            .is_none_or(|at| at.elapsed() >= PENDING_RECOUNT)
        {
            let size_of = |dir: &Path| -> u64 { files_under(dir).iter().map(|(_, n)| n).sum() };
            count.bytes = size_of(&self.received()).saturating_sub(size_of(&self.dir.join(OUTBOX)));
            count.counted = Some(Instant::now());
        }
        // The instance itself and its derived copy.
        let needed = count.bytes + 2 * incoming + self.min_free;
        if free < needed {
            return Err(SpoolError::Full(format!(
                "{} has {} MiB free; the instances acknowledged and not yet processed, this one and min_free_mib need {} MiB",
                self.dir.display(),
                free >> 20,
                needed.div_ceil(1 << 20)
            )));
        }
        // Counted as pending until the next walk finds where it went.
        count.bytes += incoming;
        Ok(())
    }
}

/// Every file under `dir`, in its subfolders too, with its size in bytes.
pub(crate) fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => folders.push(entry.path()),
                Ok(m) => files.push((entry.path(), m.len())),
                Err(_) => {}
            }
        }
    }
    files
}

/// Bytes free to this process on the file system holding `dir` (none where unknown).
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string and `stat` a zeroed struct statvfs that
    // the call fills in; nothing is kept past the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Reads the identifying attributes of a data set.
fn read_ids(transfer_syntax: &str, dataset: &[u8]) -> Result<InstanceIds, SpoolError> {
    let ts = TransferSyntaxRegistry.get(transfer_syntax).ok_or_else(|| {
        SpoolError::Unreadable(format!("unknown transfer syntax {transfer_syntax}"))
    })?;
    let obj = InMemDicomObject::read_dataset_with_ts(dataset, ts)
        .map_err(|e| SpoolError::Unreadable(e.to_string()))?;
    let text = |tag, name: &str| -> Result<String, SpoolError> {
        let v = obj
            .element(tag)
            .map_err(|_| SpoolError::Unreadable(format!("no {name}")))?
            .to_str()
            .map_err(|e| SpoolError::Unreadable(format!("{name}: {e}")))?;
        Ok(v.trim_end_matches(['\0', ' ']).to_string())
    };
    Ok(InstanceIds {
        sop_class: text(tags::SOP_CLASS_UID, "SOPClassUID")?,
        sop_instance: text(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        study: text(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series: text(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
    })
}

/// A UID as PS3.5 9.1 has it: components of digits joined by dots, none empty, none with a
/// leading zero, at most 64 characters (also what keeps a file or folder named by it
/// inside the spool: `..` is no UID).
pub fn is_uid(s: &str) -> bool {
    s.len() <= 64
        && s.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

/// Preamble, `DICM`, the file meta group, then the data set's bytes as received; synced.
fn write_part10(
    path: &Path,
    ids: &InstanceIds,
    transfer_syntax: &str,
    dataset: &[u8],
) -> std::io::Result<()> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(ids.sop_class.as_str())
        .media_storage_sop_instance_uid(ids.sop_instance.as_str())
        .transfer_syntax(transfer_syntax)
        .build()
        .map_err(std::io::Error::other)?;
    let file = File::create(path)?;
    let mut w = BufWriter::new(&file);
    w.write_all(&[0u8; 128])?;
    w.write_all(b"DICM")?;
    meta.write(&mut w).map_err(std::io::Error::other)?;
    w.write_all(dataset)?;
    w.flush()?;
    drop(w);
    file.sync_data()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.into(),
        source,
    }
}

/// The outbox folder of a spool.
pub fn outbox_dir(spool: &Path) -> PathBuf {
    spool.join(OUTBOX)
}

/// The files waiting in the outbox (in its subfolders too), oldest name first; what is
/// hidden (a folder being staged) is not waiting yet.
pub fn outbox_pending(spool: &Path) -> Vec<PathBuf> {
    let root = outbox_dir(spool);
    let mut files: Vec<PathBuf> = files_under(&root)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| {
            path.strip_prefix(&root).is_ok_and(|rel| {
                rel.components()
                    .all(|c| !c.as_os_str().to_string_lossy().starts_with('.'))
            })
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_uids_name_files() {
        assert!(is_uid("1.2.840.10008.5.1.4.1.1.4"));
        assert!(is_uid("1.2.0.3"));
        for bad in [
            "",
            "..",
            ".",
            "1..2",
            "1.2.",
            "1.02",
            "../etc/passwd",
            "1.2/3",
            "1.2.3 ",
            &"1".repeat(65),
        ] {
            assert!(!is_uid(bad), "{bad:?}");
        }
    }

    #[test]
    fn leftover_partial_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let stale = spool.received().join(".partial-1-0");
        fs::write(&stale, b"half").unwrap();
        let kept = spool.received().join("1.2.3.dcm");
        fs::write(&kept, b"whole").unwrap();
        Spool::open(dir.path(), 0).unwrap();
        assert!(!stale.exists());
        assert!(kept.exists());
    }
}
