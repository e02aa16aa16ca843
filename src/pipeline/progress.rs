//! Progress of a restore on stderr: a terminal bar with elapsed time and an estimate of
//! what is left, or JSON lines (docs/protocol.md, "Progress"). Every report also polls the
//! signal flag, which is how SIGINT/SIGTERM stop a solver between two steps. Used by the
//! plain filter and by serve mode alike.

use super::signals;
use crate::solvers::Control;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ProgressKind {
    Json,
    Bar,
    None,
}

/// Progress on stderr as a bar or JSON lines; every report also polls the signal flag.
pub struct Reporter {
    kind: ProgressKind,
    last_fraction: f64,
    last_stage: String,
    /// The terminal bar (`ProgressKind::Bar` only).
    bar: Option<Bar>,
}

/// How often the bar is redrawn between reports, so that the clock moves while one long
/// solver step runs (the first step of a large tile can take minutes on a CPU).
const TICK: Duration = Duration::from_secs(1);

/// The bar's state, shared with the thread that redraws it every [`TICK`].
struct BarState {
    out: Box<dyn Write + Send>,
    started: Instant,
    fraction: f64,
    stage: String,
    last_draw: Option<Instant>,
}

impl BarState {
    fn draw(&mut self, now: Instant) {
        let width = 30usize;
        let f = self.fraction.clamp(0.0, 1.0);
        let filled = (f * width as f64).round() as usize;
        let _ = write!(
            self.out,
            "\r\x1b[2Kvml-filter [{}{}] {:>3.0}% {} {}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            f * 100.0,
            self.stage,
            timing(now.duration_since(self.started), f)
        );
        let _ = self.out.flush();
        self.last_draw = Some(now);
    }
}

struct Bar {
    state: Arc<Mutex<BarState>>,
    /// Dropping the sender stops the ticker thread.
    ticker: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Bar {
    fn new(out: Box<dyn Write + Send>) -> Self {
        let state = Arc::new(Mutex::new(BarState {
            out,
            started: Instant::now(),
            fraction: 0.0,
            stage: String::new(),
            last_draw: None,
        }));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&state);
        let ticker = std::thread::Builder::new()
            .name("progress-bar".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let Ok(mut s) = shared.lock() else { return };
                    let now = Instant::now();
                    // Only once there is a bar, and only when no report redrew it lately.
                    if s.last_draw.is_some_and(|t| now.duration_since(t) >= TICK) {
                        s.draw(now);
                    }
                }
            })
            .ok()
            .map(|handle| (stop, handle));
        Bar { state, ticker }
    }

    fn report(&self, fraction: f64, stage: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        let now = Instant::now();
        let due = s
            .last_draw
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100));
        let changed = stage != s.stage;
        s.fraction = fraction;
        if changed {
            s.stage = stage.to_string();
        }
        if due || changed || fraction >= 1.0 {
            s.draw(now);
        }
    }

    /// Ends the bar's line; the ticker waits for the next report before it draws again.
    fn end_line(&self) {
        if let Ok(mut s) = self.state.lock() {
            if s.last_draw.take().is_some() {
                let _ = writeln!(s.out);
                let _ = s.out.flush();
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            drop(stop);
            let _ = handle.join();
        }
        self.end_line();
    }
}

impl Reporter {
    pub fn new(kind: ProgressKind) -> Self {
        Self::with_bar_output(kind, Box::new(std::io::stderr()))
    }

    /// A reporter whose bar (if `kind` is a bar) writes to `out` instead of stderr.
    fn with_bar_output(kind: ProgressKind, out: Box<dyn Write + Send>) -> Self {
        Reporter {
            kind,
            last_fraction: -1.0,
            last_stage: String::new(),
            bar: (kind == ProgressKind::Bar).then(|| Bar::new(out)),
        }
    }

    pub fn report(&mut self, fraction: f64, stage: &str) -> Control {
        match (&self.bar, self.kind) {
            (Some(bar), _) => bar.report(fraction, stage),
            (None, ProgressKind::Json) => {
                // Keep the stream small: a line per 0.1 % and per stage change.
                if stage != self.last_stage || (fraction - self.last_fraction).abs() >= 1e-3 {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{}", crate::protocol::progress_line(fraction, stage));
                    self.last_fraction = fraction;
                    self.last_stage = stage.to_string();
                }
            }
            (None, _) => {}
        }
        if signals::interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    /// Progress of a run over many files (`batch`): `done` of `total` files finished,
    /// `current` the fractions done of the files in flight, summed, `rate` the images per second so far
    /// (`None` before the first). The bar shows the files and the rate as its stage, with
    /// the time left extrapolated as for one file; JSON lines are
    /// `{"progress":…,"stage":"batch","finished":…,"total":…,"images_per_s":…,"eta_s":…}`,
    /// the time left from the rate.
    pub fn report_files(
        &mut self,
        done: usize,
        total: usize,
        current: f64,
        rate: Option<f64>,
    ) -> Control {
        let fraction = if total == 0 {
            1.0
        } else {
            ((done as f64 + current.max(0.0)) / total as f64).clamp(0.0, 1.0)
        };
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        match (&self.bar, self.kind) {
            (Some(bar), _) => {
                let rate = rate.map_or(String::new(), |r| format!(" {r:.2} img/s"));
                bar.report(fraction, &format!("{done}/{total} files{rate}"));
            }
            (None, ProgressKind::Json) => {
                let stage = format!("{done}/{total}");
                if stage != self.last_stage || (fraction - self.last_fraction).abs() >= 1e-3 {
                    let eta = rate.map(|r| {
                        let left = (total.saturating_sub(done) as f64 - current).max(0.0);
                        (left / r).min(1e9).round() as u64
                    });
                    let line = serde_json::json!({
                        "progress": (fraction * 1000.0).round() / 1000.0,
                        "stage": "batch",
                        "finished": done,
                        "total": total,
                        "images_per_s": rate.map(|r| (r * 1000.0).round() / 1000.0),
                        "eta_s": eta,
                    });
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                    self.last_fraction = fraction;
                    self.last_stage = stage;
                }
            }
            (None, _) => {}
        }
        if signals::interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    /// Ends the bar's line so that later messages start on a fresh one; a later report
    /// draws a new bar.
    pub fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.end_line();
        }
    }
}

/// `1:05 elapsed, ~2:10 left`: the time left is extrapolated from the fraction done once
/// there is enough of it to go by (2 %).
fn timing(elapsed: Duration, fraction: f64) -> String {
    let clock = |d: Duration| {
        let s = d.as_secs();
        match s / 3600 {
            0 => format!("{}:{:02}", s / 60, s % 60),
            h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
        }
    };
    if (0.02..1.0).contains(&fraction) {
        let left = elapsed.mul_f64((1.0 - fraction) / fraction);
        format!("{} elapsed, ~{} left", clock(elapsed), clock(left))
    } else {
        format!("{} elapsed", clock(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::{timing, ProgressKind, Reporter};
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A bar's output kept for inspection.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn draws(&self) -> usize {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .matches("\r\x1b[2K")
                .count()
        }
    }

    #[test]
    fn the_bar_keeps_its_clock_moving_between_reports_and_stops_when_dropped() {
        let out = Captured::default();
        let mut r = Reporter::with_bar_output(ProgressKind::Bar, Box::new(out.clone()));
        // Before any report there is no bar to redraw.
        std::thread::sleep(Duration::from_millis(1300));
        assert_eq!(out.draws(), 0);
        r.report(0.25, "restore");
        assert_eq!(out.draws(), 1);
        // No report for a while, as during one long solver step: the ticker redraws.
        std::thread::sleep(Duration::from_millis(2600));
        let ticked = out.draws();
        assert!(ticked >= 2, "{ticked} draws");
        let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        assert!(text.ends_with("left"), "{text:?}");
        drop(r);
        let after = out.draws();
        assert!(String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with('\n'));
        std::thread::sleep(Duration::from_millis(1300));
        assert_eq!(out.draws(), after, "drew after the reporter was dropped");
    }

    #[test]
    fn elapsed_and_left() {
        assert_eq!(
            timing(Duration::from_secs(65), 0.5),
            "1:05 elapsed, ~1:05 left"
        );
        assert_eq!(
            timing(Duration::from_secs(30), 0.25),
            "0:30 elapsed, ~1:30 left"
        );
        assert_eq!(timing(Duration::from_secs(3725), 1.0), "1:02:05 elapsed");
        assert_eq!(timing(Duration::from_secs(3), 0.01), "0:03 elapsed");
    }
}
