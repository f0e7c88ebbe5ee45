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

/// Sums the weight files (`*.safetensors`, `*.gguf`, `*.bin`) in `dir`, or
/// only `gguf_file` when one is given.
pub fn estimate(dir: &Path, gguf_file: Option<&str>) -> std::io::Result<Estimate> {
    let mut weights = 0u64;
    if let Some(f) = gguf_file {
        weights = std::fs::metadata(dir.join(f))?.len();
    } else {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if [".safetensors", ".gguf", ".bin"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                weights += entry.metadata()?.len();
            }
        }
    }
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

/// Free memory of CUDA device `ordinal` as `nvidia-smi` reports it.
pub fn available_vram(ordinal: usize) -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.free",
            "--format=csv,noheader,nounits",
            "-i",
            &ordinal.to_string(),
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
    fn estimate_adds_headroom_to_weight_files_only() {
        let dir = std::env::temp_dir().join(format!("sluice-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), vec![0u8; 4000]).unwrap();
        std::fs::write(dir.join("tokenizer.json"), vec![0u8; 9999]).unwrap();
        std::fs::write(dir.join("m.Q4_K_M.gguf"), vec![0u8; 1000]).unwrap();
        let all = estimate(&dir, None).unwrap();
        assert_eq!(all.weights_bytes, 5000);
        assert_eq!(all.needed_bytes, 6250);
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
