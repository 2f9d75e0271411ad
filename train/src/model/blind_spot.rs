//! The blind-spot half of the guided denoiser: a U-Net whose view of the target image
//! reaches only the rows above each pixel (Laine et al. 2019, "High-Quality Self-Supervised
//! Deep Image Denoising").
//!
//! Every 3x3 convolution on the target path first shifts its input down by one row, so an
//! output row sees input rows at or above it; pooling shifts before it pools, and the 2x2
//! up-sampling maps a coarse row only to the two fine rows it came from, so "at or above"
//! holds through the whole U-Net. One last shift makes it "strictly above". Run on the image
//! rotated by 0, 90, 180 and 270 degrees and rotated back, the four half-planes together see
//! every pixel but the centre one: the prediction at a pixel never depends on that pixel's
//! own (noisy) value, which is what lets it learn from noisy images alone (its own noise is
//! unpredictable from the neighbours, so the network cannot learn to copy it).
//!
//! The guide (the other contrast of the same slice) carries noise independent of the
//! target's, so it is not blinded: a plain encoder reads it at every scale and adds its
//! features to the blind path's. The network sees the whole guide, edges included, and
//! still cannot see the target pixel it predicts.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use super::Precision;
use super::ops::{conv3x3, leaky_relu, up2x2};

/// LeakyReLU slope of the guided denoiser (Laine et al.'s).
pub const SLOPE: f64 = 0.1;

/// How many pixels away a pixel's prediction still reads the target, in any direction: the
/// blind U-Net's receptive field at `depth` levels, turned four ways. Each level doubles
/// what its convolutions and pooling add; the shifts and the pooling's alignment take 3 off.
/// Training crops much smaller than this show the deep layers mostly zero padding, which a
/// whole slice never does (`denoiser::crops::crop_warning`).
pub fn reach(depth: usize) -> usize {
    9 * (1usize << depth) - 3
}

/// The rows moved down by one: a zero row on top, the last row dropped.
pub fn shift_down(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.pad((0, 0, 1, 0), 0.0).slice([0..n, 0..c, 0..h, 0..w])
}

/// `x` rotated by `quarter_turns` x 90 degrees in the image plane; `rotate(x, k)` is undone
/// by `rotate(_, 4 - k)`.
pub fn rotate(x: Tensor<4>, quarter_turns: usize) -> Tensor<4> {
    match quarter_turns % 4 {
        0 => x,
        1 => x.swap_dims(2, 3).flip([2]),
        2 => x.flip([2, 3]),
        _ => x.swap_dims(2, 3).flip([3]),
    }
}

fn conv3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// 3x3 convolution + LeakyReLU that sees only rows at or above its output row.
fn blind(conv: &Conv2d, x: Tensor<4>, p: Precision) -> Tensor<4> {
    blind_biased(conv, x, None, p)
}

/// [`blind`] with `bias` (`[N, C, 1, 1]`, if any) added before the activation.
fn blind_biased(conv: &Conv2d, x: Tensor<4>, bias: Option<Tensor<4>>, p: Precision) -> Tensor<4> {
    let y = conv3x3::forward(conv, shift_down(x), p);
    let y = match bias {
        Some(bias) => y + bias,
        None => y,
    };
    leaky_relu::forward(y, SLOPE)
}

/// Ordinary 3x3 convolution + LeakyReLU (the guide's path).
fn open(conv: &Conv2d, x: Tensor<4>, p: Precision) -> Tensor<4> {
    leaky_relu::forward(conv3x3::forward(conv, x, p), SLOPE)
}

/// 2x2 max pooling that keeps "at or above": shift, then pool.
fn blind_pool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(shift_down(x), MaxPoolOptions::new([2, 2]))
}

fn pool(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([2, 2]))
}

/// The guide's encoder: a stem at full resolution and one convolution per level.
#[derive(Module, Debug)]
pub struct GuideEncoder {
    pub stem: Vec<Conv2d>,
    pub levels: Vec<Conv2d>,
}

/// One decoder level of the blind U-Net: up-sampling, then two blind convolutions over the
/// up-sampled features concatenated with the skip.
#[derive(Module, Debug)]
pub struct BlindUp {
    pub up: ConvTranspose2d,
    pub conv1: Conv2d,
    pub conv2: Conv2d,
}

/// The blind U-Net, with or without a guide encoder.
#[derive(Module, Debug)]
pub struct BlindUNet {
    pub stem: Vec<Conv2d>,
    pub levels: Vec<Conv2d>,
    pub ups: Vec<BlindUp>,
    pub guide: Option<GuideEncoder>,
}

impl BlindUNet {
    /// `channels` at every level, `depth` poolings; full-resolution output channels are
    /// `2 channels` ([`BlindUNet::out_channels`]).
    pub fn new(channels: usize, depth: usize, guided: bool, device: &Device) -> Self {
        let c = channels;
        BlindUNet {
            stem: vec![conv3(1, c, device), conv3(c, c, device)],
            levels: (0..depth).map(|_| conv3(c, c, device)).collect(),
            ups: (0..depth)
                .map(|k| {
                    let below = if k == 0 { c } else { 2 * c };
                    BlindUp {
                        up: ConvTranspose2dConfig::new([below, below], [2, 2])
                            .with_stride([2, 2])
                            .init(device),
                        conv1: conv3(below + c, 2 * c, device),
                        conv2: conv3(2 * c, 2 * c, device),
                    }
                })
                .collect(),
            guide: guided.then(|| GuideEncoder {
                stem: vec![conv3(1, c, device), conv3(c, c, device)],
                levels: (0..depth).map(|_| conv3(c, c, device)).collect(),
            }),
        }
    }

    pub fn out_channels(&self) -> usize {
        2 * self.stem[1].weight.dims()[0]
    }

    /// `[N, 1, H, W]` target (and guide) -> `[N, 2C, H, W]` features of the rows strictly
    /// above each pixel (H and W multiples of `2^depth`). `stem_shift` (`[N, C, 1, 1]`) is
    /// added to the first convolution's output before its activation: the slices' noise
    /// levels as a per-channel bias, constant over the image, so it reveals no pixel.
    pub fn forward(
        &self,
        x: Tensor<4>,
        guide: Option<Tensor<4>>,
        stem_shift: Option<Tensor<4>>,
        p: Precision,
    ) -> Tensor<4> {
        let first = blind_biased(&self.stem[0], x, stem_shift, p);
        let mut h = blind(&self.stem[1], first, p);
        let mut g = match (&self.guide, guide) {
            (Some(enc), Some(guide)) => {
                let g = open(&enc.stem[1], open(&enc.stem[0], guide, p), p);
                h = h + g.clone();
                Some(g)
            }
            (None, None) => None,
            _ => panic!("a guided network needs a guide, a single-contrast one takes none"),
        };
        let depth = self.levels.len();
        let mut skips = vec![h.clone()];
        for (l, conv) in self.levels.iter().enumerate() {
            h = blind(conv, blind_pool(h), p);
            if let (Some(enc), Some(prev)) = (&self.guide, g.take()) {
                let next = open(&enc.levels[l], pool(prev), p);
                h = h + next.clone();
                g = Some(next);
            }
            if l + 1 < depth {
                skips.push(h.clone());
            }
        }
        for up in &self.ups {
            let skip = skips.pop().expect("one skip per level");
            h = Tensor::cat(vec![up2x2::forward(&up.up, h, p), skip], 1);
            h = blind(&up.conv2, blind(&up.conv1, h, p), p);
        }
        shift_down(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn rotations_undo_each_other() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 1, 4, 4], Distribution::Default, &device);
        for k in 0..4 {
            let back = rotate(rotate(x.clone(), k), 4 - k);
            back.to_data().assert_eq(&x.to_data(), true);
        }
        // A quarter turn moves the top-left corner to the bottom-left.
        let v = Tensor::<4>::from_data([[[[1.0f32, 2.0], [3.0, 4.0]]]], &device);
        rotate(v, 1)
            .to_data()
            .assert_eq(&TensorData::from([[[[2.0f32, 4.0], [1.0, 3.0]]]]), true);
    }

    #[test]
    fn shift_down_moves_rows() {
        let device = Device::flex();
        let v = Tensor::<4>::from_data([[[[1.0f32, 2.0], [3.0, 4.0]]]], &device);
        shift_down(v)
            .to_data()
            .assert_eq(&TensorData::from([[[[0.0f32, 0.0], [1.0, 2.0]]]]), true);
    }

    /// A row's output depends on the target's rows strictly above it and on the whole guide.
    #[test]
    fn the_unet_sees_only_rows_above() {
        let device = Device::flex().autodiff();
        let net = crate::model::init::seeded(BlindUNet::new(4, 2, true, &device), 1);
        let x = Tensor::<4>::random([1, 1, 16, 16], Distribution::Default, &device).require_grad();
        let g = Tensor::<4>::random([1, 1, 16, 16], Distribution::Default, &device).require_grad();
        let out = net.forward(x.clone(), Some(g.clone()), None, Precision::F32);
        let (row, col) = (7, 5);
        let picked = out.slice([0..1, 0..8, row..row + 1, col..col + 1]).sum();
        let grads = picked.backward();
        let gx = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let gg = g
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (i, v) in gx.iter().enumerate() {
            if i / 16 >= row {
                assert_eq!(*v, 0.0, "target row {} reaches row {row}", i / 16);
            }
        }
        assert!(gx[(row - 1) * 16 + col] != 0.0, "the row above is seen");
        assert!(
            gg[(row + 1) * 16 + col] != 0.0,
            "the guide below is seen too"
        );
        assert!(gg[row * 16 + col] != 0.0, "and the guide's own pixel");
    }
}
