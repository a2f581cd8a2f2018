//! indicatif progress bars behind the store's `Progress` trait, drawn only
//! when stderr is a terminal (never in logs, cron mail or `--json` runs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat_store::{NoProgress, Progress, ProgressBars};

struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn inc(&self, delta: u64) {
        self.0.inc(delta);
    }
    fn set_message(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Makes bars on a terminal, nothing elsewhere.
pub struct Bars {
    enabled: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    fn make(&self, title: &str, template: &str) -> Box<dyn Progress> {
        if !self.enabled {
            return Box::new(NoProgress);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(title.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Box::new(Bar(bar))
    }
}

impl ProgressBars for Bars {
    fn bytes(&self, title: &str) -> Box<dyn Progress> {
        self.make(
            title,
            "{prefix:>10} {spinner} [{elapsed_precise}] {bytes}/{total_bytes} {binary_bytes_per_sec} {wide_msg}",
        )
    }
    fn counter(&self, title: &str) -> Box<dyn Progress> {
        self.make(
            title,
            "{prefix:>10} {spinner} [{elapsed_precise}] {pos}/{len} {wide_msg}",
        )
    }
}
