//! The product's denoiser: a contrast denoised from its own noisy image, with the other
//! contrast of the slice as a guide (docs/denoising.md).
//!
//! The blind U-Net ([`BlindUNet`]) runs on the target rotated four ways; rotated back, its
//! four half-plane views meet in 1x1 convolutions beside full-resolution features of the
//! guide. The output at a pixel is thus a function of every other target pixel and of the
//! whole guide, never of the target pixel itself: trained to predict the noisy target from
//! that, it can only learn the signal.
//!
//! It predicts each pixel's expected magnitude (`denoiser::loss`); the runtime then removes
//! the Rician bias that expectation carries (`crossdenoise_image::rician`). With a prior
//! (`GuidedDenoiserConfig::prior`) a second head states how sure that prediction is, the
//! spread of a prior of the clean amplitude, from which the runtime computes the posterior
//! mean given the pixel's own value (`crossdenoise_image::posterior`). The head reads the
//! fusion's features with their gradient stopped, so learning the spread never slows the
//! prediction itself. The single-contrast variant is the same network without the guide.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::Precision;
use super::blind_spot::{BlindUNet, SLOPE, rotate};
use super::ops::{conv3x3, leaky_relu};

/// One direction's denoiser (or a single-contrast one when built without a guide).
#[derive(Module, Debug)]
pub struct GuidedDenoiser {
    pub unet: BlindUNet,
    /// Full-resolution features of the guide for the fusion (none without a guide).
    pub guide_stem: Vec<Conv2d>,
    /// 1x1 convolutions over the four rotated views (and the guide's features).
    pub fuse: Vec<Conv2d>,
    /// 1x1 convolutions from the fusion's last features to the prior's spread,
    /// `ln(std / sigma)` (none without a prior).
    pub spread: Vec<Conv2d>,
}

#[derive(Config, Debug)]
pub struct GuidedDenoiserConfig {
    pub channels: usize,
    pub depth: usize,
    pub guided: bool,
    /// Also state the spread of a prior of each pixel's clean amplitude.
    #[config(default = false)]
    pub prior: bool,
}

impl GuidedDenoiserConfig {
    pub fn init(&self, device: &Device) -> GuidedDenoiser {
        let c = self.channels;
        let unet = BlindUNet::new(c, self.depth, self.guided, device);
        let views = 4 * unet.out_channels();
        let width = views + if self.guided { c } else { 0 };
        let one = |cin, cout| Conv2dConfig::new([cin, cout], [1, 1]).init(device);
        let three = |cin, cout| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        GuidedDenoiser {
            unet,
            guide_stem: if self.guided {
                vec![three(1, c), three(c, c)]
            } else {
                Vec::new()
            },
            fuse: vec![one(width, views), one(views, views / 4), one(views / 4, 1)],
            spread: if self.prior {
                vec![one(views / 4, views / 4), one(views / 4, 1)]
            } else {
                Vec::new()
            },
        }
    }
}

impl GuidedDenoiser {
    pub fn is_guided(&self) -> bool {
        !self.guide_stem.is_empty()
    }

    pub fn has_prior(&self) -> bool {
        !self.spread.is_empty()
    }

    /// `[N, 1, H, W]` noisy target (normalised) and, for a guided network, its guide ->
    /// the target's expected magnitude (`[N, 1, H, W]`). H and W must be multiples of
    /// `2^depth`; they need not be equal.
    pub fn forward(&self, image: Tensor<4>, guide: Option<Tensor<4>>, p: Precision) -> Tensor<4> {
        self.forward_prior(image, guide, p).0
    }

    /// [`GuidedDenoiser::forward`], and for a network with a prior its spread output,
    /// `ln(std / sigma)` (`[N, 1, H, W]`).
    pub fn forward_prior(
        &self,
        image: Tensor<4>,
        guide: Option<Tensor<4>>,
        p: Precision,
    ) -> (Tensor<4>, Option<Tensor<4>>) {
        assert_eq!(
            guide.is_some(),
            self.is_guided(),
            "a guided denoiser needs a guide, a single-contrast one takes none"
        );
        let [_, _, h, w] = image.dims();
        let mut parts = self.views(image, guide.clone(), p, h == w);
        if let Some(g) = guide {
            let g = self.guide_stem.iter().fold(g, |x, conv| {
                leaky_relu::forward(conv3x3::forward(conv, x, p), SLOPE)
            });
            parts.push(g);
        }
        let last = self.fuse.len() - 1;
        let mut x = Tensor::cat(parts, 1);
        for conv in &self.fuse[..last] {
            x = leaky_relu::forward(conv.forward(x), SLOPE);
        }
        let spread = self.has_prior().then(|| {
            let mut s = x.clone().detach();
            for (i, conv) in self.spread.iter().enumerate() {
                s = conv.forward(s);
                if i + 1 < self.spread.len() {
                    s = leaky_relu::forward(s, SLOPE);
                }
            }
            s
        });
        (self.fuse[last].forward(x), spread)
    }

    /// The blind U-Net's features of the four rotations, rotated back. Square images share
    /// one pass (`batched`); others, whose rotations differ in shape, take one pass each.
    fn views(
        &self,
        image: Tensor<4>,
        guide: Option<Tensor<4>>,
        p: Precision,
        batched: bool,
    ) -> Vec<Tensor<4>> {
        if !batched {
            return (0..4)
                .map(|k| {
                    let g = guide.as_ref().map(|g| rotate(g.clone(), k));
                    rotate(self.unet.forward(rotate(image.clone(), k), g, p), 4 - k)
                })
                .collect();
        }
        let [n, _, h, w] = image.dims();
        let stack = |x: &Tensor<4>| Tensor::cat((0..4).map(|k| rotate(x.clone(), k)).collect(), 0);
        let out = self
            .unet
            .forward(stack(&image), guide.as_ref().map(stack), p);
        let c = out.dims()[1];
        (0..4)
            .map(|k| {
                rotate(
                    out.clone().slice([k * n..(k + 1) * n, 0..c, 0..h, 0..w]),
                    4 - k,
                )
            })
            .collect()
    }
}

/// The two directions a run trains: `to_a` denoises domain a (guided by b), `to_b` domain b
/// (guided by a); without guides, two single-contrast denoisers.
#[derive(Module, Debug)]
pub struct DenoiserPair {
    pub to_a: GuidedDenoiser,
    pub to_b: GuidedDenoiser,
}

impl GuidedDenoiserConfig {
    pub fn init_pair(&self, device: &Device) -> DenoiserPair {
        DenoiserPair {
            to_a: self.init(device),
            to_b: self.init(device),
        }
    }
}

impl DenoiserPair {
    pub fn get(&self, to: super::Domain) -> &GuidedDenoiser {
        match to {
            super::Domain::A => &self.to_a,
            super::Domain::B => &self.to_b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn net(guided: bool, device: &Device) -> GuidedDenoiser {
        crate::model::init::seeded(GuidedDenoiserConfig::new(4, 2, guided).init(device), 7)
    }

    /// The J-invariance the training relies on: changing a target pixel changes the
    /// prediction everywhere but at that pixel.
    #[test]
    fn a_pixel_never_sees_itself() {
        let device = Device::flex();
        for guided in [true, false] {
            let net = net(guided, &device);
            for (h, w) in [(16, 16), (16, 24)] {
                let x = Tensor::<4>::random([1, 1, h, w], Distribution::Default, &device);
                let g = guided
                    .then(|| Tensor::<4>::random([1, 1, h, w], Distribution::Default, &device));
                let (i, j) = (9, 6);
                let before = net.forward(x.clone(), g.clone(), Precision::F32);
                let bumped = x.clone().slice_assign(
                    [0..1, 0..1, i..i + 1, j..j + 1],
                    Tensor::<4>::full([1, 1, 1, 1], 5.0, &device),
                );
                let after = net.forward(bumped, g, Precision::F32);
                let diff = (after - before).abs();
                let at = diff
                    .clone()
                    .slice([0..1, 0..1, i..i + 1, j..j + 1])
                    .into_scalar::<f32>();
                assert_eq!(at, 0.0, "pixel ({i}, {j}) sees its own value ({h}x{w})");
                assert!(
                    diff.max().into_scalar::<f32>() > 1e-6,
                    "the neighbours do see it ({h}x{w})"
                );
            }
        }
    }

    #[test]
    fn the_guide_changes_the_output() {
        let device = Device::flex();
        let net = net(true, &device);
        let x = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let g = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let a = net.forward(x.clone(), Some(g.clone()), Precision::F32);
        let b = net.forward(x, Some(g * 0.5), Precision::F32);
        assert!((a - b).abs().max().into_scalar::<f32>() > 1e-6);
    }

    #[test]
    fn one_pass_and_four_passes_agree() {
        let device = Device::flex();
        let net = net(true, &device);
        let x = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let g = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let one = Tensor::cat(
            net.views(x.clone(), Some(g.clone()), Precision::F32, true),
            1,
        );
        let four = Tensor::cat(net.views(x, Some(g), Precision::F32, false), 1);
        one.to_data()
            .assert_approx_eq::<f32>(&four.to_data(), burn::tensor::Tolerance::absolute(1e-5));
    }
}
