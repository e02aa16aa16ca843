//! The benchmark's records: one CSV row per run (appended as runs finish), and what is
//! rebuilt from all rows at the end: results.json, the markdown summary of means, and one
//! picture grid per degradation and noise level.

use super::{MethodSpec, TaskSpec};
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What a row is about: a photo, a degradation and a noise level.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Key {
    pub image: String,
    pub task: String,
    pub sigma_y: f64,
}

impl Key {
    pub fn new(image: &str, task: &str, sigma_y: f64) -> Self {
        Self {
            image: image.into(),
            task: task.into(),
            sigma_y,
        }
    }

    /// `<image>_<task>_sy<σ_y>_<what>.png` in the run's images/ folder.
    pub fn file_name(&self, what: &str) -> String {
        format!(
            "{}_{}_sy{}_{}.png",
            self.image,
            self.task,
            self.sigma_y,
            what.replace(
                |c: char| !(c.is_ascii_alphanumeric() || "-._=".contains(c)),
                "-"
            )
        )
    }
}

/// One run: quality against the clean photo, consistency with the measurement, and cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub key: Key,
    /// The method spec as given (`vml-map:50x3`).
    pub method: String,
    /// The method itself (`vml-map`).
    pub method_name: String,
    /// `ok`, or `n/a` when the method cannot handle the operator.
    pub status: String,
    /// dB, on [0, 1] pixels.
    pub psnr: f64,
    pub ssim: f64,
    /// Root mean square of `y − H x̂` on the [-1, 1] scale (≈ σ_y for a consistent answer).
    pub consistency: f64,
    pub steps: usize,
    pub forwards: usize,
    pub vjps: usize,
    pub wall_s: f64,
    /// Peak resident memory of the process during the run (MiB), where the system says.
    pub peak_rss_mb: Option<f64>,
}

const HEADER: &str =
    "image,task,sigma_y,method,method_name,status,psnr,ssim,consistency,steps,forwards,vjps,wall_s,peak_rss_mb";

impl Row {
    pub fn not_applicable(method: &str, why: &str) -> Self {
        log::debug!("{method}: {why}");
        Self {
            method_name: method.into(),
            status: "n/a".into(),
            psnr: f64::NAN,
            ssim: f64::NAN,
            consistency: f64::NAN,
            ..Self::default()
        }
    }

    fn ok(&self) -> bool {
        self.status == "ok"
    }

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{:.4},{:.5},{:.6},{},{},{},{:.3},{}",
            self.key.image,
            self.key.task,
            self.key.sigma_y,
            self.method,
            self.method_name,
            self.status,
            self.psnr,
            self.ssim,
            self.consistency,
            self.steps,
            self.forwards,
            self.vjps,
            self.wall_s,
            self.peak_rss_mb
                .map(|m| format!("{m:.1}"))
                .unwrap_or_default()
        )
    }

    fn from_csv(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 14 {
            return None;
        }
        Some(Self {
            key: Key::new(f[0], f[1], f[2].parse().ok()?),
            method: f[3].into(),
            method_name: f[4].into(),
            status: f[5].into(),
            psnr: f[6].parse().ok()?,
            ssim: f[7].parse().ok()?,
            consistency: f[8].parse().ok()?,
            steps: f[9].parse().ok()?,
            forwards: f[10].parse().ok()?,
            vjps: f[11].parse().ok()?,
            wall_s: f[12].parse().ok()?,
            peak_rss_mb: f[13].parse().ok(),
        })
    }
}

/// The rows of an earlier run (none when the file does not exist).
pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut lines = text.lines();
    if lines.next().is_some_and(|h| h != HEADER) {
        return Err(Error::Input(format!(
            "{} was written by another version of the benchmark; move it away or drop --resume",
            path.display()
        )));
    }
    // A run killed while appending leaves a partial last line: drop it, it will be redone.
    Ok(lines.filter_map(Row::from_csv).collect())
}

pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.csv());
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(())
}

pub fn append_csv(path: &Path, row: &Row) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    writeln!(f, "{}", row.csv())?;
    f.flush()?;
    Ok(())
}

pub fn progress_line(row: &Row, done: usize, total: usize) -> String {
    serde_json::json!({
        "event": "run",
        "done": done,
        "total": total,
        "image": row.key.image,
        "task": row.key.task,
        "sigma_y": row.key.sigma_y,
        "method": row.method,
        "status": row.status,
        "psnr": finite(row.psnr),
        "wall_s": row.wall_s,
    })
    .to_string()
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Means over the photos of one (task, σ_y, method).
#[derive(Debug, Serialize)]
pub struct Mean {
    pub task: String,
    pub sigma_y: f64,
    pub method: String,
    pub images: usize,
    pub psnr: Option<f64>,
    pub ssim: Option<f64>,
    pub consistency: Option<f64>,
    pub forwards: f64,
    pub vjps: f64,
    pub wall_s: f64,
    pub peak_rss_mb: Option<f64>,
}

/// The (task, σ_y) groups in the order of the run, then the methods in the order given,
/// followed by those only found in the rows (from an earlier, resumed run).
fn means(rows: &[Row], tasks: &[TaskSpec], methods: &[MethodSpec]) -> Vec<Mean> {
    let mut groups: Vec<(String, f64)> = Vec::new();
    let mut order: Vec<String> = tasks.iter().map(|t| t.label.clone()).collect();
    for r in rows {
        if !order.contains(&r.key.task) {
            order.push(r.key.task.clone());
        }
    }
    for task in &order {
        let mut levels: Vec<f64> = Vec::new();
        for r in rows.iter().filter(|r| &r.key.task == task) {
            if !levels.contains(&r.key.sigma_y) {
                levels.push(r.key.sigma_y);
            }
        }
        levels.sort_by(f64::total_cmp);
        groups.extend(levels.into_iter().map(|s| (task.clone(), s)));
    }
    let mut labels: Vec<String> = methods.iter().map(|m| m.label.clone()).collect();
    for r in rows {
        if !labels.contains(&r.method) {
            labels.push(r.method.clone());
        }
    }
    let mut out = Vec::new();
    for (task, sigma_y) in groups {
        for m in &labels {
            let sel: Vec<&Row> = rows
                .iter()
                .filter(|r| r.key.task == task && r.key.sigma_y == sigma_y && &r.method == m)
                .collect();
            if sel.is_empty() {
                continue;
            }
            let ok: Vec<&&Row> = sel.iter().filter(|r| r.ok()).collect();
            let n = ok.len();
            let avg = |f: &dyn Fn(&Row) -> f64| -> Option<f64> {
                (n > 0).then(|| ok.iter().map(|r| f(r)).sum::<f64>() / n as f64)
            };
            out.push(Mean {
                task: task.clone(),
                sigma_y,
                method: m.clone(),
                images: n,
                psnr: avg(&|r| r.psnr),
                ssim: avg(&|r| r.ssim),
                consistency: avg(&|r| r.consistency),
                forwards: avg(&|r| r.forwards as f64).unwrap_or(0.0),
                vjps: avg(&|r| r.vjps as f64).unwrap_or(0.0),
                wall_s: avg(&|r| r.wall_s).unwrap_or(0.0),
                peak_rss_mb: ok.iter().filter_map(|r| r.peak_rss_mb).reduce(f64::max),
            });
        }
    }
    out
}

fn markdown(means: &[Mean], run: &serde_json::Value) -> String {
    let mut s = String::from("# Benchmark summary\n\n");
    s.push_str(&format!(
        "Run: `{}`  \nDevice {}, {} LibTorch threads, model {}, {} px crops. Means over the photos; \
         consistency is the RMS of y − H x̂ on the [-1, 1] scale; fwd / VJP count network \
         evaluations; peak RSS is the process's during the run.\n",
        run["command"].as_str().unwrap_or(""),
        run["device"].as_str().unwrap_or("?"),
        run["threads"],
        run["model"].as_str().unwrap_or("?"),
        run["size"],
    ));
    let mut current: Option<(&str, f64)> = None;
    let num = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "n/a".into(),
    };
    for m in means {
        if current != Some((m.task.as_str(), m.sigma_y)) {
            current = Some((m.task.as_str(), m.sigma_y));
            s.push_str(&format!(
                "\n## {}, σ_y = {}\n\n| method | photos | PSNR dB | SSIM | ‖y − Hx̂‖ rms | fwd | VJP | wall s | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                m.task, m.sigma_y
            ));
        }
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} |\n",
            m.method,
            m.images,
            num(m.psnr, 2),
            num(m.ssim, 4),
            num(m.consistency, 4),
            m.forwards,
            m.vjps,
            m.wall_s,
            num(m.peak_rss_mb, 0),
        ));
    }
    s
}

/// results.json, summary.md and grids/ from every row.
pub fn write_all(
    out: &Path,
    rows: &[Row],
    tasks: &[TaskSpec],
    methods: &[MethodSpec],
    run: &serde_json::Value,
) -> Result<()> {
    let means = means(rows, tasks, methods);
    let rows_json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            // JSON has no NaN: methods that did not run have null scores.
            for k in ["psnr", "ssim", "consistency"] {
                if v[k].is_null() || v[k].as_f64().is_some_and(|x| !x.is_finite()) {
                    v[k] = serde_json::Value::Null;
                }
            }
            v
        })
        .collect();
    let json = serde_json::json!({ "run": run, "rows": rows_json, "means": means });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json).map_err(|e| Error::Input(e.to_string()))?,
    )?;
    std::fs::write(out.join("summary.md"), markdown(&means, run))?;
    write_grids(out, rows, methods)
}

/// One picture per (task, σ_y): a row per photo (at most four), columns clean,
/// measurement, then each method in the order given.
fn write_grids(out: &Path, rows: &[Row], methods: &[MethodSpec]) -> Result<()> {
    let dir = out.join("grids");
    std::fs::create_dir_all(&dir)?;
    let mut groups: Vec<(String, f64)> = Vec::new();
    for r in rows {
        let g = (r.key.task.clone(), r.key.sigma_y);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut columns = vec!["clean".to_string(), "measurement".to_string()];
    columns.extend(methods.iter().map(|m| m.label.clone()));
    for (task, sigma_y) in groups {
        let mut photos: Vec<&str> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.key.task == task && r.key.sigma_y == sigma_y)
        {
            if !photos.contains(&r.key.image.as_str()) && photos.len() < 4 {
                photos.push(&r.key.image);
            }
        }
        let cells: Vec<Vec<Option<image::RgbImage>>> = photos
            .iter()
            .map(|p| {
                let key = Key::new(p, &task, sigma_y);
                columns
                    .iter()
                    .map(|c| {
                        image::open(out.join("images").join(key.file_name(c)))
                            .ok()
                            .map(|i| i.to_rgb8())
                    })
                    .collect()
            })
            .collect();
        if let Some(grid) = compose(&cells) {
            let path = dir.join(format!("{task}_sy{sigma_y}.png"));
            grid.save(&path).map_err(|e| {
                Error::Io(std::io::Error::other(format!("{}: {e}", path.display())))
            })?;
        }
    }
    std::fs::write(dir.join("columns.txt"), format!("{}\n", columns.join(", ")))?;
    Ok(())
}

/// Tiles the cells with a 4-pixel white gap; missing cells are left light gray.
fn compose(cells: &[Vec<Option<image::RgbImage>>]) -> Option<image::RgbImage> {
    const GAP: u32 = 4;
    let first = cells.iter().flatten().flatten().next()?;
    let (tw, th) = first.dimensions();
    let ncols = cells.iter().map(Vec::len).max()? as u32;
    let nrows = cells.len() as u32;
    let mut grid = image::RgbImage::from_pixel(
        ncols * (tw + GAP) - GAP,
        nrows * (th + GAP) - GAP,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in cells.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (x0, y0) = (c as u32 * (tw + GAP), r as u32 * (th + GAP));
            let blank = image::RgbImage::from_pixel(tw, th, image::Rgb([210, 210, 210]));
            let tile = match cell {
                Some(t) if t.dimensions() == (tw, th) => t,
                _ => &blank,
            };
            image::imageops::replace(&mut grid, tile, x0 as i64, y0 as i64);
        }
    }
    Some(grid)
}
