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
//! (`GuidedDenoiserConfig::prior`) a second head states a prior of the clean amplitude,
//! `|N(mean, std^2)|`: its mean as a shift from the prediction's amplitude and its width as a
//! spread, from which the runtime computes the posterior mean given the pixel's own value
//! (`crossdenoise_image::posterior`). The head reads the fusion's features with their
//! gradient stopped, so learning the prior never slows the prediction itself. The
//! single-contrast variant is the same network without the guide.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
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
    /// The prior's head (none without a prior).
    pub prior: Option<PriorHead>,
    /// What the slices' noise levels add to the features (none for a network that does not
    /// read them).
    pub noise: Option<NoiseInput>,
}

/// The noise levels a network reads, as per-channel biases: of the blind U-Net's first
/// convolution and of the fusion's first. A model trained over a range of SNRs otherwise has
/// to guess each slice's noise from the pixels it sees (a blind spot's neighbourhood, a
/// 64 x 64 crop), and a wrong guess smooths too little or too much; FFDNet feeds a
/// noise-level map for the same reason. Its input is `[N, K]`: the slice's sigma and, for a
/// guided network, its guide's, both in normalised units, times [`NOISE_GAIN`].
#[derive(Module, Debug)]
pub struct NoiseInput {
    pub stem: Linear,
    pub fuse: Linear,
}

/// The noise levels are read times this gain, which brings normalised sigmas (about 0.02
/// to 0.2) to the order of the features. The exported graph folds it into the weights.
pub const NOISE_GAIN: f32 = 10.0;

/// 1x1 convolutions from the fusion's last features to a prior of the clean amplitude: a
/// hidden layer, then the spread `ln(std / sigma)` and the shift of the prior's mean from
/// the prediction's amplitude, in noise sigmas. The shift lets the prior's mean part from the
/// prediction where inverting the Rician mean of one predicted value is a poor estimate of the
/// amplitude: near the noise floor (the air, suppressed fat), where the inversion is steep and
/// a prediction a little above the floor's 1.25 sigma becomes an amplitude of half a sigma.
#[derive(Module, Debug)]
pub struct PriorHead {
    pub hidden: Conv2d,
    pub spread: Conv2d,
    pub shift: Conv2d,
}

#[derive(Config, Debug)]
pub struct GuidedDenoiserConfig {
    pub channels: usize,
    pub depth: usize,
    pub guided: bool,
    /// Also state the spread of a prior of each pixel's clean amplitude.
    #[config(default = false)]
    pub prior: bool,
    /// Also read the slice's (and the guide's) noise level ([`NoiseInput`]).
    #[config(default = false)]
    pub noise_input: bool,
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
            prior: self.prior.then(|| PriorHead {
                hidden: one(views / 4, views / 4),
                spread: one(views / 4, 1),
                shift: one(views / 4, 1),
            }),
            noise: self.noise_input.then(|| {
                let levels = self.noise_levels();
                let linear = |out| LinearConfig::new(levels, out).with_bias(false).init(device);
                NoiseInput {
                    stem: linear(c),
                    fuse: linear(views),
                }
            }),
        }
    }

    /// How many noise levels the network reads: the slice's, and the guide's if it has one.
    pub fn noise_levels(&self) -> usize {
        if self.guided { 2 } else { 1 }
    }
}

/// The spread a fresh prior head states everywhere, `ln(std / sigma)`: a prior about a third
/// of the noise wide, so that the posterior of a barely trained network stays near its
/// prediction (one as wide as the noise, the head's natural start, would halve the noise
/// but leave the other half in the output until the head has learned where the prediction
/// is sure, which takes more steps than a short run has).
pub const SPREAD_START: f32 = -1.0;

/// The prior head's outputs are its last convolutions' times this gain. Adam moves a
/// parameter by about the learning rate per step whatever its gradient, so without a gain
/// the spread could change by at most about one (a factor e of the prior's width) in a run
/// of a few hundred steps; the air and smooth tissue, where the prediction is nearly exact,
/// need a prior tens of times narrower than the noise. The exported graph has the gain
/// folded into those convolutions ([`GuidedDenoiser::prior_head`]).
pub const PRIOR_GAIN: f32 = 8.0;

/// What a prior head states for a batch: the spread, `ln(std / sigma)`, and the shift of the
/// prior's mean from the prediction's amplitude, in noise sigmas (both `[N, 1, H, W]`).
#[derive(Debug, Clone)]
pub struct PriorOutput {
    pub spread: Tensor<4>,
    pub shift: Tensor<4>,
}

impl GuidedDenoiser {
    /// The network with its prior head's spread bias at [`SPREAD_START`] and its shift's at
    /// 0, and the output convolutions' weights divided by [`PRIOR_GAIN`] so that a fresh
    /// head's outputs vary as little as a plain convolution's (after a seeded
    /// initialisation, which redraws every parameter).
    pub fn with_prior_start(mut self) -> Self {
        if let Some(head) = self.prior.as_mut() {
            let set = |conv: &mut Conv2d, value: f32| {
                // A fresh leaf: a computed tensor would tie the parameter to this graph.
                conv.weight = conv.weight.clone().map(|w| {
                    let scaled = (w.clone() / PRIOR_GAIN).detach();
                    if w.is_require_grad() {
                        scaled.require_grad()
                    } else {
                        scaled
                    }
                });
                if let Some(bias) = conv.bias.take() {
                    let device = bias.val().device();
                    let n = bias.val().dims()[0];
                    conv.bias = Some(bias.map(|b| {
                        let fresh = Tensor::full([n], value, &device);
                        if b.is_require_grad() {
                            fresh.require_grad()
                        } else {
                            fresh
                        }
                    }));
                }
            };
            set(&mut head.spread, SPREAD_START / PRIOR_GAIN);
            set(&mut head.shift, 0.0);
        }
        self
    }

    /// The prior head with [`PRIOR_GAIN`] folded into its output convolutions, for a graph
    /// that computes the prior as plain convolutions.
    pub fn prior_head(&self) -> Option<PriorHead> {
        let fold = |conv: &Conv2d| {
            let mut conv = conv.clone();
            conv.weight = conv.weight.clone().map(|w| w * PRIOR_GAIN);
            conv.bias = conv.bias.clone().map(|b| b.map(|b| b * PRIOR_GAIN));
            conv
        };
        self.prior.as_ref().map(|head| PriorHead {
            hidden: head.hidden.clone(),
            spread: fold(&head.spread),
            shift: fold(&head.shift),
        })
    }

    pub fn is_guided(&self) -> bool {
        !self.guide_stem.is_empty()
    }

    pub fn has_prior(&self) -> bool {
        self.prior.is_some()
    }

    /// How many noise levels the network reads per slice (0 without a [`NoiseInput`]).
    pub fn noise_levels(&self) -> usize {
        self.noise.as_ref().map_or(0, |n| n.stem.weight.dims()[0])
    }

    /// The noise levels this network reads for slices of noise `own` guided by slices of
    /// noise `guide` (normalised sigmas, one per slice), as its `[N, K]` input; none for a
    /// network that reads none.
    pub fn noise_tensor(&self, own: &[f32], guide: &[f32], device: &Device) -> Option<Tensor<2>> {
        let k = self.noise_levels();
        if k == 0 {
            return None;
        }
        let values: Vec<f32> = if self.is_guided() {
            own.iter().zip(guide).flat_map(|(&o, &g)| [o, g]).collect()
        } else {
            own.to_vec()
        };
        Some(Tensor::from_data(
            TensorData::new(values, [own.len(), k]),
            device,
        ))
    }

    /// The per-channel biases `[N, C, 1, 1]` of the U-Net's stem and of the fusion from the
    /// noise levels `[N, K]`.
    fn noise_shifts(&self, noise: Option<Tensor<2>>) -> (Option<Tensor<4>>, Option<Tensor<4>>) {
        match (&self.noise, noise) {
            (Some(input), Some(levels)) => {
                let levels = levels * NOISE_GAIN;
                let as_bias = |t: Tensor<2>| {
                    let [n, c] = t.dims();
                    t.reshape([n, c, 1, 1])
                };
                (
                    Some(as_bias(input.stem.forward(levels.clone()))),
                    Some(as_bias(input.fuse.forward(levels))),
                )
            }
            (None, None) => (None, None),
            (Some(_), None) => panic!("this network reads the slices' noise levels"),
            (None, Some(_)) => panic!("this network reads no noise levels"),
        }
    }

    /// `[N, 1, H, W]` noisy target (normalised) and, for a guided network, its guide (and
    /// for a network with a [`NoiseInput`] the noise levels `[N, K]`) -> the target's
    /// expected magnitude (`[N, 1, H, W]`). H and W must be multiples of `2^depth`; they need
    /// not be equal.
    pub fn forward(
        &self,
        image: Tensor<4>,
        guide: Option<Tensor<4>>,
        noise: Option<Tensor<2>>,
        p: Precision,
    ) -> Tensor<4> {
        self.forward_prior(image, guide, noise, p).0
    }

    /// [`GuidedDenoiser::forward`], and for a network with a prior what its head states.
    pub fn forward_prior(
        &self,
        image: Tensor<4>,
        guide: Option<Tensor<4>>,
        noise: Option<Tensor<2>>,
        p: Precision,
    ) -> (Tensor<4>, Option<PriorOutput>) {
        assert_eq!(
            guide.is_some(),
            self.is_guided(),
            "a guided denoiser needs a guide, a single-contrast one takes none"
        );
        let [_, _, h, w] = image.dims();
        let (stem_shift, fuse_shift) = self.noise_shifts(noise);
        let mut parts = self.views(image, guide.clone(), stem_shift, p, h == w);
        if let Some(g) = guide {
            let g = self.guide_stem.iter().fold(g, |x, conv| {
                leaky_relu::forward(conv3x3::forward(conv, x, p), SLOPE)
            });
            parts.push(g);
        }
        let last = self.fuse.len() - 1;
        let mut x = Tensor::cat(parts, 1);
        let mut fuse_shift = fuse_shift;
        for conv in &self.fuse[..last] {
            let y = conv.forward(x);
            let y = match fuse_shift.take() {
                Some(shift) => y + shift,
                None => y,
            };
            x = leaky_relu::forward(y, SLOPE);
        }
        let prior = self.prior.as_ref().map(|head| {
            let h = leaky_relu::forward(head.hidden.forward(x.clone().detach()), SLOPE);
            PriorOutput {
                spread: head.spread.forward(h.clone()) * PRIOR_GAIN,
                shift: head.shift.forward(h) * PRIOR_GAIN,
            }
        });
        (self.fuse[last].forward(x), prior)
    }

    /// The blind U-Net's features of the four rotations, rotated back. Square images share
    /// one pass (`batched`); others, whose rotations differ in shape, take one pass each.
    fn views(
        &self,
        image: Tensor<4>,
        guide: Option<Tensor<4>>,
        stem_shift: Option<Tensor<4>>,
        p: Precision,
        batched: bool,
    ) -> Vec<Tensor<4>> {
        if !batched {
            return (0..4)
                .map(|k| {
                    let g = guide.as_ref().map(|g| rotate(g.clone(), k));
                    let x = rotate(image.clone(), k);
                    rotate(self.unet.forward(x, g, stem_shift.clone(), p), 4 - k)
                })
                .collect();
        }
        let [n, _, h, w] = image.dims();
        let stack = |x: &Tensor<4>| Tensor::cat((0..4).map(|k| rotate(x.clone(), k)).collect(), 0);
        let shifts = stem_shift.map(|s| Tensor::cat(vec![s; 4], 0));
        let out = self
            .unet
            .forward(stack(&image), guide.as_ref().map(stack), shifts, p);
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
    /// [`GuidedDenoiser::with_prior_start`] for both directions.
    pub fn with_prior_start(self) -> Self {
        DenoiserPair {
            to_a: self.to_a.with_prior_start(),
            to_b: self.to_b.with_prior_start(),
        }
    }

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
    /// prediction and the prior everywhere but at that pixel (the posterior step is the
    /// only place the pixel's own value comes back in).
    #[test]
    fn a_pixel_never_sees_itself() {
        let device = Device::flex();
        for guided in [true, false] {
            let config = GuidedDenoiserConfig::new(4, 2, guided)
                .with_prior(true)
                .with_noise_input(true);
            let net = crate::model::init::seeded(config.init(&device), 7).with_prior_start();
            let levels = config.noise_levels();
            let noise = Tensor::<2>::full([1, levels], 0.1, &device);
            let all = |x: Tensor<4>, g: Option<Tensor<4>>| {
                let (expected, prior) =
                    net.forward_prior(x, g, Some(noise.clone()), Precision::F32);
                let prior = prior.expect("a prior head");
                Tensor::cat(vec![expected, prior.spread, prior.shift], 1)
            };
            for (h, w) in [(16, 16), (16, 24)] {
                let x = Tensor::<4>::random([1, 1, h, w], Distribution::Default, &device);
                let g = guided
                    .then(|| Tensor::<4>::random([1, 1, h, w], Distribution::Default, &device));
                let (i, j) = (9, 6);
                let before = all(x.clone(), g.clone());
                let bumped = x.clone().slice_assign(
                    [0..1, 0..1, i..i + 1, j..j + 1],
                    Tensor::<4>::full([1, 1, 1, 1], 5.0, &device),
                );
                let after = all(bumped, g);
                let diff = (after - before).abs();
                for c in 0..3 {
                    let at = diff
                        .clone()
                        .slice([0..1, c..c + 1, i..i + 1, j..j + 1])
                        .into_scalar::<f32>();
                    assert_eq!(
                        at, 0.0,
                        "output {c} at ({i}, {j}) sees its own value ({h}x{w})"
                    );
                    let seen = diff.clone().slice([0..1, c..c + 1, 0..h, 0..w]).max();
                    assert!(
                        seen.into_scalar::<f32>() > 1e-6,
                        "output {c}: the neighbours see it"
                    );
                }
            }
        }
    }

    /// The graph's folded head states what the training head does.
    #[test]
    fn the_folded_prior_head_is_the_head() {
        let device = Device::flex();
        let config = GuidedDenoiserConfig::new(4, 2, true).with_prior(true);
        let net = crate::model::init::seeded(config.init(&device), 3).with_prior_start();
        let x = Tensor::<4>::random([1, 8, 4, 4], Distribution::Default, &device);
        let head = net.prior.as_ref().unwrap();
        let folded = net.prior_head().unwrap();
        let h = leaky_relu::forward(head.hidden.forward(x.clone()), SLOPE);
        let hf = leaky_relu::forward(folded.hidden.forward(x), SLOPE);
        let want = head.spread.forward(h.clone()) * PRIOR_GAIN;
        folded
            .spread
            .forward(hf.clone())
            .to_data()
            .assert_approx_eq::<f32>(&want.to_data(), burn::tensor::Tolerance::absolute(1e-5));
        let want = head.shift.forward(h) * PRIOR_GAIN;
        folded
            .shift
            .forward(hf)
            .to_data()
            .assert_approx_eq::<f32>(&want.to_data(), burn::tensor::Tolerance::absolute(1e-5));
        // A fresh head states SPREAD_START and no shift, whatever it reads.
        let zero = Tensor::<4>::zeros([1, 8, 2, 2], &device);
        let h = leaky_relu::forward(head.hidden.forward(zero), SLOPE);
        let spread = (head.spread.forward(h.clone()) * PRIOR_GAIN)
            .mean()
            .into_scalar::<f32>();
        let shift = (head.shift.forward(h) * PRIOR_GAIN)
            .mean()
            .into_scalar::<f32>();
        assert!(
            (spread - SPREAD_START).abs() < 0.5 && shift.abs() < 0.5,
            "{spread} {shift}"
        );
    }

    /// [`crate::model::blind_spot::reach`] is the network's: a change to one target pixel
    /// moves predictions exactly that far from it, and no further.
    #[test]
    fn a_pixel_reaches_as_far_as_reach_says() {
        let device = Device::flex();
        for depth in [1, 2] {
            let config = GuidedDenoiserConfig::new(4, depth, true);
            let net = crate::model::init::seeded(config.init(&device), 3);
            let n = 96;
            let x = Tensor::<4>::random([1, 1, n, n], Distribution::Default, &device);
            let g = Tensor::<4>::random([1, 1, n, n], Distribution::Default, &device);
            let c = n / 2;
            let bumped = x.clone().slice_assign(
                [0..1, 0..1, c..c + 1, c..c + 1],
                Tensor::<4>::full([1, 1, 1, 1], 5.0, &device),
            );
            let before = net.forward(x, Some(g.clone()), None, Precision::F32);
            let after = net.forward(bumped, Some(g), None, Precision::F32);
            let diff = (after - before)
                .abs()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let far = diff
                .iter()
                .enumerate()
                .filter(|(_, d)| **d > 0.0)
                .map(|(i, _)| (i / n).abs_diff(c).max((i % n).abs_diff(c)))
                .max()
                .expect("the change reaches some pixel");
            assert_eq!(far, crate::model::blind_spot::reach(depth), "depth {depth}");
        }
    }

    #[test]
    fn the_guide_changes_the_output() {
        let device = Device::flex();
        let net = net(true, &device);
        let x = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let g = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let a = net.forward(x.clone(), Some(g.clone()), None, Precision::F32);
        let b = net.forward(x, Some(g * 0.5), None, Precision::F32);
        assert!((a - b).abs().max().into_scalar::<f32>() > 1e-6);
    }

    /// The noise levels reach the output, each slice's its own: a batch's second slice
    /// told another level changes, its first does not.
    #[test]
    fn the_noise_levels_change_the_output() {
        let device = Device::flex();
        let config = GuidedDenoiserConfig::new(4, 2, true).with_noise_input(true);
        let net = crate::model::init::seeded(config.init(&device), 5);
        let x = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let g = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let levels = |second: f32| {
            Tensor::<2>::from_data(
                TensorData::new(vec![0.05, 0.08, second, 0.08], [2, 2]),
                &device,
            )
        };
        let a = net.forward(
            x.clone(),
            Some(g.clone()),
            Some(levels(0.05)),
            Precision::F32,
        );
        let b = net.forward(x, Some(g), Some(levels(0.2)), Precision::F32);
        let diff = (a - b).abs();
        let first = diff.clone().slice([0..1, 0..1, 0..16, 0..16]).max();
        let second = diff.slice([1..2, 0..1, 0..16, 0..16]).max();
        assert_eq!(first.into_scalar::<f32>(), 0.0);
        assert!(second.into_scalar::<f32>() > 1e-6);
    }

    #[test]
    fn one_pass_and_four_passes_agree() {
        let device = Device::flex();
        let net = net(true, &device);
        let x = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let g = Tensor::<4>::random([2, 1, 16, 16], Distribution::Default, &device);
        let shift = Some(Tensor::<4>::random(
            [2, 4, 1, 1],
            Distribution::Default,
            &device,
        ));
        let one = Tensor::cat(
            net.views(
                x.clone(),
                Some(g.clone()),
                shift.clone(),
                Precision::F32,
                true,
            ),
            1,
        );
        let four = Tensor::cat(net.views(x, Some(g), shift, Precision::F32, false), 1);
        one.to_data()
            .assert_approx_eq::<f32>(&four.to_data(), burn::tensor::Tolerance::absolute(1e-5));
    }
}
