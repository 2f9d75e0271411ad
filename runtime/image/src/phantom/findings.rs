//! The contrast-specific findings a phantom slice may carry: where they lie, drawn from a
//! random stream of their own.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::shapes::{rotate, sd_ellipse};

/// How often a slice carries each finding.
const FINDING_PROBABILITY: f64 = 0.75;

/// Mixed into the seed of the findings' random stream.
pub(super) const FINDING_STREAM: u64 = 0x6669_6e64_696e_6773;

/// Where in a slice's anatomy findings may lie (anatomical coordinates).
pub(super) struct Sites {
    /// Distance from the joint line to the marrow under the articular surface.
    pub(super) bone_surface: f32,
    /// Distance of each condyle's centre from the midline.
    pub(super) condyle_sep: f32,
    /// The outer edge of the muscle, a margin inside the subcutaneous fat.
    pub(super) muscle_outer: f32,
}

/// Where a slice's findings lie, in anatomical coordinates; `None` where it has none.
#[derive(Debug, Clone, Default)]
pub(super) struct Findings {
    /// Centre, radii and tilt of a subchondral blob in the femoral condyle or tibial plateau.
    pub(super) edema: Option<Blob>,
    /// Centre and radius of a round lesion in the thigh or calf muscle.
    pub(super) lesion: Option<Blob>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Blob {
    centre: (f32, f32),
    radii: (f32, f32),
    angle: f32,
}

impl Blob {
    pub(super) fn distance(&self, x: f32, y: f32) -> f32 {
        let (u, v) = rotate(x - self.centre.0, y - self.centre.1, self.angle);
        sd_ellipse(u, v, self.radii.0, self.radii.1)
    }
}

impl Findings {
    pub(super) fn sample(rng: &mut ChaCha8Rng, sites: &Sites) -> Self {
        let edema = rng.random_bool(FINDING_PROBABILITY).then(|| {
            // Under the articular surface: in a femoral condyle (above the joint) or the
            // tibial plateau (below it), clipped to the marrow when painted.
            let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let depth = rng.random_range(0.07..0.13);
            let y = if rng.random_bool(0.5) {
                -(sites.bone_surface + depth)
            } else {
                sites.bone_surface + depth
            };
            let x = side * sites.condyle_sep + rng.random_range(-0.06..0.06);
            Blob {
                centre: (x, y),
                radii: (rng.random_range(0.06..0.1), rng.random_range(0.04..0.07)),
                angle: rng.random_range(-0.4..0.4),
            }
        });
        let lesion = rng.random_bool(FINDING_PROBABILITY).then(|| {
            // In the muscle between the shafts and the subcutaneous fat, away from the joint.
            let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let inner = 0.24;
            let outer = sites.muscle_outer;
            let x = side * rng.random_range(inner..outer.max(inner + 0.01));
            let y = if rng.random_bool(0.5) {
                rng.random_range(-0.75..-0.45)
            } else {
                rng.random_range(0.5..0.75)
            };
            let r = rng.random_range(0.03..0.05);
            Blob {
                centre: (x, y),
                radii: (r, r * rng.random_range(0.8..1.2)),
                angle: 0.0,
            }
        });
        Findings { edema, lesion }
    }
}
