//! What every crate's tests and benches share (a `publish = false` crate, a
//! dev-dependency of each): the Python reference tools (`reference.py` beside this crate),
//! a loaded ONNX Runtime (feature `runtime`), phantom slices, DICOM series and DCMTK's
//! peers, what the property-based tests share ([`fuzz`]), and the checks of a refused
//! command line.

use std::path::{Path, PathBuf};
use std::process::Output;

use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use ndarray::Array2;

pub mod fuzz;
pub mod python;
pub use python::{reference, workspace_root};

/// The stderr of a finished command, asserting that it failed.
pub fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the command succeeded: {err}");
    err
}

/// Asserts that a finished command failed and that its stderr says `needle`: a refusal
/// names what it refuses.
pub fn refused(out: &Output, needle: &str) {
    let err = failed(out);
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[cfg(feature = "runtime")]
pub fn runtime() -> crossdenoise_runtime::OnnxRuntime {
    crossdenoise_runtime::OnnxRuntime::load()
        .expect("ONNX Runtime installed by scripts/install-ort.sh")
}

/// A test model (`reference.py make-model`) in `dir`, with extra flags.
pub fn test_model(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["make-model".to_string(), path.display().to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    reference(&args);
    path
}

/// Noisy phantom PD and PDFS slices of one anatomy each, in scanner-like units, cropped to
/// `h x w`: `(pd, pdfs)`.
pub fn phantom_pairs(n: usize, h: usize, w: usize) -> (Vec<Array2<f32>>, Vec<Array2<f32>>) {
    let generator = PhantomGenerator::new(
        PhantomConfig {
            size: h.max(w).div_ceil(16) * 16,
            snr_pd: 12.0,
            snr_pdfs: 8.0,
        },
        11,
    )
    .unwrap();
    let crop = |a: &Array2<f32>| a.slice(ndarray::s![..h, ..w]).mapv(|v| v * 2000.0);
    (0..n as u64)
        .map(|i| {
            let pair = generator.pair(i);
            (crop(&pair.pd), crop(&pair.pdfs))
        })
        .unzip()
}

/// Noisy phantom PDFS slices in scanner-like units (0..~2000), cropped to `h x w`.
pub fn phantom_slices(n: usize, h: usize, w: usize) -> Vec<Array2<f32>> {
    phantom_pairs(n, h, w).1
}

/// Noisy PD phantom slices of `size` x `size` pixels (a multiple of 16) from 8 coils at
/// acceleration 3, folded across the columns (phase encoded along the rows), times `scale`:
/// a noise map that jumps at the fold lines, as SENSE's g-factor does. A map is tested for
/// the jump on a read of at least one 256 x 256 slice's blocks.
pub fn accelerated_slices(n: usize, size: usize, scale: f32) -> Vec<Array2<f32>> {
    let config = PhantomConfig {
        size,
        snr_pd: 12.0,
        snr_pdfs: 8.0,
    };
    let generator = PhantomGenerator::new(config, 5)
        .unwrap()
        .with_coils(crossdenoise_image::coils::CoilArray::knee(3))
        .unwrap();
    (0..n as u64)
        .map(|i| generator.pair(i).pd.mapv(|v| v * scale))
        .collect()
}

/// `clean` with Rician noise of `sigma(row, col)` (complex Gaussian noise of that sd, then
/// the magnitude), drawn from `seed`: noise that varies across a slice, as a g-factor makes
/// it.
pub fn rician(clean: &Array2<f32>, sigma: impl Fn(usize, usize) -> f32, seed: u64) -> Array2<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn(clean.dim(), |(i, j)| {
        let s = sigma(i, j);
        let re: f32 = rng.sample(rand_distr::StandardNormal);
        let im: f32 = rng.sample(rand_distr::StandardNormal);
        ((clean[(i, j)] + s * re).powi(2) + (s * im).powi(2)).sqrt()
    })
}

pub fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// DCMTK's peers leave Nagle's algorithm on unless `TCP_NODELAY=1` is in their
/// environment, which costs every instance about 40 ms of waiting for a delayed ACK; a
/// site tuned for throughput turns it off, and so do the tests and the load bench.
pub const DCMTK_TCP_NODELAY: &str = "1";

/// Writes `slices` as one pydicom MR series of `kind` (`u12` / `s16`) in `dir`
/// (`reference.py dicom-series`, with `flags` such as `--description=...`); returns its
/// files in slice order.
pub fn dicom_series(
    dir: &Path,
    kind: &str,
    slices: &[Array2<f32>],
    flags: &[String],
) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec![
        "dicom-series".to_string(),
        dir.display().to_string(),
        kind.into(),
    ];
    args.extend(flags.iter().cloned());
    for (i, s) in slices.iter().enumerate() {
        let p = dir.join(format!("in_{i}.npy"));
        crossdenoise_image::io::write_npy(&p, s.view()).unwrap();
        args.push(p.display().to_string());
    }
    reference(&args);
    (0..slices.len())
        .map(|i| dir.join(format!("slice_{i:03}.dcm")))
        .collect()
}

/// `files` compressed into `out` as `syntax`: `jpeg-lossless` and `jpeg-ls` by DCMTK
/// (`dcmcjpeg`, `dcmcjpls`), the others by pydicom (reference.py).
pub fn compress(files: &[PathBuf], syntax: &str, out: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(out).unwrap();
    let tool = match syntax {
        "jpeg-lossless" => Some("dcmcjpeg"),
        "jpeg-ls" => Some("dcmcjpls"),
        _ => None,
    };
    match tool {
        Some(tool) => {
            for f in files {
                let to = out.join(f.file_name().unwrap());
                let run = std::process::Command::new(tool)
                    .arg(f)
                    .arg(&to)
                    .output()
                    .expect("DCMTK installed (scripts/install-dcmtk.sh)");
                assert!(run.status.success(), "{tool}: {run:?}");
            }
        }
        None => {
            let mut args = vec![
                "dicom-compress".to_string(),
                syntax.into(),
                out.display().to_string(),
            ];
            args.extend(files.iter().map(|f| f.display().to_string()));
            reference(&args);
        }
    }
    files
        .iter()
        .map(|f| out.join(f.file_name().unwrap()))
        .collect()
}

/// DCMTK's `storescu` sending `files` as `calling` to `called` on `127.0.0.1:port`; panics
/// with its error output unless it succeeds.
pub fn storescu(port: &str, calling: &str, called: &str, files: &[PathBuf]) {
    let sent = std::process::Command::new("storescu")
        .env("TCP_NODELAY", DCMTK_TCP_NODELAY)
        .args(["-aet", calling, "-aec", called, "127.0.0.1", port])
        .args(files)
        .output()
        .expect("DCMTK installed (scripts/install-dcmtk.sh)");
    assert!(
        sent.status.success(),
        "storescu: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
}

/// A loopback port free at the time of asking, for a listener a test starts later (a PACS
/// that is down first, then comes up).
///
/// It is drawn below the kernel's ephemeral range, from which every outgoing connection
/// takes its source port: a port from that range, released until the listener starts, can be
/// taken meanwhile by any connection of the tests running beside (storescu, a node's retries),
/// and the listener then fails with "Address already in use". Below it only another explicit
/// bind competes.
pub fn free_port() -> u16 {
    use rand::Rng;
    const LOWEST: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > LOWEST + 1_000 {
        let mut rng = rand::rng();
        for _ in 0..1_000 {
            let port = rng.random_range(LOWEST..ephemeral_low);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// DCMTK's `storescp` as the PACS (AE title `PACS`, every transfer syntax), receiving into
/// a folder until dropped.
pub struct Storescp {
    child: std::process::Child,
    pub dir: PathBuf,
}

impl Storescp {
    pub fn start(port: u16, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let child = std::process::Command::new("storescp")
            .env("TCP_NODELAY", DCMTK_TCP_NODELAY)
            .args(["-aet", "PACS", "-od"])
            .arg(dir)
            .args(["+xa", &port.to_string()])
            .spawn()
            .expect("DCMTK installed (scripts/install-dcmtk.sh)");
        Storescp {
            child,
            dir: dir.into(),
        }
    }

    /// What it has received so far.
    pub fn received(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }
}

impl Drop for Storescp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
