//! Restoration algorithms over a `Denoiser` and an `Operator`: VML-MAP, preconditioned
//! VML-MAP, and the baselines DPS, DDRM, ΠGDM, DiffPIR, RED-diff and DAPS. The algorithms as implemented, with every
//! option and its default, are described in docs/algorithm.md.

pub mod classical;
pub mod daps;
pub mod ddrm;
pub mod diffpir;
pub mod dps;
pub mod pigdm;
pub mod red_diff;
pub mod vml_map;

use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use crate::operators::Operator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// One inverse problem: `y = H x + η`, `η ~ N(0, σ_y² I)`, on the [-1, 1] scale.
pub struct Problem<'a> {
    pub op: &'a dyn Operator,
    /// Measurement, `(N, C', H', W')`.
    pub y: Tensor,
    /// Measurement noise standard deviation σ_y ≥ 0.
    pub sigma_y: f64,
}

/// Where a solver stands; sent after every reverse step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    /// Network evaluations so far: forward passes and vector-Jacobian products.
    pub forwards: usize,
    pub vjps: usize,
}

/// What the caller answers to a progress report: stop lets Ctrl-C and cancel end a
/// solve cleanly between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// A restoration method.
pub trait Solver {
    /// Short name (`vml-map`, `dps`, …).
    fn name(&self) -> &'static str;
    /// Restores `problem` with `denoiser`. Returns the estimate `(N, C, H, W)` in [-1, 1],
    /// or `Ok(None)` when `on_progress` asked to stop. All noise comes from `seeds` (not
    /// from LibTorch's global generator), so concurrent solves do not disturb each other:
    /// either one seed for the whole batch (one stream over all N images, what [`Solver::solve`]
    /// gives), or one seed per image, image i's noise then drawn from `seeds[i]` alone
    /// ([`Noise`]), so that where [`Method::batches`] holds, image i of a batch comes out as
    /// it does solved alone with its seed (to the last bits of batched arithmetic). The same
    /// seeds on the same device give the same result. Errors: a measurement that does not fit
    /// the operator, a seed count that is neither 1 nor N, an operator without the SVD a
    /// method needs, settings that cannot work together.
    fn solve_seeded(
        &self,
        denoiser: &dyn Denoiser,
        problem: &Problem,
        seeds: &[u64],
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Option<Tensor>>;

    /// [`Solver::solve_seeded`] with one seed for the whole batch.
    fn solve(
        &self,
        denoiser: &dyn Denoiser,
        problem: &Problem,
        seed: u64,
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Option<Tensor>> {
        self.solve_seeded(denoiser, problem, &[seed], on_progress)
    }
}

/// How VML-MAP moves from one noise level to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "renoise")]
pub enum Renoise {
    /// `x = x̂0 + σ_{i+1} n` with fresh noise `n`.
    Stochastic,
    /// `x = x̂0 + (σ_{i+1}/σ_i)(x − x̂0)`: keeps the current noise direction.
    Deterministic,
}

/// Where VML-MAP puts the measurement's proximal step on x̂0
/// (`operators::data_prox`, with the τ the residual implies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "data_fit")]
pub enum DataFit {
    /// None: the data term acts through the gradient steps only.
    Off,
    /// On the x̂0 of the last level only.
    Last,
    /// On every level's x̂0, before it is re-noised.
    Every,
}

/// Where VML-MAP starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "init")]
pub enum Init {
    /// `x = σ_1 n`.
    Noise,
    /// `x = H⁺y + σ_1 n`, the pseudo-inverse damped for the measurement noise
    /// (`operators::damped_pinv`).
    Pinv,
    /// `x = x_c + σ_1 n` with `x_c` the classical estimate (bicubic, harmonic fill,
    /// Wiener; `operators::classical`).
    Classical,
}

/// The measurement noise σ_y as the user gives it: a standard deviation on the [-1, 1]
/// pixel scale, or `auto`, estimated from the input (`operators::noise`). Written as a
/// number or the string `"auto"` in the protocol, as on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SigmaY {
    Value(f64),
    Auto,
}

/// `auto`: a user's photo comes with noise of a strength they rarely know, and a solver
/// told 0 fits that noise exactly. On the training pack's 8 validation photos (128², σ_y
/// 0.02 and 0.05) a Gaussian deblur told 0 scored 7.0 and 4.9 dB against 30.6 and 29.7
/// with the estimate; on clean photos the estimate cost 0.17 dB on SR×4 and at most 0.06
/// elsewhere (docs/benchmarks.md, "σ_y when the user gives none").
impl Default for SigmaY {
    fn default() -> Self {
        SigmaY::Auto
    }
}

impl SigmaY {
    /// A value that is not a finite number ≥ 0, if this is one (`auto` is fine).
    pub fn invalid(self) -> Option<f64> {
        match self {
            SigmaY::Value(v) if !v.is_finite() || v < 0.0 => Some(v),
            _ => None,
        }
    }
}

impl std::str::FromStr for SigmaY {
    type Err = String;

    /// A number (checked for its range where it is used) or `auto`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(SigmaY::Auto),
            t => t
                .parse::<f64>()
                .map(SigmaY::Value)
                .map_err(|_| format!("'{s}' is neither a number nor auto")),
        }
    }
}

impl Serialize for SigmaY {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SigmaY::Value(v) => s.serialize_f64(*v),
            SigmaY::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for SigmaY {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire<'a> {
            Number(f64),
            Word(std::borrow::Cow<'a, str>),
        }
        match Wire::deserialize(d)? {
            Wire::Number(v) => Ok(SigmaY::Value(v)),
            Wire::Word(w) if w == "auto" => Ok(SigmaY::Auto),
            Wire::Word(w) => Err(serde::de::Error::custom(format!(
                "sigma_y must be a number ≥ 0 or \"auto\", got \"{w}\""
            ))),
        }
    }
}

impl JsonSchema for SigmaY {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "sigma_y".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Measurement noise σ_y on the [-1, 1] scale, or \"auto\": estimated \
                from the input (patch PCA; the value used is the response's stats.sigma_y).",
            "oneOf": [
                { "type": "number", "minimum": 0 },
                { "const": "auto" }
            ]
        })
    }
}

/// Settings of the methods as the command line, the protocol and `bench` carry them: one
/// flat set of fields under the names the user types (`steps`, `eta`, …). `None` means the
/// method's own default (documented on each field and in docs/algorithm.md). Each method
/// takes its share as its own typed `Options` (`vml_map::Options`, …) through
/// [`SolverOptions::typed`]; a field set that the chosen method does not take is a usage
/// error rather than silently ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "solver_options")]
pub struct SolverOptions {
    /// A preset budget (steps, iterations) of the chosen method; the fields set here
    /// override it. Default: the method's defaults, which are the `normal` preset.
    pub quality: Option<Quality>,
    /// Number of reverse diffusion steps N. Defaults: vml-map 20, dps 1000, ddrm 20, pigdm 100,
    /// diffpir 100, red-diff 50 (Adam steps), daps 200 (annealing levels).
    pub steps: Option<usize>,
    /// Inner iterations K per step: VML-MAP (default 1), DAPS's Langevin steps per level
    /// (default 100).
    pub iters: Option<usize>,
    /// VML-MAP step size γ, relative to the σ_y-aware scale `(1/s_i² + 1/σ_i²)⁻¹`
    /// (docs/algorithm.md; default 2 for vml-map, 1 for vml-map-pre); RED-diff's Adam learning
    /// rate (default 0.1); DAPS's first Langevin step size (default 1e-4).
    pub step_size: Option<f64>,
    /// VML-MAP cap κ on the prior's share of a step: along directions the measurement does
    /// not see, a step moves x at most κ of the way to D(x) (γ is lowered where it would move
    /// it further). Default 0.6; see docs/algorithm.md, "Step size and a sharper model".
    pub prior_step_cap: Option<f64>,
    /// VML-MAP floor `c` of the effective measurement variance `s_i² = σ_y² + c σ_i²`, which
    /// keeps σ_y = 0 well posed and anneals the data term. Default 0.1; must be > 0 for
    /// vml-map-pre.
    pub sigma_y_floor: Option<f64>,
    /// VML-MAP re-noising rule between steps. Default stochastic.
    pub renoise: Option<Renoise>,
    /// VML-MAP initialisation. Default pinv.
    pub init: Option<Init>,
    /// Smallest σ of the Karras schedule: VML-MAP (default: the denoiser's σ_min), DAPS's
    /// annealing (default 0.1).
    pub sigma_min: Option<f64>,
    /// Largest σ of the Karras schedule: VML-MAP (default: min(10, the denoiser's σ_max) for
    /// vml-map, the denoiser's σ_max for vml-map-pre), DAPS (min(100, the denoiser's σ_max)).
    pub sigma_max: Option<f64>,
    /// Karras ρ (VML-MAP, DAPS). Default 7.
    pub rho: Option<f64>,
    /// DPS guidance scale ζ (step `ζ / ‖y − H x̂0‖`). Default 0.3 (`dps::Dps::DEFAULT_SCALE`).
    pub dps_scale: Option<f64>,
    /// Stochasticity η: DDRM (default 0.85), ΠGDM's DDIM sampler (default 1) and DiffPIR's
    /// re-noising (default 0).
    pub eta: Option<f64>,
    /// DDRM η_b. Default 1.
    pub eta_b: Option<f64>,
    /// DDRM: singular values below this count as zero (null space). Default 3e-2.
    pub svd_cutoff: Option<f64>,
    /// Clamp x̂0 to [-1, 1] inside the steps: VML-MAP (the x̂0 each level re-noises from;
    /// default true), DPS (default true, as its reference code), ΠGDM (default false) and
    /// DiffPIR (before the data step; default true).
    pub clip_denoised: Option<bool>,
    /// λ: DiffPIR's prior weight in ρ_t = λ σ_n²/σ_t² (default 1); RED-diff's regulariser
    /// weight (default 0.25).
    pub lambda: Option<f64>,
    /// DiffPIR ζ, the share of fresh noise when re-noising. Default 0.1.
    pub zeta: Option<f64>,
    /// DAPS: Euler steps of the probability-flow ODE per annealing level. Default 5.
    pub ode_steps: Option<usize>,
    /// DAPS data-fitting scale τ (the Langevin target's `‖y − Hx‖²/τ²`). Default 0.01.
    pub tau: Option<f64>,
    /// DAPS: the last level's Langevin step size relative to the first. Default 0.01.
    pub lr_min_ratio: Option<f64>,
    /// VML-MAP: the levels whose x̂0 takes the proximal step of the data term, with the
    /// trust τ in x̂0 that its residual implies (operators with an SVD; docs/algorithm.md,
    /// "Data fit"). Default every, or last for an inpainting hole wider than 16 pixels
    /// from its edge (`Operator::fits_every_level`).
    pub data_fit: Option<DataFit>,
    /// VML-MAP: restorations averaged, each from its own seeds, then fitted to the data
    /// again. Default 1 (the MAP estimate itself); 3 gained 0.15–0.18 dB on JPEG at three
    /// times the network passes (docs/algorithm.md, "Averaged samples").
    pub samples: Option<usize>,
}

impl SolverOptions {
    /// The share of these settings that `method` takes, typed, laid over `method`'s preset
    /// for `self.quality`. A set field that `T` does not have is a usage error naming the
    /// field and the ones `method` takes.
    /// The first float setting that is NaN or infinite. Destructured without `..`, so a new
    /// field must be sorted here.
    fn non_finite(&self) -> Option<&'static str> {
        let SolverOptions {
            quality: _,
            steps: _,
            iters: _,
            step_size,
            prior_step_cap,
            sigma_y_floor,
            renoise: _,
            init: _,
            sigma_min,
            sigma_max,
            rho,
            dps_scale,
            eta,
            eta_b,
            svd_cutoff,
            clip_denoised: _,
            lambda,
            zeta,
            ode_steps: _,
            tau,
            lr_min_ratio,
            data_fit: _,
            samples: _,
        } = self;
        [
            ("step_size", step_size),
            ("prior_step_cap", prior_step_cap),
            ("sigma_y_floor", sigma_y_floor),
            ("sigma_min", sigma_min),
            ("sigma_max", sigma_max),
            ("rho", rho),
            ("dps_scale", dps_scale),
            ("eta", eta),
            ("eta_b", eta_b),
            ("svd_cutoff", svd_cutoff),
            ("lambda", lambda),
            ("zeta", zeta),
            ("tau", tau),
            ("lr_min_ratio", lr_min_ratio),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| !v.is_finite()))
        .map(|(k, _)| k)
    }

    fn typed<T: serde::de::DeserializeOwned + Serialize>(
        &self,
        method: Method,
        preset: impl Fn(Quality) -> T,
    ) -> Result<T> {
        let set_fields = |v: serde_json::Value| match v {
            serde_json::Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            _ => serde_json::Map::new(),
        };
        fn to_value(v: impl Serialize) -> Result<serde_json::Value> {
            serde_json::to_value(v).map_err(|e| Error::Internal(format!("solver options: {e}")))
        }
        // Every field of `T` (unset ones serialise as null), to name them in the error.
        let takes: Vec<String> = match to_value(preset(Quality::Normal))? {
            serde_json::Value::Object(m) => m.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        };
        // JSON has no NaN or infinity (serde writes null), so a non-finite number would
        // pass as "not set" below: refuse it by name first.
        if let Some(k) = self.non_finite() {
            return Err(Error::Usage(format!("{k} must be a finite number")));
        }
        let mut own = set_fields(to_value(self)?);
        own.remove("quality");
        if let Some(k) = own.keys().find(|k| !takes.contains(k)) {
            let its = match takes.is_empty() {
                true => "it takes none".to_string(),
                false => format!("its options: {}", takes.join(", ")),
            };
            return Err(Error::Usage(format!(
                "{method} does not take the option {k} ({its})"
            )));
        }
        let mut fields = set_fields(to_value(preset(self.quality.unwrap_or_default()))?);
        fields.extend(own);
        serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| Error::Usage(format!("{method} options: {e}")))
    }
}

/// Declares a fieldless enum whose values are named by fixed strings, and from that one
/// list of names: `ALL`, `name`, `names`, `Display`, `FromStr`, serde as the name, a JSON
/// Schema (a string enum, each value with its doc text) and, with the `cli` feature, clap's
/// `ValueEnum`. The command line, the protocol, its schema, `bench` and the plug-ins'
/// checks all read these, so a new value is added in one place.
macro_rules! named_enum {
    (
        $(#[doc = $tdoc:literal])*
        $vis:vis enum $ty:ident: $what:literal, default $default:ident {
            $( $(#[doc = $doc:literal])+ $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[doc = $tdoc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $ty {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::$default
            }
        }

        impl $ty {
            /// Every value, in the order help texts list them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            /// Every name, in [`Self::ALL`]'s order.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.name()).collect()
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            /// The message of a usage error (`Error::Usage` where one is made).
            type Err = String;

            fn from_str(name: &str) -> std::result::Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.name() == name).ok_or_else(|| {
                    format!(
                        "{} '{name}' is not one of {}",
                        $what,
                        Self::names().join(", ")
                    )
                })
            }
        }

        serde_by_name!($ty);

        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $what.into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let doc = |lines: &[&str]| {
                    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
                };
                let values: Vec<serde_json::Value> = vec![$(
                    serde_json::json!({
                        "const": $text,
                        "description": doc(&[$($doc),*]),
                    })
                ),+];
                schemars::json_schema!({
                    "type": "string",
                    "description": doc(&[$($tdoc),*]),
                    "oneOf": values,
                })
            }
        }

        #[cfg(feature = "cli")]
        impl clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.name()))
            }
        }
    };
}

named_enum! {
    /// A budget preset: how long a method may take. `normal` is each method's default
    /// budget; `fast` and `best` trade quality for time one way or the other, per method
    /// (the `preset` function of each method's module; measured in docs/benchmarks.md,
    /// "Quality presets").
    pub enum Quality: "quality", default Normal {
        /// A fraction of the default budget.
        Fast = "fast",
        /// The method's default budget.
        Normal = "normal",
        /// More steps than the default where they still help.
        Best = "best",
    }
}

impl Quality {
    /// The preset's value of one setting: `fast` or `best`, or `None` (the method's own
    /// default) for `normal`.
    pub fn pick<T>(self, fast: T, best: T) -> Option<T> {
        match self {
            Quality::Fast => Some(fast),
            Quality::Normal => None,
            Quality::Best => Some(best),
        }
    }
}

named_enum! {
    /// The restoration methods, named as the command line, the protocol, the plug-ins and
    /// `bench` name them.
    pub enum Method: "method", default VmlMap {
        /// Variational mode-seeking MAP, one objective per reverse step (the default).
        VmlMap = "vml-map",
        /// VML-MAP preconditioned by the operator's SVD.
        VmlMapPre = "vml-map-pre",
        /// Diffusion posterior sampling (Chung et al., 2023).
        Dps = "dps",
        /// Denoising diffusion restoration models (Kawar et al., 2022); needs an SVD.
        Ddrm = "ddrm",
        /// Pseudo-inverse guided diffusion (Song et al., 2023); an SVD when σ_y > 0.
        Pigdm = "pigdm",
        /// Plug-and-play diffusion with a proximal data step (Zhu et al., 2023).
        Diffpir = "diffpir",
        /// Regularisation by denoising diffusion (Mardani et al., 2024).
        RedDiff = "red-diff",
        /// Decoupled annealing posterior sampling (Zhang et al., 2025).
        Daps = "daps",
        /// The operator's classical estimate (bicubic, Wiener, harmonic fill); no network.
        Classical = "classical",
    }
}

impl Method {
    /// Whether it runs a diffusion network (all but the classical baselines).
    pub fn needs_network(self) -> bool {
        self != Method::Classical
    }

    /// Whether it needs the operator's SVD whatever the settings (ΠGDM needs one only at
    /// σ_y > 0, and says so when it has none).
    pub fn needs_svd(self) -> bool {
        matches!(self, Method::Ddrm | Method::VmlMapPre)
    }

    /// Whether it needs a linear operator (its data step is a linear solve or an SVD):
    /// those that need an SVD, ΠGDM and DiffPIR. The others take any operator's VJP.
    pub fn needs_linear(self) -> bool {
        self.needs_svd() || matches!(self, Method::Pigdm | Method::Diffpir)
    }

    /// Whether pictures of one size may be solved as one batch (`pipeline::restore_all`):
    /// the method treats the images of a batch independently, so image i comes out as it
    /// does alone with its seed (to the last bits of batched arithmetic), and it has a
    /// network call to share. The audit, method by method (docs/batch.md, "Grouping"):
    ///
    /// - vml-map, vml-map-pre: the VJP sums `D·g` over the batch, whose gradient is each
    ///   image's own; the step sizes come from σ_i, σ_y and ‖H‖², shared by construction.
    ///   Its `init classical` goes through `operators::classical::restore`, which solves one
    ///   image at a time.
    /// - dps: the residual norm is taken per image, then summed.
    /// - ddrm, pigdm: element-wise in the spectral basis.
    /// - diffpir: the SVD proximal step is per coefficient; the conjugate gradients without
    ///   an SVD stop each image on its own residual (a converged image takes steps of 0).
    /// - red-diff: its loss is a mean per image (`red_diff::loss_gradient`; the reference's
    ///   batch mean would divide by N, which Adam's ε does not cancel), and Adam is
    ///   element-wise.
    /// - daps: element-wise; its divergence check fails the whole batch when one image
    ///   diverges, and a failed group is solved again one picture at a time.
    /// - classical: independent too (one image at a time), but without a network there is
    ///   no call to share, so it is not grouped.
    pub fn batches(self) -> bool {
        match self {
            Method::VmlMap
            | Method::VmlMapPre
            | Method::Dps
            | Method::Ddrm
            | Method::Pigdm
            | Method::Diffpir
            | Method::RedDiff
            | Method::Daps => true,
            Method::Classical => false,
        }
    }
}

/// Builds the solver for `method` from the settings it takes (an option of another method
/// is a usage error).
pub fn build(method: Method, opts: &SolverOptions) -> Result<Box<dyn Solver>> {
    Ok(match method {
        Method::VmlMap => Box::new(vml_map::VmlMap::new(
            &opts.typed(method, vml_map::Options::preset)?,
            false,
        )?),
        Method::VmlMapPre => Box::new(vml_map::VmlMap::new(
            &opts.typed(method, vml_map::Options::preset_pre)?,
            true,
        )?),
        Method::Dps => Box::new(dps::Dps::new(&opts.typed(method, dps::Options::preset)?)?),
        Method::Ddrm => Box::new(ddrm::Ddrm::new(
            &opts.typed(method, ddrm::Options::preset)?,
        )?),
        Method::Pigdm => Box::new(pigdm::Pigdm::new(
            &opts.typed(method, pigdm::Options::preset)?,
        )?),
        Method::Classical => {
            // No settings at all; the preset is meaningless but harmless.
            let classical::Options {} = opts.typed(method, |_| classical::Options {})?;
            Box::new(classical::Classical)
        }
        Method::Diffpir => Box::new(diffpir::Diffpir::new(
            &opts.typed(method, diffpir::Options::preset)?,
        )?),
        Method::RedDiff => Box::new(red_diff::RedDiff::new(
            &opts.typed(method, red_diff::Options::preset)?,
        )?),
        Method::Daps => Box::new(daps::Daps::new(
            &opts.typed(method, daps::Options::preset)?,
        )?),
    })
}

/// Checks that `problem` fits its operator; returns the batch size N.
pub(crate) fn check_problem(problem: &Problem) -> Result<i64> {
    let size = problem.y.size();
    let want = problem.op.y_shape();
    if size.len() != 4 || size[1..] != want[..] {
        return Err(Error::Input(format!(
            "measurement has shape {size:?} but {} gives (N, {}, {}, {})",
            problem.op.name(),
            want[0],
            want[1],
            want[2]
        )));
    }
    if !(problem.sigma_y.is_finite() && problem.sigma_y >= 0.0) {
        return Err(Error::Usage(format!(
            "σ_y must be ≥ 0, got {}",
            problem.sigma_y
        )));
    }
    Ok(size[0])
}

/// `(N, C, H, W)` of the images the operator takes, for batch size `n`.
pub(crate) fn x_size(problem: &Problem, n: i64) -> [i64; 4] {
    let [c, h, w] = problem.op.x_shape();
    [n, c, h, w]
}

/// `D(x, σ)` and the vector-Jacobian product `Jᵀ g` with `J = ∂D/∂x` at `x`, for a `g`
/// computed from `D` by `make_g`. One forward and one backward; the graph is dropped before
/// returning, so memory stays flat across iterations.
pub(crate) fn denoise_vjp(
    denoiser: &dyn Denoiser,
    x: &Tensor,
    sigma: f64,
    make_g: impl FnOnce(&Tensor) -> Tensor,
) -> Result<(Tensor, Tensor)> {
    let x_req = x.detach().set_requires_grad(true);
    let d = denoiser.denoise(&x_req, sigma);
    let d_val = d.detach();
    let g = tch::no_grad(|| make_g(&d_val));
    let s = (&d * &g).sum(Kind::Double);
    let mut grads = Tensor::f_run_backward(&[s], &[&x_req], false, false)?;
    let jtg = grads
        .pop()
        .ok_or_else(|| Error::Internal("backward pass returned no gradient".into()))?;
    Ok((d_val, jtg.detach()))
}

/// The σ of the denoiser's own discrete timesteps (ascending), or the DDPM table of the
/// guided-diffusion networks when it has none.
pub(crate) fn table_sigmas(denoiser: &dyn Denoiser) -> Vec<f64> {
    denoiser
        .discrete_sigmas()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| crate::diffusion::VpSchedule::ddpm().sigmas().to_vec())
}

/// Timesteps `0, k, 2k, …` below `total` with stride `k = total / steps`, descending (the
/// respacing of the DDRM and ΠGDM reference code).
pub(crate) fn strided_timesteps(total: usize, steps: usize) -> Result<Vec<usize>> {
    let stride = total.checked_div(steps).unwrap_or(0);
    if stride == 0 {
        return Err(Error::Usage(format!(
            "{steps} steps is more than the network's {total} timesteps"
        )));
    }
    Ok((0..total).step_by(stride).rev().collect())
}

/// The noise of one solve, drawn from its seeds alone (`crate::rng`) on the host and copied
/// to the device: not LibTorch's global generator, which other threads of the process (a
/// second solve, training) may be drawing from at the same time; and the same seed gives the
/// same noise on every device. One stream for the whole batch, or one per image: then
/// every draw, always of shape `(N, …)`, takes row i from stream i, the numbers image i
/// would get solved alone (each draw takes `numel / N` from each stream, as a batch of one
/// takes `numel`).
pub(crate) struct Noise(Vec<crate::rng::SplitMix64>);

impl Noise {
    /// One stream.
    pub fn new(seed: u64) -> Self {
        Noise(vec![crate::rng::SplitMix64::new(seed)])
    }

    /// The streams of a batch of `n` images: one seed for all, or one per image.
    pub fn for_batch(seeds: &[u64], n: i64) -> Result<Self> {
        if seeds.len() != 1 && seeds.len() as i64 != n {
            return Err(Error::Usage(format!(
                "{} seeds for a batch of {n} images: give one, or one per image",
                seeds.len()
            )));
        }
        Ok(Noise(
            seeds
                .iter()
                .map(|&s| crate::rng::SplitMix64::new(s))
                .collect(),
        ))
    }

    /// Standard normal samples of `size`, in `options` (kind, device).
    pub fn normal(&mut self, size: &[i64], options: (Kind, tch::Device)) -> Tensor {
        let total = crate::rng::numel(size);
        // Every draw of a solver is `(N, …)` with N the batch, the number of streams.
        let each = total / self.0.len().max(1);
        let v: Vec<f32> = self
            .0
            .iter_mut()
            .flat_map(|r| r.normals_open(each))
            .map(|x| x as f32)
            .collect();
        Tensor::from_slice(&v)
            .reshape(size)
            .to_kind(options.0)
            .to_device(options.1)
    }
}

/// Counters behind `Progress`.
#[derive(Default)]
pub(crate) struct Counter {
    pub forwards: usize,
    pub vjps: usize,
}

impl Counter {
    pub fn report(
        &self,
        step: usize,
        steps: usize,
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Control {
        on_progress(Progress {
            step,
            steps,
            forwards: self.forwards,
            vjps: self.vjps,
        })
    }
}

/// The usage error a method that needs a linear operator (its SVD or exact pseudo-inverse)
/// gives for a nonlinear one (JPEG).
pub(crate) fn require_linear(op: &dyn Operator, method: &str) -> crate::Result<()> {
    match op.is_linear() {
        true => Ok(()),
        false => Err(not_linear(method, &op.name())),
    }
}

/// Refuses, before anything is loaded, a method that cannot take the task's operator at
/// all (the solver would refuse it after the model load).
pub fn check_method_for(method: Method, task: &crate::task::Task) -> crate::Result<()> {
    match method.needs_linear() && !task.is_linear() {
        true => Err(not_linear(method.name(), "JPEG compression")),
        false => Ok(()),
    }
}

fn not_linear(method: &str, what: &str) -> Error {
    let others: Vec<&str> = Method::ALL
        .iter()
        .filter(|m| !m.needs_linear())
        .map(|m| m.name())
        .collect();
    Error::Usage(format!(
        "{method} needs a linear operator; {what} is not linear (use {})",
        others.join(", ")
    ))
}

/// The operator's SVD, or the usage error every SVD-based method gives without one.
pub(crate) fn require_svd<'a>(
    op: &'a dyn Operator,
    method: &str,
) -> crate::Result<&'a dyn crate::operators::Svd> {
    require_linear(op, method)?;
    op.svd().ok_or_else(|| {
        crate::Error::Usage(format!(
            "{method} needs an operator with an SVD; {} has none",
            op.name()
        ))
    })
}

/// The operator's singular values as one flat float vector on `device`, checked against the
/// image dimension `d` (an SVD with more singular values than pixels is malformed).
pub(crate) fn singular_values(
    svd: &dyn crate::operators::Svd,
    op: &dyn Operator,
    d: i64,
    device: tch::Device,
) -> Result<Tensor> {
    let s = svd
        .singular_values()
        .to_kind(Kind::Float)
        .to_device(device)
        .flatten(0, -1);
    let m = s.size()[0];
    if m > d {
        return Err(Error::Input(format!(
            "{} reports {m} singular values for {d} pixels",
            op.name()
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod method_tests {
    use super::Method;

    #[test]
    fn names_round_trip_and_only_classical_needs_no_network() {
        for &m in Method::ALL {
            assert_eq!(m.name().parse::<Method>(), Ok(m));
            assert_eq!(m.needs_network(), m != Method::Classical);
        }
        let err = "vml".parse::<Method>().unwrap_err();
        assert!(
            err.contains(
                "vml-map, vml-map-pre, dps, ddrm, pigdm, diffpir, red-diff, daps, classical"
            ),
            "{err}"
        );
        assert_eq!(Method::default(), Method::VmlMap);
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn an_option_of_another_method_is_a_usage_error_naming_it() {
        let o = SolverOptions {
            iters: Some(2),
            ..Default::default()
        };
        assert!(build(Method::VmlMap, &o).is_ok());
        let e = build(Method::Dps, &o).err().expect("dps takes no iters");
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        let m = e.to_string();
        assert!(m.contains("dps does not take the option iters"), "{m}");
        // Named in alphabetical order.
        assert!(
            m.contains("its options: clip_denoised, dps_scale, steps"),
            "{m}"
        );
        let steps = SolverOptions {
            steps: Some(3),
            ..Default::default()
        };
        let m = build(Method::Classical, &steps).err().unwrap().to_string();
        assert!(
            m.contains("classical does not take the option steps (it takes none)"),
            "{m}"
        );
        // A preset alone is fine for every method, the classical one included.
        for &q in Quality::ALL {
            let o = SolverOptions {
                quality: Some(q),
                ..Default::default()
            };
            for &m in Method::ALL {
                assert!(build(m, &o).is_ok(), "{m} {q}");
            }
        }
    }

    #[test]
    fn presets_set_the_budget_and_explicit_fields_override_them() {
        let fast = SolverOptions {
            quality: Some(Quality::Fast),
            ..Default::default()
        };
        let o: vml_map::Options = fast
            .typed(Method::VmlMap, vml_map::Options::preset)
            .unwrap();
        assert_eq!((o.steps, o.iters), (Some(5), Some(1)));
        let mixed = SolverOptions {
            iters: Some(4),
            ..fast.clone()
        };
        let o: vml_map::Options = mixed
            .typed(Method::VmlMap, vml_map::Options::preset)
            .unwrap();
        assert_eq!((o.steps, o.iters), (Some(5), Some(4)));
        let o: vml_map::Options = fast
            .typed(Method::VmlMapPre, vml_map::Options::preset_pre)
            .unwrap();
        assert_eq!((o.steps, o.iters), (Some(10), Some(1)));
        // `normal` is the method's defaults: nothing set.
        let normal = SolverOptions {
            quality: Some(Quality::Normal),
            ..Default::default()
        };
        let o: dps::Options = normal.typed(Method::Dps, dps::Options::preset).unwrap();
        assert_eq!(o, dps::Options::default());
        let o: ddrm::Options = SolverOptions {
            quality: Some(Quality::Best),
            ..Default::default()
        }
        .typed(Method::Ddrm, ddrm::Options::preset)
        .unwrap();
        assert_eq!(o.steps, Some(100));
        for &q in Quality::ALL {
            assert_eq!(q.name().parse::<Quality>(), Ok(q));
        }
        assert!("quick".parse::<Quality>().is_err());
    }
}
