//! From decoded pixels to a restored picture: image ⇄ tensor on the engine's [-1, 1]
//! scale, the operator `H` for the task, the solver, and what the filter adds around them —
//! alpha carried through (resampled for SR), the mask that limits where the result
//! replaces the input (feathered) for tasks other than inpainting, and overlapping tiles
//! blended with a linear ramp (a partition of unity over the overlaps) for large images.

mod frame;
pub mod progress;
pub mod signals;
mod tiles;

use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use crate::io::{Limits, Picture};
use crate::model::Precision;
use crate::operators::{self, Operator};
use crate::protocol::Stats;
use crate::solvers::{self, Control, Method, Problem, Progress, SigmaY, SolverOptions};
use crate::task::Task;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

pub use tiles::TilePlan;

/// What network inputs are padded to a multiple of: five halvings, as in the ADM 256×256
/// UNets (the default model needs three).
pub const NETWORK_MULTIPLE: i64 = 32;

/// Default `--max-memory`: leaves room for LibTorch and the rest of a 24 GiB machine.
pub const DEFAULT_MAX_MEMORY: u64 = 12 << 30;

/// Everything a restore needs besides the pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The method; methods that need no network get [`NoNetwork`] and load nothing.
    pub method: Method,
    /// Model name or checkpoint path; `None` = the default model.
    pub model: Option<String>,
    /// The checkpoint's architecture (a named one or a config JSON) when it cannot be
    /// found beside the file or in a card; `None` = look it up.
    pub arch: Option<String>,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// The network's float type; half precisions need a CUDA device.
    pub precision: Precision,
    pub seed: u64,
    /// Measurement noise σ_y on the [-1, 1] scale, or `auto` (`operators::noise`).
    pub sigma_y: SigmaY,
    /// The input file's JPEG tables, for `jpeg` without a quality ([`jpeg_tables`]).
    pub jpeg_tables: Option<crate::jpeg::Tables>,
    /// The EXIF orientation the input was turned upright by (`io::Decoded::orientation`).
    /// A JPEG was compressed as stored, so a `jpeg` task is solved in that orientation and
    /// the result turned upright; other tasks ignore it.
    pub input_orientation: crate::io::Orientation,
    /// `None`: whole image when the memory estimate fits `max_memory`, tiles otherwise;
    /// `Some(0)`: never tile; `Some(n)`: tiles of `n` output pixels.
    pub tile: Option<u32>,
    pub max_memory: u64,
    pub solver: SolverOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            method: Method::default(),
            model: None,
            arch: None,
            device: "auto".into(),
            precision: Precision::Fp32,
            seed: 0,
            sigma_y: SigmaY::default(),
            jpeg_tables: None,
            input_orientation: crate::io::Orientation::NoTransforms,
            tile: None,
            max_memory: DEFAULT_MAX_MEMORY,
            solver: SolverOptions::default(),
        }
    }
}

/// Where a run stands, for progress reports: overall fraction in [0, 1] and a stage name.
pub type ProgressFn<'a> = &'a mut dyn FnMut(f64, &str) -> Control;

/// Stands in for the network with methods that do not use one. Identity: `D(x, σ) = x`.
pub struct NoNetwork;

impl Denoiser for NoNetwork {
    fn denoise(&self, x: &Tensor, _sigma: f64) -> Tensor {
        x.shallow_clone()
    }
    fn sigma_min(&self) -> f64 {
        0.0
    }
    fn sigma_max(&self) -> f64 {
        0.0
    }
}

/// The model used when the caller names none: the one this project trains and ships.
pub const DEFAULT_MODEL: &str = "default";

/// Opens the denoiser for `model`: a registry name (`default`, `ffhq-256`, …) or a
/// checkpoint path, resolved through the model search path (docs/models.md), on `device`
/// in `precision`.
pub fn open_denoiser(
    model: Option<&str>,
    arch: Option<&str>,
    device: Device,
    precision: Precision,
) -> Result<Box<dyn Denoiser>> {
    let spec = model.unwrap_or(DEFAULT_MODEL);
    let network = crate::registry::open(spec, arch, device, precision)?;
    Ok(Box::new(crate::diffusion::EpsDenoiser::new(network)))
}

/// Denoisers kept loaded between requests (serve mode), keyed by model, architecture,
/// device and precision.
#[derive(Default)]
pub struct ModelCache {
    loaded: HashMap<(String, String, String, Precision), Box<dyn Denoiser>>,
}

impl ModelCache {
    fn get(
        &mut self,
        method: Method,
        model: Option<&str>,
        arch: Option<&str>,
        device: Device,
        precision: Precision,
    ) -> Result<&dyn Denoiser> {
        if !method.needs_network() {
            return Ok(&NoNetwork);
        }
        let key = (
            model.unwrap_or("").to_string(),
            arch.unwrap_or("").to_string(),
            format!("{device:?}"),
            precision,
        );
        if !self.loaded.contains_key(&key) {
            log::info!(
                "loading model {} on {device:?}",
                model.unwrap_or("(default)")
            );
            let d = open_denoiser(model, arch, device, precision)?;
            self.loaded.insert(key.clone(), d);
        }
        match self.loaded.get(&key) {
            Some(d) => Ok(d.as_ref()),
            None => Err(Error::Model(crate::model::LoadError::Other(
                "model cache lost an entry".into(),
            ))),
        }
    }

    /// Forgets every loaded network.
    pub fn clear(&mut self) {
        self.loaded.clear();
    }
}

/// A restored picture and what the run measured.
pub struct Outcome {
    pub picture: Picture,
    pub stats: Stats,
}

/// Restores `image` for `task`. `mask` is white where to restore (inpainting), or where the
/// result may replace the input (other tasks, feathered).
pub fn restore(
    task: &Task,
    image: &Picture,
    mask: Option<&Picture>,
    settings: &Settings,
    limits: &Limits,
    models: &mut ModelCache,
    progress: ProgressFn,
) -> Result<Outcome> {
    task.validate()?;
    if let Some(o) = frame::stored_orientation(task, settings) {
        let (task, image, mask) = frame::to_stored(task, image, mask, o)?;
        let settings = Settings {
            input_orientation: crate::io::Orientation::NoTransforms,
            ..settings.clone()
        };
        let mut outcome = restore(
            &task,
            &image,
            mask.as_ref(),
            &settings,
            limits,
            models,
            progress,
        )?;
        outcome.picture = outcome.picture.oriented(o);
        return Ok(outcome);
    }
    let started = std::time::Instant::now();
    solvers::check_method_for(settings.method, task)?;
    if let Some(v) = settings.sigma_y.invalid() {
        return Err(Error::Usage(format!(
            "sigma-y must be a finite number ≥ 0, got {v}"
        )));
    }
    // Everything about the input is checked before anything is loaded.
    validate(task, image, mask, limits)?;
    let device = crate::device::parse_device(&settings.device)?;
    crate::device::check_precision(device, settings.precision)?;
    let solver = solvers::build(settings.method, &settings.solver)?;
    if progress(0.0, "load") == Control::Stop {
        return Err(Error::Interrupted);
    }
    let denoiser = models.get(
        settings.method,
        settings.model.as_deref(),
        settings.arch.as_deref(),
        device,
        settings.precision,
    )?;
    // LibTorch reports some failures (shape mismatches, allocation failures in some ops) by
    // panicking through tch: turn them into errors so a server survives them.
    let run = std::panic::AssertUnwindSafe(|| {
        restore_with(
            task,
            image,
            mask,
            settings,
            limits,
            device,
            solver.as_ref(),
            denoiser,
            progress,
        )
    });
    let mut outcome = std::panic::catch_unwind(run).map_err(panic_error)??;
    outcome.stats.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// The error a caught panic stands for: out of memory when LibTorch says so (exit 6),
/// an internal LibTorch failure otherwise (exit 1).
pub fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into());
    // LibTorch reports allocation failures by panicking through tch; those keep their
    // out-of-memory class, anything else is ours.
    if msg.contains("out of memory") {
        return Error::Torch(tch::TchError::Torch(msg));
    }
    Error::Internal(msg.lines().next().unwrap_or("").to_string())
}

/// [`restore`] with the solver and denoiser given: the image side of the work.
#[allow(clippy::too_many_arguments)]
pub fn restore_with(
    task: &Task,
    image: &Picture,
    mask: Option<&Picture>,
    settings: &Settings,
    limits: &Limits,
    device: Device,
    solver: &dyn solvers::Solver,
    denoiser: &dyn Denoiser,
    progress: ProgressFn,
) -> Result<Outcome> {
    let mut work = Work::new(task, image, mask, settings, limits, device, denoiser)?;
    let ntiles = work.tiles.len();
    for k in 0..ntiles {
        // Said before the first step, which can take long: the stage is no longer "load".
        if progress(k as f64 / ntiles as f64, "restore") == Control::Stop {
            return Err(Error::Interrupted);
        }
        let xin = work.tile_input(k);
        let result = match work.tile_operator(task, settings, k)? {
            // Nothing to restore here: an inpainting operator with an empty mask is an error.
            None => xin,
            Some(op) => {
                let problem = work.problem(op.as_ref(), &xin)?;
                let mut last: Option<Progress> = None;
                let mut on_step = |p: Progress| {
                    last = Some(p);
                    let f = (k as f64 + p.step as f64 / p.steps.max(1) as f64) / ntiles as f64;
                    progress(f, "restore")
                };
                let seed = settings.seed.wrapping_add(k as u64);
                let out = solver
                    .solve(denoiser, &problem, seed, &mut on_step)?
                    .ok_or(Error::Interrupted)?;
                work.count(last);
                out
            }
        };
        work.add(k, &result);
    }
    if progress(1.0, "encode") == Control::Stop {
        return Err(Error::Interrupted);
    }
    work.finish(task)
}

/// One picture on its way through the engine: the input padded for the network, its tile
/// plan, σ_y, and the blend of the tiles restored so far. [`restore_with`] takes one
/// through its tiles; [`restore_all`] solves the single tiles of several in one batch. Both
/// go through the same steps here, so a picture comes out the same either way.
struct Work<'a> {
    image: &'a Picture,
    device: Device,
    scale: i64,
    out_h: i64,
    out_w: i64,
    x_in: Tensor,
    x_pad: Tensor,
    plan: TilePlan,
    tiles: Vec<tiles::Tile>,
    /// The mask at output size (white = restore), as given.
    mask_plane: Option<Tensor>,
    /// Inpainting's mask over the padded output.
    inpaint_mask: Option<Tensor>,
    /// The estimated peak bytes of one tile's solve.
    peak: u64,
    acc: Tensor,
    wsum: Tensor,
    stats: Stats,
}

impl<'a> Work<'a> {
    /// Checks, pads, plans the tiles and settles σ_y.
    fn new(
        task: &Task,
        image: &'a Picture,
        mask: Option<&Picture>,
        settings: &Settings,
        limits: &Limits,
        device: Device,
        denoiser: &dyn Denoiser,
    ) -> Result<Self> {
        let mask_plane = validate(task, image, mask, limits)?;
        let scale = sr_scale(task);
        let jpeg = matches!(task, Task::Jpeg { .. });
        let (h, w) = (image.height as i64, image.width as i64);
        let (out_h, out_w) = (h * scale, w * scale);

        // A UNet halves the image several times, so its input must be a multiple of
        // NETWORK_MULTIPLE: pad the input (repeating its border) and crop the result back.
        let network_free = !settings.method.needs_network();
        let multiple = if network_free {
            scale
        } else {
            NETWORK_MULTIPLE.max(scale)
        };
        // JPEG's block grid: tiles and padding in whole MCUs (at most 16 measurement pixels;
        // both are powers of two, so the larger is a multiple of the other).
        let multiple = if jpeg {
            multiple.max(16 * scale)
        } else {
            multiple
        };
        let in_mult = multiple / scale;
        let (ph, pw) = (
            (in_mult - h % in_mult) % in_mult,
            (in_mult - w % in_mult) % in_mult,
        );
        let (pad_h, pad_w) = ((h + ph) * scale, (w + pw) * scale);
        let x_in = to_tensor(image).to_device(device);
        let x_pad = if ph + pw > 0 {
            x_in.replication_pad2d([0, pw, 0, ph])
        } else {
            x_in.shallow_clone()
        };
        let estimate = |th: i64, tw: i64| {
            let px = (th * tw) as u64;
            if network_free {
                return px.saturating_mul(tiles::CLASSICAL_BYTES_PER_PIXEL);
            }
            denoiser
                .iteration_bytes(th, tw)
                .unwrap_or_else(|| px.saturating_mul(tiles::FALLBACK_BYTES_PER_PIXEL))
        };
        let mut plan = TilePlan::choose(
            pad_h,
            pad_w,
            scale,
            multiple,
            settings.tile,
            settings.max_memory,
            &estimate,
        );
        if jpeg && !plan.is_whole() {
            // Tile starts are multiples of the tile side less the overlap: whole MCUs too.
            let g = 16 * scale;
            plan.overlap = ((plan.overlap + g - 1) / g * g).min(plan.tile - g);
        }
        let peak = estimate(plan.tile.min(pad_h), plan.tile.min(pad_w));
        log::info!(
            "restoring {w}×{h} → {out_w}×{out_h} with {} on {device:?}, {} (estimated peak {:.1} GiB)",
            settings.method,
            plan.describe(),
            peak as f64 / (1u64 << 30) as f64
        );
        let inpaint_mask = match (task.base(), &mask_plane) {
            // Padding is known (0 = keep), so the operator never asks to fill it.
            (Task::Inpaint, Some(m)) => {
                Some(
                    m.to_device(device)
                        .constant_pad_nd([0, pw * scale, 0, ph * scale]),
                )
            }
            _ => None,
        };

        let sigma_y = match settings.sigma_y {
            SigmaY::Auto => estimate_noise(task, &x_in, mask_plane.as_ref()),
            SigmaY::Value(v) => v,
        };
        let tiles = plan.tiles();
        let stats = Stats {
            method: settings.method,
            device: format!("{device:?}").to_lowercase(),
            // The network the pixels came from: the one named, or the default; none for
            // methods that use no network.
            model: settings.method.needs_network().then(|| {
                settings
                    .model
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MODEL.into())
            }),
            tiles: tiles.len(),
            sigma_y,
            ..Stats::default()
        };
        Ok(Work {
            image,
            device,
            scale,
            out_h,
            out_w,
            acc: Tensor::zeros([1, 3, pad_h, pad_w], (Kind::Float, device)),
            wsum: Tensor::zeros([1, 1, pad_h, pad_w], (Kind::Float, device)),
            x_in,
            x_pad,
            plan,
            tiles,
            mask_plane,
            inpaint_mask,
            peak,
            stats,
        })
    }

    /// The input under tile `k` (a tile is in output pixels; its input region is the same
    /// divided by the SR scale).
    fn tile_input(&self, k: usize) -> Tensor {
        let t = self.tiles[k];
        self.x_pad
            .narrow(2, t.y0 / self.scale, t.h / self.scale)
            .narrow(3, t.x0 / self.scale, t.w / self.scale)
    }

    /// The operator of tile `k`, or `None` when the tile has nothing to restore (an
    /// inpainting tile without a hole keeps its input).
    fn tile_operator(
        &self,
        task: &Task,
        settings: &Settings,
        k: usize,
    ) -> Result<Option<Box<dyn Operator>>> {
        let t = self.tiles[k];
        let tmask = self
            .inpaint_mask
            .as_ref()
            .map(|m| m.narrow(0, t.y0, t.h).narrow(1, t.x0, t.w));
        if tmask
            .as_ref()
            .is_some_and(|m| m.sum(Kind::Float).double_value(&[]) == 0.0)
        {
            return Ok(None);
        }
        Ok(Some(operators::build_with(
            task,
            [3, t.h, t.w],
            tmask.as_ref(),
            settings.jpeg_tables.as_ref(),
        )?))
    }

    /// The σ_y the solver is told for this picture under `op`.
    fn solver_sigma(&self, op: &dyn Operator) -> f64 {
        operators::measurement_sigma(op, self.stats.sigma_y).max(rounding_std(self.image))
    }

    /// The problem of one tile: its measurement under `op`.
    fn problem<'o>(&self, op: &'o dyn Operator, xin: &Tensor) -> Result<Problem<'o>> {
        Ok(Problem {
            op,
            y: measurement(op, xin)?,
            sigma_y: self.solver_sigma(op),
        })
    }

    /// Counts the network evaluations of a tile's solve.
    fn count(&mut self, last: Option<Progress>) {
        if let Some(p) = last {
            self.stats.steps = p.steps;
            self.stats.forwards += p.forwards;
            self.stats.vjps += p.vjps;
        }
    }

    /// Blends the result of tile `k` in.
    fn add(&mut self, k: usize, result: &Tensor) {
        let t = self.tiles[k];
        let weight = self.plan.weight(&t, self.device);
        let mut a = self.acc.narrow(2, t.y0, t.h).narrow(3, t.x0, t.w);
        a += result.to_kind(Kind::Float) * &weight;
        let mut b = self.wsum.narrow(2, t.y0, t.h).narrow(3, t.x0, t.w);
        b += weight;
    }

    /// The blended tiles, the mask applied, as a picture.
    fn finish(self, task: &Task) -> Result<Outcome> {
        let (out_h, out_w) = (self.out_h, self.out_w);
        let mut out = (self.acc / self.wsum.clamp_min(1e-12))
            .narrow(2, 0, out_h)
            .narrow(3, 0, out_w);

        // Outside the region to restore the input stays: exactly (inpainting keeps the known
        // pixels bit for bit) or with a feathered edge (other tasks).
        if let Some(m) = self.mask_plane {
            let m = m.to_device(self.device).view([1, 1, out_h, out_w]);
            let base = base_image(task, &self.x_in, out_h, out_w);
            let weight = if matches!(task.base(), Task::Inpaint) {
                m
            } else {
                feather(&m, out_h.min(out_w))
            };
            out = &out * &weight + base * (1.0 - &weight);
        }
        let image = self.image;
        let channels = if matches!(task.base(), Task::Colorize) {
            3
        } else {
            image.channels
        };
        let (h, w) = (image.height as i64, image.width as i64);
        let alpha = image
            .alpha
            .as_ref()
            .map(|a| resample_plane(a, h, w, out_h, out_w));
        let picture = from_tensor(&out, channels, alpha, image.sixteen_bit)?;
        Ok(Outcome {
            picture,
            stats: self.stats,
        })
    }
}

/// One picture for [`restore_all`]: what [`restore`] takes.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    pub task: &'a Task,
    pub image: &'a Picture,
    pub mask: Option<&'a Picture>,
    pub settings: &'a Settings,
}

impl Item<'_> {
    /// Whether `self` and `other` may share a solve: the same task and settings but the
    /// seed, the same size, no mask (an inpainting mask, and so its operator, differs from
    /// file to file), a method that batches ([`Method::batches`]). Whether they do share one
    /// is decided after padding and σ_y ([`restore_group`]).
    fn groups_with(&self, other: &Item) -> bool {
        let but_seed = |s: &Settings| Settings {
            seed: 0,
            ..s.clone()
        };
        self.mask.is_none()
            && other.mask.is_none()
            && self.settings.method.batches()
            // `restore` turns such a picture into its stored orientation first.
            && frame::stored_orientation(self.task, self.settings).is_none()
            && self.task == other.task
            && (self.image.width, self.image.height) == (other.image.width, other.image.height)
            && but_seed(self.settings) == but_seed(other.settings)
    }
}

/// Restores every item, each as [`restore`] would (the same pixels, to the last bits of
/// batched arithmetic; the same errors), solving up to `group` pictures that can share one
/// solve ([`Item::groups_with`], restored whole, the same σ_y, within `max_memory`
/// together) as one batch: one network call per step for all of them, with each picture's
/// noise drawn from its own seed. A group that fails (out of memory, a diverging image) is
/// solved again one picture at a time. Results are in the order of `items`; `progress`
/// sees each solve, a group's or a picture's, rise from 0 to 1 in turn.
pub fn restore_all(
    items: &[Item],
    group: usize,
    limits: &Limits,
    models: &mut ModelCache,
    progress: ProgressFn,
) -> Vec<Result<Outcome>> {
    // Candidate groups in the order of their first picture.
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match sets
            .iter_mut()
            .find(|s| group > 1 && items[s[0]].groups_with(item))
        {
            Some(set) => set.push(i),
            None => sets.push(vec![i]),
        }
    }
    let mut results: Vec<Option<Result<Outcome>>> = items.iter().map(|_| None).collect();
    for set in sets {
        for chunk in set.chunks(group.max(1)) {
            if results
                .iter()
                .flatten()
                .any(|r| matches!(r, Err(Error::Interrupted)))
            {
                break;
            }
            let solved = match chunk {
                [_] => vec![None],
                _ => restore_group(items, chunk, limits, models, progress),
            };
            for (&i, r) in chunk.iter().zip(solved) {
                let it = &items[i];
                results[i] = Some(r.unwrap_or_else(|| {
                    restore(
                        it.task,
                        it.image,
                        it.mask,
                        it.settings,
                        limits,
                        models,
                        progress,
                    )
                }));
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(Error::Interrupted)))
        .collect()
}

/// The pictures `chunk` of `items` (which [`Item::groups_with`] its first) solved as
/// batches; `None` for a picture that is to be restored alone: anything [`restore`] would
/// refuse (it then says why), one to be tiled, one without a partner of the same σ_y, every
/// picture of a batch that failed.
fn restore_group(
    items: &[Item],
    chunk: &[usize],
    limits: &Limits,
    models: &mut ModelCache,
    progress: ProgressFn,
) -> Vec<Option<Result<Outcome>>> {
    let started = std::time::Instant::now();
    let alone = || chunk.iter().map(|_| None).collect();
    let first = items[chunk[0]];
    let (task, settings) = (first.task, first.settings);
    // What restore checks before loading, for the whole group at once.
    let ready = (|| -> Result<_> {
        task.validate()?;
        solvers::check_method_for(settings.method, task)?;
        if settings.sigma_y.invalid().is_some() {
            return Err(Error::Usage("bad sigma-y".into()));
        }
        let device = crate::device::parse_device(&settings.device)?;
        crate::device::check_precision(device, settings.precision)?;
        Ok((device, solvers::build(settings.method, &settings.solver)?))
    })();
    let Ok((device, solver)) = ready else {
        return alone();
    };
    if progress(0.0, "load") == Control::Stop {
        return chunk
            .iter()
            .map(|_| Some(Err(Error::Interrupted)))
            .collect();
    }
    let Ok(denoiser) = models.get(
        settings.method,
        settings.model.as_deref(),
        settings.arch.as_deref(),
        device,
        settings.precision,
    ) else {
        return alone();
    };
    let run = std::panic::AssertUnwindSafe(|| {
        let mut works: Vec<Option<Work>> = chunk
            .iter()
            .map(|&i| {
                let it = &items[i];
                Work::new(
                    it.task,
                    it.image,
                    None,
                    it.settings,
                    limits,
                    device,
                    denoiser,
                )
                .ok()
            })
            .collect();
        // Whole pictures only (a tiled one would need its tiles batched with the others').
        let op = works
            .iter()
            .flatten()
            .find(|w| w.tiles.len() == 1)
            .map(|w| w.tile_operator(task, settings, 0));
        let Some(Ok(Some(op))) = op else {
            return Ok(chunk.iter().map(|_| None).collect::<Vec<_>>());
        };
        let op = op.as_ref();
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for (j, w) in works.iter().enumerate() {
            let Some(w) = w.as_ref().filter(|w| w.tiles.len() == 1) else {
                continue;
            };
            let sigma = w.solver_sigma(op);
            let cap = (settings.max_memory / w.peak.max(1)).max(1) as usize;
            match batches.iter_mut().find(|b| {
                let o = works[b[0]].as_ref().map(|o| o.solver_sigma(op));
                b.len() < cap && o == Some(sigma)
            }) {
                Some(b) => b.push(j),
                None => batches.push(vec![j]),
            }
        }
        let mut out: Vec<Option<Result<Outcome>>> = chunk.iter().map(|_| None).collect();
        for batch in batches.into_iter().filter(|b| b.len() > 1) {
            let members: Vec<&Work> = batch.iter().flat_map(|&j| works[j].as_ref()).collect();
            let solved = solve_batch(
                op,
                &members,
                chunk,
                &batch,
                items,
                denoiser,
                solver.as_ref(),
                progress,
            );
            let (result, last) = match solved {
                Ok(r) => r,
                Err(Error::Interrupted) => {
                    for &j in &batch {
                        out[j] = Some(Err(Error::Interrupted));
                    }
                    continue;
                }
                Err(e) => {
                    log::warn!(
                        "a group of {} failed ({e}); one at a time instead",
                        batch.len()
                    );
                    continue;
                }
            };
            if progress(1.0, "encode") == Control::Stop {
                for &j in &batch {
                    out[j] = Some(Err(Error::Interrupted));
                }
                continue;
            }
            for (row, &j) in batch.iter().enumerate() {
                let Some(mut w) = works[j].take() else {
                    continue;
                };
                w.count(last);
                w.add(0, &result.narrow(0, row as i64, 1));
                let mut outcome = w.finish(task);
                if let Ok(o) = outcome.as_mut() {
                    o.stats.seconds = started.elapsed().as_secs_f64();
                }
                out[j] = Some(outcome);
            }
        }
        Ok(out)
    });
    match std::panic::catch_unwind(run).map_err(panic_error) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) | Err(e) => {
            log::warn!("a group failed ({e}); one at a time instead");
            alone()
        }
    }
}

/// One solve of the pictures `members` (rows of the batch, in order), each with its own
/// seed; the result `(N, 3, H, W)` and the last progress.
#[allow(clippy::too_many_arguments)]
fn solve_batch(
    op: &dyn Operator,
    members: &[&Work],
    chunk: &[usize],
    batch: &[usize],
    items: &[Item],
    denoiser: &dyn Denoiser,
    solver: &dyn solvers::Solver,
    progress: ProgressFn,
) -> Result<(Tensor, Option<Progress>)> {
    let ys = members
        .iter()
        .map(|w| measurement(op, &w.tile_input(0)))
        .collect::<Result<Vec<_>>>()?;
    let problem = Problem {
        op,
        y: Tensor::cat(&ys, 0),
        sigma_y: members[0].solver_sigma(op),
    };
    let seeds: Vec<u64> = batch
        .iter()
        .map(|&j| items[chunk[j]].settings.seed)
        .collect();
    log::info!("solving {} pictures as one batch", seeds.len());
    if progress(0.0, "restore") == Control::Stop {
        return Err(Error::Interrupted);
    }
    let mut last: Option<Progress> = None;
    let mut on_step = |p: Progress| {
        last = Some(p);
        progress(p.step as f64 / p.steps.max(1) as f64, "restore")
    };
    let out = solver
        .solve_seeded(denoiser, &problem, &seeds, &mut on_step)?
        .ok_or(Error::Interrupted)?;
    Ok((out, last))
}

/// Checks the task, the output size and the mask; returns the mask at output size.
fn validate(
    task: &Task,
    image: &Picture,
    mask: Option<&Picture>,
    limits: &Limits,
) -> Result<Option<Tensor>> {
    task.validate()?;
    let scale = sr_scale(task) as u64;
    let (out_w, out_h) = (
        u64::from(image.width) * scale,
        u64::from(image.height) * scale,
    );
    let too_big = || {
        Error::Input(format!(
            "the output would be {out_w}×{out_h}, beyond any limit"
        ))
    };
    limits.check(
        "output image",
        u32::try_from(out_w).map_err(|_| too_big())?,
        u32::try_from(out_h).map_err(|_| too_big())?,
        8,
    )?;
    match mask {
        Some(m) => Ok(Some(mask_tensor(m, image, task)?)),
        None if matches!(task.base(), Task::Inpaint) => {
            Err(Error::Operator(operators::OperatorError::MissingMask))
        }
        None => Ok(None),
    }
}

/// Applies the forward model to a clean image: `y = H x + σ_y n`, `n ~ N(0, I)` seeded by
/// `seed` (`operators::degrade`), clipped to the displayable range.
pub fn degrade(
    task: &Task,
    image: &Picture,
    mask: Option<&Picture>,
    sigma_y: f64,
    seed: u64,
) -> Result<Picture> {
    task.validate()?;
    if !sigma_y.is_finite() || sigma_y < 0.0 {
        return Err(Error::Usage(format!(
            "sigma-y must be a finite number ≥ 0, got {sigma_y}"
        )));
    }
    let (h, w) = (image.height as i64, image.width as i64);
    let m = match (task.base(), mask) {
        (Task::Inpaint, Some(m)) => Some(mask_tensor(m, image, task)?),
        (Task::Inpaint, None) => {
            return Err(Error::Operator(operators::OperatorError::MissingMask))
        }
        _ => None,
    };
    let x = to_tensor(image);
    if task.needs_jpeg_tables() {
        return Err(Error::Usage(
            "degrade makes JPEG measurements with standard tables: give --jpeg a quality 1–100"
                .into(),
        ));
    }
    let op = operators::build(task, [3, h, w], m.as_ref())?;
    let y = tch::no_grad(|| {
        operators::measurement_to_image(&operators::degrade(&x, op.as_ref(), sigma_y, seed))
    });
    let size = y.size();
    let (yc, yh, yw) = (size[1], size[2], size[3]);
    // Gray stays gray; colorization's measurement is gray whatever came in.
    let channels = if yc == 1 || image.channels == 1 { 1 } else { 3 };
    let alpha = image
        .alpha
        .as_ref()
        .map(|a| resample_plane(a, h, w, yh, yw));
    let y = if yc == 1 { y.repeat([1, 3, 1, 1]) } else { y };
    from_tensor(&y, channels, alpha, image.sixteen_bit).map(|mut p| {
        p.width = yw as u32;
        p.height = yh as u32;
        p
    })
}

/// The input file's JPEG tables when `task` needs them (`jpeg` without a quality), read
/// from the file's bytes; a usage error when the input is not a JPEG or its tables cannot
/// be used. `None` for every other task.
pub fn jpeg_tables(task: &Task, bytes: &[u8]) -> Result<Option<crate::jpeg::Tables>> {
    if !task.needs_jpeg_tables() {
        return Ok(None);
    }
    if crate::io::sniff(bytes) != Some(crate::io::Format::Jpeg) {
        return Err(Error::Usage(
            "--jpeg auto reads the tables of a JPEG input; this input is not a JPEG (give a quality 1–100)"
                .into(),
        ));
    }
    crate::jpeg::read_tables(bytes)
        .map(Some)
        .map_err(|e| Error::Input(e.to_string()))
}

/// σ_y estimated from the measurement `x_in` (`operators::noise`), over the known pixels
/// for inpainting; 0 (the solvers still allow for the file's rounding) when there are too
/// few pixels to tell, under about 14 × 14: `auto` is the default, and an icon must not
/// fail for want of a noise estimate nobody asked for.
///
/// Denoising's measurement carries the task's own σ as well, and the estimate sees both:
/// σ_y is what is left beyond it, since the solvers add the two in variance
/// (`operators::measurement_sigma`). Taken whole, the task's σ would count twice (0.141
/// for a photo with noise 0.1 alone).
pub(crate) fn estimate_noise(task: &Task, x_in: &Tensor, mask: Option<&Tensor>) -> f64 {
    let keep = match (task.base(), mask) {
        (Task::Inpaint, Some(m)) => Some(1.0 - m),
        _ => None,
    };
    let Some(total) = operators::noise::estimate_sigma(x_in, keep.as_ref()) else {
        log::warn!("too few pixels to estimate the noise: σ_y = 0");
        return 0.0;
    };
    let s = match task.base() {
        Task::Denoise { sigma } => (total * total - sigma * sigma).max(0.0).sqrt(),
        _ => total,
    };
    log::info!("estimated σ_y = {s:.4} (noise seen {total:.4})");
    s
}

fn sr_scale(task: &Task) -> i64 {
    match task.base() {
        Task::Sr { scale, .. } => i64::from(*scale),
        _ => 1,
    }
}

/// Standard deviation of the rounding of a stored image on the [-1, 1] scale: a picture
/// read from a file is never noiseless, and solvers told σ_y = 0 invert exactly, which turns
/// a blur's rounding errors into noise of huge amplitude.
fn rounding_std(image: &Picture) -> f64 {
    let levels = if image.sixteen_bit { 65535.0 } else { 255.0 };
    2.0 / levels / 12f64.sqrt()
}

/// `(1, 3, H, W)` in [-1, 1]; gray is repeated over the three channels the network wants.
pub(crate) fn to_tensor(p: &Picture) -> Tensor {
    let t =
        Tensor::from_slice(&p.color).view([1, p.channels as i64, p.height as i64, p.width as i64])
            * 2.0
            - 1.0;
    if p.channels == 1 {
        t.repeat([1, 3, 1, 1])
    } else {
        t
    }
}

/// Back from `(1, 3, H, W)` in [-1, 1]; `channels == 1` takes the mean of R, G, B.
pub(crate) fn from_tensor(
    t: &Tensor,
    channels: usize,
    alpha: Option<Vec<f32>>,
    sixteen_bit: bool,
) -> Result<Picture> {
    let size = t.size();
    let (h, w) = (size[2], size[3]);
    let t = ((t.to_device(Device::Cpu).to_kind(Kind::Float) + 1.0) * 0.5).clamp(0.0, 1.0);
    let t = if channels == 1 {
        t.mean_dim(&[1i64][..], true, Kind::Float)
    } else {
        t
    };
    let color = Vec::<f32>::try_from(t.contiguous().view([-1]))?;
    if color.iter().any(|v| !v.is_finite()) {
        return Err(Error::Torch(tch::TchError::Kind(
            "the solver returned NaN or infinite pixels".into(),
        )));
    }
    Ok(Picture {
        width: w as u32,
        height: h as u32,
        channels,
        color,
        alpha,
        sixteen_bit,
    })
}

/// The measurement `y` for a tile of the input, read by the operator's own rule (gray for
/// colorization, the pixels under the mask ignored for inpainting).
fn measurement(op: &dyn Operator, xin: &Tensor) -> Result<Tensor> {
    Ok(operators::measurement_from_image(xin, op)?)
}

/// The mask as `(H_out, W_out)` floats: binary (≥ ½ is white) for inpainting, soft for the
/// rest. It must match the input's size (or, for SR, either the input's or the output's).
fn mask_tensor(mask: &Picture, image: &Picture, task: &Task) -> Result<Tensor> {
    let s = sr_scale(task) as u32;
    let same = (mask.width, mask.height) == (image.width, image.height);
    let out_sized = s > 1 && (mask.width, mask.height) == (image.width * s, image.height * s);
    if !same && !out_sized {
        return Err(Error::Operator(operators::OperatorError::MaskSize {
            got_w: mask.width as i64,
            got_h: mask.height as i64,
            want_w: image.width as i64,
            want_h: image.height as i64,
        }));
    }
    let plane = mask.gray_plane();
    let (mh, mw) = (mask.height as i64, mask.width as i64);
    let mut t = Tensor::from_slice(&plane).view([mh, mw]);
    if matches!(task.base(), Task::Inpaint) {
        t = t.ge(0.5).to_kind(Kind::Float);
        if t.sum(Kind::Float).double_value(&[]) == 0.0 {
            return Err(Error::Operator(operators::OperatorError::EmptyMask));
        }
    }
    if same && s > 1 {
        t = t
            .view([1, 1, mh, mw])
            .upsample_nearest2d([mh * s as i64, mw * s as i64], None, None)
            .view([mh * s as i64, mw * s as i64]);
    }
    Ok(t)
}

/// What the output shows where the mask keeps the input: the input, brought to the output's
/// size for SR (bicubic) and to gray in colour for colorization.
fn base_image(task: &Task, x_in: &Tensor, out_h: i64, out_w: i64) -> Tensor {
    match task.base() {
        Task::Sr { .. } => x_in
            .upsample_bicubic2d([out_h, out_w], false, None, None)
            .clamp(-1.0, 1.0),
        Task::Colorize => x_in
            .mean_dim(&[1i64][..], true, Kind::Float)
            .repeat([1, 3, 1, 1]),
        _ => x_in.shallow_clone(),
    }
}

/// Softens a `(1, 1, H, W)` weight with three box blurs (≈ a Gaussian) of a radius that
/// grows with the image, so the boundary between restored and kept pixels does not show.
fn feather(m: &Tensor, side: i64) -> Tensor {
    let r = (side / 100).clamp(2, 16);
    let mut t = m.shallow_clone();
    for _ in 0..3 {
        t = t.avg_pool2d(
            [2 * r + 1, 2 * r + 1],
            [1, 1],
            [r, r],
            false,
            false,
            None::<i64>,
        );
    }
    t.clamp(0.0, 1.0)
}

/// Resamples a plane (alpha) to a new size: bicubic up, area average down.
fn resample_plane(a: &[f32], h: i64, w: i64, nh: i64, nw: i64) -> Vec<f32> {
    if (h, w) == (nh, nw) {
        return a.to_vec();
    }
    let t = Tensor::from_slice(a).view([1, 1, h, w]);
    let r = if nh >= h {
        t.upsample_bicubic2d([nh, nw], false, None, None)
    } else {
        t.adaptive_avg_pool2d([nh, nw])
    };
    Vec::<f32>::try_from(r.clamp(0.0, 1.0).contiguous().view([-1]))
        .unwrap_or_else(|_| vec![1.0; (nh * nw) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::SrKind;

    #[test]
    fn the_noise_estimate_leaves_out_the_noise_a_denoising_task_names() {
        // A smooth image with noise of σ 0.05 (sensor) and 0.1 (the task's) in variance.
        let ramp = Tensor::linspace(-0.8, 0.8, 128, (Kind::Double, Device::Cpu));
        let x = (ramp.view([1, 1, 1, 128]) * ramp.view([1, 1, 128, 1]).cos()).repeat([1, 3, 1, 1]);
        let mut rng = crate::rng::SplitMix64::new(7);
        let total = 0.05f64.hypot(0.1);
        let y = &x + rng.normal(&[1, 3, 128, 128]) * total;
        let seen = estimate_noise(&Task::Inpaint, &y, None);
        assert!((seen / total - 1.0).abs() < 0.1, "seen {seen}");
        let s = estimate_noise(&Task::Denoise { sigma: 0.1 }, &y, None);
        assert!((s - 0.05).abs() < 0.015, "σ_y {s}");
        // Noise below the task's own leaves none.
        let y = &x + rng.normal(&[1, 3, 128, 128]) * 0.08;
        assert_eq!(estimate_noise(&Task::Denoise { sigma: 0.1 }, &y, None), 0.0);
        // Too small to tell: 0, not an error.
        let tiny = y.narrow(2, 0, 8).narrow(3, 0, 8);
        assert_eq!(estimate_noise(&Task::Inpaint, &tiny, None), 0.0);
    }

    /// `x̂ = H⁺ y`: enough to check what the pipeline does around a solver.
    struct Pinv;
    impl solvers::Solver for Pinv {
        fn name(&self) -> &'static str {
            "pinv"
        }
        fn solve_seeded(
            &self,
            _d: &dyn Denoiser,
            p: &Problem,
            _seeds: &[u64],
            on_progress: &mut dyn FnMut(Progress) -> Control,
        ) -> Result<Option<Tensor>> {
            if on_progress(Progress {
                step: 1,
                steps: 1,
                forwards: 0,
                vjps: 0,
            }) == Control::Stop
            {
                return Ok(None);
            }
            Ok(Some(p.op.pinv(&p.y)))
        }
    }

    fn picture(w: u32, h: u32, channels: usize) -> Picture {
        let n = (w * h) as usize;
        let color = (0..n * channels)
            .map(|i| {
                let (k, p) = (i / n, i % n);
                let (x, y) = ((p as u32 % w) as f32, (p as u32 / w) as f32);
                (0.5 + 0.4 * ((x * 0.3 + k as f32).sin() * (y * 0.2).cos())).clamp(0.0, 1.0)
            })
            .collect();
        Picture {
            width: w,
            height: h,
            channels,
            color,
            alpha: None,
            sixteen_bit: false,
        }
    }

    fn run(task: &Task, p: &Picture, mask: Option<&Picture>, tile: Option<u32>) -> Result<Picture> {
        let settings = Settings {
            tile,
            ..Settings::default()
        };
        let mut go = |_: f64, _: &str| Control::Continue;
        restore_with(
            task,
            p,
            mask,
            &settings,
            &Limits::default(),
            Device::Cpu,
            &Pinv,
            &NoNetwork,
            &mut go,
        )
        .map(|o| o.picture)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn tiles_blend_to_the_whole_image_result() {
        // H⁺ of denoising is the identity and of block-mean SR is pixel replication, both
        // local: tiled and whole results must agree to rounding, so any misplaced tile or
        // weight that does not sum to one shows.
        let p = picture(70, 45, 3);
        let whole = run(&Task::Denoise { sigma: 0.1 }, &p, None, Some(0)).unwrap();
        let tiled = run(&Task::Denoise { sigma: 0.1 }, &p, None, Some(24)).unwrap();
        assert!(max_diff(&whole.color, &p.color) < 1e-5);
        assert!(max_diff(&whole.color, &tiled.color) < 1e-5);
        let sr = Task::Sr {
            scale: 2,
            downsample: SrKind::Avgpool,
        };
        let whole = run(&sr, &p, None, Some(0)).unwrap();
        let tiled = run(&sr, &p, None, Some(32)).unwrap();
        assert_eq!((whole.width, whole.height), (140, 90));
        assert!(max_diff(&whole.color, &tiled.color) < 1e-5);
    }

    #[test]
    fn gray_stays_gray_and_colorize_gives_colour() {
        let g = picture(20, 10, 1);
        let out = run(&Task::Denoise { sigma: 0.1 }, &g, None, None).unwrap();
        assert_eq!(out.channels, 1);
        assert!(max_diff(&out.color, &g.color) < 1e-5);
        let out = run(&Task::Colorize, &g, None, None).unwrap();
        assert_eq!(out.channels, 3);
    }

    #[test]
    fn inpainting_keeps_known_pixels_and_mask_limits_other_tasks() {
        let p = picture(32, 32, 3);
        let mut m = Picture {
            channels: 1,
            color: vec![0.0; 32 * 32],
            ..picture(32, 32, 1)
        };
        for y in 8..16 {
            for x in 8..16 {
                m.color[y * 32 + x] = 1.0;
            }
        }
        let out = run(&Task::Inpaint, &p, Some(&m), None).unwrap();
        for i in 0..32 * 32 {
            if m.color[i] == 0.0 {
                for k in 0..3 {
                    assert!((out.color[k * 1024 + i] - p.color[k * 1024 + i]).abs() < 1e-6);
                }
            }
        }
        // H⁺ for inpainting puts 0 (mid-gray) in the hole.
        assert!((out.color[12 * 32 + 12] - 0.5).abs() < 1e-6);
        // Colorization limited to the mask: far from it the (gray) input is kept.
        let out = run(&Task::Colorize, &p, Some(&m), None).unwrap();
        let gray = p.gray_plane();
        for k in 0..3 {
            assert!((out.color[k * 1024 + 31 * 32 + 31] - gray[31 * 32 + 31]).abs() < 1e-5);
        }
    }

    #[test]
    fn alpha_is_carried_and_resampled() {
        let mut p = picture(10, 6, 3);
        p.alpha = Some(vec![0.25; 60]);
        let out = run(
            &Task::Sr {
                scale: 4,
                downsample: SrKind::Avgpool,
            },
            &p,
            None,
            None,
        )
        .unwrap();
        let a = out.alpha.unwrap();
        assert_eq!(a.len(), 40 * 24);
        assert!(a.iter().all(|v| (v - 0.25).abs() < 1e-5));
    }

    #[test]
    fn bad_requests_are_refused() {
        let p = picture(16, 16, 3);
        assert!(matches!(
            run(&Task::Inpaint, &p, None, None),
            Err(Error::Operator(_))
        ));
        let small = picture(8, 8, 1);
        assert!(matches!(
            run(&Task::Inpaint, &p, Some(&small), None),
            Err(Error::Operator(_))
        ));
        let black = Picture {
            color: vec![0.0; 256],
            ..picture(16, 16, 1)
        };
        assert!(matches!(
            run(&Task::Inpaint, &p, Some(&black), None),
            Err(Error::Operator(_))
        ));
        assert!(matches!(
            run(
                &Task::Sr {
                    scale: 3,
                    downsample: SrKind::Avgpool
                },
                &p,
                None,
                None
            ),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            run(&Task::Denoise { sigma: f64::NAN }, &p, None, None),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn stop_means_interrupted() {
        let p = picture(16, 16, 3);
        let settings = Settings::default();
        let mut stop = |_: f64, _: &str| Control::Stop;
        let r = restore_with(
            &Task::Denoise { sigma: 0.1 },
            &p,
            None,
            &settings,
            &Limits::default(),
            Device::Cpu,
            &Pinv,
            &NoNetwork,
            &mut stop,
        );
        assert!(matches!(r, Err(Error::Interrupted)));
    }
}
