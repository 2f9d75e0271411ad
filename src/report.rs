//! One self-contained HTML page about the product's denoisers on a held-out phantom set:
//! a headline (how far each contrast's denoised images are from the clean phantom, next to
//! the acquired images and, where the reference scores are given, the strongest classical
//! method with the same advantages: BM3D at the true sigma followed by the same Rician bias
//! correction the product applies), the slices
//! themselves (acquired | denoised | clean, both contrasts), the full comparison with the
//! classical denoisers and with the study's cross path shown apart as contrast synthesis
//! with its leakage, whether the daemon's answers equal the runtime's, how fast the models
//! run here, and how training went (curves, last samples).
//!
//! Pictures are inlined as base64 PNGs so the page can be mailed or archived as one file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossdenoise_image::Normalization;
use crossdenoise_image::html::{escape as esc, inline_png};
use crossdenoise_image::io::read_slice;
use crossdenoise_image::metrics::{self, Quality};
use crossdenoise_image::picture::Grid;
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime};
use crossdenoise_train::denoiser::DenoiserSummary;
use ndarray::Array2;
use serde_json::Value;

/// The two contrasts, as the phantom folders name them.
pub const CONTRASTS: [&str; 2] = ["pd", "pdfs"];

/// Where the pieces of a main-job run are.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// The training run folder (summary.json, curves.png, samples/).
    pub run: PathBuf,
    /// The exported model of each contrast (`CONTRASTS` order), timed and re-run on the
    /// held-out slices.
    pub models: [PathBuf; 2],
    /// A phantom set: `pd/`, `pdfs/` (acquired), `clean/pd/`, `clean/pdfs/`.
    pub phantoms: PathBuf,
    /// `crossdenoise denoise` results: `<denoised>/pd/NAME.npy`, `<denoised>/pdfs/NAME.npy`.
    pub denoised: PathBuf,
    /// The daemon's answers for the same slices: `<returned>/pd/NAME.denoised.npy`, ...
    pub returned: Option<PathBuf>,
    /// `scripts/quality_reference.py`'s quality.json for the same set: BM3D, NLM and the
    /// cross path, with leakage.
    pub reference: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error(transparent)]
    Image(#[from] crossdenoise_image::Error),
    #[error(transparent)]
    Runtime(#[from] crossdenoise_runtime::Error),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One contrast's held-out figures.
#[derive(Debug, Clone)]
pub struct ContrastScore {
    pub contrast: String,
    pub label: String,
    pub acquired: Quality,
    pub denoised: Quality,
    pub acquired_sharpness: f64,
    pub denoised_sharpness: f64,
    /// The fair classical baseline from the reference scores, when given.
    pub baseline: Option<Baseline>,
    /// Largest difference between the daemon's answers and the runtime's results.
    pub daemon_max_diff: Option<f32>,
    pub latency_p50_ms: f64,
    pub provider: String,
}

/// The classical method the headline compares with, and its scores on the same slices.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub label: String,
    pub psnr: f64,
    pub tissue_psnr: f64,
    pub ssim: f64,
}

/// The reference script's row the headline compares with: the one it names as the fair
/// baseline of `contrast` (its strongest classical method given the true sigma and a
/// Rician bias correction, exact, floor-aware or body-aware), else "BM3D + Rician correction".
fn baseline(reference: &Value, contrast: &str) -> Option<Baseline> {
    let label = reference["baseline"][contrast]
        .as_str()
        .unwrap_or(FAIR_BASELINE);
    let row = &reference["contrasts"][contrast][label];
    let psnr = row["psnr"].as_f64()?;
    Some(Baseline {
        label: label.to_owned(),
        psnr,
        tissue_psnr: row["tissue_psnr"].as_f64().unwrap_or(f64::NAN),
        ssim: row["ssim"].as_f64()?,
    })
}

/// The classical row a physicist would run on magnitude images.
pub const FAIR_BASELINE: &str = "BM3D + Rician correction";

#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub slices: usize,
    pub contrasts: Vec<ContrastScore>,
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
        tissue_psnr: q.iter().map(|x| x.tissue_psnr).sum::<f64>() / n,
        ssim: q.iter().map(|x| x.ssim).sum::<f64>() / n,
        nmse: q.iter().map(|x| x.nmse).sum::<f64>() / n,
    }
}

/// Writes `out` (HTML) and `heldout.png` beside it; returns the numbers shown.
// Long: the report's data gathered in page order (summary, reference, each contrast's
// slices), then rendered.
pub fn write(inputs: &ReportInputs, out: &Path) -> Result<ReportSummary, ReportError> {
    let summary_path = inputs.run.join("summary.json");
    let summary: DenoiserSummary = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .map_err(|e| input_err(&summary_path, e.to_string()))?,
    )
    .map_err(|e| input_err(&summary_path, e.to_string()))?;
    let reference: Option<Value> = match &inputs.reference {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).map_err(|e| input_err(p, e.to_string()))?,
            )
            .map_err(|e| input_err(p, e.to_string()))?,
        ),
        None => None,
    };

    let names = slice_names(&inputs.phantoms.join(CONTRASTS[0]))?;
    let runtime = OnnxRuntime::load()?;
    let mut contrasts = Vec::new();
    let mut tiles: Vec<Vec<Array2<f32>>> = vec![Vec::new(); names.len().min(3)];
    for (k, contrast) in CONTRASTS.iter().enumerate() {
        let partner = CONTRASTS[1 - k];
        let model = &inputs.models[k];
        let mut denoiser = Denoiser::open(&runtime, model, &DenoiserOptions::default())?;
        let meta = denoiser.metadata().clone();
        if meta.output_contrast() != *contrast {
            return Err(input_err(
                model,
                format!(
                    "is a {}: its output is not {contrast} (the report scores each contrast's \
                     own denoiser)",
                    meta.path_label()
                ),
            ));
        }
        let (mut acquired_q, mut denoised_q) = (Vec::new(), Vec::new());
        let (mut sharp_a, mut sharp_d) = (0.0, 0.0);
        let (mut times, mut daemon_max) = (Vec::new(), None::<f32>);
        for (i, name) in names.iter().enumerate() {
            let acquired = read_slice(&inputs.phantoms.join(contrast).join(name))?;
            let clean = read_slice(&inputs.phantoms.join("clean").join(contrast).join(name))?;
            let denoised_path = inputs.denoised.join(contrast).join(name);
            let denoised = read_slice(&denoised_path)?;
            let guide = read_slice(&inputs.phantoms.join(partner).join(name))?;
            let t0 = Instant::now();
            let again = if denoiser.needs_guide() {
                denoiser.denoise_guided_batch(&[acquired.view()], &[guide.view()])?
            } else {
                denoiser.denoise_batch(&[acquired.view()])?
            };
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            let runtime_diff = max_diff(&again[0], &denoised);
            if runtime_diff > 1e-3 * max_abs(&denoised).max(1.0) {
                return Err(input_err(
                    &denoised_path,
                    format!("is not this model's output (differs by {runtime_diff})"),
                ));
            }
            if let Some(dir) = &inputs.returned {
                let stem = name.trim_end_matches(".npy");
                let path = dir.join(contrast).join(format!("{stem}.denoised.npy"));
                let d = max_diff(&read_slice(&path)?, &denoised);
                daemon_max = Some(daemon_max.map_or(d, |m: f32| m.max(d)));
            }
            acquired_q.push(Quality::measure(clean.view(), acquired.view())?);
            denoised_q.push(Quality::measure(clean.view(), denoised.view())?);
            sharp_a += metrics::sharpness(clean.view(), acquired.view())?.unwrap_or(1.0);
            sharp_d += metrics::sharpness(clean.view(), denoised.view())?.unwrap_or(1.0);
            if let Some(row) = tiles.get_mut(i) {
                row.extend([acquired, denoised, clean]);
            }
        }
        times.sort_by(f64::total_cmp);
        let n = names.len() as f64;
        let baseline = reference.as_ref().and_then(|r| baseline(r, contrast));
        contrasts.push(ContrastScore {
            contrast: contrast.to_string(),
            label: meta.path_label(),
            acquired: mean(&acquired_q),
            denoised: mean(&denoised_q),
            acquired_sharpness: sharp_a / n,
            denoised_sharpness: sharp_d / n,
            baseline,
            daemon_max_diff: daemon_max,
            latency_p50_ms: times[times.len() / 2],
            provider: denoiser.provider().to_string(),
        });
    }
    let picture = out.with_file_name("heldout.png");
    held_out_grid(&tiles)?.save(&picture)?;
    let result = ReportSummary {
        slices: names.len(),
        contrasts,
    };
    let html = render(inputs, &summary, &result, reference.as_ref(), &picture)?;
    std::fs::write(out, html).map_err(|source| ReportError::Write {
        path: out.into(),
        source,
    })?;
    Ok(result)
}

impl ReportSummary {
    /// The headline of one contrast: denoised against acquired and, when known, the fair
    /// classical baseline; whole-slice PSNR with the tissue-only PSNR beside it.
    pub fn headline(c: &ContrastScore) -> String {
        let mut s = format!(
            "{}: denoised {:.2} dB (tissue {:.2}) / SSIM {:.3}, {:+.2} dB over the acquired image \
             ({:.2} dB)",
            c.contrast.to_uppercase(),
            c.denoised.psnr,
            c.denoised.tissue_psnr,
            c.denoised.ssim,
            c.denoised.psnr - c.acquired.psnr,
            c.acquired.psnr
        );
        if let Some(b) = &c.baseline {
            let _ = write!(
                s,
                ", {:+.2} dB (tissue {:+.2}) over {} ({:.2} dB, tissue {:.2} / SSIM {:.3})",
                c.denoised.psnr - b.psnr,
                c.denoised.tissue_psnr - b.tissue_psnr,
                b.label,
                b.psnr,
                b.tissue_psnr,
                b.ssim
            );
        }
        s
    }

    /// Whether a contrast's denoised images beat the acquired ones and the fair baseline
    /// in whole-slice PSNR, tissue-only PSNR and SSIM.
    pub fn beats_baseline(c: &ContrastScore) -> bool {
        c.denoised.psnr > c.acquired.psnr
            && c.baseline.as_ref().is_none_or(|b| {
                c.denoised.psnr > b.psnr
                    && (b.tissue_psnr.is_nan() || c.denoised.tissue_psnr > b.tissue_psnr)
                    && c.denoised.ssim > b.ssim
            })
    }
}

fn slice_names(dir: &Path) -> Result<Vec<String>, ReportError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| input_err(dir, e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npy"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(input_err(dir, "no .npy slices"));
    }
    Ok(names)
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

/// Rows of acquired | denoised | clean for each contrast, each contrast's three tiles in
/// the window of its acquired image's normalisation scale, so the columns compare.
fn held_out_grid(rows: &[Vec<Array2<f32>>]) -> Result<Grid, ReportError> {
    let (h, w) = rows[0][0].dim();
    let zoom = (256 / h.max(w)).max(1);
    let mut titles = Vec::new();
    for c in CONTRASTS {
        let c = c.to_uppercase();
        titles.extend([
            format!("{c} acquired"),
            format!("{c} denoised"),
            format!("{c} clean"),
        ]);
    }
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let mut grid = Grid::zoomed(rows.len(), titles.len(), (h, w), zoom, &titles)?;
    let norm = Normalization::default();
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            let window = norm.fit(row[c - c % 3].view())?.0 * 1.1;
            grid.set(r, c, image.view(), window)?;
        }
    }
    Ok(grid)
}

fn png_tag(path: &Path, alt: &str) -> Result<String, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| input_err(path, e.to_string()))?;
    Ok(inline_png(&bytes, alt))
}

// Long: the page's sections in their order, as one HTML string.
fn render(
    inputs: &ReportInputs,
    summary: &DenoiserSummary,
    r: &ReportSummary,
    reference: Option<&Value>,
    held_out: &Path,
) -> Result<String, ReportError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>crossdenoise report: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
         td:first-child{{text-align:left}}th{{background:#eee}}img{{max-width:100%;image-rendering:pixelated}}\
         .good{{color:#070}}.bad{{color:#a00}}.headline{{font-size:1.15em;background:#f4f8f4;padding:0.6em 1em;border-left:4px solid #070}}\
         .synthesis{{color:#777;font-style:italic}}</style>\
         </head><body><h1>crossdenoise: {name}</h1>",
        name = esc(&summary.name)
    );
    let _ = write!(h, "<div class=\"headline\">");
    for c in &r.contrasts {
        let better = ReportSummary::beats_baseline(c);
        let _ = write!(
            h,
            "<p class=\"{}\">{}</p>",
            if better { "good" } else { "bad" },
            esc(&ReportSummary::headline(c))
        );
    }
    let _ = write!(
        h,
        "</div><p>{n} held-out slices of <code>{ph}</code> (a seed training never saw), each \
         contrast denoised by its own model with the other contrast of the slice as its guide, \
         and scored against the clean phantom of <em>its own</em> contrast (PSNR with the clean \
         image's maximum as data range, tissue PSNR over the pixels where the clean image is \
         above 2% of its maximum grown by 3 pixels, SSIM with scikit-image's Gaussian window). \
         The headline's classical baseline is given the same advantages as the product: the \
         true noise sigma and the same Rician bias correction, or that correction as a \
         posterior that knows the air exists (floor-aware), or that posterior outside the \
         knee's outline from both contrasts only (body-aware, as the product serves), \
         whichever scores higher.</p>{grid}",
        n = r.slices,
        ph = esc(&inputs.phantoms.display().to_string()),
        grid = png_tag(held_out, "held-out slices")?,
    );
    let _ = write!(
        h,
        "<h2>Against the acquired images</h2><table><tr><th>contrast</th><th>model</th>\
         <th>acquired PSNR (tissue)</th><th>denoised PSNR (tissue)</th><th>acquired SSIM</th><th>denoised SSIM</th>\
         <th>sharpness (1 = clean)</th><th>daemon = runtime</th><th>latency</th></tr>"
    );
    for c in &r.contrasts {
        let daemon = match c.daemon_max_diff {
            Some(0.0) => "identical".to_owned(),
            Some(d) => format!("max diff {d:.2e}"),
            None => "not served".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.2} dB ({:.2})</td><td>{:.2} dB ({:.2})</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.2} (acquired {:.2})</td><td>{}</td><td>{:.1} ms ({})</td></tr>",
            c.contrast.to_uppercase(),
            esc(&c.label),
            c.acquired.psnr,
            c.acquired.tissue_psnr,
            c.denoised.psnr,
            c.denoised.tissue_psnr,
            c.acquired.ssim,
            c.denoised.ssim,
            c.denoised_sharpness,
            c.acquired_sharpness,
            daemon,
            c.latency_p50_ms,
            esc(&c.provider)
        );
    }
    h.push_str("</table>");
    match reference {
        Some(reference) => reference_tables(&mut h, reference),
        None => h.push_str(
            "<p>No classical reference scores were given (<code>--reference</code>, from \
             <code>scripts/quality_reference.py</code>): BM3D and NLM are not shown.</p>",
        ),
    }
    let _ = write!(
        h,
        "<h2>Training</h2><p>{epochs} epoch{s}, {steps} steps on <b>{backend}</b>{processes} ({precision}) in {secs:.0} s \
         ({per:.3} s / step, peak memory {rss}). Config hash <code>{hash}</code>.</p>",
        processes = match summary.processes {
            1 => String::new(),
            n => format!(
                " x {n} processes (data-parallel, {} of each step's batch per process)",
                summary.batch_per_process
            ),
        },
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
                "<h3>Last validation samples ({})</h3>{}",
                esc(&last.file_name().unwrap_or_default().to_string_lossy()),
                png_tag(last, "validation samples")?
            );
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// The reference script's tables: every method per contrast, the cross path set apart.
fn reference_tables(h: &mut String, reference: &Value) {
    let _ = write!(
        h,
        "<h2>Against what a user would otherwise pick</h2><p>{}. The classical denoisers \
         estimate a magnitude's expectation, as the network does; the rows with the same Rician \
         bias correction the runtime applies to the product's output are what a physicist would \
         run, and the headline compares with the strongest of them. Tissue: PSNR over the knee \
         only (the clean image above 2% of its maximum, grown by 3 pixels). \
         Leakage: how far an output shows a finding (the PDFS-only edema, the PD-only fatty \
         lesion) unlike its own contrast, as a fraction of the finding's strength; 0 is right.</p>",
        esc(reference["title"].as_str().unwrap_or("reference scores"))
    );
    let Some(contrasts) = reference["contrasts"].as_object() else {
        return;
    };
    for (contrast, rows) in contrasts {
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr><th>method</th><th>PSNR</th><th>tissue PSNR</th><th>SSIM</th><th>sharpness</th>\
             <th>edema leakage</th><th>fatty lesion leakage</th></tr>",
            esc(&contrast.to_uppercase())
        );
        let Some(rows) = rows.as_object() else {
            continue;
        };
        for (label, v) in rows {
            let leak = |k: &str| {
                v["leakage"][k]["error"]
                    .as_f64()
                    .map_or("-".into(), |e| format!("{:+.0}%", 100.0 * e))
            };
            let synthesis = label.contains("synthesis");
            let _ = write!(
                h,
                "<tr{}><td>{}</td><td>{:.2} dB</td><td>{}</td><td>{:.3}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                if synthesis {
                    " class=\"synthesis\""
                } else {
                    ""
                },
                esc(label),
                v["psnr"].as_f64().unwrap_or(f64::NAN),
                v["tissue_psnr"]
                    .as_f64()
                    .map_or("-".into(), |p| format!("{p:.2} dB")),
                v["ssim"].as_f64().unwrap_or(f64::NAN),
                v["sharpness"].as_f64().unwrap_or(f64::NAN),
                leak("edema"),
                leak("fatty_lesion"),
            );
        }
        h.push_str("</table>");
    }
    h.push_str(
        "<p class=\"synthesis\">The cross path predicts one contrast from the other (the \
         original study's model): it is contrast synthesis, not denoising, and never the \
         product's output. Its leakage column shows why: it cannot see what only the target \
         contrast shows.</p>",
    );
}
