//! Loss and quality curves as PNG charts (plotters, with an embedded DejaVu font so the
//! charts render the same on a headless box without system fonts).
//!
//! One chart is a grid of panels; each panel overlays any number of named curves — one
//! run's losses, or the same loss across the runs of an experiment suite.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// A named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, its y axis label, and the curves drawn in it.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub curves: Vec<Curve>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw chart: {reason}")]
pub struct CurveError {
    pub path: String,
    pub reason: String,
}

const PANEL: (u32, u32) = (560, 360);
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// An axis label with at most three significant decimals and no trailing zeros (plotters
/// prints log-axis ticks as `0.7000000000000001`).
fn tick(v: f64) -> String {
    let digits = if v.abs() >= 10.0 {
        0
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Draws `panels` in a grid of `columns` and writes a PNG.
pub fn draw(path: &Path, panels: &[Panel], columns: usize) -> Result<(), CurveError> {
    let err = |e: &dyn std::fmt::Display| CurveError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| err(&"embedded font rejected"))?;
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let size = (PANEL.0 * columns as u32, PANEL.1 * rows as u32);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows, columns));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_panel(panel, area).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn draw_panel(
    panel: &Panel,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
) -> Result<(), Box<dyn std::error::Error>> {
    let pts = || {
        panel
            .curves
            .iter()
            .flat_map(|c| c.points.iter())
            .filter(|p| p.1.is_finite() && (!panel.log_y || p.1 > 0.0))
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + y0.abs().max(1e-3) * 0.1;
        y0 -= y0.abs().max(1e-3) * 0.1;
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v))
                .label_style(("sans-serif", 12))
                .draw()?;
            for (i, c) in panel.curves.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                let points = c
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite() && (!panel.log_y || p.1 > 0.0));
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                    .label(c.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
            }
            if panel.curves.len() > 1 || panel.curves.iter().any(|c| !c.label.is_empty()) {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 12))
                    .draw()?;
            }
        }};
    }
    if panel.log_y {
        finish!(builder.build_cartesian_2d(x0..x1, (y0 * 0.9..y1 * 1.1).log_scale())?);
    } else {
        let pad = (y1 - y0) * 0.05;
        finish!(builder.build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)?);
    }
    Ok(())
}

/// A running mean over 20 steps, so a curve of noisy per-step losses shows its trend.
pub fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    const WINDOW: usize = 20;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let from = i.saturating_sub(WINDOW - 1);
            let ys = &points[from..=i];
            (x, ys.iter().map(|p| p.1).sum::<f64>() / ys.len() as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.7000000000000001), "0.7");
        assert_eq!(tick(0.012345), "0.012");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(350.0), "350");
        assert_eq!(tick(1.5), "1.5");
    }

    #[test]
    fn draws_a_readable_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let panel = Panel {
            title: "cross".into(),
            x_label: "step".into(),
            y_label: "L1".into(),
            log_y: true,
            curves: vec![
                Curve {
                    label: "run a".into(),
                    points: (1..50).map(|i| (i as f64, 1.0 / i as f64)).collect(),
                },
                Curve {
                    label: "run b".into(),
                    points: vec![(1.0, 0.5), (49.0, 0.4)],
                },
            ],
        };
        draw(
            &path,
            &[
                panel.clone(),
                Panel {
                    log_y: false,
                    ..panel
                },
            ],
            2,
        )
        .unwrap();
        let img = crossdenoise_image::io::read_png(&path);
        // plotters writes RGB; the runtime's reader only takes grayscale, so it must say so.
        assert!(img.unwrap_err().to_string().contains("Rgb"));
        assert!(std::fs::metadata(&path).unwrap().len() > 5_000);
    }
}
