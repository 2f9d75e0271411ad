//! Mixed precision: the convolutions (the 3x3 ones and the 2x2 up-sampling, nearly all of a
//! step's arithmetic) may compute in bfloat16 while everything else stays in f32.
//!
//! Burn 0.22 has no autocast, but its casts are differentiable, so the policy is spelled
//! out where the layers run: the layer's input, weight and bias are cast to bf16, its output
//! back to f32. The parameters, their gradients (the cast's backward returns them in f32),
//! Adam's moments, the instance normalisation's statistics and the losses never leave f32,
//! as under PyTorch's autocast. bf16 keeps f32's exponent range, so no loss scaling is
//! needed (float16 would need it, and is not offered).
//!
//! Only LibTorch has bf16 convolutions worth having (oneDNN on CPUs with AVX512-BF16 or AMX,
//! cuDNN's tensor cores on GPUs); flex, wgpu and ndarray train in f32, and asking them for
//! bf16 is an error before the run starts, not a silent f32 run. `auto` is the setting a
//! shared config can carry: bf16 where it is fast, f32 elsewhere, chosen once the backend
//! is known and recorded in the run's summary.

use burn::prelude::*;
use burn::tensor::FloatDType;

use crate::device::Backend;

/// `trainer.precision`, what a run asks for; [`PrecisionSetting::resolve`] turns it into
/// the [`Precision`] its convolutions compute in once the backend is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionSetting {
    /// bf16 where the backend has bfloat16 convolutions and the hardware runs them natively
    /// (LibTorch on a CUDA GPU, or on a CPU with AVX512-BF16, AMX or Arm's BF16), f32
    /// elsewhere: a config that trains on every build and takes the faster step where it
    /// is offered. (A CUDA GPU older than Ampere has no bf16 tensor cores: name f32 there.)
    Auto,
    /// Everything in f32.
    #[default]
    F32,
    /// Convolutions in bfloat16; refused where the backend has none.
    Bf16,
}

impl PrecisionSetting {
    pub const ALL: [PrecisionSetting; 3] = [
        PrecisionSetting::Auto,
        PrecisionSetting::F32,
        PrecisionSetting::Bf16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PrecisionSetting::Auto => "auto",
            PrecisionSetting::F32 => "f32",
            PrecisionSetting::Bf16 => "bf16",
        }
    }

    /// The arithmetic a run on `backend` (resolved: not `auto`) computes in.
    pub fn resolve(self, backend: Backend) -> Result<Precision, PrecisionError> {
        match self {
            PrecisionSetting::F32 => Ok(Precision::F32),
            PrecisionSetting::Bf16 => Precision::Bf16.check(backend).map(|()| Precision::Bf16),
            PrecisionSetting::Auto => Ok(match backend {
                Backend::LibtorchCuda => Precision::Bf16,
                Backend::Libtorch if cpu_has_bf16() => Precision::Bf16,
                _ => Precision::F32,
            }),
        }
    }
}

/// Whether this CPU computes bfloat16 dot products natively: without it oneDNN emulates
/// bf16, slower than f32.
fn cpu_has_bf16() -> bool {
    // Every CPU with AMX also has AVX512-BF16.
    #[cfg(target_arch = "x86_64")]
    let native = std::arch::is_x86_feature_detected!("avx512bf16");
    #[cfg(target_arch = "aarch64")]
    let native = std::arch::is_aarch64_feature_detected!("bf16");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let native = false;
    native
}

impl std::str::FromStr for PrecisionSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PrecisionSetting::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision {s:?} (expected auto, f32, bf16)"))
    }
}

impl std::fmt::Display for PrecisionSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The arithmetic of the convolutions, as a run resolved `trainer.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Convolutions in bfloat16 (f32 accumulation inside the kernels), the rest in f32.
    Bf16,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "trainer.precision: bf16 needs the libtorch or libtorch-cuda backend, and this run trains \
     on {backend}, which has no bfloat16 convolutions; train with `--backend libtorch` (or \
     libtorch-cuda), or set trainer.precision to f32"
)]
pub struct PrecisionError {
    backend: &'static str,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether `backend` (resolved: not `auto`) can train at this precision.
    pub fn check(self, backend: Backend) -> Result<(), PrecisionError> {
        match (self, backend) {
            (Precision::F32, _) | (Precision::Bf16, Backend::Libtorch | Backend::LibtorchCuda) => {
                Ok(())
            }
            (Precision::Bf16, other) => Err(PrecisionError {
                backend: other.name(),
            }),
        }
    }

    /// A convolution's input or parameter, in the type the convolution computes in.
    pub fn operand<const D: usize>(self, t: Tensor<D>) -> Tensor<D> {
        match self {
            Precision::F32 => t,
            Precision::Bf16 => t.cast(FloatDType::BF16),
        }
    }

    /// A convolution's output, back in f32 for the layers after it.
    pub fn result<const D: usize>(self, t: Tensor<D>) -> Tensor<D> {
        match self {
            Precision::F32 => t,
            Precision::Bf16 => t.cast(FloatDType::F32),
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision {s:?} (expected f32, bf16)"))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_refused_off_libtorch_with_the_key_and_the_fix() {
        for backend in [
            Backend::Flex,
            Backend::Wgpu,
            Backend::Ndarray,
            Backend::Cuda,
        ] {
            assert!(Precision::F32.check(backend).is_ok());
            let msg = Precision::Bf16.check(backend).unwrap_err().to_string();
            assert!(msg.starts_with("trainer.precision: bf16"), "{msg}");
            assert!(msg.contains(backend.name()), "{msg}");
            assert!(msg.contains("--backend libtorch"), "{msg}");
        }
        assert!(Precision::Bf16.check(Backend::Libtorch).is_ok());
        assert!(Precision::Bf16.check(Backend::LibtorchCuda).is_ok());
    }

    #[test]
    fn auto_takes_bf16_only_where_it_is_native_and_is_never_refused() {
        let auto = |b| PrecisionSetting::Auto.resolve(b).unwrap();
        for backend in [
            Backend::Flex,
            Backend::Wgpu,
            Backend::Ndarray,
            Backend::Cuda,
        ] {
            assert_eq!(auto(backend), Precision::F32, "{}", backend.name());
            assert!(PrecisionSetting::Bf16.resolve(backend).is_err());
        }
        assert_eq!(auto(Backend::LibtorchCuda), Precision::Bf16);
        let native = if cpu_has_bf16() {
            Precision::Bf16
        } else {
            Precision::F32
        };
        assert_eq!(auto(Backend::Libtorch), native);
        for backend in Backend::ALL.into_iter().filter(|b| *b != Backend::Auto) {
            assert_eq!(
                PrecisionSetting::F32.resolve(backend).unwrap(),
                Precision::F32
            );
        }
        let parsed: Vec<PrecisionSetting> = ["auto", "f32", "bf16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(parsed, PrecisionSetting::ALL);
        let err = "fp16".parse::<PrecisionSetting>().unwrap_err();
        assert!(err.contains("auto, f32, bf16"), "{err}");
    }

    #[test]
    fn casts_only_in_bf16() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, 2.0]], &device);
        assert_eq!(Precision::F32.operand(x.clone()).dtype(), x.dtype());
        let low = Precision::Bf16.operand(x.clone());
        assert_eq!(low.dtype(), burn::tensor::DType::BF16);
        assert_eq!(
            Precision::Bf16.result(low).dtype(),
            burn::tensor::DType::F32
        );
    }

    /// A ConvBlock in bf16 on LibTorch: f32 output and f32 parameter gradients (the master
    /// weights never see bf16), both as near the f32 block's as PyTorch's autocast gets, yet
    /// not equal to them.
    #[cfg(feature = "tch")]
    #[allow(deprecated)] // Burn marks its LibTorch backend deprecated; it is the bf16 one here.
    #[test]
    fn a_bf16_block_gives_f32_output_and_gradients_near_f32s() {
        use burn::tensor::{DType, Distribution};

        use crate::model::ConvBlockConfig;

        let device = Device::libtorch().autodiff();
        let block = ConvBlockConfig::new(3, 8).init(&device);
        let x = Tensor::<4>::random([2, 3, 12, 10], Distribution::Normal(0.0, 1.0), &device);
        let probe = Tensor::<4>::random([2, 8, 12, 10], Distribution::Normal(0.0, 1.0), &device);
        let run = |precision| {
            let y = block.forward(x.clone(), precision);
            let grads = (y.clone() * probe.clone()).sum().backward();
            let dw = block
                .conv1
                .weight
                .val()
                .grad(&grads)
                .expect("weight gradient");
            (y, dw)
        };
        let (y32, dw32) = run(Precision::F32);
        let (y16, dw16) = run(Precision::Bf16);
        assert_eq!((y16.dtype(), dw16.dtype()), (DType::F32, DType::F32));
        // The rms of the difference against the f32 tensor's own: PyTorch's autocast gives
        // 0.005 for this output and 0.06-0.08 for this weight gradient (a sum of terms that
        // the InstanceNorm after the layer makes cancel, so bf16's 0.4% per term adds up);
        // a wrong gradient would be off by its whole size.
        let off = |a: Tensor<4>, b: Tensor<4>| {
            let rms = |t: Tensor<4>| t.powf_scalar(2.0).mean().sqrt().into_scalar::<f32>();
            rms(a - b.clone()) / rms(b)
        };
        let (dy, ddw) = (off(y16, y32), off(dw16, dw32));
        assert!(dy > 0.0 && ddw > 0.0, "bf16 computed nothing in bf16");
        assert!(
            dy < 0.02 && ddw < 0.2,
            "output off by {dy}, weight gradient by {ddw}"
        );
    }
}
