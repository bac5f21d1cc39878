//! Where input goes: the [`InputSink`] trait, and a recording sink for tests.

use deskline_protocol::InputEvent;
use std::sync::{Arc, Mutex};

/// Applies the controlling technician's input to this machine.
pub trait InputSink: Send + 'static {
    /// Applies one event.
    fn apply(&mut self, event: &InputEvent) -> anyhow::Result<()>;

    /// Releases every key and button this sink pressed (control ended): nothing may stay held
    /// down on the end user's machine.
    fn release_all(&mut self);
}

/// Records events instead of injecting them; clones share the record.
#[derive(Clone, Default)]
pub struct RecordingSink {
    events: Arc<Mutex<Vec<InputEvent>>>,
    releases: Arc<Mutex<usize>>,
}

impl RecordingSink {
    /// The events applied so far.
    #[must_use]
    pub fn events(&self) -> Vec<InputEvent> {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How many times everything was released.
    #[must_use]
    pub fn releases(&self) -> usize {
        *self.releases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl InputSink for RecordingSink {
    fn apply(&mut self, event: &InputEvent) -> anyhow::Result<()> {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event.clone());
        Ok(())
    }

    fn release_all(&mut self) {
        *self.releases.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }
}
