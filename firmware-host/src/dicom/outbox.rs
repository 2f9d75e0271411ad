//! The outbox: derived instances waiting for the destination to acknowledge them. Each is a
//! file under `<spool>/outbox/`, named after the received instance it was made from, and
//! leaves the outbox only once the destination's C-STORE response says it has it; then the
//! received instance leaves the spool too. A destination that is down is tried again after
//! waits that double from 1 s up to `retry_max_s`, the files staying where they are; an
//! instance the destination refuses (an error status) is moved to `<spool>/failed/` with the
//! reason, so it neither blocks the others nor is tried forever. A restart finds the outbox
//! as it was and sends it: nothing is lost, and only what was in flight may arrive twice.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::config::Destination;
use super::dimse::{self, EXPLICIT_VR_LE, IMPLICIT_VR_LE, MR_IMAGE_STORAGE};
use super::node::{Node, inc};

const FAILED: &str = "failed";

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Association(#[from] dicom_ul::association::Error),
    #[error("{0}")]
    Protocol(String),
}

pub use super::spool::{outbox_dir as dir, outbox_pending as pending};

/// Sends the outbox to `destination` until `stop` says so, trying again when it is down.
pub async fn deliver(
    node: Arc<Node>,
    destination: Destination,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let spool = node.config.spool.clone();
    let retry_max = Duration::from_secs_f64(node.config.retry_max_s);
    let mut wait = Duration::from_secs(1);
    loop {
        let files = pending(&spool);
        let pause = if files.is_empty() {
            Duration::from_millis(250)
        } else {
            match send(&node, &destination, &files).await {
                Ok(()) => {
                    wait = Duration::from_secs(1);
                    Duration::ZERO
                }
                Err(e) => {
                    warn!(destination = %destination.ae_title, address = %destination.address, error = %e, retry_in_s = wait.as_secs_f64(), waiting = files.len(), "DICOM destination not reached: the outbox keeps its instances");
                    inc(&node.stats.forward_retries);
                    let w = wait;
                    wait = (wait * 2).min(retry_max);
                    w
                }
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One association: every file of `files`, each removed (with its received instance) once
/// acknowledged, or moved to `failed/` when refused.
// Long: one association's life in protocol order (contexts, establishment, one C-STORE
// per file with its outcome, release), sharing the association.
async fn send(node: &Node, destination: &Destination, files: &[PathBuf]) -> Result<(), SendError> {
    let cfg = &node.config;
    // A received instance passed on compressed goes as it is, in a context of its own
    // syntax; everything else in Explicit or Implicit VR Little Endian.
    let syntaxes: Vec<Option<String>> = files.iter().map(|f| file_syntax(f)).collect();
    let mut compressed: Vec<&str> = syntaxes
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|ts| ![EXPLICIT_VR_LE, IMPLICIT_VR_LE].contains(ts))
        .collect();
    compressed.sort_unstable();
    compressed.dedup();
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(cfg.ae_title.as_str())
        .called_ae_title(destination.ae_title.as_str())
        .with_presentation_context(MR_IMAGE_STORAGE, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    for ts in &compressed {
        options = options.with_presentation_context(MR_IMAGE_STORAGE, vec![*ts]);
    }
    let mut association = options
        .max_pdu_length(cfg.max_pdu_bytes)
        .connection_timeout(cfg.timeout())
        .read_timeout(cfg.timeout())
        .write_timeout(cfg.timeout())
        .establish_async(destination.address.as_str())
        .await?;
    // Without it, each instance's last small segment waits for the peer's delayed ACK
    // (about 40 ms an instance on Linux).
    let _ = association.inner_stream().set_nodelay(true);
    let accepted: Vec<_> = association
        .presentation_contexts()
        .iter()
        .filter(|c| c.reason == PresentationContextResultReason::Acceptance)
        .cloned()
        .collect();
    let syntax_of = |c: &&dicom_ul::pdu::PresentationContextNegotiated| {
        c.transfer_syntax.trim_end_matches('\0').to_string()
    };
    let plain = accepted
        .iter()
        .find(|c| [EXPLICIT_VR_LE, IMPLICIT_VR_LE].contains(&syntax_of(c).as_str()));
    if accepted.is_empty() {
        return Err(SendError::Protocol(
            "the destination accepts no MR Image Storage context".into(),
        ));
    }
    let max_pdu = match association.acceptor_max_pdu_length() {
        0 => 16 * 1024,
        n => n as usize,
    };
    let spool = cfg.spool.clone();
    for (i, file) in files.iter().enumerate() {
        let message_id = (i % 0xFFFF + 1) as u16;
        let context = match syntaxes[i].as_deref() {
            Some(ts) if compressed.contains(&ts) => accepted.iter().find(|c| syntax_of(c) == ts),
            _ => plain,
        };
        let Some(context) = context else {
            let reason = format!(
                "{} accepts no context for this instance's transfer syntax {}",
                destination.ae_title,
                syntaxes[i].as_deref().unwrap_or("(unreadable)")
            );
            set_aside(&spool, file, &reason, &node.stats.forward_failed);
            continue;
        };
        let prepared = encode(file, syntax_of(&context).as_str());
        let (class, instance, data) = match prepared {
            Ok(p) => p,
            Err(reason) => {
                set_aside(&spool, file, &reason, &node.stats.forward_failed);
                continue;
            }
        };
        let command = dimse::store_request(message_id, &class, &instance);
        association
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: context.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: command,
                }],
            })
            .await?;
        // Fragments that fit the destination's PDU (6 bytes of PDV header each).
        let chunk = max_pdu.saturating_sub(6).max(1024);
        let mut parts = data.chunks(chunk).peekable();
        while let Some(part) = parts.next() {
            association
                .send(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: context.id,
                        value_type: PDataValueType::Data,
                        is_last: parts.peek().is_none(),
                        data: part.to_vec(),
                    }],
                })
                .await?;
        }
        let status = response(&mut association, message_id).await?;
        if dimse::is_stored(status) {
            let _ = fs::remove_file(file);
            // Its series' folder goes once empty (it fails while files are left).
            if let Some(folder) = file.parent().filter(|f| *f != dir(&spool)) {
                let _ = fs::remove_dir(folder);
            }
            // The received instance this was made from leaves the spool with it.
            if let Some(name) = file.file_name() {
                let _ = fs::remove_file(node.spool.received().join(name));
            }
            inc(&node.stats.instances_forwarded);
            info!(instance = %instance, destination = %destination.ae_title, "DICOM instance delivered");
        } else {
            let reason = format!("{} answered status {status:#06x}", destination.ae_title);
            set_aside(&spool, file, &reason, &node.stats.forward_failed);
        }
    }
    association.release().await?;
    Ok(())
}

/// The C-STORE response to `message_id`: its status.
async fn response(
    association: &mut dicom_ul::association::AsyncClientAssociation<TcpStream>,
    message_id: u16,
) -> Result<u16, SendError> {
    let mut command = Vec::new();
    loop {
        match association.receive().await? {
            Pdu::PData { data } => {
                for pdv in data {
                    if pdv.value_type != PDataValueType::Command {
                        return Err(SendError::Protocol(
                            "a data set in a C-STORE response".into(),
                        ));
                    }
                    command.extend_from_slice(&pdv.data);
                    if pdv.is_last {
                        let (answered, status) = dimse::response_status(&command)
                            .map_err(|e| SendError::Protocol(e.to_string()))?;
                        if answered != message_id {
                            return Err(SendError::Protocol(format!(
                                "response to message {answered}, waiting for {message_id}"
                            )));
                        }
                        return Ok(status);
                    }
                }
            }
            other => {
                return Err(SendError::Protocol(format!(
                    "{} instead of a C-STORE response",
                    other.short_description()
                )));
            }
        }
    }
}

/// A Part 10 file's transfer syntax, from its file meta group alone (none if unreadable).
fn file_syntax(file: &Path) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut reader = std::io::BufReader::new(fs::File::open(file).ok()?);
    reader.seek(SeekFrom::Start(128)).ok()?;
    let meta = dicom_object::meta::FileMetaTable::from_reader(reader).ok()?;
    Some(meta.transfer_syntax().to_string())
}

/// A Part 10 file's SOP class, instance and data set, encoded in `transfer_syntax`. A file
/// already in that syntax (the derived instances are) is sent as its bytes are, after its
/// file meta group: no parsing of the data set, no encoding again.
fn encode(file: &Path, transfer_syntax: &str) -> Result<(String, String, Vec<u8>), String> {
    let bytes = fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // Preamble, "DICM", then (0002,0000) UL 4 bytes: the meta group's length.
    let has_group_length = bytes.len() > 144
        && &bytes[128..132] == b"DICM"
        && bytes[132..136] == [0x02, 0x00, 0x00, 0x00]
        && &bytes[136..138] == b"UL";
    if has_group_length
        && let Ok(meta) = dicom_object::meta::FileMetaTable::from_reader(&bytes[128..])
        && meta.transfer_syntax() == transfer_syntax
    {
        let start = 144 + meta.information_group_length as usize;
        if start <= bytes.len() {
            return Ok((
                meta.media_storage_sop_class_uid().to_string(),
                meta.media_storage_sop_instance_uid().to_string(),
                bytes[start..].to_vec(),
            ));
        }
    }
    let obj = dicom_object::OpenFileOptions::new()
        .from_reader(std::io::Cursor::new(bytes.get(128..).unwrap_or_default()))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let meta = obj.meta();
    let class = meta
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    let instance = meta
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0')
        .to_string();
    let ts = TransferSyntaxRegistry
        .get(transfer_syntax)
        .ok_or_else(|| format!("transfer syntax {transfer_syntax} unknown"))?;
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, ts)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((class, instance, data))
}

/// Moves a file the destination will not take to `<spool>/failed/`, with the reason beside
/// it.
pub(crate) fn set_aside(
    spool: &Path,
    file: &Path,
    reason: &str,
    counter: &std::sync::atomic::AtomicU64,
) {
    warn!(file = %file.display(), %reason, "DICOM instance not delivered: set aside in failed/");
    inc(counter);
    let failed = spool.join(FAILED);
    let _ = fs::create_dir_all(&failed);
    if let Some(name) = file.file_name() {
        let to = failed.join(name);
        if fs::rename(file, &to).is_ok() {
            let _ = fs::write(to.with_extension("reason.txt"), format!("{reason}\n"));
        }
    }
}
