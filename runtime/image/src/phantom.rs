//! Synthetic knee phantoms: the project's embedded data set.
//!
//! Each pair is one coronal knee slice seen twice, as a proton-density (PD) and a
//! fat-suppressed PD (PDFS) acquisition of the same anatomy: femur and tibia (cortical rim
//! around fatty marrow), fibular head, articular cartilage, menisci, cruciate ligaments,
//! joint fluid with an occasional effusion, muscle, subcutaneous fat and skin in air, under
//! one smooth receive-coil bias field. The two contrasts differ the way real ones do: fat
//! (subcutaneous and marrow) is bright in PD and suppressed in PDFS, fluid is brighter in
//! PDFS. Each contrast then gets its own, independent acquisition noise — the property the
//! cross-contrast training relies on — Rician of one sigma by default, or that of a
//! multi-channel knee coil with parallel imaging ([`PhantomGenerator::with_coils`], see
//! [`crate::coils`]). The noise-free images and the true noise maps are kept beside them for
//! evaluation only (real scans have none).
//!
//! Two contrast-specific findings are placed at random per slice, so that a denoiser can be
//! checked for carrying one contrast into the other: a bone-marrow edema (water in fatty
//! marrow: bright in PDFS, within a few percent of the marrow in PD) and a fatty lesion in
//! muscle (bright in PD; fat saturation leaves it at the muscle's signal in PDFS). Their
//! masks come with each pair.
//!
//! Everything is a deterministic function of `(seed, index)`: slice `i` of a seed is the
//! same whatever else is generated, so data sets can be split, resumed or regenerated.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::coils::{CoilArray, Receiver};
use crate::{Error, Result};

mod findings;
mod shapes;

use findings::{FINDING_STREAM, Findings, Sites};
use shapes::{rotate, sd_box, sd_circle, sd_ellipse, smin};

/// Tissue classes of the phantom, in painting order (later ones cover earlier ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tissue {
    Air = 0,
    Skin = 1,
    Fat = 2,
    Muscle = 3,
    Fluid = 4,
    Cartilage = 5,
    Ligament = 6,
    Cortex = 7,
    Marrow = 8,
    /// Bone-marrow edema: visible in PDFS only.
    Edema = 9,
    /// A fatty lesion in muscle: visible in PD only.
    FattyLesion = 10,
}

impl Tissue {
    /// The anatomy every slice shows (the findings are not on every slice).
    pub const ANATOMY: [Tissue; 9] = [
        Tissue::Air,
        Tissue::Skin,
        Tissue::Fat,
        Tissue::Muscle,
        Tissue::Fluid,
        Tissue::Cartilage,
        Tissue::Ligament,
        Tissue::Cortex,
        Tissue::Marrow,
    ];

    /// Noise-free signal (PD, PDFS) on a scale where the brightest tissue is about 1.
    ///
    /// PD weighting shows fat and fluid bright over intermediate cartilage and muscle; the
    /// fat saturation pulse of PDFS removes fat signal (subcutaneous fat and marrow) and the
    /// display then makes fluid the brightest tissue. Cortex, menisci and ligaments have
    /// short T2 and stay dark in both.
    pub fn signal(self) -> (f32, f32) {
        match self {
            Tissue::Air => (0.0, 0.0),
            Tissue::Skin => (0.55, 0.32),
            Tissue::Fat => (0.95, 0.10),
            Tissue::Muscle => (0.42, 0.30),
            Tissue::Fluid => (0.66, 0.96),
            Tissue::Cartilage => (0.62, 0.52),
            Tissue::Ligament => (0.10, 0.08),
            Tissue::Cortex => (0.06, 0.05),
            Tissue::Marrow => (0.86, 0.13),
            // Water replacing part of the marrow fat: PD barely changes (water and fat both
            // carry proton density), the suppressed fat no longer hides it in PDFS.
            Tissue::Edema => (0.81, 0.60),
            // Fat in PD; saturated in PDFS down to the surrounding muscle's signal.
            Tissue::FattyLesion => (0.95, 0.30),
        }
    }
}

/// Settings of the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhantomConfig {
    /// Matrix size (square), a multiple of 16.
    pub size: usize,
    /// Signal-to-noise ratio of each contrast: the noise sigma is `1 / snr` on the
    /// intensity scale of [`Tissue::signal`] (where the brightest tissue is ~1).
    pub snr_pd: f32,
    pub snr_pdfs: f32,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        PhantomConfig {
            size: 128,
            snr_pd: 20.0,
            snr_pdfs: 20.0,
        }
    }
}

impl PhantomConfig {
    /// Acquisition SNRs typical of a 3 T knee coil for a `size` x `size` matrix over the
    /// phantom's field of view: PD 20 and PDFS 12 up to 256 x 256 (fat suppression costs
    /// PDFS about 40% of its SNR), falling with the voxel area above it (320 x 320: 12.8 and
    /// 7.7).
    pub fn realistic_snr(size: usize) -> (f32, f32) {
        let area = (256.0 / size.max(256) as f32).powi(2);
        (20.0 * area, 12.0 * area)
    }

    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || !self.size.is_multiple_of(16) {
            return Err(Error::Invalid {
                what: "phantom size",
                reason: format!("{} is not a positive multiple of 16", self.size),
            });
        }
        for (what, snr) in [
            ("phantom snr_pd", self.snr_pd),
            ("phantom snr_pdfs", self.snr_pdfs),
        ] {
            if !(snr > 0.0 && snr.is_finite()) {
                return Err(Error::Invalid {
                    what,
                    reason: format!("{snr} is not a positive finite number"),
                });
            }
        }
        Ok(())
    }

    pub fn sigma_pd(&self) -> f32 {
        1.0 / self.snr_pd
    }

    pub fn sigma_pdfs(&self) -> f32 {
        1.0 / self.snr_pdfs
    }
}

/// One generated slice pair.
#[derive(Debug, Clone)]
pub struct PhantomPair {
    /// The acquired (noisy magnitude) images: what a scanner would deliver.
    pub pd: Array2<f32>,
    pub pdfs: Array2<f32>,
    /// The noise-free images, for evaluation only.
    pub clean_pd: Array2<f32>,
    pub clean_pdfs: Array2<f32>,
    /// The dominant [`Tissue`] of each pixel (as `u8`).
    pub labels: Array2<u8>,
    /// The true noise standard deviation at each pixel, for evaluation only: sigma
    /// everywhere for one coil, `sigma g sqrt(R)` for an accelerated array.
    pub noise_pd: Array2<f32>,
    pub noise_pdfs: Array2<f32>,
    /// The degrees of freedom of the magnitude's noise, in coils (1: Rician).
    pub noise_coils: u32,
    /// Where each finding covers at least half a pixel (1) or not (0); all zeros on a slice
    /// without that finding.
    pub findings: [Array2<u8>; 2],
}

/// The contrast-specific findings, in the order of [`PhantomPair::findings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Bone-marrow edema: bright in PDFS, near invisible in PD.
    Edema,
    /// Fatty lesion in muscle: bright in PD, near invisible in PDFS.
    FattyLesion,
}

impl Finding {
    pub const ALL: [Finding; 2] = [Finding::Edema, Finding::FattyLesion];

    /// The name used for its mask folder and in `phantoms.json`.
    pub fn name(self) -> &'static str {
        match self {
            Finding::Edema => "edema",
            Finding::FattyLesion => "fatty_lesion",
        }
    }

    /// The contrast that shows it ("pd" or "pdfs").
    pub fn visible_in(self) -> &'static str {
        match self {
            Finding::Edema => "pdfs",
            Finding::FattyLesion => "pd",
        }
    }

    fn tissue(self) -> Tissue {
        match self {
            Finding::Edema => Tissue::Edema,
            Finding::FattyLesion => Tissue::FattyLesion,
        }
    }
}

/// A deterministic source of phantom pairs.
#[derive(Debug, Clone)]
pub struct PhantomGenerator {
    config: PhantomConfig,
    seed: u64,
    /// The coil array, set up for the config's size; `None` for one uniform coil.
    receiver: Option<Receiver>,
}

impl PhantomGenerator {
    pub fn new(config: PhantomConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        Ok(PhantomGenerator {
            config,
            seed,
            receiver: None,
        })
    }

    /// The same generator "scanned" with `array` instead of one uniform coil: the clean
    /// images carry the coils' shading, the noise their distribution and g-factor map.
    pub fn with_coils(mut self, array: CoilArray) -> Result<Self> {
        array.validate()?;
        self.receiver = if array.coils == 1 {
            None
        } else {
            Some(Receiver::new(array, self.config.size)?)
        };
        Ok(self)
    }

    /// The largest g-factor of the coil array (1 without acceleration).
    pub fn g_factor_max(&self) -> f32 {
        self.receiver
            .as_ref()
            .map_or(1.0, |rx| rx.g_factor().iter().fold(1f32, |a, &g| a.max(g)))
    }

    /// The coil array (the default single coil unless [`Self::with_coils`] set one).
    pub fn coils(&self) -> CoilArray {
        self.receiver
            .as_ref()
            .map_or_else(CoilArray::default, |rx| *rx.array())
    }

    pub fn config(&self) -> &PhantomConfig {
        &self.config
    }

    /// Pair number `index` of this seed.
    pub fn pair(&self, index: u64) -> PhantomPair {
        self.pair_at_snr(index, self.config.snr_pd, self.config.snr_pdfs)
    }

    /// Pair number `index` of this seed acquired at other SNRs than the config's: the same
    /// anatomy and findings, the same noise draws scaled to these levels.
    pub fn pair_at_snr(&self, index: u64, snr_pd: f32, snr_pdfs: f32) -> PhantomPair {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let mut anatomy = Anatomy::sample(&mut rng);
        // The findings come from a stream of their own, so the anatomy and the noise of a
        // slice are what they were before findings existed.
        let mut finding_rng = ChaCha8Rng::seed_from_u64(self.seed ^ FINDING_STREAM);
        finding_rng.set_stream(index);
        anatomy.findings = Findings::sample(&mut finding_rng, &anatomy.sites());
        let n = self.config.size;
        let mut clean_pd = Array2::<f32>::zeros((n, n));
        let mut clean_pdfs = Array2::<f32>::zeros((n, n));
        let mut labels = Array2::<u8>::zeros((n, n));
        let mut findings = [Array2::<u8>::zeros((n, n)), Array2::<u8>::zeros((n, n))];
        for i in 0..n {
            for j in 0..n {
                let px = anatomy.render(pixel_coord(j, n), pixel_coord(i, n), 2.0 / n as f32);
                clean_pd[[i, j]] = px.pd;
                clean_pdfs[[i, j]] = px.pdfs;
                labels[[i, j]] = px.tissue as u8;
                for (mask, cover) in findings.iter_mut().zip(px.findings) {
                    mask[[i, j]] = u8::from(cover >= 0.5);
                }
            }
        }
        let (sigma_pd, sigma_pdfs) = (1.0 / snr_pd, 1.0 / snr_pdfs);
        match &self.receiver {
            None => PhantomPair {
                pd: rician(&clean_pd, sigma_pd, &mut rng),
                pdfs: rician(&clean_pdfs, sigma_pdfs, &mut rng),
                noise_pd: Array2::from_elem((n, n), sigma_pd),
                noise_pdfs: Array2::from_elem((n, n), sigma_pdfs),
                noise_coils: 1,
                clean_pd,
                clean_pdfs,
                labels,
                findings,
            },
            Some(rx) => PhantomPair {
                pd: rx.acquire(&clean_pd, sigma_pd, &mut rng),
                pdfs: rx.acquire(&clean_pdfs, sigma_pdfs, &mut rng),
                noise_pd: rx.noise_map(sigma_pd),
                noise_pdfs: rx.noise_map(sigma_pdfs),
                noise_coils: rx.array().distribution_coils(),
                clean_pd: rx.clean(&clean_pd),
                clean_pdfs: rx.clean(&clean_pdfs),
                labels,
                findings,
            },
        }
    }
}

/// One rendered pixel: both contrasts, the dominant tissue and each finding's coverage.
struct Pixel {
    pd: f32,
    pdfs: f32,
    tissue: Tissue,
    findings: [f32; 2],
}

/// Centre of pixel `k` of `n` in [-1, 1].
fn pixel_coord(k: usize, n: usize) -> f32 {
    (k as f32 + 0.5) / n as f32 * 2.0 - 1.0
}

/// Magnitude of the complex signal `clean + n_re + i n_im` with Gaussian `n` of std sigma:
/// Rician where there is signal, Rayleigh in the air background.
fn rician(clean: &Array2<f32>, sigma: f32, rng: &mut ChaCha8Rng) -> Array2<f32> {
    clean.mapv(|s| {
        let re: f32 = rng.sample(StandardNormal);
        let im: f32 = rng.sample(StandardNormal);
        ((s + sigma * re).powi(2) + (sigma * im).powi(2)).sqrt()
    })
}

/// A sum of random plane waves: cheap, smooth, deterministic texture in about [-1, 1].
#[derive(Debug, Clone)]
struct Texture {
    waves: Vec<(f32, f32, f32)>,
}

impl Texture {
    fn sample(rng: &mut ChaCha8Rng, count: usize, freq: (f32, f32), anisotropy: f32) -> Self {
        let waves = (0..count)
            .map(|_| {
                let f = rng.random_range(freq.0..freq.1) * std::f32::consts::PI;
                let a = rng.random_range(0.0..std::f32::consts::TAU);
                let phase = rng.random_range(0.0..std::f32::consts::TAU);
                (f * a.cos(), f * a.sin() * anisotropy, phase)
            })
            .collect();
        Texture { waves }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let sum: f32 = self
            .waves
            .iter()
            .map(|&(kx, ky, ph)| (kx * x + ky * y + ph).cos())
            .sum();
        sum / (self.waves.len() as f32).sqrt()
    }
}

/// The random parameters of one slice, in anatomical coordinates (x to the side, y down,
/// joint line at y = 0, the field of view about [-1, 1]^2 before pose).
#[derive(Debug, Clone)]
struct Anatomy {
    // pose of the anatomy in the image
    shift: (f32, f32),
    scale: f32,
    cos_r: f32,
    sin_r: f32,
    // soft tissue
    leg_half_width: f32,
    skin: f32,
    fat: f32,
    // joint and bones
    gap: f32,
    cartilage: f32,
    cortex: f32,
    condyle_radius: f32,
    condyle_sep: f32,
    fibula_side: f32,
    effusion: f32,
    // textures and coil
    marrow_tex: Texture,
    muscle_tex: Texture,
    fat_tex: Texture,
    coil_centre: (f32, f32),
    coil_width: f32,
    findings: Findings,
}

impl Anatomy {
    /// Where findings may lie in this anatomy.
    fn sites(&self) -> Sites {
        Sites {
            bone_surface: self.gap / 2.0 + self.cartilage + self.cortex,
            condyle_sep: self.condyle_sep,
            muscle_outer: self.leg_half_width - self.skin - self.fat - 0.05,
        }
    }

    fn sample(rng: &mut ChaCha8Rng) -> Self {
        let angle = rng.random_range(-8f32..8.0).to_radians();
        let coil_angle = rng.random_range(0.0..std::f32::consts::TAU);
        Anatomy {
            shift: (rng.random_range(-0.06..0.06), rng.random_range(-0.08..0.08)),
            scale: rng.random_range(0.88..1.08),
            cos_r: angle.cos(),
            sin_r: angle.sin(),
            leg_half_width: rng.random_range(0.58..0.70),
            skin: rng.random_range(0.012..0.02),
            fat: rng.random_range(0.05..0.12),
            gap: rng.random_range(0.03..0.08),
            cartilage: rng.random_range(0.022..0.036),
            cortex: rng.random_range(0.018..0.03),
            condyle_radius: rng.random_range(0.15..0.19),
            condyle_sep: rng.random_range(0.15..0.2),
            fibula_side: if rng.random_bool(0.5) { 1.0 } else { -1.0 },
            effusion: rng.random_range(0.0..0.08),
            marrow_tex: Texture::sample(rng, 8, (8.0, 20.0), 1.0),
            muscle_tex: Texture::sample(rng, 6, (6.0, 14.0), 0.25),
            fat_tex: Texture::sample(rng, 4, (3.0, 8.0), 1.0),
            coil_centre: (1.2 * coil_angle.cos(), 1.2 * coil_angle.sin()),
            coil_width: rng.random_range(0.9..1.4),
            findings: Findings::default(),
        }
    }

    /// Smooth multiplicative receive-coil sensitivity, in image (scanner) coordinates.
    fn bias(&self, x: f32, y: f32) -> f32 {
        let (cx, cy) = self.coil_centre;
        let d2 = (x - cx).powi(2) + (y - cy).powi(2);
        0.75 + 0.4 * (-d2 / (2.0 * self.coil_width * self.coil_width)).exp()
    }

    /// Renders one pixel at image coordinates (x, y) of width `pixel` (image units):
    /// tissues are painted in order, each covering what lies below with its anti-aliased
    /// coverage of the pixel (a finding's coverage shrinks the same way).
    // Long: the tissues in their painting order, which is the anatomy; split up, the
    // order would be spread over functions.
    fn render(&self, x: f32, y: f32, pixel: f32) -> Pixel {
        // image -> anatomy: undo shift, rotation and scale
        let (dx, dy) = (x - self.shift.0, y - self.shift.1);
        let qx = (self.cos_r * dx + self.sin_r * dy) / self.scale;
        let qy = (-self.sin_r * dx + self.cos_r * dy) / self.scale;
        let aa = pixel / self.scale;
        let cover = |d: f32| (0.5 - d / aa).clamp(0.0, 1.0);

        let mut pd = 0.0f32;
        let mut pdfs = 0.0f32;
        let mut label = Tissue::Air;
        let mut found = [0.0f32; 2];
        let mut paint = |tissue: Tissue, d: f32, gain: f32| {
            let m = cover(d);
            if m > 0.0 {
                let (a, b) = tissue.signal();
                pd += m * (a * gain - pd);
                pdfs += m * (b * gain - pdfs);
                if m >= 0.5 {
                    label = tissue;
                }
                for (f, cov) in Finding::ALL.iter().zip(found.iter_mut()) {
                    *cov = if f.tissue() == tissue {
                        *cov + m * (1.0 - *cov)
                    } else {
                        *cov * (1.0 - m)
                    };
                }
            }
        };

        // soft tissue: skin, then subcutaneous fat, then muscle, each an inset of the leg
        let half_width = self.leg_half_width * (1.0 + 0.07 * (1.3 * qy).cos());
        let leg = qx.abs() - half_width;
        paint(Tissue::Skin, leg, 1.0);
        paint(
            Tissue::Fat,
            leg + self.skin,
            1.0 + 0.03 * self.fat_tex.at(qx, qy),
        );
        let muscle = leg + self.skin + self.fat;
        let muscle_gain = 1.0 + 0.06 * self.muscle_tex.at(qx, qy);
        paint(Tissue::Muscle, muscle, muscle_gain);
        if let Some(lesion) = &self.findings.lesion {
            paint(
                Tissue::FattyLesion,
                lesion.distance(qx, qy).max(muscle),
                1.0 + 0.03 * self.fat_tex.at(qx, qy),
            );
        }

        // joint space and effusion pockets in the gutters beside the condyles
        let surface = self.gap / 2.0 + self.cartilage;
        let joint = sd_ellipse(qx, qy, 0.43, surface + 0.012);
        let gutter_x = self.condyle_sep + self.condyle_radius + 0.03;
        let pocket = sd_ellipse(
            qx.abs() - gutter_x,
            qy + 0.16,
            self.effusion * 0.7,
            self.effusion * 1.8,
        );
        paint(
            Tissue::Fluid,
            if self.effusion > 0.012 {
                joint.min(pocket)
            } else {
                joint
            },
            1.0,
        );

        // bones as signed distances, so the cortex is a band and cartilage a shell outside
        let condyle_y = -(surface + self.condyle_radius);
        let condyles = smin(
            sd_circle(qx - self.condyle_sep, qy - condyle_y, self.condyle_radius),
            sd_circle(qx + self.condyle_sep, qy - condyle_y, self.condyle_radius),
            0.05,
        );
        let femur = smin(sd_box(qx, qy + 0.8, 0.17, 0.62), condyles, 0.18);
        let plateau = sd_box(qx, qy - (surface + 0.17), 0.28, 0.08) - 0.09;
        let tibia = smin(plateau, sd_box(qx, qy - 0.95, 0.17, 0.62), 0.2);
        let fx = qx - self.fibula_side * 0.42;
        let fibula = smin(
            sd_circle(fx, qy - (surface + 0.36), 0.075),
            sd_box(fx, qy - 1.0, 0.045, 0.6),
            0.06,
        );

        let femur_cart = (femur - self.cartilage).max(condyle_y - qy);
        let tibia_cart = (tibia - self.cartilage)
            .max(qy - (surface + 0.05))
            .max(qx.abs() - 0.34);
        paint(Tissue::Cartilage, femur_cart.min(tibia_cart), 1.0);

        // menisci: dark wedges at the joint periphery; cruciates: a dark band in the notch
        let meniscus = sd_ellipse(qx.abs() - 0.37, qy, 0.075, surface * 0.85);
        let (lx, ly) = rotate(qx - 0.02, qy + 0.12, 0.35);
        let cruciate = sd_ellipse(lx, ly, 0.035, 0.13);
        paint(Tissue::Ligament, meniscus.min(cruciate), 1.0);

        let marrow_gain = 1.0 + 0.08 * self.marrow_tex.at(qx, qy);
        for bone in [femur, tibia, fibula] {
            paint(Tissue::Cortex, bone, 1.0);
            paint(Tissue::Marrow, bone + self.cortex, marrow_gain);
        }
        if let Some(edema) = &self.findings.edema {
            let marrow = (femur + self.cortex).min(tibia + self.cortex);
            paint(
                Tissue::Edema,
                edema.distance(qx, qy).max(marrow),
                marrow_gain,
            );
        }

        let b = self.bias(x, y);
        Pixel {
            pd: pd * b,
            pdfs: pdfs * b,
            tissue: label,
            findings: found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_where(img: &Array2<f32>, labels: &Array2<u8>, t: Tissue) -> f32 {
        let v: Vec<f32> = img
            .iter()
            .zip(labels.iter())
            .filter(|(_, l)| **l == t as u8)
            .map(|(v, _)| *v)
            .collect();
        assert!(v.len() > 10, "{t:?} covers only {} pixels", v.len());
        v.iter().sum::<f32>() / v.len() as f32
    }

    #[test]
    fn contrast_rules_hold_on_clean_images() {
        let g = PhantomGenerator::new(PhantomConfig::default(), 3).unwrap();
        for i in 0..4 {
            let p = g.pair(i);
            let fat = (
                mean_where(&p.clean_pd, &p.labels, Tissue::Fat),
                mean_where(&p.clean_pdfs, &p.labels, Tissue::Fat),
            );
            assert!(fat.0 > 3.0 * fat.1, "fat PD {} vs PDFS {}", fat.0, fat.1);
            let marrow = (
                mean_where(&p.clean_pd, &p.labels, Tissue::Marrow),
                mean_where(&p.clean_pdfs, &p.labels, Tissue::Marrow),
            );
            assert!(
                marrow.0 > 3.0 * marrow.1,
                "marrow PD {} vs PDFS {}",
                marrow.0,
                marrow.1
            );
            let fluid = (
                mean_where(&p.clean_pd, &p.labels, Tissue::Fluid),
                mean_where(&p.clean_pdfs, &p.labels, Tissue::Fluid),
            );
            assert!(
                fluid.1 / fluid.0 > 1.0,
                "fluid PDFS/PD {}",
                fluid.1 / fluid.0
            );
        }
    }

    #[test]
    fn every_tissue_appears() {
        let p = PhantomGenerator::new(PhantomConfig::default(), 11)
            .unwrap()
            .pair(0);
        for t in Tissue::ANATOMY {
            assert!(p.labels.iter().any(|&l| l == t as u8), "{t:?} missing");
        }
    }

    #[test]
    fn realistic_snr_falls_with_the_voxel_size() {
        assert_eq!(PhantomConfig::realistic_snr(128), (20.0, 12.0));
        assert_eq!(PhantomConfig::realistic_snr(256), (20.0, 12.0));
        let (pd, pdfs) = PhantomConfig::realistic_snr(320);
        assert!((pd - 12.8).abs() < 1e-4 && (pdfs - 7.68).abs() < 1e-4);
    }

    #[test]
    fn sizes_are_checked() {
        for size in [0, 100] {
            let cfg = PhantomConfig {
                size,
                ..Default::default()
            };
            assert!(
                PhantomGenerator::new(cfg, 0)
                    .unwrap_err()
                    .to_string()
                    .contains("multiple of 16")
            );
        }
        let cfg = PhantomConfig {
            snr_pdfs: 0.0,
            ..Default::default()
        };
        assert!(
            PhantomGenerator::new(cfg, 0)
                .unwrap_err()
                .to_string()
                .contains("snr_pdfs")
        );
    }
}
