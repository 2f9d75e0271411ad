//! A receive coil array, for phantoms with the noise a clinical knee scan has.
//!
//! A knee coil has 8 to 16 channels. Each sees the anatomy through its own smooth complex
//! sensitivity and adds complex Gaussian noise correlated with its neighbours'. The scanner
//! prewhitens the channels (as the noise-adjust step of an MRD reconstruction does) and
//! combines them, by root-sum-of-squares (a noncentral chi magnitude with 2L degrees of
//! freedom) or weighted by the sensitivities (Rician). Parallel imaging (acceleration R)
//! samples 1/R of the lines and unfolds the aliased copies with the sensitivities: the noise
//! grows by `sqrt(R)` and by the geometry factor `g`, a map that is high where the coils
//! cannot tell the folded pixels apart. The same sigma everywhere is then wrong, which is
//! what a denoiser of such scans has to cope with.
//!
//! Modelled, with the approximations said: the slice is coronal, the loops sit on a cylinder
//! around the leg's long axis (the image's vertical), each seen from the slice as a magnetic
//! dipole at its distance `d` (sensitivity `1 / (1 + (d / a)^2)^(3/2)`, phase the direction
//! from the loop), all falling off alike towards the coil's ends; noise correlation `rho`
//! between ring neighbours only; phase encoding left-right, so acceleration folds along the
//! columns; the unfolded noise of a pixel treated as independent of its neighbours' and
//! scaled by `g sqrt(R)` with the SENSE g-factor of the whitened sensitivities (Pruessmann
//! 1999).

use ndarray::Array2;
use num_complex::Complex64;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::noise_map::PhaseEncoding;
use crate::{Error, Result};

/// The phantoms' phase encoding runs left-right: their acceleration folds along the
/// columns, and their g-factor map changes from column to column.
pub const PHASE_ENCODING: PhaseEncoding = PhaseEncoding::LeftRight;

/// How the channels become one magnitude image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combination {
    /// Root-sum-of-squares of the prewhitened channels: noncentral chi, 2L degrees of
    /// freedom. What most knee protocols reconstruct.
    #[default]
    RootSumOfSquares,
    /// The channels weighted by their whitened sensitivities (Roemer's combination): Rician.
    SensitivityWeighted,
}

impl Combination {
    pub const ALL: [Combination; 2] = [
        Combination::RootSumOfSquares,
        Combination::SensitivityWeighted,
    ];

    /// Parses the names the CLI and the manifest use: `rss` or `sensitivity`.
    pub fn parse(name: &str) -> Result<Self> {
        crate::error::by_name("coil combination", name, &Self::ALL, Self::name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Combination::RootSumOfSquares => "rss",
            Combination::SensitivityWeighted => "sensitivity",
        }
    }
}

/// The coil array and acquisition a phantom is "scanned" with. The default is one uniform
/// coil without acceleration: Rician noise of one sigma, the phantoms as they always were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoilArray {
    /// Channels, 1 to [`MAX_COILS`].
    pub coils: u32,
    /// Noise correlation between ring neighbours, 0 to [`MAX_CORRELATION`].
    pub correlation: f32,
    /// Parallel-imaging acceleration, 1 to [`MAX_ACCELERATION`] (folded along the columns).
    pub acceleration: u32,
    pub combination: Combination,
}

/// More channels than any knee coil has.
pub const MAX_COILS: u32 = 32;
/// Above 0.5 the ring's neighbour-only correlation matrix is no longer positive definite.
pub const MAX_CORRELATION: f32 = 0.45;
/// Beyond 4 the 2D-folded g-factor of a ring is far past clinical use.
pub const MAX_ACCELERATION: u32 = 4;

impl Default for CoilArray {
    fn default() -> Self {
        CoilArray {
            coils: 1,
            correlation: 0.0,
            acceleration: 1,
            combination: Combination::RootSumOfSquares,
        }
    }
}

impl CoilArray {
    /// The array of a clinical knee protocol: 8 channels, neighbours correlated by 0.15,
    /// root-sum-of-squares, acceleration 2.
    pub fn knee(acceleration: u32) -> Self {
        CoilArray {
            coils: 8,
            correlation: 0.15,
            acceleration,
            combination: Combination::RootSumOfSquares,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |what, reason: String| Err(Error::Invalid { what, reason });
        if !(1..=MAX_COILS).contains(&self.coils) {
            return bad("coils", format!("{} is not 1 to {MAX_COILS}", self.coils));
        }
        if !(0.0..=MAX_CORRELATION).contains(&self.correlation) {
            return bad(
                "coil correlation",
                format!("{} is not 0 to {MAX_CORRELATION}", self.correlation),
            );
        }
        if !(1..=MAX_ACCELERATION).contains(&self.acceleration) {
            return bad(
                "acceleration",
                format!("{} is not 1 to {MAX_ACCELERATION}", self.acceleration),
            );
        }
        if self.acceleration > self.coils {
            return bad(
                "acceleration",
                format!(
                    "{} needs at least as many coils ({} given) to unfold",
                    self.acceleration, self.coils
                ),
            );
        }
        Ok(())
    }

    /// One uniform coil, nothing folded: plain Rician noise.
    pub fn is_single(&self) -> bool {
        self.coils == 1 && self.acceleration == 1
    }

    /// The degrees of freedom of the combined magnitude, in coils: L for root-sum-of-squares,
    /// 1 (Rician) for a sensitivity-weighted combination.
    pub fn distribution_coils(&self) -> u32 {
        match self.combination {
            Combination::RootSumOfSquares => self.coils,
            Combination::SensitivityWeighted => 1,
        }
    }
}

/// The cylinder's radius, in the phantom's coordinates (the field of view is [-1, 1]).
const RING_RADIUS: f64 = 1.3;
/// Half the coil's length along the leg: the sensitivity falls to half at this height.
const HALF_LENGTH: f64 = 1.2;

/// A coil array set up for one matrix size: its sensitivities, the noise's Cholesky factor
/// and what the combination and unfolding make of a unit amplitude and a unit noise.
#[derive(Debug, Clone)]
pub struct Receiver {
    array: CoilArray,
    /// Raw sensitivities, one map per coil, scaled so the combined gain is 1 at the centre.
    sensitivities: Vec<Array2<Complex64>>,
    /// Lower Cholesky factor of the channel correlation (row-major, L x L).
    cholesky: Vec<f64>,
    /// The noise-free combined image of amplitude 1.
    gain: Array2<f32>,
    /// What multiplies sigma at each pixel: `g sqrt(R)`.
    noise_gain: Array2<f32>,
    /// Each pixel's whitened sensitivities (the sensitivity-weighted combination's weights).
    weights: Array2<Vec<Complex64>>,
}

impl Receiver {
    pub fn new(array: CoilArray, size: usize) -> Result<Self> {
        array.validate()?;
        let l = array.coils as usize;
        let cholesky = cholesky(&correlation_matrix(l, f64::from(array.correlation)));
        let coord = |k: usize| (k as f64 + 0.5) / size as f64 * 2.0 - 1.0;
        // Loops as wide as their share of the ring.
        let radius = std::f64::consts::PI * RING_RADIUS / l as f64;
        let mut sensitivities: Vec<Array2<Complex64>> = (0..l)
            .map(|c| {
                // The loop's place on the cylinder: left-right and in front of or behind the
                // slice's plane.
                let angle = std::f64::consts::TAU * c as f64 / l as f64;
                let (px, pz) = (RING_RADIUS * angle.cos(), RING_RADIUS * angle.sin());
                Array2::from_shape_fn((size, size), |(i, j)| {
                    let (dx, dz) = (coord(j) - px, -pz);
                    let d2 = (dx * dx + dz * dz) / (radius * radius);
                    let along = 1.0 / (1.0 + (coord(i) / HALF_LENGTH).powi(4));
                    Complex64::from_polar(along * (1.0 + d2).powf(-1.5), dz.atan2(dx) + angle)
                })
            })
            .collect();
        let whitened = |sens: &[Array2<Complex64>], i, j| {
            let column: Vec<Complex64> = sens.iter().map(|s| s[[i, j]]).collect();
            forward_substitute(&cholesky, &column)
        };
        let centre = whitened(&sensitivities, size / 2, size / 2);
        let scale = norm(&centre);
        for s in &mut sensitivities {
            s.mapv_inplace(|v| v / scale);
        }
        // Each pixel's whitened sensitivities, once: the gain, the g-factor of every pixel it
        // folds with, and the weights of a sensitivity-weighted combination all read them.
        let weights = Array2::from_shape_fn((size, size), |(i, j)| whitened(&sensitivities, i, j));
        let gain = weights.mapv(|w| norm(&w) as f32);
        let r = array.acceleration as usize;
        let noise_gain = Array2::from_shape_fn((size, size), |(i, j)| {
            let folded: Vec<Vec<Complex64>> = (0..r)
                .map(|k| weights[[i, (j + (k * size + r / 2) / r) % size]].clone())
                .collect();
            (g_factor(&folded) * (r as f64).sqrt()) as f32
        });
        Ok(Receiver {
            array,
            sensitivities,
            cholesky,
            gain,
            noise_gain,
            weights,
        })
    }

    pub fn array(&self) -> &CoilArray {
        &self.array
    }

    /// The noise-free combined image of `amplitude`: the anatomy shaded by the coils.
    pub fn clean(&self, amplitude: &Array2<f32>) -> Array2<f32> {
        amplitude * &self.gain
    }

    /// The noise's standard deviation at each pixel for channel noise `sigma` (per
    /// component, after prewhitening): `sigma g sqrt(R)`.
    pub fn noise_map(&self, sigma: f32) -> Array2<f32> {
        self.noise_gain.mapv(|g| g * sigma)
    }

    /// The SENSE g-factor map (1 without acceleration).
    pub fn g_factor(&self) -> Array2<f32> {
        let root = (self.array.acceleration as f32).sqrt();
        self.noise_gain.mapv(|g| g / root)
    }

    /// "Scans" `amplitude`: every channel gets its sensitivity times the amplitude plus
    /// correlated complex noise, the channels are prewhitened and combined.
    pub fn acquire(
        &self,
        amplitude: &Array2<f32>,
        sigma: f32,
        rng: &mut ChaCha8Rng,
    ) -> Array2<f32> {
        let l = self.sensitivities.len();
        let mut white = vec![Complex64::default(); l];
        let mut channels = vec![Complex64::default(); l];
        Array2::from_shape_fn(amplitude.dim(), |(i, j)| {
            let s = f64::from(sigma * self.noise_gain[[i, j]]);
            for w in &mut white {
                let re: f64 = rng.sample(StandardNormal);
                let im: f64 = rng.sample(StandardNormal);
                *w = Complex64::new(re, im) * s;
            }
            let a = f64::from(amplitude[[i, j]]);
            for (c, channel) in channels.iter_mut().enumerate() {
                let noise: Complex64 = (0..=c).map(|k| white[k] * self.cholesky[c * l + k]).sum();
                *channel = self.sensitivities[c][[i, j]] * a + noise;
            }
            let whitened = forward_substitute(&self.cholesky, &channels);
            match self.array.combination {
                Combination::RootSumOfSquares => norm(&whitened) as f32,
                Combination::SensitivityWeighted => {
                    let weights = &self.weights[[i, j]];
                    let dot: Complex64 = weights
                        .iter()
                        .zip(&whitened)
                        .map(|(w, c)| w.conj() * c)
                        .sum();
                    (dot.norm() / norm(weights)) as f32
                }
            }
        })
    }
}

/// Unit diagonal, `rho` between ring neighbours.
fn correlation_matrix(l: usize, rho: f64) -> Vec<f64> {
    let mut m = vec![0.0; l * l];
    for a in 0..l {
        m[a * l + a] = 1.0;
        if l > 1 {
            for b in [(a + 1) % l, (a + l - 1) % l] {
                if b != a {
                    m[a * l + b] = rho;
                }
            }
        }
    }
    m
}

/// The lower factor `C` of a positive definite `m = C C^T` (row-major).
fn cholesky(m: &[f64]) -> Vec<f64> {
    let l = (m.len() as f64).sqrt() as usize;
    let mut c = vec![0.0; l * l];
    for i in 0..l {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| c[i * l + k] * c[j * l + k]).sum();
            c[i * l + j] = if i == j {
                (m[i * l + i] - sum).sqrt()
            } else {
                (m[i * l + j] - sum) / c[j * l + j]
            };
        }
    }
    c
}

/// `C^-1 v` for the lower triangular `C`: the prewhitening of one pixel's channels.
fn forward_substitute(c: &[f64], v: &[Complex64]) -> Vec<Complex64> {
    let l = v.len();
    let mut out = vec![Complex64::default(); l];
    for i in 0..l {
        let sum: Complex64 = (0..i).map(|k| out[k] * c[i * l + k]).sum();
        out[i] = (v[i] - sum) / c[i * l + i];
    }
    out
}

fn norm(v: &[Complex64]) -> f64 {
    v.iter().map(|c| c.norm_sqr()).sum::<f64>().sqrt()
}

/// The SENSE g-factor of the first of `folded` pixels (each a column of whitened
/// sensitivities): `sqrt([(S^H S)^-1]_00 [S^H S]_00)`.
fn g_factor(folded: &[Vec<Complex64>]) -> f64 {
    let r = folded.len();
    if r == 1 {
        return 1.0;
    }
    let gram: Vec<Complex64> = (0..r * r)
        .map(|e| {
            let (a, b) = (e / r, e % r);
            folded[a]
                .iter()
                .zip(&folded[b])
                .map(|(x, y)| x.conj() * y)
                .sum()
        })
        .collect();
    let inverse00 = invert(&gram, r)[0];
    (inverse00.re * gram[0].re).max(1.0).sqrt()
}

/// Gauss-Jordan inverse of a small Hermitian positive definite matrix (row-major).
fn invert(m: &[Complex64], r: usize) -> Vec<Complex64> {
    let mut a = m.to_vec();
    let mut inv: Vec<Complex64> = (0..r * r)
        .map(|e| Complex64::from(f64::from(u8::from(e / r == e % r))))
        .collect();
    for col in 0..r {
        let pivot = (col..r)
            .max_by(|&x, &y| a[x * r + col].norm().total_cmp(&a[y * r + col].norm()))
            .expect("a row");
        for k in 0..r {
            a.swap(col * r + k, pivot * r + k);
            inv.swap(col * r + k, pivot * r + k);
        }
        let p = a[col * r + col];
        for k in 0..r {
            a[col * r + k] /= p;
            inv[col * r + k] /= p;
        }
        for row in (0..r).filter(|&row| row != col) {
            let f = a[row * r + col];
            for k in 0..r {
                let (ak, ik) = (a[col * r + k], inv[col * r + k]);
                a[row * r + k] -= f * ak;
                inv[row * r + k] -= f * ik;
            }
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::magnitude_bias::noncentral_chi_mean;
    use rand::SeedableRng;

    #[test]
    fn prewhitening_undoes_the_correlation() {
        let l = 8;
        let c = cholesky(&correlation_matrix(l, 0.3));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws = 20_000;
        let mut raw = vec![0.0; l * l];
        let mut white = vec![0.0; l * l];
        for _ in 0..draws {
            let z: Vec<Complex64> = (0..l)
                .map(|_| Complex64::new(rng.sample(StandardNormal), rng.sample(StandardNormal)))
                .collect();
            let n: Vec<Complex64> = (0..l)
                .map(|i| (0..=i).map(|k| z[k] * c[i * l + k]).sum())
                .collect();
            let w = forward_substitute(&c, &n);
            for a in 0..l {
                for b in 0..l {
                    raw[a * l + b] += (n[a] * n[b].conj()).re / (2.0 * draws as f64);
                    white[a * l + b] += (w[a] * w[b].conj()).re / (2.0 * draws as f64);
                }
            }
        }
        // Neighbours correlated by 0.3 before, nothing after.
        assert!((raw[1] - 0.3).abs() < 0.03, "{}", raw[1]);
        assert!((raw[l - 1] - 0.3).abs() < 0.03, "{}", raw[l - 1]);
        for a in 0..l {
            for b in 0..l {
                let want = f64::from(u8::from(a == b));
                assert!((white[a * l + b] - want).abs() < 0.03, "{a},{b}");
            }
        }
    }

    #[test]
    fn inverse_of_a_complex_matrix() {
        let m = vec![
            Complex64::new(2.0, 0.0),
            Complex64::new(0.5, 0.3),
            Complex64::new(0.5, -0.3),
            Complex64::new(1.5, 0.0),
        ];
        let inv = invert(&m, 2);
        for a in 0..2 {
            for b in 0..2 {
                let p: Complex64 = (0..2).map(|k| m[a * 2 + k] * inv[k * 2 + b]).sum();
                assert!((p - Complex64::from(f64::from(u8::from(a == b)))).norm() < 1e-12);
            }
        }
    }

    #[test]
    fn rss_of_an_empty_field_has_the_noncentral_chi_floor() {
        let size = 32;
        let array = CoilArray::knee(1);
        let rx = Receiver::new(array, size).unwrap();
        let sigma = 0.05;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let air = rx.acquire(&Array2::zeros((size, size)), sigma, &mut rng);
        let mean = air.mean().unwrap() / sigma;
        let exact = noncentral_chi_mean(0.0, 8) as f32;
        assert!((mean - exact).abs() < 0.03, "{mean} vs {exact}");
        // No acceleration: g = 1 and the noise map is sigma everywhere.
        assert!(
            rx.noise_map(sigma)
                .iter()
                .all(|&s| (s - sigma).abs() < 1e-6)
        );
    }

    #[test]
    fn acceleration_raises_the_noise_by_g_and_root_r() {
        let size = 64;
        let rx = Receiver::new(CoilArray::knee(2), size).unwrap();
        let g = rx.g_factor();
        let (lo, hi) = g
            .iter()
            .fold((f32::MAX, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(lo >= 1.0 - 1e-6 && hi > 1.05, "g from {lo} to {hi}");
        // The unfolded noise in bright tissue: std of (acquired - clean) over many draws.
        let amplitude = Array2::from_elem((size, size), 1.0f32);
        let clean = rx.clean(&amplitude);
        let sigma = 0.02;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws = 200;
        let mut var = Array2::<f32>::zeros((size, size));
        for _ in 0..draws {
            let noisy = rx.acquire(&amplitude, sigma, &mut rng);
            var += &(&noisy - &clean).mapv(|d| d * d / draws as f32);
        }
        let map = rx.noise_map(sigma);
        let ratio = (var.mapv(f32::sqrt) / &map).mean().unwrap();
        assert!((ratio - 1.0).abs() < 0.03, "measured / map = {ratio}");
        assert!(map.iter().all(|&s| s >= sigma * 2f32.sqrt() * 0.999));
    }

    #[test]
    fn sensitivity_weighting_gives_rician_noise() {
        let size = 64;
        let array = CoilArray {
            combination: Combination::SensitivityWeighted,
            ..CoilArray::knee(1)
        };
        let rx = Receiver::new(array, size).unwrap();
        let sigma = 0.05;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let air = rx.acquire(&Array2::zeros((size, size)), sigma, &mut rng);
        let mean = air.mean().unwrap() / sigma;
        assert!((mean - 1.2533).abs() < 0.03, "{mean}");
        assert_eq!(array.distribution_coils(), 1);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let err = |a: CoilArray| a.validate().unwrap_err().to_string();
        assert!(
            err(CoilArray {
                coils: 0,
                ..CoilArray::default()
            })
            .contains("coils")
        );
        assert!(
            err(CoilArray {
                correlation: 0.6,
                ..CoilArray::knee(1)
            })
            .contains("correlation")
        );
        assert!(
            err(CoilArray {
                acceleration: 2,
                ..CoilArray::default()
            })
            .contains("acceleration")
        );
        assert!(
            Combination::parse("sos")
                .unwrap_err()
                .to_string()
                .contains("sos")
        );
        assert_eq!(Combination::parse("rss").unwrap().name(), "rss");
    }
}
