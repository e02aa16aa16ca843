//! The training pack in memory and the random crops drawn from it.
//!
//! Photos are decoded once into `u8` tensors `(3, H, W)`. A crop picks a photo with
//! probability proportional to its number of crop positions (so every position of every
//! photo is equally likely), then, with [`Augment`]:
//! - a scale `s`, log-uniform in `[1, max_downscale]` (and at most what the photo's short
//!   side allows): a square of `s × crop` pixels at a uniform position is averaged down to
//!   `crop × crop`, so that textures appear at several scales;
//! - one of the 8 flips and quarter turns, or only a horizontal flip with probability ½.
//!
//! [`Augment::NONE`] (the validation crops) is the plain draw — a position and a horizontal
//! flip — so that validation losses stay comparable across runs.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The generator of every training draw (`crate::rng`): seedable, so that the crops of step
/// `k` depend only on `(seed, k)` and a resumed run draws exactly what an uninterrupted one
/// would.
pub type SplitMix = crate::rng::SplitMix64;

/// Derives independent stream seeds from the run seed, a stream tag and a step.
pub fn mix_seed(seed: u64, tag: u64, step: u64) -> u64 {
    let mut r = SplitMix::new(seed ^ tag.rotate_left(32));
    let a = r.next_u64();
    SplitMix::new(a ^ step.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// How crops are varied beyond their position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Largest downscale factor (≥ 1; 1 = crops at the photo's own scale).
    pub max_downscale: f64,
    /// All 8 flips and quarter turns; otherwise a horizontal flip only.
    pub dihedral: bool,
}

impl Augment {
    /// A position and a horizontal flip: the draw of the validation crops.
    pub const NONE: Augment = Augment {
        max_downscale: 1.0,
        dihedral: false,
    };
}

pub struct Photos {
    names: Vec<String>,
    images: Vec<Tensor>,
    /// Cumulative crop-position counts, for weighted choice.
    cumulative: Vec<f64>,
    crop: i64,
    augment: Augment,
}

impl std::fmt::Debug for Photos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Photos")
            .field("count", &self.images.len())
            .field("crop", &self.crop)
            .finish()
    }
}

fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Usage(format!(
            "cannot read training images in {}: {e} (run models/default/make-data.sh, or give --data)",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
            files.push(path);
        }
    }
    // Directory order is file-system dependent; sorting keeps crops reproducible.
    files.sort();
    Ok(files)
}

/// Decodes one image to a `u8` tensor `(3, H, W)`.
pub fn read_rgb(path: &Path) -> Result<Tensor> {
    let img = image::open(path)
        .map_err(|e| Error::Input(format!("cannot decode {}: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let t = Tensor::f_from_slice(img.as_raw())?
        .f_view([h as i64, w as i64, 3])?
        .f_permute([2, 0, 1])?
        .f_contiguous()?;
    Ok(t)
}

impl Photos {
    /// Loads every PNG/JPEG in `dir`; photos smaller than `crop` on either side are skipped
    /// with a warning.
    pub fn load(dir: &Path, crop: i64, augment: Augment) -> Result<Self> {
        let mut names = Vec::new();
        let mut images = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0.0;
        for path in image_files(dir)? {
            let t = read_rgb(&path)?;
            let (h, w) = (t.size()[1], t.size()[2]);
            if h < crop || w < crop {
                log::warn!(
                    "{} is {w}x{h}, smaller than the {crop}px crop; skipped",
                    path.display()
                );
                continue;
            }
            total += ((h - crop + 1) * (w - crop + 1)) as f64;
            cumulative.push(total);
            names.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            images.push(t);
        }
        if images.is_empty() {
            return Err(Error::Input(format!(
                "no usable training image (PNG/JPEG at least {crop}x{crop}) in {}",
                dir.display()
            )));
        }
        Ok(Self {
            names,
            images,
            cumulative,
            crop,
            augment,
        })
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Another handle on the same decoded photos (no copy), for a loader thread: `Tensor`
    /// may move between threads but not be shared by reference.
    fn share(&self) -> Self {
        Self {
            names: self.names.clone(),
            images: self.images.iter().map(Tensor::shallow_clone).collect(),
            cumulative: self.cumulative.clone(),
            crop: self.crop,
            augment: self.augment,
        }
    }

    /// `n` random crops as float32 in `[-1, 1]`, `(n, 3, crop, crop)`, on the CPU.
    pub fn batch(&self, rng: &mut SplitMix, n: i64) -> Tensor {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let crops: Vec<Tensor> = (0..n)
            .map(|_| {
                let u = rng.uniform() * total;
                let i = self
                    .cumulative
                    .partition_point(|&c| c <= u)
                    .min(self.images.len() - 1);
                let img = &self.images[i];
                let (h, w) = (img.size()[1], img.size()[2]);
                let crop = self.crop;
                let largest = (h.min(w) as f64 / crop as f64).min(self.augment.max_downscale);
                let side = if largest > 1.0 {
                    let s = (rng.uniform() * largest.ln()).exp();
                    ((crop as f64 * s).round() as i64).clamp(crop, h.min(w))
                } else {
                    crop
                };
                let y = rng.below((h - side + 1) as u64) as i64;
                let x = rng.below((w - side + 1) as u64) as i64;
                let c = img
                    .narrow(1, y, side)
                    .narrow(2, x, side)
                    .to_kind(Kind::Float);
                // Box-filtered down to the crop: each output pixel averages its footprint.
                let c = if side > crop {
                    c.unsqueeze(0)
                        .adaptive_avg_pool2d([crop, crop])
                        .squeeze_dim(0)
                } else {
                    c
                };
                if self.augment.dihedral {
                    let k = rng.below(8) as i64;
                    let c = c.rot90(k % 4, [1, 2]);
                    if k >= 4 {
                        c.flip([2])
                    } else {
                        c
                    }
                } else if rng.uniform() < 0.5 {
                    c.flip([2])
                } else {
                    c
                }
            })
            .collect();
        Tensor::stack(&crops, 0) / 127.5 - 1.0
    }
}

/// What one training step draws, on the CPU: clean crops in `[-1, 1]`, timesteps and noise.
pub struct Draw {
    pub x0: Tensor,
    pub t: Tensor,
    pub noise: Tensor,
}

/// The draw of step `step`. It depends only on `(stream, step)`, which is what lets a resumed
/// run, or a loader with any number of threads, draw exactly what a plain loop would.
pub fn draw(photos: &Photos, stream: (u64, u64), step: i64, batch: i64, timesteps: u64) -> Draw {
    let mut rng = SplitMix::new(mix_seed(stream.0, stream.1, step as u64));
    let x0 = photos.batch(&mut rng, batch);
    let t: Vec<i64> = (0..batch).map(|_| rng.below(timesteps) as i64).collect();
    let noise = rng.normal(&x0.size());
    Draw {
        x0,
        t: Tensor::from_slice(&t),
        noise,
    }
}

/// Draws steps `first, first + 1, …` on `threads` background threads, a couple of steps
/// ahead, and hands them out in step order. On a GPU the crops and the Box–Muller noise cost
/// more CPU time than the step itself; here they overlap it.
pub struct Prefetch {
    lanes: Vec<std::sync::mpsc::Receiver<Draw>>,
    next: usize,
}

impl Prefetch {
    pub fn new(
        photos: &Photos,
        stream: (u64, u64),
        first: i64,
        batch: i64,
        timesteps: u64,
        threads: usize,
    ) -> Self {
        let threads = threads.max(1);
        let lanes = (0..threads)
            .map(|lane| {
                let (tx, rx) = std::sync::mpsc::sync_channel(2);
                let photos = photos.share();
                std::thread::spawn(move || {
                    // Lane `lane` owns steps first + lane, first + lane + threads, …; it
                    // ends when the trainer drops its receiver.
                    let mut step = first + lane as i64;
                    while tx
                        .send(draw(&photos, stream, step, batch, timesteps))
                        .is_ok()
                    {
                        step += threads as i64;
                    }
                });
                rx
            })
            .collect();
        Self { lanes, next: 0 }
    }

    /// The next step's draw, in order.
    pub fn next_draw(&mut self) -> Result<Draw> {
        let lane = &self.lanes[self.next % self.lanes.len()];
        self.next += 1;
        lane.recv()
            .map_err(|_| Error::Internal("a training-data loader thread stopped".into()))
    }
}
