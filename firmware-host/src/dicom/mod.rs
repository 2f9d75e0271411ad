//! The DICOM node: the scanner or the PACS sends a study by C-STORE, and every instance is
//! in the spool, synced, before the node answers success ([`spool`]). It answers C-ECHO,
//! accepts MR Image Storage and Enhanced MR Image Storage (split per frame,
//! [`enhanced`]) in Implicit or Explicit VR Little Endian, JPEG, RLE or JPEG 2000 (decoded
//! when the series is denoised; the derived series is uncompressed) from the calling AE
//! titles it is told to (any, when none is listed), and bounds what one peer can take:
//! associations at once, PDU and instance size, silence.
//!
//! [`association`] serves one association, [`dimse`] reads and writes the command sets.

pub mod association;
pub mod config;
mod derived;
pub mod dimse;
pub mod enhanced;
pub mod models;
pub mod node;
pub mod outbox;
pub mod pipeline;
pub mod series;
pub mod spool;
mod staging;

use node::inc;
pub use node::{Node, NodeStats};

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::peers::{PeerCounts, PeerSlot};

impl Node {
    /// Accepts associations on `listener` until `shutdown`; then stops accepting. An
    /// association cut by the end of the process loses nothing acknowledged: what was
    /// answered is in the spool, what was not the sender still holds.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.config.max_associations));
        let per_peer = PeerCounts::default();
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "DICOM accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = socket.set_nodelay(true);
            let max_per_peer = self.config.max_associations_per_peer;
            let Some(peer_slot) = PeerSlot::take(&per_peer, peer.ip(), max_per_peer) else {
                warn!(%peer, max = max_per_peer, "DICOM association rejected: max_associations_per_peer reached");
                inc(&self.stats.associations_rejected);
                tokio::spawn(reject_busy(socket));
                continue;
            };
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        association::serve(socket, peer, node).await;
                        drop((permit, peer_slot));
                    });
                }
                Err(_) => {
                    warn!(%peer, max = self.config.max_associations, "DICOM association rejected: max_associations reached");
                    inc(&self.stats.associations_rejected);
                    tokio::spawn(reject_busy(socket));
                }
            }
        }
        info!("{}", self.stats.line());
    }
}

/// The node at work: associations served on its listener, complete series denoised by the
/// pipeline thread, results delivered by the outbox (when a destination is configured).
pub struct Working {
    serve: JoinHandle<()>,
    pipeline: std::thread::JoinHandle<()>,
    outbox: Option<JoinHandle<()>>,
}

/// Starts the node's three parts; `stop` turning true ends them all: no new association,
/// the pipeline after the series it is on, the outbox after the file in flight. What is
/// left stays in the spool for the next start.
pub fn start(
    node: Arc<Node>,
    models: models::Models,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Working {
    let pipeline = {
        let (node, stop) = (node.clone(), stop.clone());
        std::thread::Builder::new()
            .name("dicom-pipeline".into())
            .spawn(move || pipeline::run(node, models, stop))
            .expect("spawn the DICOM pipeline thread")
    };
    let outbox = node
        .config
        .destination
        .clone()
        .map(|d| tokio::spawn(outbox::deliver(node.clone(), d, stop.clone())));
    let mut stop = stop;
    let serve = tokio::spawn(node.serve(listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    Working {
        serve,
        pipeline,
        outbox,
    }
}

impl Working {
    /// Waits for the parts to end (after `stop`).
    pub async fn join(self) {
        let _ = self.serve.await;
        if let Some(outbox) = self.outbox {
            let _ = outbox.await;
        }
        let _ = tokio::task::spawn_blocking(move || self.pipeline.join()).await;
    }
}

/// Rejects an association as transient (local limit exceeded), so the sender retries
/// later, then reads what it sends until it closes (or 2 s), so the rejection is not lost
/// to a reset.
async fn reject_busy(mut socket: TcpStream) {
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut bytes = Vec::new();
    if dicom_ul::pdu::write_pdu(&mut bytes, &rj).is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        socket.write_all(&bytes).await?;
        socket.shutdown().await?;
        tokio::io::copy(&mut socket, &mut tokio::io::sink()).await
    })
    .await;
}
