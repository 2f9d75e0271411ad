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
    /// The best backend this build and machine offer, chosen when training starts: LibTorch
    /// on CUDA when LibTorch sees a GPU, else wgpu on a real (not software) GPU adapter, else
    /// the fastest CPU backend compiled in (libtorch, then flex).
    Auto,
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
    #[error("backend `{backend}` is not compiled in: rebuild with `--features {feature}`{hint}")]
    NotCompiled {
        backend: &'static str,
        feature: &'static str,
        hint: &'static str,
    },
    #[error(
        "backend `libtorch-cuda`: {reason}; train on the CPU with `--backend libtorch` (or \
         `--backend auto`, which picks the best device there is)"
    )]
    NoCuda { reason: String },
}

/// The backend a run trains on, after `auto` is resolved, and why it was chosen.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub backend: Backend,
    pub device: Device,
    /// What the run summary records: the backend and, for a GPU, which one.
    pub description: String,
    /// Why `auto` chose this backend (`None` when it was named).
    pub reason: Option<String>,
}

impl Backend {
    pub const ALL: [Backend; 7] = [
        Backend::Flex,
        Backend::Auto,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
        Backend::Libtorch,
        Backend::LibtorchCuda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Auto => "auto",
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
            Backend::Flex | Backend::Auto => None,
            Backend::Ndarray => Some("ndarray"),
            Backend::Wgpu => Some("wgpu"),
            Backend::Cuda => Some("cuda"),
            Backend::Libtorch | Backend::LibtorchCuda => Some("tch"),
        }
    }

    /// Whether this backend is compiled into this build.
    pub fn compiled(self) -> bool {
        match self {
            Backend::Flex | Backend::Auto => true,
            Backend::Ndarray => cfg!(feature = "ndarray"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
            Backend::Libtorch | Backend::LibtorchCuda => cfg!(feature = "tch"),
        }
    }

    /// Picks the device a run trains on: resolves `auto`, and checks that a named GPU
    /// backend has a GPU, so that a run fails before it touches its folder rather than at
    /// the first allocation.
    pub fn resolve(self, index: usize) -> Result<Resolved, BackendError> {
        let (backend, reason) = match self {
            Backend::Auto => {
                let (b, why) = choose_auto(index);
                (b, Some(why))
            }
            Backend::LibtorchCuda if self.compiled() => {
                cuda_check(index)?;
                (self, None)
            }
            b => (b, None),
        };
        let description = match backend {
            Backend::LibtorchCuda | Backend::Cuda => format!("{}:{index} (GPU)", backend.name()),
            Backend::Wgpu => format!("wgpu ({})", wgpu_adapter_label()),
            b => format!("{} (CPU)", b.name()),
        };
        Ok(Resolved {
            backend,
            device: backend.device(index)?,
            description,
            reason,
        })
    }

    /// The device of this backend (`index` selects the GPU); `auto` goes through
    /// [`Backend::resolve`].
    #[allow(unreachable_code, unused_variables, deprecated)]
    pub fn device(self, index: usize) -> Result<Device, BackendError> {
        let missing = || BackendError::NotCompiled {
            backend: self.name(),
            feature: self.feature().unwrap_or_default(),
            hint: if self.feature() == Some("tch") {
                " (LibTorch comes from `bash scripts/install-libtorch.sh`; build through \
                 `scripts/with-libtorch.sh cargo build --release --features tch`)"
            } else {
                ""
            },
        };
        match self {
            Backend::Flex => Ok(Device::flex()),
            // One place chooses for `auto`: `resolve`, which also says why.
            Backend::Auto => self.resolve(index).map(|r| r.device),
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

/// `auto`'s choice and the reason, in the order the backend docs give.
fn choose_auto(index: usize) -> (Backend, String) {
    let mut passed = Vec::new();
    if Backend::LibtorchCuda.compiled() {
        match cuda_check(index) {
            Ok(()) => {
                return (
                    Backend::LibtorchCuda,
                    format!("LibTorch sees CUDA device {index}"),
                );
            }
            Err(BackendError::NoCuda { reason }) => passed.push(format!("libtorch-cuda: {reason}")),
            Err(e) => passed.push(e.to_string()),
        }
    } else {
        passed.push("libtorch-cuda: not compiled in (feature tch)".into());
    }
    if Backend::Wgpu.compiled() {
        match wgpu_gpu_adapter() {
            Ok(name) => return (Backend::Wgpu, format!("wgpu found the GPU adapter {name}")),
            Err(why) => passed.push(format!("wgpu: {why}")),
        }
    } else {
        passed.push("wgpu: not compiled in (feature wgpu)".into());
    }
    let cpu = if Backend::Libtorch.compiled() {
        Backend::Libtorch
    } else {
        Backend::Flex
    };
    (
        cpu,
        format!(
            "no GPU to train on ({}); {} is the fastest CPU backend in this build",
            passed.join("; "),
            cpu.name()
        ),
    )
}

/// Whether LibTorch can train on CUDA device `index`; the error says why not.
#[allow(unused_variables)]
fn cuda_check(index: usize) -> Result<(), BackendError> {
    #[cfg(feature = "tch")]
    {
        let count = tch::Cuda::device_count();
        if count == 0 {
            return Err(BackendError::NoCuda {
                reason: "LibTorch sees no CUDA device (no NVIDIA GPU or driver here)".into(),
            });
        }
        if index as i64 >= count {
            return Err(BackendError::NoCuda {
                reason: format!(
                    "device index {index} is out of range: LibTorch sees {count} CUDA device(s)"
                ),
            });
        }
        Ok(())
    }
    #[cfg(not(feature = "tch"))]
    Err(BackendError::NoCuda {
        reason: "not compiled in (feature tch)".into(),
    })
}

/// The name of a hardware GPU adapter wgpu can use, or why there is none (only a software
/// rasteriser such as lavapipe does not count: it is slower than the CPU backends).
fn wgpu_gpu_adapter() -> Result<String, String> {
    #[cfg(feature = "wgpu")]
    {
        let instance = wgpu::Instance::default();
        let adapters =
            futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let mut seen = Vec::new();
        for a in adapters {
            let info = a.get_info();
            match info.device_type {
                wgpu::DeviceType::DiscreteGpu
                | wgpu::DeviceType::IntegratedGpu
                | wgpu::DeviceType::VirtualGpu => return Ok(info.name),
                t => seen.push(format!("{} ({t:?})", info.name)),
            }
        }
        if seen.is_empty() {
            Err("no adapter found".into())
        } else {
            Err(format!("only software adapters: {}", seen.join(", ")))
        }
    }
    #[cfg(not(feature = "wgpu"))]
    Err("not compiled in (feature wgpu)".into())
}

/// The adapter wgpu's default device is likely to be, for the run summary.
fn wgpu_adapter_label() -> String {
    wgpu_gpu_adapter().unwrap_or_else(|why| format!("default adapter; {why}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_names_its_choice_and_why() {
        let r = Backend::Auto.resolve(0).unwrap();
        assert_ne!(r.backend, Backend::Auto);
        let why = r.reason.expect("auto says why");
        assert!(
            why.contains(r.backend.name()) || why.contains("GPU"),
            "{why}"
        );
        if !cfg!(feature = "tch") && !cfg!(feature = "wgpu") {
            assert_eq!(r.backend, Backend::Flex);
            assert!(
                why.contains("no GPU") && why.contains("feature tch"),
                "{why}"
            );
        }
        assert!(Backend::Flex.resolve(0).unwrap().reason.is_none());
    }

    #[test]
    fn a_backend_not_built_in_names_the_feature() {
        if cfg!(feature = "tch") {
            return;
        }
        let e = Backend::Libtorch.resolve(0).unwrap_err().to_string();
        assert!(
            e.contains("--features tch") && e.contains("scripts/install-libtorch.sh"),
            "{e}"
        );
        let e = Backend::LibtorchCuda.resolve(0).unwrap_err().to_string();
        assert!(e.contains("--features tch"), "{e}");
    }

    #[test]
    fn auto_parses_and_prints() {
        assert_eq!("auto".parse::<Backend>().unwrap(), Backend::Auto);
        assert!("tpu".parse::<Backend>().unwrap_err().contains("auto"));
    }
}
