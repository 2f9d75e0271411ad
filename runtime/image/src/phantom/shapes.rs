//! Signed distances of the shapes the anatomy is drawn with (negative inside), and the
//! rotation and smooth union that place and join them.

pub(super) fn rotate(x: f32, y: f32, angle: f32) -> (f32, f32) {
    let (s, c) = angle.sin_cos();
    (c * x + s * y, -s * x + c * y)
}

pub(super) fn sd_circle(x: f32, y: f32, r: f32) -> f32 {
    (x * x + y * y).sqrt() - r
}

pub(super) fn sd_box(x: f32, y: f32, hx: f32, hy: f32) -> f32 {
    let (dx, dy) = (x.abs() - hx, y.abs() - hy);
    (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt() + dx.max(dy).min(0.0)
}

/// Approximate distance to an ellipse (exact on the axes), good enough for soft edges.
pub(super) fn sd_ellipse(x: f32, y: f32, rx: f32, ry: f32) -> f32 {
    let k = ((x / rx).powi(2) + (y / ry).powi(2)).sqrt();
    (k - 1.0) * rx.min(ry)
}

/// Polynomial smooth minimum: joins shapes with a fillet of size `k`.
pub(super) fn smin(a: f32, b: f32, k: f32) -> f32 {
    let h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0);
    b + (a - b) * h - k * h * (1.0 - h)
}
