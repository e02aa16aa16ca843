//! Progress of a restore on stderr: a terminal bar with elapsed time and an estimate of
//! what is left, or JSON lines (docs/protocol.md, "Progress"). Every report also polls the
//! signal flag, which is how SIGINT/SIGTERM stop a solver between two steps. Used by the
//! plain filter and by serve mode alike.

use super::signals;
use crate::solvers::Control;
use std::io::Write;
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
    started: Instant,
    last_fraction: f64,
    last_stage: String,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl Reporter {
    pub fn new(kind: ProgressKind) -> Self {
        Reporter {
            kind,
            started: Instant::now(),
            last_fraction: -1.0,
            last_stage: String::new(),
            last_draw: None,
            drawn: false,
        }
    }

    pub fn report(&mut self, fraction: f64, stage: &str) -> Control {
        let mut err = std::io::stderr().lock();
        match self.kind {
            ProgressKind::None => {}
            ProgressKind::Json => {
                // Keep the stream small: a line per 0.1 % and per stage change.
                if stage != self.last_stage || (fraction - self.last_fraction).abs() >= 1e-3 {
                    let _ = writeln!(err, "{}", crate::protocol::progress_line(fraction, stage));
                    self.last_fraction = fraction;
                    self.last_stage = stage.to_string();
                }
            }
            ProgressKind::Bar => {
                let now = Instant::now();
                let due = self
                    .last_draw
                    .is_none_or(|t| now.duration_since(t).as_millis() >= 100);
                if due || fraction >= 1.0 || stage != self.last_stage {
                    let width = 30usize;
                    let f = fraction.clamp(0.0, 1.0);
                    let filled = (f * width as f64).round() as usize;
                    let _ = write!(
                        err,
                        "\r\x1b[2Kvml-filter [{}{}] {:>3.0}% {stage} {}",
                        "#".repeat(filled),
                        ".".repeat(width - filled),
                        f * 100.0,
                        timing(self.started.elapsed(), f)
                    );
                    let _ = err.flush();
                    self.last_draw = Some(now);
                    self.last_stage = stage.to_string();
                    self.drawn = true;
                }
            }
        }
        if signals::interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    /// Ends the bar's line so that later messages start on a fresh one.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
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
    use super::timing;
    use std::time::Duration;

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
