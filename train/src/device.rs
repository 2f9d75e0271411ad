//! `trainer.backend` -> a Burn `Device`. Optional backends are cargo features; asking for
//! one that is not compiled in is an error that names the feature.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (rayon + SIMD): the default build.
    #[default]
    Flex,
    /// Burn's ndarray CPU backend (deprecated upstream; ~17x slower than flex).
    Ndarray,
    /// wgpu: Vulkan / Metal / DX12, including software Vulkan (lavapipe).
    Wgpu,
    /// Burn's CubeCL CUDA backend.
    Cuda,
    /// LibTorch on the CPU.
    Libtorch,
    /// LibTorch on a CUDA GPU.
    LibtorchCuda,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend `{backend}` is not compiled in: rebuild with `--features {feature}`")]
    NotCompiled {
        backend: &'static str,
        feature: &'static str,
    },
}

impl Backend {
    pub const ALL: [Backend; 6] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
        Backend::Libtorch,
        Backend::LibtorchCuda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
            Backend::Libtorch => "libtorch",
            Backend::LibtorchCuda => "libtorch-cuda",
        }
    }

    /// The cargo feature that compiles this backend in (`None`: always there).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Backend::Flex => None,
            Backend::Ndarray => Some("ndarray"),
            Backend::Wgpu => Some("wgpu"),
            Backend::Cuda => Some("cuda"),
            Backend::Libtorch | Backend::LibtorchCuda => Some("tch"),
        }
    }

    /// The inference device of this backend (`index` selects the GPU).
    #[allow(unreachable_code, unused_variables, deprecated)]
    pub fn device(self, index: usize) -> Result<Device, BackendError> {
        let missing = || BackendError::NotCompiled {
            backend: self.name(),
            feature: self.feature().unwrap_or_default(),
        };
        match self {
            Backend::Flex => Ok(Device::flex()),
            Backend::Ndarray => {
                #[cfg(feature = "ndarray")]
                return Ok(Device::ndarray());
                Err(missing())
            }
            Backend::Wgpu => {
                #[cfg(feature = "wgpu")]
                return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
                Err(missing())
            }
            Backend::Cuda => {
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(index));
                Err(missing())
            }
            Backend::Libtorch => {
                #[cfg(feature = "tch")]
                return Ok(Device::libtorch());
                Err(missing())
            }
            Backend::LibtorchCuda => {
                #[cfg(feature = "tch")]
                return Ok(Device::libtorch_cuda(index));
                Err(missing())
            }
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Backend::ALL.iter().map(|b| b.name()).collect();
                format!("unknown backend {s:?} (expected {})", names.join(", "))
            })
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
