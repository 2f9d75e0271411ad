//! What a connection's reading and writing sides share: the daemon's context, its phase,
//! and the queue's items.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use crate::mrd::config::HostConfig;
use crate::mrd::pairing::Kept;
use crate::mrd::stats::Stats;
use crate::mrd::worker::{Answer, ModelInfo, Worker};
use crate::mrd::{Image, Message, Meta};

/// What every connection shares.
pub struct Context {
    pub config: HostConfig,
    /// Model file -> the worker's model index.
    pub models: HashMap<PathBuf, usize>,
    /// What each model (by index) does.
    pub infos: Vec<ModelInfo>,
    pub worker: Worker,
    pub stats: Arc<Stats>,
    /// Images that found no partner, kept for partner series to come.
    pub kept: std::sync::Mutex<Kept>,
}

/// Where the daemon is in its life; every connection watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Stop reading, answer what was received, send close.
    Stopping,
    /// `shutdown_grace_s` is over: stop writing; what is left is undeliverable.
    Abort,
}

/// Resolves once the daemon says abort (never, if nobody can say it any more).
pub(super) async fn until_abort(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p == Phase::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}

// Messages are moved once through a short queue; boxing the common case buys nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Outgoing {
    Now(Message),
    /// The original image, its attributes as read on arrival (`None`: unreadable, carried
    /// over as they are), its answer, and when it arrived.
    Pending {
        original: Box<Image>,
        meta: Option<Meta>,
        /// What the derived image says of itself (`denoised`, `synthesized_pd`).
        label: String,
        answer: oneshot::Receiver<Answer>,
        arrived: Instant,
        send_original: bool,
    },
}
