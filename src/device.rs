//! `--device auto|cpu|cuda|cuda:N`, and `--threads N`.

use crate::error::{Error, Result};
use crate::model::Precision;
use tch::Device;

/// `--threads N` (filter, `serve`, `bench`, `train`): LibTorch's intra-op threads. `None`
/// leaves LibTorch's choice (one per core). On a machine where other processes are busy,
/// fewer threads than cores are often faster: LibTorch's OpenMP threads spin while they
/// wait (docs/benchmarks.md).
pub fn set_threads(threads: Option<i32>) -> Result<()> {
    match threads {
        None => Ok(()),
        Some(t) if t < 1 => Err(Error::Usage(format!(
            "--threads must be at least 1, got {t}"
        ))),
        Some(t) => {
            tch::set_num_threads(t);
            Ok(())
        }
    }
}

/// Parses a device name; `auto` picks the first CUDA device when one is usable.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(n) => match n.parse::<usize>() {
                Ok(i) => cuda(i),
                Err(_) => Err(Error::Usage(format!(
                    "bad device '{other}': expected auto, cpu, cuda or cuda:N"
                ))),
            },
            None => Err(Error::Usage(format!(
                "bad device '{other}': expected auto, cpu, cuda or cuda:N"
            ))),
        },
    }
}

fn cuda(index: usize) -> Result<Device> {
    if !tch::Cuda::is_available() {
        return Err(Error::Device(format!(
            "CUDA device {index} requested but no usable CUDA GPU was found (LibTorch sees none); use --device cpu"
        )));
    }
    let count = tch::Cuda::device_count() as usize;
    if index >= count {
        return Err(Error::Device(format!(
            "CUDA device {index} requested but only {count} present"
        )));
    }
    Ok(Device::Cuda(index))
}

/// Half precisions are for GPUs: LibTorch's CPU kernels for them are slow or missing, and a
/// user asking for one on a CPU most likely meant to be on a GPU.
pub fn check_precision(device: Device, precision: Precision) -> Result<()> {
    if device == Device::Cpu && precision != Precision::Fp32 {
        return Err(Error::Usage(format!(
            "--precision {} needs a CUDA device; on the CPU use fp32",
            precision.name()
        )));
    }
    Ok(())
}
