//! Accepting connections, the metrics endpoint, and shutting down without dropping images.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossdenoise_runtime::{Denoiser, OnnxRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::mrd::config::HostConfig;
use crate::mrd::pairing::Kept;
use crate::mrd::session::{self, Context, Phase};
use crate::mrd::stats::{Stats, inc};
use crate::mrd::worker::{Engine, ModelInfo, Worker, WorkerOptions};
use crate::mrd::{Message, MessageWriter};
use crate::peers::PeerSlot;

/// Every profile's `alone` models against what their keys promise; `infos` are the models'
/// in [`HostConfig::model_paths`] order.
pub fn check_alone_models(config: &HostConfig, infos: &[ModelInfo]) -> Result<(), HostError> {
    let paths = config.model_paths();
    for (name, profile) in &config.profiles {
        for (contrast, path) in &profile.alone {
            let info = paths
                .iter()
                .position(|p| p == path)
                .and_then(|i| infos.get(i));
            let found = match info {
                None => "not opened".to_string(),
                Some(i) if i.guide.is_some() => {
                    format!("a guided {} model (it needs a guide)", i.output)
                }
                Some(i) if i.label != "denoised" => format!("a {} model", i.label),
                Some(i) if i.output.is_empty() => "a model that names no contrast".to_string(),
                Some(i) if !i.output.eq_ignore_ascii_case(contrast) => {
                    format!("a {} model", i.output)
                }
                Some(_) => continue,
            };
            return Err(HostError::AloneModel {
                profile: name.clone(),
                contrast: contrast.clone(),
                path: path.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// The daemon, ready to serve: models open, worker running.
pub struct Host {
    pub ctx: Arc<Context>,
    worker_thread: std::thread::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("model {path}: {source}")]
    Model {
        path: std::path::PathBuf,
        source: Box<crossdenoise_runtime::Error>,
    },
    #[error(transparent)]
    Runtime(Box<crossdenoise_runtime::Error>),
    /// A profile's `alone` model that is not a single-contrast denoiser of its key's
    /// contrast: it would answer an image with another contrast, or need a guide.
    #[error(
        "profiles.{profile}.alone.{contrast}: {path} is {found}, not a single-contrast {contrast} denoiser"
    )]
    AloneModel {
        profile: String,
        contrast: String,
        path: std::path::PathBuf,
        found: String,
    },
}

impl Host {
    /// Opens every model of the config in ONNX Runtime (warm-up included, so a broken model
    /// stops the daemon here, not at the first patient's image).
    pub fn open(config: HostConfig) -> Result<Self, HostError> {
        let runtime = OnnxRuntime::load().map_err(|e| HostError::Runtime(Box::new(e)))?;
        let options = config.denoiser_options();
        let mut engines = Vec::new();
        for path in config.model_paths() {
            let mut d =
                Denoiser::open(&runtime, &path, &options).map_err(|source| HostError::Model {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            let strength = config.strength.of(d.metadata().output_contrast());
            d.set_strength(strength)
                .map_err(|source| HostError::Model {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            info!(model = %path.display(), provider = %d.provider(), "model ready");
            for f in d.fallbacks() {
                warn!(model = %path.display(), fallback = %f, "execution provider skipped");
            }
            engines.push(d);
        }
        let infos: Vec<ModelInfo> = engines.iter().map(Engine::info).collect();
        check_alone_models(&config, &infos)?;
        Ok(Self::with_engines(config, engines))
    }

    /// Serves with the given engines, one per [`HostConfig::model_paths`] entry in order.
    pub fn with_engines<E: Engine>(config: HostConfig, engines: Vec<E>) -> Self {
        let models: HashMap<_, _> = config
            .model_paths()
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, i))
            .collect();
        let infos = engines.iter().map(Engine::info).collect();
        let (worker, worker_thread) = Worker::spawn(
            engines,
            WorkerOptions {
                batch_size: config.batch_size,
                batch_wait: Duration::from_millis(config.batch_wait_ms),
                queue_depth: config.queue_depth,
                noise_pool_slices: config.noise_pool_slices,
            },
        );
        Host {
            ctx: Arc::new(Context {
                models,
                infos,
                kept: Mutex::new(Kept::new(config.pair_window(), config.pair_keep_bytes())),
                config,
                worker,
                stats: Arc::new(Stats::default()),
            }),
            worker_thread,
        }
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.ctx.stats.clone()
    }

    /// Serves `listener` until `shutdown` completes, then stops accepting, lets every open
    /// connection answer what it has received and send close, and waits for them.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
        let limit = Arc::new(Semaphore::new(self.ctx.config.max_connections));
        let per_peer = Arc::new(Mutex::new(HashMap::new()));
        let mut connections = JoinSet::new();
        let stats_every = self.ctx.config.stats_interval_s;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(stats_every.max(1.0)));
        ticker.tick().await;
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(10);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick(), if stats_every > 0.0 => {
                    info!("{}", self.ctx.stats.snapshot().line());
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => { backoff = Duration::from_millis(10); a }
                        Err(e) => {
                            // Out of file descriptors and the like: wait, then go on.
                            error!(error = %e, "accept failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let cfg = &self.ctx.config;
                    let peer_slot = PeerSlot::take(&per_peer, peer.ip(), cfg.max_connections_per_peer);
                    let permit = limit.clone().try_acquire_owned();
                    let (Ok(permit), Some(peer_slot)) = (permit, peer_slot) else {
                        let reason = if limit.available_permits() == 0 {
                            format!("too many connections (max_connections = {})", cfg.max_connections)
                        } else {
                            format!("too many connections from {} (max_connections_per_peer = {})", peer.ip(), cfg.max_connections_per_peer)
                        };
                        warn!(%peer, %reason, "connection refused");
                        inc(&self.ctx.stats.connections_refused);
                        connections.spawn(refuse(stream, reason));
                        continue;
                    };
                    let ctx = self.ctx.clone();
                    let phase = phase_rx.clone();
                    connections.spawn(async move {
                        inc(&ctx.stats.connections);
                        inc(&ctx.stats.connections_active);
                        info!(%peer, "connected");
                        let (r, w) = stream.into_split();
                        session::handle(r, w, peer.to_string(), ctx.clone(), phase).await;
                        ctx.stats.connections_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        info!(%peer, "disconnected");
                        drop((permit, peer_slot));
                    });
                }
            }
        }
        info!(
            open = connections.len(),
            "shutting down: finishing open connections"
        );
        drop(listener);
        let _ = phase_tx.send(Phase::Stopping);
        let grace = self.ctx.config.shutdown_grace();
        let finished = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            warn!(
                open = connections.len(),
                grace_s = grace.as_secs_f64(),
                "shutdown_grace_s is over: answers not yet sent are undeliverable"
            );
            let _ = phase_tx.send(Phase::Abort);
            // Writers stop at once on abort; a connection stuck elsewhere is cut.
            if tokio::time::timeout(Duration::from_secs(5), async {
                while connections.join_next().await.is_some() {}
            })
            .await
            .is_err()
            {
                connections.shutdown().await;
            }
        }
        let Host { ctx, worker_thread } = self;
        info!("{}", ctx.stats.snapshot().line());
        drop(ctx);
        // The worker ends once the last connection's handle to it is gone.
        let _ = tokio::task::spawn_blocking(move || worker_thread.join()).await;
    }
}

/// Turns a client away politely: an MRD error text saying why, close, and the socket
/// closed only after the client's side (or two seconds), so it reads the reason rather
/// than a reset.
async fn refuse(stream: tokio::net::TcpStream, reason: String) {
    let (mut r, w) = stream.into_split();
    let mut writer = MessageWriter::new(w);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        writer
            .write(&Message::Text(format!(
                "ERR crossdenoise: {reason}; try again later"
            )))
            .await?;
        writer.write(&Message::Close).await?;
        writer.shutdown().await?;
        session::discard(&mut r).await;
        std::io::Result::Ok(())
    })
    .await;
}

/// Serves `GET /metrics` (Prometheus text) on a loopback listener until `shutdown`: the MRD
/// daemon's counts, and the DICOM node's when it runs.
pub async fn serve_metrics(
    listener: TcpListener,
    stats: Arc<Stats>,
    node: Option<Arc<crate::dicom::Node>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (mut stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let (stats, node) = (stats.clone(), node.clone());
        tokio::spawn(async move {
            // Read the request head (up to its blank line, 1 KiB at most): a client may send
            // it in several writes.
            let mut buf = [0u8; 1024];
            let mut n = 0;
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
            })
            .await;
            if head.is_err() || n == 0 {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                let mut body = stats.snapshot().prometheus();
                if let Some(node) = &node {
                    body.push_str(&node.prometheus());
                }
                ("200 OK", body)
            } else {
                ("404 Not Found", "only GET /metrics is served\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
