//! `crossdenoise-host serve` (the daemon) and `crossdenoise-host send` (the scanner's side).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser;
use crossdenoise_host::mrd::DataType;
use crossdenoise_host::mrd::client::{self, SendOptions};
use crossdenoise_host::mrd::config::{DEFAULT_PROFILE, Profile};
use crossdenoise_host::mrd::server;
use crossdenoise_host::mrd::stats::Stats;
use crossdenoise_host::{Host, HostConfig, dicom};
use crossdenoise_runtime::ProviderSettings;
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "crossdenoise-host",
    version,
    about = "MRD denoising daemon next to the MRI console"
)]
enum Cli {
    /// Serve denoising over the MRD streaming protocol until SIGTERM / Ctrl-C.
    Serve(ServeArgs),
    /// Stream image files to a daemon as MRD images and write what comes back.
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The exported model; it becomes the default profile's model (overriding host.toml's).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:9002).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host.toml with profiles, limits and execution providers.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Allow a non-loopback --listen address.
    #[arg(long)]
    allow_remote: bool,
    /// Loopback address for GET /metrics (Prometheus text).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Execution providers in order, e.g. tensorrt,cuda,cpu.
    #[arg(long)]
    ep: Option<String>,
    /// Also send each original image after its denoised version.
    #[arg(long)]
    send_original: bool,
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    #[arg(long, default_value = "127.0.0.1:9002")]
    connect: String,
    /// .npy / .png / DICOM files or folders of them, or MRD .h5 files (replayed as recorded).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Config name sent to the server (selects its model profile).
    #[arg(long, default_value = DEFAULT_PROFILE)]
    config: String,
    /// Pixel type of the images sent.
    #[arg(long, value_enum, default_value_t = PixelType::Float)]
    dtype: PixelType,
    /// Send the inputs slice by slice in turn (for a guided model: each slice's partner
    /// contrast arrives with it). Input k is series k + 1 with contrast index k.
    #[arg(long)]
    interleave: bool,
    /// The ISMRMRD XML header to send (default: a minimal one). The daemon pairs partner
    /// series sent on separate connections by the study it names.
    #[arg(long, conflicts_with = "frame_of_reference")]
    header: Option<PathBuf>,
    /// Send a minimal header naming this frame of reference UID: two `send`s of the PD and
    /// the PDFS series with the same UID are paired by the daemon.
    #[arg(long)]
    frame_of_reference: Option<String>,
}

/// The MRD pixel types `send` writes (one closed list, so `--help` and the parser agree).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PixelType {
    Float,
    Ushort,
    Short,
    Double,
}

impl From<PixelType> for DataType {
    fn from(p: PixelType) -> Self {
        match p {
            PixelType::Float => DataType::F32,
            PixelType::Ushort => DataType::U16,
            PixelType::Short => DataType::I16,
            PixelType::Double => DataType::F64,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| {
            rt.block_on(async {
                match Cli::parse() {
                    Cli::Serve(a) => serve(a).await,
                    Cli::Send(a) => send(a).await,
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// Long: the daemon's start-up in its order: command line over host.toml, checks, then
// each server started on the shared state.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => HostConfig::read(path)?,
        None => HostConfig::default(),
    };
    if let Some(model) = args.model {
        let name = config.default_profile.clone();
        config
            .profiles
            .entry(name)
            .and_modify(|p| p.model = model.clone())
            .or_insert_with(|| Profile::of(&model));
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.allow_remote |= args.allow_remote;
    config.send_original |= args.send_original;
    if let Some(m) = args.metrics {
        config.metrics_listen = Some(m);
    }
    if let Some(ep) = &args.ep {
        config.execution_providers.order = ProviderSettings::parse_order(ep)?;
    }
    let source = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("command line"));
    config.validate(&source)?;
    let listen = config.listen;
    let metrics = config.metrics_listen;
    let dicom = config.dicom.clone();
    let denoiser_options = config.denoiser_options();
    // The MRD listener serves when a model profile is configured; without one the daemon is
    // the DICOM node alone (validate has checked that one of the two is there).
    let mrd = if config.profiles.is_empty() {
        info!("no model profile: the MRD listener is off, the DICOM node serves alone");
        None
    } else {
        let host = tokio::task::spawn_blocking(move || Host::open(config))
            .await
            .context("opening the models")??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        // Tests and scripts read this line to find the port when --listen asks for port 0.
        info!(address = %listener.local_addr()?, "serving MRD");
        eprintln!("listening on {}", listener.local_addr()?);
        Some((host, listener))
    };
    let stats = mrd
        .as_ref()
        .map_or_else(|| Arc::new(Stats::default()), |(host, _)| host.stats());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut dicom_node = None;
    let node = match dicom {
        Some(cfg) => {
            let addr = cfg.listen;
            let node = Arc::new(dicom::Node::open(cfg).context("opening the DICOM spool")?);
            let models = {
                let (config, options) = (node.config.clone(), denoiser_options.clone());
                tokio::task::spawn_blocking(move || {
                    let runtime = crossdenoise_runtime::OnnxRuntime::load()?;
                    anyhow::Ok(dicom::models::Models::open(&config, &runtime, &options)?)
                })
                .await
                .context("opening the DICOM node's models")??
            };
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("DICOM node on {addr}"))?;
            // Tests and scripts read this line to find the port when asked for port 0.
            eprintln!(
                "DICOM node {} on {} (spool {})",
                node.config.ae_title,
                l.local_addr()?,
                node.config.spool.display()
            );
            dicom_node = Some(node.clone());
            Some(dicom::start(node, models, l, stop_rx.clone()))
        }
        None => None,
    };
    if let Some(addr) = metrics {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics on {addr}"))?;
        eprintln!("metrics on http://{}/metrics", l.local_addr()?);
        let mut stop = stop_rx.clone();
        tokio::spawn(server::serve_metrics(l, stats, dicom_node, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    match mrd {
        Some((host, listener)) => host.serve(listener, shutdown).await,
        None => shutdown.await,
    }
    if let Some(node) = node {
        node.join().await;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("Ctrl-C"),
            _ = term.recv() => info!("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let options = SendOptions {
        config_name: args.config,
        data_type: args.dtype.into(),
        max_message: 1 << 30,
        interleave: args.interleave,
        header: match (&args.header, &args.frame_of_reference) {
            (Some(path), _) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the MRD header {}", path.display()))?,
            ),
            (None, Some(uid)) => Some(client::header_with_frame_of_reference(uid)),
            (None, None) => None,
        },
    };
    let report = client::send(&args.connect, &args.inputs, &args.out, &options).await?;
    for t in &report.texts {
        eprintln!("server: {t}");
    }
    let synthesized = if report.synthesized > 0 {
        format!(", {} synthesized (contrast synthesis)", report.synthesized)
    } else {
        String::new()
    };
    println!(
        "sent {} images: {} denoised{synthesized}, {} returned unchanged, written to {}",
        report.sent,
        report.denoised,
        report.unchanged,
        args.out.display()
    );
    if !report.server_closed {
        bail!("the server ended the connection without MRD close");
    }
    Ok(())
}
