//! Progress reporting without a UI dependency: the CLI plugs in indicatif,
//! tests and daemons use [`NoProgress`].

/// One progress indicator.
pub trait Progress: Send + Sync {
    /// Total units of work, when known.
    fn set_length(&self, _len: u64) {}
    /// Work done.
    fn inc(&self, _delta: u64) {}
    /// A short status line. Never pass a secret.
    fn set_message(&self, _msg: &str) {}
    /// Done.
    fn finish(&self) {}
}

/// Makes progress indicators.
pub trait ProgressBars: Send + Sync {
    /// A bar counting bytes, titled `title`.
    fn bytes(&self, title: &str) -> Box<dyn Progress>;
    /// A bar counting items.
    fn counter(&self, title: &str) -> Box<dyn Progress>;
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

impl ProgressBars for NoProgress {
    fn bytes(&self, _title: &str) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
    fn counter(&self, _title: &str) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}
