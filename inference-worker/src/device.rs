//! `--device auto|cpu|cuda:N|metal`: which backend loads the model.
//!
//! `auto` tries CUDA, then Metal, then CPU, as the operating guide orders
//! them; what a build can use is fixed when it is compiled (`--features
//! cuda` / `metal`). mistral.rs 0.8.1 ignores `with_device` for text and
//! GGUF models and always takes accelerator 0, so `cuda:N` is selected by
//! narrowing `CUDA_VISIBLE_DEVICES` to N before any CUDA call.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

/// The backend a choice resolves to in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda(usize),
    Metal,
}

impl Backend {
    pub fn is_cpu(self) -> bool {
        self == Backend::Cpu
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "metal" => Ok(DeviceChoice::Metal),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| {
                    format!(
                        "unknown device '{other}': use auto, cpu, cuda:N (e.g. cuda:0) or metal"
                    )
                }),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::Metal => write!(f, "metal"),
        }
    }
}

pub const CUDA_BUILD: bool = cfg!(feature = "cuda");
pub const METAL_BUILD: bool = cfg!(feature = "metal");

impl DeviceChoice {
    /// Resolves the choice for this build, or says why it cannot be met.
    pub fn backend(self) -> Result<Backend, String> {
        match self {
            DeviceChoice::Cpu => Ok(Backend::Cpu),
            DeviceChoice::Auto if CUDA_BUILD => Ok(Backend::Cuda(0)),
            DeviceChoice::Auto if METAL_BUILD => Ok(Backend::Metal),
            DeviceChoice::Auto => Ok(Backend::Cpu),
            DeviceChoice::Cuda(n) if CUDA_BUILD => Ok(Backend::Cuda(n)),
            DeviceChoice::Cuda(_) => Err(
                "this sluice-worker was built without CUDA support; use a CUDA build (cargo build --release -p sluice-inference-worker --features cuda) or --device cpu".into(),
            ),
            DeviceChoice::Metal if METAL_BUILD => Ok(Backend::Metal),
            DeviceChoice::Metal => Err(
                "this sluice-worker was built without Metal support; build it on macOS with --features metal, or use --device cpu".into(),
            ),
        }
    }

    /// Narrows `CUDA_VISIBLE_DEVICES` to device N of those already visible
    /// (a scheduler may have set a mask: N counts within it). Must run
    /// before anything initialises CUDA (i.e. first thing in `main`, while
    /// the process has one thread).
    pub fn pin_cuda_device(self) {
        if let DeviceChoice::Cuda(n) = self
            && CUDA_BUILD
        {
            let device = physical_gpu(n);
            // SAFETY: called from `main` before any other thread exists.
            unsafe { std::env::set_var("CUDA_VISIBLE_DEVICES", device) };
        }
    }
}

/// Visible device `n` as the system names it: entry `n` of an existing
/// `CUDA_VISIBLE_DEVICES` mask (an index or a GPU UUID), else `n` itself.
pub fn physical_gpu(n: usize) -> String {
    visible_entry(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(), n)
}

fn visible_entry(mask: Option<&str>, n: usize) -> String {
    mask.map(|m| {
        m.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
    })
    .filter(|entries| !entries.is_empty())
    .and_then(|entries| entries.get(n).map(|e| e.to_string()))
    .unwrap_or_else(|| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_count_within_an_existing_mask() {
        assert_eq!(visible_entry(Some("4,5"), 1), "5");
        assert_eq!(visible_entry(Some("GPU-abc, GPU-def"), 0), "GPU-abc");
        assert_eq!(visible_entry(None, 2), "2");
        assert_eq!(visible_entry(Some(""), 1), "1");
    }

    #[test]
    fn parses_and_resolves() {
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert!(
            "gpu"
                .parse::<DeviceChoice>()
                .unwrap_err()
                .contains("cuda:N")
        );
        assert_eq!(DeviceChoice::Cpu.backend().unwrap(), Backend::Cpu);
        if !CUDA_BUILD {
            let e = DeviceChoice::Cuda(0).backend().unwrap_err();
            assert!(e.contains("--features cuda"), "{e}");
            if !METAL_BUILD {
                assert_eq!(DeviceChoice::Auto.backend().unwrap(), Backend::Cpu);
            }
        }
    }
}
