//! Image quality against a reference: PSNR (whole slice and tissue only), SSIM and NMSE.
//!
//! The definitions follow scikit-image (`peak_signal_noise_ratio`, `structural_similarity`
//! with `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`) and fastMRI's NMSE,
//! because those are the numbers MRI denoising papers report; the tests check them against
//! fixtures computed with scikit-image itself. All sums are in f64.

use ndarray::{Array2, ArrayView2, Axis, Zip};

use crate::neighbourhood::grown;
use crate::normalize::Normalization;
use crate::{Error, Result};

/// SSIM's Gaussian window: sigma 1.5, truncated at 3.5 sigma (an 11 x 11 window).
const SSIM_SIGMA: f64 = 1.5;
const SSIM_TRUNCATE: f64 = 3.5;
const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;

/// Tissue is where the clean image is above this fraction of its maximum...
pub const TISSUE_THRESHOLD: f32 = 0.02;
/// ...grown by this many pixels in every direction (a square), so that the edges of the
/// anatomy and the dark structures inside it (cortex, ligaments) count as tissue.
pub const TISSUE_DILATION: usize = 3;

fn same_shape(reference: &ArrayView2<f32>, test: &ArrayView2<f32>) -> Result<()> {
    if reference.dim() != test.dim() {
        return Err(Error::Shape {
            what: "metric inputs",
            expected: format!("test image of the reference's shape {:?}", reference.dim()),
            got: format!("{:?}", test.dim()),
        });
    }
    if reference.is_empty() {
        return Err(Error::Shape {
            what: "metric inputs",
            expected: "non-empty images".into(),
            got: "an empty image".into(),
        });
    }
    Ok(())
}

fn check_range(data_range: f64) -> Result<()> {
    if data_range > 0.0 && data_range.is_finite() {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "data_range",
            reason: format!("{data_range} is not a positive finite number"),
        })
    }
}

/// Mean squared error.
pub fn mse(reference: ArrayView2<f32>, test: ArrayView2<f32>) -> Result<f64> {
    same_shape(&reference, &test)?;
    let sum = Zip::from(&reference)
        .and(&test)
        .fold(0.0f64, |acc, &r, &t| {
            acc + (f64::from(r) - f64::from(t)).powi(2)
        });
    Ok(sum / reference.len() as f64)
}

/// Peak signal-to-noise ratio in dB, `10 log10(data_range^2 / mse)`; infinite for equal images.
pub fn psnr(reference: ArrayView2<f32>, test: ArrayView2<f32>, data_range: f64) -> Result<f64> {
    check_range(data_range)?;
    let mse = mse(reference, test)?;
    Ok(10.0 * (data_range * data_range / mse).log10())
}

/// Pearson correlation of two images of one size (0 when either is flat).
pub fn correlation(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Result<f64> {
    same_shape(&a, &b)?;
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&v| v as f64).sum::<f64>() / n,
        b.iter().map(|&v| v as f64).sum::<f64>() / n,
    );
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    Ok(if aa > 0.0 && bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        0.0
    })
}

/// The pixels that count as tissue in a clean magnitude image: above
/// [`TISSUE_THRESHOLD`] of its maximum, dilated by [`TISSUE_DILATION`] pixels. A third of a
/// knee slice is air, where a denoiser that zeroes everything scores perfectly: the PSNR
/// inside this mask says what happens in the knee (scipy's
/// `maximum_filter(clean > 0.02 * clean.max(), size=7)`, as the quality script computes it).
pub fn tissue_mask(reference: ArrayView2<f32>) -> Array2<bool> {
    let max = reference.iter().fold(f32::MIN, |m, &v| m.max(v));
    let above = reference.mapv(|v| v > TISSUE_THRESHOLD * max);
    grown(above.view(), TISSUE_DILATION)
}

/// PSNR over the pixels of `mask` only, with the same `data_range` as the whole slice's;
/// `None` for an empty mask.
pub fn psnr_within(
    reference: ArrayView2<f32>,
    test: ArrayView2<f32>,
    data_range: f64,
    mask: ArrayView2<bool>,
) -> Result<Option<f64>> {
    same_shape(&reference, &test)?;
    check_range(data_range)?;
    if mask.dim() != reference.dim() {
        return Err(Error::Shape {
            what: "psnr mask",
            expected: format!("the images' shape {:?}", reference.dim()),
            got: format!("{:?}", mask.dim()),
        });
    }
    let (sum, n) =
        Zip::from(&reference)
            .and(&test)
            .and(&mask)
            .fold((0.0f64, 0usize), |(s, n), &r, &t, &m| {
                if m {
                    (s + (f64::from(r) - f64::from(t)).powi(2), n + 1)
                } else {
                    (s, n)
                }
            });
    Ok((n > 0).then(|| 10.0 * (data_range * data_range / (sum / n as f64)).log10()))
}

/// Normalised MSE, `||reference - test||^2 / ||reference||^2` (fastMRI's definition).
pub fn nmse(reference: ArrayView2<f32>, test: ArrayView2<f32>) -> Result<f64> {
    same_shape(&reference, &test)?;
    let (num, den) = Zip::from(&reference)
        .and(&test)
        .fold((0.0f64, 0.0f64), |(n, d), &r, &t| {
            let r = f64::from(r);
            (n + (r - f64::from(t)).powi(2), d + r * r)
        });
    if den == 0.0 {
        return Err(Error::Invalid {
            what: "nmse reference",
            reason: "is all zeros".into(),
        });
    }
    Ok(num / den)
}

/// Mean structural similarity with an 11 x 11 Gaussian window (sigma 1.5), population
/// covariances, `reflect` borders and the 5-pixel border excluded from the mean, exactly as
/// `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=False, data_range=data_range)`.
pub fn ssim(reference: ArrayView2<f32>, test: ArrayView2<f32>, data_range: f64) -> Result<f64> {
    same_shape(&reference, &test)?;
    check_range(data_range)?;
    let kernel = gaussian_kernel(SSIM_SIGMA, SSIM_TRUNCATE);
    let radius = kernel.len() / 2;
    let (h, w) = reference.dim();
    if h < kernel.len() || w < kernel.len() {
        return Err(Error::Shape {
            what: "ssim inputs",
            expected: format!(
                "at least {0} x {0} pixels (the Gaussian window)",
                kernel.len()
            ),
            got: format!("{h} x {w}"),
        });
    }
    let x = reference.mapv(f64::from);
    let y = test.mapv(f64::from);
    let ux = filter(&x, &kernel);
    let uy = filter(&y, &kernel);
    let uxx = filter(&(&x * &x), &kernel);
    let uyy = filter(&(&y * &y), &kernel);
    let uxy = filter(&(&x * &y), &kernel);
    let c1 = (SSIM_K1 * data_range).powi(2);
    let c2 = (SSIM_K2 * data_range).powi(2);
    let mut sum = 0.0f64;
    for i in radius..h - radius {
        for j in radius..w - radius {
            let (mx, my) = (ux[[i, j]], uy[[i, j]]);
            let vx = uxx[[i, j]] - mx * mx;
            let vy = uyy[[i, j]] - my * my;
            let vxy = uxy[[i, j]] - mx * my;
            let num = (2.0 * mx * my + c1) * (2.0 * vxy + c2);
            let den = (mx * mx + my * my + c1) * (vx + vy + c2);
            sum += num / den;
        }
    }
    Ok(sum / ((h - 2 * radius) * (w - 2 * radius)) as f64)
}

/// PSNR (whole slice and tissue only), SSIM and NMSE of one image against its reference.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    pub psnr: f64,
    /// PSNR inside [`tissue_mask`] of the reference, same data range (the whole slice's
    /// PSNR where the reference has no tissue).
    #[serde(default)]
    pub tissue_psnr: f64,
    pub ssim: f64,
    pub nmse: f64,
}

impl Quality {
    /// Scores `test` against `reference` with the data range taken as the reference's
    /// maximum (fastMRI's convention for magnitude images, whose minimum is ~0).
    pub fn measure(reference: ArrayView2<f32>, test: ArrayView2<f32>) -> Result<Self> {
        let max = reference.iter().fold(f32::MIN, |m, &v| m.max(v));
        let range = f64::from(max);
        let whole = psnr(reference, test, range)?;
        let tissue = tissue_mask(reference);
        Ok(Quality {
            psnr: whole,
            tissue_psnr: psnr_within(reference, test, range, tissue.view())?.unwrap_or(whole),
            ssim: ssim(reference, test, range)?,
            nmse: nmse(reference, test)?,
        })
    }

    /// Scores an image in the normalised space the model works in, as training's validation
    /// does: `clean` by its own scale, `image` by the scale of `scale_source`. A
    /// cross-contrast output comes back in its input's intensity scale (the runtime undoes
    /// the input's normalisation), so scoring it raw against the other contrast's clean image
    /// would mix that scale difference into the PSNR; pass the input as `scale_source` for
    /// a denoised image, and the image itself for an acquired one.
    pub fn measure_normalised(
        norm: &Normalization,
        clean: ArrayView2<f32>,
        image: ArrayView2<f32>,
        scale_source: ArrayView2<f32>,
    ) -> Result<Self> {
        let (clean, _) = norm.normalize(clean)?;
        let scale = norm.fit(scale_source)?;
        let image = image.mapv(|v| v / scale.0);
        Quality::measure(clean.view(), image.view())
    }
}

/// Mean squared forward difference along both axes: how much edge and texture an image
/// holds. Blur lowers it and noise raises it, so an output's gradient energy over the clean
/// image's tells an over-smoothed denoiser (well below 1) from one that kept the edges.
pub fn gradient_energy(image: ArrayView2<f32>) -> f64 {
    let (h, w) = image.dim();
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for i in 0..h {
        for j in 0..w {
            let v = f64::from(image[(i, j)]);
            if i + 1 < h {
                sum += (f64::from(image[(i + 1, j)]) - v).powi(2);
                n += 1;
            }
            if j + 1 < w {
                sum += (f64::from(image[(i, j + 1)]) - v).powi(2);
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// `test`'s gradient energy as a fraction of `reference`'s (1 = as sharp; `None` for a flat
/// reference, where the ratio means nothing).
pub fn sharpness(reference: ArrayView2<f32>, test: ArrayView2<f32>) -> Result<Option<f64>> {
    same_shape(&reference, &test)?;
    let r = gradient_energy(reference);
    Ok((r > 0.0).then(|| gradient_energy(test) / r))
}

/// scipy.ndimage's normalised 1-D Gaussian, radius `int(truncate * sigma + 0.5)`.
fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5) as i64;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// scipy.ndimage's `reflect` border (d c b a | a b c d: the edge pixel is repeated).
fn symmetric(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - 1 - m }) as usize
}

/// Separable correlation with `kernel` along axis 0, then axis 1 (scipy's order).
fn filter(image: &Array2<f64>, kernel: &[f64]) -> Array2<f64> {
    correlate_axis(&correlate_axis(image, kernel, Axis(0)), kernel, Axis(1))
}

/// 1-D correlation of every lane along `axis` with `kernel`, `reflect` borders.
fn correlate_axis(image: &Array2<f64>, kernel: &[f64], axis: Axis) -> Array2<f64> {
    let n = image.len_of(axis);
    let r = (kernel.len() / 2) as isize;
    let mut out = Array2::<f64>::zeros(image.dim());
    for (src, mut dst) in image.lanes(axis).into_iter().zip(out.lanes_mut(axis)) {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = kernel
                .iter()
                .enumerate()
                .map(|(k, kv)| kv * src[symmetric(i as isize + k as isize - r, n)])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_score_perfectly() {
        let a = Array2::from_shape_fn((16, 16), |(i, j)| ((i * j) % 7) as f32);
        assert!(psnr(a.view(), a.view(), 6.0).unwrap().is_infinite());
        assert!((ssim(a.view(), a.view(), 6.0).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(nmse(a.view(), a.view()).unwrap(), 0.0);
    }

    #[test]
    fn shape_and_range_errors_are_reported() {
        let a = Array2::<f32>::ones((16, 16));
        let b = Array2::<f32>::ones((16, 15));
        assert!(
            psnr(a.view(), b.view(), 1.0)
                .unwrap_err()
                .to_string()
                .contains("(16, 15)")
        );
        assert!(
            psnr(a.view(), a.view(), 0.0)
                .unwrap_err()
                .to_string()
                .contains("data_range")
        );
        let small = Array2::<f32>::ones((8, 8));
        assert!(ssim(small.view(), small.view(), 1.0).is_err());
    }

    #[test]
    fn sharpness_falls_with_blur_and_rises_with_noise() {
        let edge = Array2::from_shape_fn((16, 16), |(_, j)| if j < 8 { 0.0f32 } else { 1.0 });
        // A one-pixel ramp instead of a step: half the jump twice, half the energy.
        let ramp = Array2::from_shape_fn((16, 16), |(_, j)| match j {
            0..=6 => 0.0f32,
            7 => 0.5,
            _ => 1.0,
        });
        let noisy = Array2::from_shape_fn((16, 16), |(i, j)| {
            edge[(i, j)] + if (i + j) % 2 == 0 { 0.1 } else { -0.1 }
        });
        assert_eq!(sharpness(edge.view(), edge.view()).unwrap(), Some(1.0));
        let blurred = sharpness(edge.view(), ramp.view()).unwrap().unwrap();
        assert!((blurred - 0.5).abs() < 1e-12, "{blurred}");
        assert!(sharpness(edge.view(), noisy.view()).unwrap().unwrap() > 1.0);
        let flat = Array2::<f32>::ones((16, 16));
        assert_eq!(sharpness(flat.view(), edge.view()).unwrap(), None);
        assert!(sharpness(flat.view(), Array2::<f32>::ones((4, 4)).view()).is_err());
    }

    #[test]
    fn the_tissue_mask_is_the_thresholded_clean_image_grown_by_three_pixels() {
        let mut clean = Array2::<f32>::zeros((16, 16));
        clean[(8, 8)] = 10.0;
        clean[(1, 1)] = 0.1; // below 2% of the maximum: air
        let mask = tissue_mask(clean.view());
        assert_eq!(mask.iter().filter(|&&m| m).count(), 49);
        assert!(mask[(5, 5)] && mask[(11, 11)] && !mask[(4, 8)] && !mask[(8, 12)]);
        assert!(!mask[(1, 1)]);
    }

    #[test]
    fn tissue_psnr_ignores_errors_in_the_air() {
        let clean = Array2::from_shape_fn((32, 32), |(i, _)| if i < 16 { 1.0f32 } else { 0.0 });
        // An error of 0.1 in tissue (rows 0..19 after dilation), a larger one deep in air.
        let test = Array2::from_shape_fn((32, 32), |(i, _)| {
            if i < 16 {
                1.1f32
            } else if i >= 20 {
                0.5
            } else {
                0.1
            }
        });
        let q = Quality::measure(clean.view(), test.view()).unwrap();
        assert!((q.tissue_psnr - 20.0).abs() < 1e-5, "{}", q.tissue_psnr);
        assert!((q.psnr - 10.0).abs() < 1e-5, "{}", q.psnr);
        let none = Array2::<bool>::from_elem((32, 32), false);
        assert_eq!(
            psnr_within(clean.view(), test.view(), 1.0, none.view()).unwrap(),
            None
        );
    }

    #[test]
    fn symmetric_border_is_scipy_reflect() {
        let idx: Vec<usize> = (-3..7).map(|i| symmetric(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }
}
