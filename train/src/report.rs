//! One self-contained HTML page about a trained and exported model: how training went
//! (curves, the last sample grid, the run summary), what the exported model does to a
//! held-out phantom series (input | denoised | acquired target | clean, with PSNR / SSIM
//! against the clean image next to the acquired target's own), whether the daemon's
//! answers equal the runtime's, and how fast the model denoises here.
//!
//! Pictures are inlined as base64 PNGs so the page can be mailed or archived as one file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossdenoise_runtime::io::read_slice;
use crossdenoise_runtime::metrics::Quality;
use crossdenoise_runtime::picture::Grid;
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime};
use ndarray::Array2;

use crate::training::RunSummary;

/// Where the pieces of a main-job run are.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// The training run folder (summary.json, curves.png, samples/).
    pub run: PathBuf,
    /// The exported model (timed on the held-out slices).
    pub model: PathBuf,
    /// A phantom set: `pdfs/` (inputs), `pd/` (acquired targets), `clean/pd/`.
    pub phantoms: PathBuf,
    /// `crossdenoise denoise` results of `phantoms/pdfs`: `<denoised>/pdfs/NAME.npy`.
    pub denoised: PathBuf,
    /// The daemon's answers for the same series: `<returned>/pdfs/NAME.denoised.npy`.
    pub returned: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error(transparent)]
    Runtime(#[from] crossdenoise_runtime::Error),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One held-out slice, scored against its clean PD image.
#[derive(Debug, Clone)]
pub struct SliceScore {
    pub name: String,
    /// The acquired (noisy) PD target: the baseline a denoised image must beat.
    pub acquired: Quality,
    pub denoised: Quality,
    /// Largest difference between the daemon's answer and the runtime's result.
    pub daemon_max_diff: Option<f32>,
}

#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub slices: Vec<SliceScore>,
    pub mean_acquired: Quality,
    pub mean_denoised: Quality,
    pub latency_p50_ms: f64,
    pub latency_max_ms: f64,
    pub provider: String,
}

fn input_err(path: &Path, reason: impl Into<String>) -> ReportError {
    ReportError::Input {
        path: path.into(),
        reason: reason.into(),
    }
}

fn mean(q: &[Quality]) -> Quality {
    let n = q.len().max(1) as f64;
    Quality {
        psnr: q.iter().map(|x| x.psnr).sum::<f64>() / n,
        ssim: q.iter().map(|x| x.ssim).sum::<f64>() / n,
        nmse: q.iter().map(|x| x.nmse).sum::<f64>() / n,
    }
}

/// Writes `out` (HTML) and `out`'s sibling `heldout.png`; returns the numbers shown.
pub fn write(inputs: &ReportInputs, out: &Path) -> Result<ReportSummary, ReportError> {
    let summary_path = inputs.run.join("summary.json");
    let summary: RunSummary = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .map_err(|e| input_err(&summary_path, e.to_string()))?,
    )
    .map_err(|e| input_err(&summary_path, e.to_string()))?;

    let inputs_dir = inputs.phantoms.join("pdfs");
    let mut names: Vec<String> = std::fs::read_dir(&inputs_dir)
        .map_err(|e| input_err(&inputs_dir, e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npy"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(input_err(&inputs_dir, "no .npy slices"));
    }

    // Time the model on the same slices (after its warm-up), as the console box would run it.
    let runtime = OnnxRuntime::load()?;
    let mut denoiser = Denoiser::open(&runtime, &inputs.model, &DenoiserOptions::default())?;
    let mut times = Vec::new();
    let norm = denoiser.metadata().normalization;

    let mut scores = Vec::new();
    let mut tiles: Vec<[Array2<f32>; 4]> = Vec::new();
    for name in &names {
        let stem = name.trim_end_matches(".npy");
        let input = read_slice(&inputs_dir.join(name))?;
        let acquired = read_slice(&inputs.phantoms.join("pd").join(name))?;
        let clean = read_slice(&inputs.phantoms.join("clean/pd").join(name))?;
        let denoised = read_slice(&inputs.denoised.join("pdfs").join(name))?;
        let t0 = Instant::now();
        let again = denoiser.denoise(input.view())?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        let runtime_diff = max_diff(&again, &denoised);
        if runtime_diff > 1e-3 * max_abs(&denoised).max(1.0) {
            return Err(input_err(
                &inputs.denoised.join("pdfs").join(name),
                format!("is not this model's output (differs by {runtime_diff})"),
            ));
        }
        let daemon_max_diff = match &inputs.returned {
            Some(dir) => {
                let path = dir.join("pdfs").join(format!("{stem}.denoised.npy"));
                Some(max_diff(&read_slice(&path)?, &denoised))
            }
            None => None,
        };
        scores.push(SliceScore {
            name: stem.to_owned(),
            acquired: Quality::measure_normalised(
                &norm,
                clean.view(),
                acquired.view(),
                acquired.view(),
            )?,
            denoised: Quality::measure_normalised(
                &norm,
                clean.view(),
                denoised.view(),
                input.view(),
            )?,
            daemon_max_diff,
        });
        if tiles.len() < 4 {
            tiles.push([input, denoised, acquired, clean]);
        }
    }
    times.sort_by(f64::total_cmp);
    let picture = out.with_file_name("heldout.png");
    held_out_grid(&tiles)?.save(&picture)?;

    let result = ReportSummary {
        mean_acquired: mean(&scores.iter().map(|s| s.acquired).collect::<Vec<_>>()),
        mean_denoised: mean(&scores.iter().map(|s| s.denoised).collect::<Vec<_>>()),
        slices: scores,
        latency_p50_ms: times[times.len() / 2],
        latency_max_ms: *times.last().expect("one slice at least"),
        provider: denoiser.provider().to_string(),
    };
    let html = render(inputs, &summary, &result, &picture)?;
    std::fs::write(out, html).map_err(|source| ReportError::Write {
        path: out.into(),
        source,
    })?;
    Ok(result)
}

fn max_abs(a: &Array2<f32>) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn max_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    if a.dim() != b.dim() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn held_out_grid(rows: &[[Array2<f32>; 4]]) -> Result<Grid, ReportError> {
    let (h, w) = rows[0][0].dim();
    let zoom = (256 / h.max(w)).max(1);
    let mut grid = Grid::zoomed(
        rows.len(),
        4,
        (h, w),
        zoom,
        &["PDFS input", "denoised (PD)", "acquired PD", "clean PD"],
    )?;
    for (r, row) in rows.iter().enumerate() {
        // One display range per row, from the clean image, so the columns compare.
        let max = max_abs(&row[3]).max(1e-6);
        for (c, image) in row.iter().enumerate() {
            let shown = if c == 0 {
                image.mapv(|v| v * max / max_abs(image).max(1e-6))
            } else {
                image.clone()
            };
            grid.set(r, c, shown.view(), max)?;
        }
    }
    Ok(grid)
}

fn png_tag(path: &Path, alt: &str) -> Result<String, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| input_err(path, e.to_string()))?;
    Ok(format!(
        "<img alt=\"{alt}\" src=\"data:image/png;base64,{}\">",
        base64(&bytes)
    ))
}

fn render(
    inputs: &ReportInputs,
    summary: &RunSummary,
    r: &ReportSummary,
    held_out: &Path,
) -> Result<String, ReportError> {
    let mut h = String::new();
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>crossdenoise report: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
         th{{background:#eee}}img{{max-width:100%;image-rendering:pixelated}}.good{{color:#070}}.bad{{color:#a00}}</style>\
         </head><body><h1>crossdenoise: {name}</h1>",
        name = esc(&summary.name)
    );
    let _ = write!(
        h,
        "<h2>Training</h2><p>{epochs} epoch{s}, {steps} steps on <b>{backend}</b> ({precision}) in {secs:.0} s \
         ({per:.3} s / step, peak memory {rss}). Config hash <code>{hash}</code>.</p>",
        epochs = summary.epochs_done,
        s = if summary.epochs_done == 1 { "" } else { "s" },
        steps = summary.steps,
        backend = esc(&summary.backend),
        precision = summary.precision,
        secs = summary.seconds,
        per = summary.seconds_per_step,
        rss = summary
            .peak_rss_mb
            .map_or("not measured".into(), |m| format!("{m:.0} MB")),
        hash = esc(&summary.config_hash),
    );
    let curves = inputs.run.join("curves.png");
    if curves.is_file() {
        let _ = write!(
            h,
            "<h3>Losses and validation</h3>{}",
            png_tag(&curves, "training curves")?
        );
    }
    let samples = inputs.run.join("samples");
    if let Ok(entries) = std::fs::read_dir(&samples) {
        let mut pngs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        pngs.sort();
        if let Some(last) = pngs.last() {
            let _ = write!(
                h,
                "<h3>Last validation samples ({})</h3><p>noisy input | cross-contrast output | target | clean</p>{}",
                esc(&last.file_name().unwrap_or_default().to_string_lossy()),
                png_tag(last, "validation samples")?
            );
        }
    }
    let better = r.mean_denoised.psnr > r.mean_acquired.psnr;
    let _ = write!(
        h,
        "<h2>Held-out phantoms through the exported model</h2>\
         <p>{n} PDFS slices of <code>{ph}</code> (a seed training never saw) denoised into the PD \
         contrast by <code>{model}</code>. Scored against the clean PD image in the normalised \
         intensities the model works in, as training's validation scores (each image by its \
         own percentile scale; the denoised one by its input's, whose scale the runtime gave \
         it back); the acquired PD image's own score is the baseline to beat.</p>{grid}\
         <table><tr><th>slice</th><th>acquired PD PSNR</th><th>denoised PSNR</th>\
         <th>acquired PD SSIM</th><th>denoised SSIM</th><th>daemon = runtime</th></tr>",
        n = r.slices.len(),
        ph = esc(&inputs.phantoms.display().to_string()),
        model = esc(&inputs.model.display().to_string()),
        grid = png_tag(held_out, "held-out slices")?,
    );
    for s in &r.slices {
        let daemon = match s.daemon_max_diff {
            Some(0.0) => "identical".to_owned(),
            Some(d) => format!("max diff {d:.2e}"),
            None => "not served".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.2} dB</td><td>{:.2} dB</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            esc(&s.name),
            s.acquired.psnr,
            s.denoised.psnr,
            s.acquired.ssim,
            s.denoised.ssim,
            daemon
        );
    }
    let _ = write!(
        h,
        "<tr><th>mean</th><th>{:.2} dB</th><th class=\"{cls}\">{:.2} dB</th><th>{:.4}</th><th>{:.4}</th><th></th></tr></table>\
         <p class=\"{cls}\">The denoised images are {verdict} the acquired target ({delta:+.2} dB PSNR).</p>",
        r.mean_acquired.psnr,
        r.mean_denoised.psnr,
        r.mean_acquired.ssim,
        r.mean_denoised.ssim,
        cls = if better { "good" } else { "bad" },
        verdict = if better {
            "closer to the clean image than"
        } else {
            "not yet better than"
        },
        delta = r.mean_denoised.psnr - r.mean_acquired.psnr,
    );
    let _ = write!(
        h,
        "<h2>Latency</h2><p>ONNX Runtime ({provider}), one slice at a time on this machine: \
         median {p50:.1} ms, slowest {max:.1} ms per slice, normalisation, padding and cropping included. \
         <code>cargo bench --bench denoise</code> and <code>--bench daemon</code> measure the \
         320 x 320 workstation sizes (BENCHMARKS.md).</p></body></html>",
        provider = esc(&r.provider),
        p50 = r.latency_p50_ms,
        max = r.latency_max_ms,
    );
    h.push('\n');
    Ok(h)
}

/// Standard base64 with padding (RFC 4648), for inlining PNGs.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }
}
