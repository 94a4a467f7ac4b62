//! Showing a running job's progress: a progress bar on a terminal, plain
//! log lines otherwise. Jobs shorter than [`SHOW_AFTER`] show nothing.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_engine::graph::JobGraph;
use weir_scheduler::{
    FailurePlan, JobControl, JobProgress, JobSummary, MiniCluster, ProgressSnapshot,
};

/// How long a job runs before its progress is shown.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the progress is read.
const TICK: Duration = Duration::from_millis(100);
/// The longest time between two log lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How a running job's progress is shown (on standard error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A progress bar when standard error is a terminal, log lines
    /// otherwise.
    #[default]
    Auto,
    /// Log lines: when a region finishes or the job restarts, every 10 s,
    /// and at the end.
    Log,
    /// Nothing.
    None,
}

/// The terminal a job's progress bar shares with the rows it prints: once
/// rows are printed, the bar goes and does not come back (the rows show
/// the progress).
#[derive(Default)]
pub struct Screen {
    state: Mutex<ScreenState>,
}

#[derive(Default)]
struct ScreenState {
    bar: Option<ProgressBar>,
    rows: bool,
}

impl Screen {
    /// Rows are printed from now on: the bar goes.
    pub fn rows_begin(&self) {
        let mut state = self.lock();
        if !state.rows {
            state.rows = true;
            if let Some(bar) = state.bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    /// The bar, made by `make` when there is none yet; none once rows are
    /// printed.
    fn bar(&self, make: impl FnOnce() -> ProgressBar) -> Option<ProgressBar> {
        let mut state = self.lock();
        if state.rows {
            return None;
        }
        Some(state.bar.get_or_insert_with(make).clone())
    }

    /// Removes the bar.
    fn clear(&self) {
        if let Some(bar) = self.lock().bar.take() {
            bar.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScreenState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `job` on `cluster` under `control`, showing its progress as `mode`
/// says while it runs, on `screen` when it is a bar.
///
/// # Errors
/// When the job cannot be scheduled or fails for good.
pub async fn run_job(
    cluster: &MiniCluster,
    job: JobGraph,
    mode: ProgressMode,
    control: JobControl,
    screen: Arc<Screen>,
) -> weir_scheduler::Result<JobSummary> {
    let progress = JobProgress::default();
    let mut view = View::new(mode, &job.name, screen);
    let started = Instant::now();
    let run = cluster.run_with_control(job, FailurePlan::none(), progress.clone(), control);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            outcome = &mut run => {
                view.end(started.elapsed(), progress.snapshot(), outcome.is_ok());
                return outcome;
            }
            _ = tick.tick() => {
                let elapsed = started.elapsed();
                if elapsed >= SHOW_AFTER {
                    view.show(elapsed, progress.snapshot());
                }
            }
        }
    }
}

/// Where progress goes.
enum View {
    Bar {
        job: String,
        screen: Arc<Screen>,
    },
    Log {
        job: String,
        last: Option<(Duration, ProgressSnapshot)>,
    },
    Hidden,
}

impl View {
    fn new(mode: ProgressMode, job: &str, screen: Arc<Screen>) -> Self {
        let job = job.to_string();
        match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Self::Bar { job, screen },
            ProgressMode::Auto | ProgressMode::Log => Self::Log { job, last: None },
            ProgressMode::None => Self::Hidden,
        }
    }

    fn show(&mut self, elapsed: Duration, now: ProgressSnapshot) {
        match self {
            Self::Bar { job, screen } => {
                let Some(bar) = screen.bar(|| new_bar(job, elapsed, now.rows_expected)) else {
                    return;
                };
                if let Some(expected) = now.rows_expected {
                    bar.set_position(now.rows_scanned.min(expected));
                } else {
                    bar.set_position(now.rows_scanned);
                }
                bar.set_message(regions_text(&now));
            }
            Self::Log { job, last } => {
                let due = match last {
                    None => true,
                    Some((at, before)) => {
                        before.regions_finished != now.regions_finished
                            || before.restarts != now.restarts
                            || elapsed >= *at + LOG_EVERY
                    }
                };
                if due {
                    // A closed standard error is no reason to stop the job.
                    let _ = writeln!(std::io::stderr(), "{}", log_line(job, elapsed, &now));
                    *last = Some((elapsed, now));
                }
            }
            Self::Hidden => {}
        }
    }

    /// Removes the bar (the summary follows); closes the log lines of a
    /// job that wrote any with its final state, when it succeeded.
    fn end(&mut self, elapsed: Duration, now: ProgressSnapshot, succeeded: bool) {
        match self {
            Self::Bar { screen, .. } => screen.clear(),
            Self::Log { job, last: Some(_) } if succeeded => {
                let _ = writeln!(std::io::stderr(), "{}", log_line(job, elapsed, &now));
            }
            _ => {}
        }
    }
}

fn new_bar(job: &str, elapsed: Duration, rows_expected: Option<u64>) -> ProgressBar {
    let (template, length) = match rows_expected {
        Some(expected) => (
            "{prefix} {elapsed:>4} [{wide_bar}] {human_pos}/{human_len} rows read ({percent}%), {msg}",
            Some(expected),
        ),
        None => (
            "{spinner} {prefix} {elapsed:>4} {human_pos} rows read, {msg}",
            None,
        ),
    };
    let style = ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(job.to_string())
        .with_elapsed(elapsed);
    bar.enable_steady_tick(TICK);
    bar
}

/// "2 of 5 regions done" and the restarts, if any.
fn regions_text(now: &ProgressSnapshot) -> String {
    let mut text = format!("{} of {} regions done", now.regions_finished, now.regions);
    if now.restarts > 0 {
        text.push_str(&format!(", {} restart(s)", now.restarts));
    }
    text
}

/// One log line: the time, the job, its regions and rows.
fn log_line(job: &str, elapsed: Duration, now: &ProgressSnapshot) -> String {
    let rows = match now.rows_expected {
        Some(expected) if expected > 0 => format!(
            "{} of {expected} rows read ({}%)",
            now.rows_scanned.min(expected),
            now.rows_scanned.min(expected) * 100 / expected
        ),
        _ => format!("{} rows read", now.rows_scanned),
    };
    format!(
        "[{:>6.1} s] job '{job}': {}, {rows}",
        elapsed.as_secs_f64(),
        regions_text(now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_say_regions_rows_and_restarts() {
        let now = ProgressSnapshot {
            rows_scanned: 750,
            rows_expected: Some(1000),
            regions_finished: 2,
            regions: 5,
            restarts: 1,
            checkpoints: 0,
        };
        assert_eq!(
            log_line("q1", Duration::from_millis(12_340), &now),
            "[  12.3 s] job 'q1': 2 of 5 regions done, 1 restart(s), 750 of 1000 rows read (75%)"
        );
        let unknown = ProgressSnapshot {
            rows_expected: None,
            restarts: 0,
            ..now
        };
        assert_eq!(
            log_line("q1", Duration::from_secs(2), &unknown),
            "[   2.0 s] job 'q1': 2 of 5 regions done, 750 rows read"
        );
    }
}
