//! Will the model fit? Checked before loading, because a model that does not
//! fit is otherwise killed by the kernel (or the CUDA allocator) halfway
//! through, with nothing useful in the logs.
//!
//! The estimate follows the operating guide: size on disk is close to the
//! footprint at load; add 20–30 % for the KV cache and working memory. We
//! take 25 %.

use std::path::Path;

pub const HEADROOM: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub weights_bytes: u64,
    pub needed_bytes: u64,
}

/// Sums the weight files the model will load: `gguf_file` when given;
/// otherwise the top-level `*.safetensors` (as mistral.rs prefers them), or
/// `*.bin` when there are none. Other files (a second format, GGUF
/// variants) sit on disk but not in memory.
pub fn estimate(dir: &Path, gguf_file: Option<&str>) -> std::io::Result<Estimate> {
    let weights = match gguf_file {
        Some(f) => std::fs::metadata(dir.join(f))?.len(),
        None => {
            let (mut safetensors, mut bin) = (0u64, 0u64);
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".safetensors") {
                    safetensors += entry.metadata()?.len();
                } else if name.ends_with(".bin") {
                    bin += entry.metadata()?.len();
                }
            }
            if safetensors > 0 { safetensors } else { bin }
        }
    };
    Ok(Estimate {
        weights_bytes: weights,
        needed_bytes: (weights as f64 * (1.0 + HEADROOM)).ceil() as u64,
    })
}

/// `MemAvailable` from /proc/meminfo (what can be allocated without
/// swapping), or `None` where that is not known.
pub fn available_ram() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Free memory of CUDA device `ordinal` (as the process sees it, i.e.
/// within `CUDA_VISIBLE_DEVICES`) as `nvidia-smi` reports it.
pub fn available_vram(ordinal: usize) -> Option<u64> {
    // nvidia-smi counts physical devices; the process counts visible ones.
    let physical = crate::device::physical_gpu(ordinal);
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.free",
            "--format=csv,noheader,nounits",
            "-i",
            &physical,
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(mib * 1024 * 1024)
}

pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `Err(message)` when the estimate exceeds what `memory` says is free.
pub fn check(est: Estimate, available: Option<u64>, memory: &str) -> Result<(), String> {
    match available {
        Some(free) if est.needed_bytes > free => Err(format!(
            "the model needs about {} ({} of weights + {:.0}% headroom for the KV cache and working memory) but only {} of {memory} is free; choose a smaller quantized variant (GGUF Q4/Q5/Q8), free memory, or use a larger device",
            gib(est.needed_bytes),
            gib(est.weights_bytes),
            HEADROOM * 100.0,
            gib(free),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_what_will_be_loaded_plus_headroom() {
        let dir = std::env::temp_dir().join(format!("sluice-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), vec![0u8; 4000]).unwrap();
        std::fs::write(dir.join("tokenizer.json"), vec![0u8; 9999]).unwrap();
        std::fs::write(dir.join("m.Q4_K_M.gguf"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), vec![0u8; 7000]).unwrap();
        let all = estimate(&dir, None).unwrap();
        assert_eq!(
            all.weights_bytes, 4000,
            "safetensors only: no GGUF, no .bin"
        );
        assert_eq!(all.needed_bytes, 5000);
        std::fs::remove_file(dir.join("model.safetensors")).unwrap();
        assert_eq!(estimate(&dir, None).unwrap().weights_bytes, 7000);
        let one = estimate(&dir, Some("m.Q4_K_M.gguf")).unwrap();
        assert_eq!(one.weights_bytes, 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_when_it_does_not_fit() {
        let est = Estimate {
            weights_bytes: 8 << 30,
            needed_bytes: 10 << 30,
        };
        let err = check(est, Some(9 << 30), "RAM").unwrap_err();
        assert!(
            err.contains("10.00 GiB") && err.contains("9.00 GiB of RAM"),
            "{err}"
        );
        assert!(check(est, Some(11 << 30), "RAM").is_ok());
        assert!(
            check(est, None, "RAM").is_ok(),
            "unknown memory is not a refusal"
        );
    }

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text), Some(2048 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }
}
