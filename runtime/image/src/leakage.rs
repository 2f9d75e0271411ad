//! Leakage: whether an output of one contrast shows a finding the way that contrast does,
//! or the way the other contrast does.
//!
//! A denoiser that carries one contrast into the other is wrong in the worst way: a
//! bone-marrow edema (bright in PDFS, near invisible in PD) that appears in a "denoised PD"
//! is a finding the PD scan never showed. The phantoms carry such findings with masks, so
//! the check is direct: a finding's *contrast* (mean inside its mask minus the mean of a
//! ring of pixels just outside it) in the output, against the same measure on the clean
//! image of the output's own contrast. The difference is expressed as a fraction of the
//! finding's *strength*, its largest contrast in either clean image, so that 0 means the
//! output shows the finding exactly as its contrast does and 1 means an error as large as
//! the finding itself.

use ndarray::{ArrayView2, Zip};

use crate::neighbourhood::grown;
use crate::{Error, Result};

/// The ring around a finding: pixels at Chebyshev distance `RING_GAP..=RING_OUTER` from its
/// mask. The gap keeps the finding's own blurred edge out of its surroundings.
pub const RING_GAP: usize = 2;
pub const RING_OUTER: usize = 5;

/// One finding in one output.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Leakage {
    /// The finding's contrast in the clean image of the output's own contrast.
    pub clean: f64,
    /// Its contrast in the output.
    pub output: f64,
    /// Its largest contrast in either clean image (the scale of [`Leakage::error`]).
    pub strength: f64,
}

impl Leakage {
    /// `(output - clean) / strength`: 0 when the output shows the finding as its own
    /// contrast does; of the order of 1 when it shows it as the other contrast does.
    pub fn error(&self) -> f64 {
        (self.output - self.clean) / self.strength
    }
}

/// The finding's contrast in `image`: mean inside `mask` minus the mean of its ring;
/// `None` when the mask is empty or has no ring inside the image.
pub fn contrast(image: ArrayView2<f32>, mask: ArrayView2<u8>) -> Result<Option<f64>> {
    same_shape(image, mask)?;
    let marked = mask.mapv(|v| v > 0);
    let near = grown(marked.view(), RING_GAP - 1);
    let far = grown(marked.view(), RING_OUTER);
    let (mut inside, mut n_in, mut ring, mut n_ring) = (0.0f64, 0usize, 0.0f64, 0usize);
    Zip::from(image)
        .and(mask)
        .and(&near)
        .and(&far)
        .for_each(|&v, &m, &n, &f| {
            if m > 0 {
                inside += f64::from(v);
                n_in += 1;
            } else if f && !n {
                ring += f64::from(v);
                n_ring += 1;
            }
        });
    Ok((n_in > 0 && n_ring > 0).then(|| inside / n_in as f64 - ring / n_ring as f64))
}

/// The finding's leakage into `output`, whose own contrast's clean image is `clean` and the
/// other contrast's `clean_other` (all on one intensity scale, e.g. each normalised by its
/// own percentile). `None` when the slice does not carry the finding.
pub fn leakage(
    output: ArrayView2<f32>,
    clean: ArrayView2<f32>,
    clean_other: ArrayView2<f32>,
    mask: ArrayView2<u8>,
) -> Result<Option<Leakage>> {
    let (Some(c), Some(o), Some(other)) = (
        contrast(clean, mask)?,
        contrast(output, mask)?,
        contrast(clean_other, mask)?,
    ) else {
        return Ok(None);
    };
    let strength = c.abs().max(other.abs());
    Ok((strength > 0.0).then_some(Leakage {
        clean: c,
        output: o,
        strength,
    }))
}

fn same_shape(image: ArrayView2<f32>, mask: ArrayView2<u8>) -> Result<()> {
    if image.dim() == mask.dim() {
        Ok(())
    } else {
        Err(Error::Shape {
            what: "finding mask",
            expected: format!("the image's shape {:?}", image.dim()),
            got: format!("{:?}", mask.dim()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A 3 x 3 square finding at (10..13, 10..13) on a 24 x 24 background of 0.2.
    fn scene(inside: f32, background: f32) -> (Array2<f32>, Array2<u8>) {
        let mask = Array2::from_shape_fn((24, 24), |(i, j)| {
            u8::from((10..13).contains(&i) && (10..13).contains(&j))
        });
        let img = mask.mapv(|m| if m > 0 { inside } else { background });
        (img, mask)
    }

    #[test]
    fn contrast_is_inside_minus_the_ring() {
        let (mut img, mask) = scene(0.9, 0.2);
        // The pixel next to the finding is in the gap, not the ring: changing it changes
        // nothing; a pixel 3 away is in the ring; one 6 away is outside it.
        img[(13, 11)] = 5.0;
        img[(20, 20)] = 5.0;
        assert!((contrast(img.view(), mask.view()).unwrap().unwrap() - 0.7).abs() < 1e-6);
        img[(15, 11)] = 0.2 + 1.0;
        // The ring is the 13 x 13 square minus the 5 x 5 one: 144 pixels.
        let want = 0.9 - (0.2 + 1.0 / 144.0);
        let got = contrast(img.view(), mask.view()).unwrap().unwrap();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn leakage_of_a_hand_made_finding() {
        // Visible in the other contrast (0.8 on 0.2: contrast 0.6), invisible in this one.
        let (clean, mask) = scene(0.3, 0.3);
        let (other, _) = scene(0.8, 0.2);
        // An output that copies the other contrast's finding: error 1.
        let (copied, _) = scene(0.9, 0.3);
        let l = leakage(copied.view(), clean.view(), other.view(), mask.view())
            .unwrap()
            .unwrap();
        assert!((l.strength - 0.6).abs() < 1e-6 && l.clean.abs() < 1e-6);
        assert!((l.error() - 1.0).abs() < 1e-6, "{l:?}");
        // An output that shows it at a tenth: error 0.1; one that keeps it away: 0.
        let (faint, _) = scene(0.36, 0.3);
        let e = leakage(faint.view(), clean.view(), other.view(), mask.view())
            .unwrap()
            .unwrap()
            .error();
        assert!((e - 0.1).abs() < 1e-5, "{e}");
        let e = leakage(clean.view(), clean.view(), other.view(), mask.view())
            .unwrap()
            .unwrap()
            .error();
        assert!(e.abs() < 1e-9);
        // A slice without the finding has no leakage figure; a wrong mask size is an error.
        let empty = Array2::<u8>::zeros((24, 24));
        assert!(
            leakage(clean.view(), clean.view(), other.view(), empty.view())
                .unwrap()
                .is_none()
        );
        let small = Array2::<u8>::zeros((8, 8));
        assert!(contrast(clean.view(), small.view()).is_err());
    }
}
