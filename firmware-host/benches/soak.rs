//! Soak: the real `crossdenoise-host serve` process under four clients that misbehave at
//! random for many minutes, stopped with SIGTERM in the middle of their traffic and started
//! again between rounds. Each client iteration picks one behaviour: a plain series, a slow
//! reader, a disconnect without close, a reset, a bad message after its images, or a stall
//! (reads nothing past `write_timeout_s`, then goes).
//!
//! Checked every round, from the daemon's final stats line and the clients' own counts:
//! received = denoised + passed through + failed; every client that reads to the end gets
//! an answer for every image it sent before its fault; the process exits within
//! `shutdown_grace_s` of SIGTERM; and the process's RSS, sampled every second, stays flat.
//!
//! `cargo bench -p crossdenoise-host --bench soak -- --minutes 10 [--round-s 120] [--seed N]`
//! (needs `scripts/install-ort.sh` and `scripts/python-env.sh` for the test model).

use crossdenoise_test_support as support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossdenoise_host::mrd::{DataType, Image, Message, MessageReader, MessageWriter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CLIENTS: usize = 4;
const WRITE_TIMEOUT_S: f64 = 2.0;
const GRACE_S: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Plain,
    SlowReader,
    Disconnect,
    Reset,
    BadMessage,
    Stall,
}

impl Behaviour {
    fn pick(rng: &mut StdRng) -> Self {
        use Behaviour::*;
        [
            Plain, Plain, SlowReader, Disconnect, Reset, BadMessage, Stall,
        ][rng.random_range(0..7)]
    }
}

/// What the clients counted in a round.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    answered: AtomicU64,
    /// Images whose answers a client chose not to read (disconnect, reset, stall).
    abandoned: AtomicU64,
    /// Iterations of clients that read to the end but missed an answer.
    short_changed: AtomicU64,
    /// Iterations cut by SIGTERM (answers up to close are still checked).
    stopped: AtomicU64,
    iterations: AtomicU64,
}

struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: std::thread::JoinHandle<Vec<String>>,
}

fn start(model: &std::path::Path, config: &std::path::Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossdenoise-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--model")
        .arg(model)
        .env("RUST_LOG", "warn,crossdenoise_host::mrd::server=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("crossdenoise-host starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.parse().unwrap());
            break;
        }
    }
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    Daemon {
        child,
        addr: addr.expect("the daemon prints its address"),
        log,
    }
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The numbers of the daemon's last stats line.
fn final_stats(log: &[String]) -> Option<[u64; 5]> {
    let line = log.iter().rev().find(|l| l.contains("images received"))?;
    let after = |key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        line[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some([
        after("images received")?,
        after("denoised")?,
        after("passed through")?,
        after("failed")?,
        after("undeliverable")?,
    ])
}

async fn client(
    addr: SocketAddr,
    planes: Arc<Vec<ndarray::Array2<f32>>>,
    seed: u64,
    until: Instant,
    counts: Arc<Counts>,
    stopping: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while Instant::now() < until && !stopping.load(Ordering::Relaxed) {
        let behaviour = Behaviour::pick(&mut rng);
        let n = rng.random_range(4..24usize);
        let Ok(stream) = TcpStream::connect(addr).await else {
            return;
        };
        counts.iterations.fetch_add(1, Ordering::Relaxed);
        let (r, w) = stream.into_split();
        let mut reader = MessageReader::new(r, 1 << 26);
        let mut writer = MessageWriter::new(w);
        let mut sent = 0u64;
        let setup = async {
            writer
                .write(&Message::ConfigFile("crossdenoise".into()))
                .await?;
            writer
                .write(&Message::Header("<ismrmrdHeader/>".into()))
                .await
        };
        if setup.await.is_err() {
            continue;
        }
        for i in 0..n {
            let plane = &planes[rng.random_range(0..planes.len())];
            let mut image = Image::from_plane(plane, DataType::U16);
            image.header.image_index = i as u16 + 1;
            if writer.write(&Message::Image(image)).await.is_err() {
                break;
            }
            sent += 1;
        }
        counts.sent.fetch_add(sent, Ordering::Relaxed);
        match behaviour {
            Behaviour::Disconnect | Behaviour::Reset => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
                let stream = reader.into_inner().reunite(writer.into_inner()).unwrap();
                if behaviour == Behaviour::Reset {
                    let _ = stream.set_zero_linger();
                }
                drop(stream);
                counts.abandoned.fetch_add(sent, Ordering::Relaxed);
                continue;
            }
            Behaviour::Stall => {
                tokio::time::sleep(Duration::from_secs_f64(WRITE_TIMEOUT_S + 1.0)).await;
                counts.abandoned.fetch_add(sent, Ordering::Relaxed);
                continue;
            }
            Behaviour::BadMessage => {
                let mut raw = writer.into_inner();
                let _ = raw.write_all(&[0x63, 0x00, 1, 2, 3, 4]).await;
                let _ = raw.shutdown().await;
            }
            Behaviour::Plain | Behaviour::SlowReader => {
                let _ = writer.write(&Message::Close).await;
                let _ = writer.shutdown().await;
            }
        }
        let mut answered = 0u64;
        let mut closed = false;
        loop {
            if behaviour == Behaviour::SlowReader {
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
            }
            match tokio::time::timeout(Duration::from_secs(60), reader.read()).await {
                Ok(Ok(Some(Message::Image(_)))) => answered += 1,
                Ok(Ok(Some(Message::Close))) => {
                    closed = true;
                    break;
                }
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        counts.answered.fetch_add(answered, Ordering::Relaxed);
        if answered < sent {
            if stopping.load(Ordering::Relaxed) && closed {
                // SIGTERM: the daemon answered what it had read, then closed.
                counts.stopped.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.short_changed.fetch_add(1, Ordering::Relaxed);
                eprintln!("{behaviour:?}: {answered} of {sent} answered (closed: {closed})");
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let minutes = arg("--minutes").unwrap_or(10);
    let seed = arg("--seed").unwrap_or(1);
    let round_len = Duration::from_secs(arg("--round-s").unwrap_or(120));
    let dir = tempfile::tempdir().unwrap();
    let model = support::test_model(dir.path(), "model.onnx", &[]);
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "write_timeout_s = {WRITE_TIMEOUT_S}\nshutdown_grace_s = {GRACE_S}\n\
             handshake_timeout_s = 2\nidle_timeout_s = 10\nstats_interval_s = 0\n"
        ),
    )
    .unwrap();
    let planes = Arc::new(
        [64usize, 128, 256]
            .iter()
            .flat_map(|&s| support::phantom_slices(4, s, s))
            .collect::<Vec<_>>(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    println!(
        "soak: {CLIENTS} clients, rounds of {} s, {minutes} min, seed {seed}",
        round_len.as_secs()
    );
    println!(
        "| round | iterations | sent | answered | abandoned by clients | received | denoised | failed | undeliverable | cut by SIGTERM | short-changed | RSS at 10 s / max / end (MB) | exit after SIGTERM |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut round = 0;
    let mut failures = 0;
    let mut rss_first_end = None;
    let mut rss_last_end = 0.0;
    while Instant::now() < end {
        round += 1;
        let daemon = start(&model, &config);
        let pid = daemon.child.id();
        let counts = Arc::new(Counts::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let until = Instant::now() + round_len;
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|k| {
                runtime.spawn(client(
                    daemon.addr,
                    planes.clone(),
                    seed * 1000 + round * 10 + k as u64,
                    until + Duration::from_secs(5),
                    counts.clone(),
                    stopping.clone(),
                ))
            })
            .collect();
        // RSS once warmed up (10 s in), its maximum, and at the round's end.
        let mut rss_start = None;
        let mut rss_max: f64 = 0.0;
        let warm = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_secs(1));
            let rss = rss_mb(pid).unwrap_or(0.0);
            rss_max = rss_max.max(rss);
            if Instant::now() >= warm {
                rss_start.get_or_insert(rss);
            }
        }
        let rss_start = rss_start.unwrap_or(0.0);
        let rss_end = rss_mb(pid).unwrap_or(0.0);
        // SIGTERM with the clients still sending.
        stopping.store(true, Ordering::Relaxed);
        let signalled = Instant::now();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let Daemon { mut child, log, .. } = daemon;
        let status = child.wait().unwrap();
        let exit_s = signalled.elapsed().as_secs_f64();
        for t in tasks {
            let _ = runtime.block_on(t);
        }
        let log = log.join().unwrap();
        let stats = final_stats(&log);
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let [received, denoised, passed, failed, undeliverable] = stats.unwrap_or([0; 5]);
        let ok = stats.is_some()
            && status.success()
            && received == denoised + passed + failed
            && c(&counts.short_changed) == 0
            && exit_s < GRACE_S + 5.0;
        if !ok {
            failures += 1;
            eprintln!("round {round} failed: exit {status}, stats {stats:?}");
        }
        rss_first_end.get_or_insert(rss_end);
        rss_last_end = rss_end;
        println!(
            "| {round} | {} | {} | {} | {} | {received} | {denoised} | {failed} | {undeliverable} | {} | {} | {rss_start:.0} / {rss_max:.0} / {rss_end:.0} | {exit_s:.2} s |",
            c(&counts.iterations),
            c(&counts.sent),
            c(&counts.answered),
            c(&counts.abandoned),
            c(&counts.stopped),
            c(&counts.short_changed),
        );
    }
    println!(
        "{round} rounds in {:.1} min, {failures} failed; RSS at the end of round 1 {:.0} MB, of round {round} {rss_last_end:.0} MB",
        started.elapsed().as_secs_f64() / 60.0,
        rss_first_end.unwrap_or(0.0),
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
