//! Self-contained HTML pages for a suite and for one run: every picture inlined as a
//! base64 PNG, so a page can be mailed or archived on its own.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::criteria::{Check, Outcome};
use super::diagnosis::Finding;
use super::run_report::RunReport;

/// A picture the page embeds could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PageError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}
use crossdenoise_image::html::{escape as esc, inline_png};

const STYLE: &str = "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;\
color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;\
padding:4px 8px;text-align:left}th{background:#eee}\
img{max-width:100%;image-rendering:pixelated}.pass{color:#070}.fail{color:#a00;\
font-weight:bold}.na{color:#777}</style>";

fn img(path: &Path, alt: &str) -> Result<String, PageError> {
    let bytes = fs::read(path).map_err(|source| PageError {
        path: path.into(),
        source,
    })?;
    Ok(inline_png(&bytes, alt))
}

fn outcome_cell(o: Outcome) -> String {
    let class = match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::NotMeasured => "na",
    };
    format!("<td class=\"{class}\">{o}</td>")
}

fn criteria_table(checks: &[Check]) -> String {
    let mut h = String::from(
        "<table><tr><th>criterion</th><th>result</th><th>measured</th><th>threshold</th></tr>",
    );
    for c in checks {
        let _ = write!(
            h,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td></tr>",
            esc(c.title),
            outcome_cell(c.outcome),
            esc(&c.measured),
            esc(&c.threshold)
        );
    }
    h.push_str("</table>");
    h
}

fn diagnosis_list(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "<p>Diagnosis: no row of the table matches.</p>".into();
    }
    let mut h = String::from("<ul>");
    for d in findings {
        let _ = write!(
            h,
            "<li><b>{}</b> ({}): {}<br><small>evidence: {}</small></li>",
            esc(d.symptom),
            esc(d.cause),
            esc(&d.remedy),
            esc(&d.evidence)
        );
    }
    h.push_str("</ul>");
    h
}

/// The newest sample grid of a run, if it wrote any.
fn last_sample(run: &Path) -> Option<PathBuf> {
    let mut grids: Vec<PathBuf> = fs::read_dir(run.join("samples"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    grids.sort();
    grids.pop()
}

/// One run: its curves, last sample grid, criteria and diagnosis.
pub fn run_page(run: &Path, report: &RunReport) -> Result<String, PageError> {
    let mut h = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title>{STYLE}</head>\
         <body><h1>Run {0}</h1><p>strategy {1}, loss weights content / recon / cross / edge \
         {2}, {3} epochs, {4} steps.</p>",
        esc(&report.name),
        esc(&report.strategy),
        report.weights.map(|w| w.to_string()).join(" / "),
        report.epochs,
        report.steps
    );
    if let Some(e) = &report.error {
        let _ = write!(h, "<p class=\"fail\">Stopped with an error: {}</p>", esc(e));
    }
    h.push_str("<h2>Success criteria</h2>");
    h.push_str(&criteria_table(&report.criteria));
    h.push_str("<h2>Diagnosis</h2>");
    h.push_str(&diagnosis_list(&report.diagnosis));
    let curves = run.join("curves.png");
    if curves.exists() {
        let _ = write!(h, "<h2>Curves</h2>{}", img(&curves, "training curves")?);
    }
    if let Some(grid) = last_sample(run) {
        let _ = write!(
            h,
            "<h2>Samples</h2><p>Noisy input | cross output | target | clean, validation \
             pairs ({}).</p>{}",
            esc(&grid.file_name().unwrap_or_default().to_string_lossy()),
            img(&grid, "sample grid")?
        );
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// A suite: the run table, overlaid curves, and each run's criteria, diagnosis and samples.
pub fn suite_page(
    title: &str,
    reports: &[RunReport],
    pictures: &[PathBuf],
    suite_dir: &Path,
    domains: &[String; 2],
) -> Result<String, PageError> {
    let [a, b] = domains;
    let mut h = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title>{STYLE}</head>\
         <body><h1>{0}</h1><p>PSNR against the clean phantom (validation set); the acquired \
         image's own PSNR is the baseline a denoised path must beat.</p><table><tr><th>run\
         </th><th>strategy</th><th>weights c/r/x/e</th><th>epochs</th><th>cross drop</th>\
         <th>PSNR {a}&lt;-{b}</th><th>PSNR {b}&lt;-{a}</th><th>acquired {a} / {b}</th>",
        esc(title),
    );
    let ids: Vec<&str> = reports
        .first()
        .map(|r| r.criteria.iter().map(|c| c.id).collect())
        .unwrap_or_default();
    for id in &ids {
        let _ = write!(h, "<th>{id}</th>");
    }
    h.push_str("</tr>");
    let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for r in reports {
        let v = r.validation.as_ref();
        let _ = write!(
            h,
            "<tr><td><a href=\"#{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td>\
             <td>{4}</td><td>{5}</td><td>{6}</td><td>{7} / {8}</td>",
            esc(&r.name),
            esc(&r.strategy),
            r.weights.map(|w| w.to_string()).join("/"),
            r.epochs,
            r.cross_drop
                .map(|d| format!("{:.1}%", 100.0 * d))
                .unwrap_or_else(|| "-".into()),
            f(v.and_then(|v| v.cross_a.psnr_clean)),
            f(v.and_then(|v| v.cross_b.psnr_clean)),
            f(v.and_then(|v| v.baseline_a.map(|x| x.psnr))),
            f(v.and_then(|v| v.baseline_b.map(|x| x.psnr))),
        );
        for c in &r.criteria {
            h.push_str(&outcome_cell(c.outcome));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2>Curves across runs</h2>");
    for p in pictures {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let _ = write!(h, "<div>{}</div>", img(p, &name)?);
    }
    for r in reports {
        let _ = write!(
            h,
            "<h2 id=\"{0}\">{0}</h2>{1}{2}",
            esc(&r.name),
            criteria_table(&r.criteria),
            diagnosis_list(&r.diagnosis)
        );
        if let Some(grid) = last_sample(&suite_dir.join(&r.name)) {
            h.push_str(&img(&grid, &format!("{} samples", r.name))?);
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}
