//! One association: negotiation (AE titles, presentation contexts), then its messages in
//! order until the peer releases or aborts it. A C-STORE is answered only after its
//! instance is in the spool; a protocol error or silence past `timeout_s` aborts the
//! association, and what it had not been answered for stays with the sender.

use std::net::SocketAddr;
use std::sync::Arc;

use dicom_ul::association::server::AccessControl;
use dicom_ul::association::{AsyncServerAssociation, ServerAssociationOptions};
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValue, PDataValueType, Pdu,
    PresentationContextResultReason, UserIdentity,
};
use dicom_ul::prelude::*;
use tokio::net::TcpStream;
use tracing::{info, warn};

use crossdenoise_image::dicom::can_decode;

use super::dimse::{
    self, COMPRESSED, EXPLICIT_VR_LE, IMPLICIT_VR_LE, MR_IMAGE_STORAGE, Request, Status,
    VERIFICATION,
};
use super::enhanced::ENHANCED_MR_IMAGE_STORAGE;
use super::node::{Node, inc};
use super::series::Sending;
use super::spool::{SpoolError, Stored};

/// Largest command set accepted (a C-STORE-RQ is about 200 bytes).
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The calling AE titles let in (any when empty) and this node's own title.
struct AllowList(Vec<String>);

impl AccessControl for AllowList {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let calling = calling_ae_title.trim();
        if !self.0.is_empty() && !self.0.iter().any(|t| t.trim() == calling) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum AssociationError {
    #[error(transparent)]
    Ul(#[from] dicom_ul::association::Error),
    #[error("{0}")]
    Protocol(String),
}

/// Serves one association on `socket` to its end.
pub async fn serve(socket: TcpStream, peer: SocketAddr, node: Arc<Node>) {
    let cfg = &node.config;
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(AllowList(cfg.allowed_calling_aes.clone()))
        .ae_title(cfg.ae_title.as_str())
        .with_abstract_syntax(VERIFICATION)
        .with_abstract_syntax(MR_IMAGE_STORAGE)
        .with_abstract_syntax(ENHANCED_MR_IMAGE_STORAGE)
        .with_transfer_syntax(IMPLICIT_VR_LE)
        .with_transfer_syntax(EXPLICIT_VR_LE);
    for ts in COMPRESSED.into_iter().filter(|ts| can_decode(ts)) {
        options = options.with_transfer_syntax(ts);
    }
    let options = options
        .max_pdu_length(cfg.max_pdu_bytes)
        .read_timeout(cfg.timeout())
        .write_timeout(cfg.timeout());
    // A connection that does not ask for an association soon holds a slot for nothing.
    let handshake = cfg.handshake_timeout();
    let mut association = match tokio::time::timeout(handshake, options.establish_async(socket))
        .await
    {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "DICOM association rejected");
            inc(&node.stats.associations_rejected);
            return;
        }
        Err(_) => {
            warn!(%peer, handshake_timeout_s = cfg.handshake_timeout_s, "DICOM connection closed: no association asked for within handshake_timeout_s");
            inc(&node.stats.associations_rejected);
            return;
        }
    };
    inc(&node.stats.associations);
    let calling = association.peer_ae_title().to_string();
    info!(%peer, %calling, "DICOM association");
    for pc in association.presentation_contexts() {
        if pc.reason != PresentationContextResultReason::Acceptance {
            // A sender proposing only what this node does not take (another SOP class, a
            // compressed syntax) learns it here, per presentation context.
            warn!(%peer, %calling, abstract_syntax = %pc.abstract_syntax, reason = ?pc.reason, "DICOM presentation context refused");
        }
    }
    match messages(&mut association, &node).await {
        Ok(()) => info!(%peer, %calling, "DICOM association released"),
        Err(e) => {
            warn!(%peer, %calling, error = %e, "DICOM association aborted");
            inc(&node.stats.associations_aborted);
            let _ = association.abort().await;
        }
    }
}

/// The association's messages until release (`Ok`) or a reason to abort (`Err`).
// Long: the DIMSE state of one association (the C-STORE whose data is arriving, its
// size so far) is shared by every arm of the message loop.
async fn messages(
    association: &mut AsyncServerAssociation<TcpStream>,
    node: &Arc<Node>,
) -> Result<(), AssociationError> {
    let max_instance = node.config.max_instance_bytes();
    let mut sending = Sending::new(&node.receiving);
    let mut command = Vec::new();
    let mut data = Vec::new();
    let mut too_large = false;
    // The C-STORE whose data set is arriving: its request, context and SOP class + instance.
    let mut pending: Option<(Request, u8, (String, String))> = None;
    loop {
        let pdvs = match association.receive().await? {
            Pdu::PData { data } => data,
            Pdu::ReleaseRQ => {
                association.send(&Pdu::ReleaseRP).await?;
                return Ok(());
            }
            Pdu::AbortRQ { .. } => return Ok(()),
            other => {
                return Err(AssociationError::Protocol(format!(
                    "unexpected {}",
                    other.short_description()
                )));
            }
        };
        for pdv in pdvs {
            let pc = pdv.presentation_context_id;
            match pdv.value_type {
                PDataValueType::Command => {
                    if command.len() + pdv.data.len() > MAX_COMMAND_BYTES {
                        return Err(AssociationError::Protocol(format!(
                            "a command set over {MAX_COMMAND_BYTES} bytes"
                        )));
                    }
                    command.extend_from_slice(&pdv.data);
                    if !pdv.is_last {
                        continue;
                    }
                    let request = dimse::parse(&command)
                        .map_err(|e| AssociationError::Protocol(e.to_string()))?;
                    command.clear();
                    match request {
                        Request::Echo { .. } => {
                            inc(&node.stats.echoes);
                            respond(association, pc, &request, Status::Success).await?;
                        }
                        Request::Store {
                            has_data: true,
                            ref sop_class,
                            ref sop_instance,
                            ..
                        } => {
                            inc(&node.stats.instances_received);
                            data.clear();
                            too_large = false;
                            let ids = (sop_class.clone(), sop_instance.clone());
                            pending = Some((request, pc, ids));
                        }
                        Request::Store { .. } => {
                            inc(&node.stats.instances_refused);
                            respond(association, pc, &request, Status::CannotUnderstand).await?;
                        }
                        Request::Other { command: c, .. } => {
                            warn!(command = format!("{c:#06x}"), "DICOM command not provided");
                            respond(association, pc, &request, Status::UnrecognizedOperation)
                                .await?;
                        }
                    }
                }
                PDataValueType::Data => {
                    if pending.is_none() {
                        return Err(AssociationError::Protocol(
                            "a data set without a command".into(),
                        ));
                    }
                    if too_large || data.len() + pdv.data.len() > max_instance {
                        // Read to its end and refuse it; the association goes on.
                        too_large = true;
                        data = Vec::new();
                    } else {
                        data.extend_from_slice(&pdv.data);
                    }
                    if !pdv.is_last {
                        continue;
                    }
                    let (request, pc, ids) = pending.take().expect("checked above");
                    let status = if too_large {
                        warn!(
                            max_instance_mib = node.config.max_instance_mib,
                            "DICOM instance refused: larger than max_instance_mib"
                        );
                        inc(&node.stats.instances_refused);
                        Status::OutOfResources
                    } else {
                        let ts = association
                            .presentation_contexts()
                            .iter()
                            .find(|c| c.id == pc)
                            .map(|c| c.transfer_syntax.clone())
                            .ok_or_else(|| {
                                AssociationError::Protocol(format!(
                                    "presentation context {pc} was not negotiated"
                                ))
                            })?;
                        let (status, series) =
                            store(node, ids, &ts, std::mem::take(&mut data)).await;
                        if let Some(series) = series {
                            sending.sent(&series);
                        }
                        status
                    };
                    respond(association, pc, &request, status).await?;
                }
            }
        }
    }
}

/// Writes one instance (its command's SOP class and instance UIDs, `ids`) to the spool and
/// says what to answer, and the series it joined.
async fn store(
    node: &Arc<Node>,
    ids: (String, String),
    ts: &str,
    data: Vec<u8>,
) -> (Status, Option<String>) {
    let (n, (class, instance), ts) = (node.clone(), ids, ts.to_string());
    let named = instance.clone();
    let result = tokio::task::spawn_blocking(move || {
        let on_conflict = n.config.on_conflict;
        n.spool.store((&class, &instance), &ts, &data, on_conflict)
    })
    .await
    .unwrap_or_else(|e| {
        Err(SpoolError::Unreadable(format!(
            "the spool writer failed: {e}"
        )))
    });
    let stats = &node.stats;
    match result {
        Ok((Stored::New(path), ids)) => {
            inc(&stats.instances_stored);
            info!(instance = %ids.sop_instance, series = %ids.series, path = %path.display(), "DICOM instance stored");
            (Status::Success, Some(ids.series))
        }
        Ok((Stored::Duplicate(_), ids)) => {
            inc(&stats.instances_duplicate);
            info!(instance = %ids.sop_instance, "DICOM instance already stored: acknowledged once more");
            (Status::Success, Some(ids.series))
        }
        Ok((Stored::Conflicting(path), ids)) => {
            inc(&stats.instances_duplicate);
            inc(&stats.instances_conflicting);
            warn!(instance = %ids.sop_instance, kept = %path.display(), "DICOM instance already stored with other content: the first kept, this one acknowledged and dropped (on_conflict = \"keep_first\")");
            (Status::Success, Some(ids.series))
        }
        Err(e) => {
            inc(&stats.instances_refused);
            if matches!(e, SpoolError::Conflict(_)) {
                inc(&stats.instances_conflicting);
            }
            warn!(instance = %named, error = %e, "DICOM instance refused");
            let status = match e {
                SpoolError::Unreadable(_) => Status::CannotUnderstand,
                SpoolError::Mismatch(_) => Status::DataSetMismatch,
                SpoolError::Conflict(_) => Status::DuplicateInstance,
                SpoolError::Io { .. } | SpoolError::Full(_) => Status::OutOfResources,
            };
            (status, None)
        }
    }
}

async fn respond(
    association: &mut AsyncServerAssociation<TcpStream>,
    pc: u8,
    request: &Request,
    status: Status,
) -> Result<(), AssociationError> {
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: dimse::response(request, status),
        }],
    };
    association.send(&pdu).await?;
    Ok(())
}
