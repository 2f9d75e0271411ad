//! A connection's writing side: the answers in arrival order, each denoised image or its
//! original, then close; nothing read is dropped while the client can be written to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::shared::{Context, Outgoing, Phase, until_abort};
use crate::mrd::answer::{OutputError, denoised_image};
use crate::mrd::config::HostConfig;
use crate::mrd::stats::inc;
use crate::mrd::worker::JobError;
use crate::mrd::{Message, MessageWriter};

/// Sends the answers in arrival order, then close, and says how many messages it sent
/// before close. Once the client cannot be written to
/// (gone, reading nothing for `write_timeout_s`, or the shutdown grace over) the answers
/// left are dropped unawaited, so the worker skips them, and counted undeliverable.
// Long: one loop over the answers whose branches (written, timed out, client gone,
// grace over) share the writer and its counts.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: MessageWriter<W>,
    mut rx: mpsc::Receiver<Outgoing>,
    ctx: Arc<Context>,
    peer: String,
    mut phase: watch::Receiver<Phase>,
    gone: Arc<AtomicBool>,
) -> usize {
    let cfg = &ctx.config;
    let timeout = cfg.image_timeout();
    let mut alive = true;
    let mut written = 0;
    while let Some(out) = rx.recv().await {
        if alive && gone.load(Ordering::Relaxed) {
            warn!(%peer, "the client reset the connection: the answers left are undeliverable");
            alive = false;
        }
        if !alive {
            if let Outgoing::Pending { .. } = out {
                inc(&ctx.stats.images_failed);
            }
            if matches!(
                out,
                Outgoing::Pending { .. } | Outgoing::Now(Message::Image(_))
            ) {
                inc(&ctx.stats.images_undeliverable);
            }
            continue;
        }
        let messages = match out {
            Outgoing::Now(m) => vec![m],
            Outgoing::Pending {
                original,
                meta,
                label,
                answer,
                arrived,
                send_original,
            } => {
                let index = original.header.image_index;
                let left = timeout.saturating_sub(arrived.elapsed());
                let waited = tokio::select! {
                    r = tokio::time::timeout(left.max(Duration::from_millis(1)), answer) => Some(r),
                    _ = until_abort(&mut phase) => None,
                };
                let Some(waited) = waited else {
                    warn!(%peer, index, "shutdown_grace_s is over: the answers left are undeliverable");
                    alive = false;
                    inc(&ctx.stats.images_failed);
                    inc(&ctx.stats.images_undeliverable);
                    continue;
                };
                let result = match waited {
                    Ok(Ok(Ok(planes))) => denoised_image(&original, meta, &planes, &label, cfg)
                        .map_err(NotDenoised::Output),
                    Ok(Ok(Err(e))) => Err(NotDenoised::Job(e)),
                    Ok(Err(_)) => Err(NotDenoised::Dropped),
                    Err(_) => Err(NotDenoised::Late {
                        timeout_s: cfg.image_timeout_s,
                    }),
                };
                match result {
                    Ok(denoised) => {
                        inc(&ctx.stats.images_denoised);
                        ctx.stats.record_latency(arrived.elapsed().as_secs_f64());
                        let mut m = vec![Message::Image(denoised)];
                        if send_original {
                            m.push(Message::Image(*original));
                        }
                        m
                    }
                    Err(reason) => {
                        warn!(%peer, index, %reason, "denoising failed: original sent back");
                        inc(&ctx.stats.images_failed);
                        vec![Message::Image(*original)]
                    }
                }
            }
        };
        for m in messages {
            if !alive {
                if matches!(m, Message::Image(_)) {
                    inc(&ctx.stats.images_undeliverable);
                }
                continue;
            }
            written += 1;
            if let Err(reason) = write(&mut writer, &m, cfg, &mut phase).await {
                warn!(%peer, %reason, "the client cannot be written to: the answers left are undeliverable");
                alive = false;
                if matches!(m, Message::Image(_)) {
                    inc(&ctx.stats.images_undeliverable);
                }
            }
        }
    }
    if alive {
        if let Err(reason) = write(&mut writer, &Message::Close, cfg, &mut phase).await {
            debug!(%peer, %reason, "close not delivered");
        }
        let _ = tokio::time::timeout(cfg.write_timeout(), writer.shutdown()).await;
    }
    written
}

/// Why an image goes back as it came (the reason is logged).
#[derive(Debug, thiserror::Error)]
enum NotDenoised {
    #[error(transparent)]
    Job(JobError),
    #[error(transparent)]
    Output(OutputError),
    #[error("the inference worker dropped the job")]
    Dropped,
    #[error("not denoised within image_timeout_s = {timeout_s:.1} s")]
    Late { timeout_s: f64 },
}

/// Why a message could not be written; the client's remaining answers are undeliverable.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client read nothing for write_timeout_s = {0} s")]
    Stalled(f64),
    #[error("shutdown_grace_s is over")]
    GraceOver,
}

/// One message, given up on when the client takes none of it for `write_timeout_s` or the
/// shutdown grace is over.
async fn write<W: AsyncWrite + Unpin>(
    writer: &mut MessageWriter<W>,
    m: &Message,
    cfg: &HostConfig,
    phase: &mut watch::Receiver<Phase>,
) -> Result<(), WriteError> {
    tokio::select! {
        r = tokio::time::timeout(cfg.write_timeout(), writer.write(m)) => match r {
            Ok(r) => Ok(r?),
            Err(_) => Err(WriteError::Stalled(cfg.write_timeout_s)),
        },
        _ = until_abort(phase) => Err(WriteError::GraceOver),
    }
}
