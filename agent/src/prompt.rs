//! How the end user is asked: the [`ConsentPrompt`] trait, and a scripted prompt for tests.

use deskline_protocol::{Capabilities, ConsentOutcome, ConsentRequest};
use std::future::Future;
use std::time::Duration;

/// Asks the end user whether to allow a technician's request. The agent applies the request's
/// timeout around it: an unanswered prompt is a denial.
pub trait ConsentPrompt: Send + Sync + 'static {
    /// The end user's answer.
    fn ask(&self, request: &ConsentRequest) -> impl Future<Output = ConsentOutcome> + Send;
}

/// Answers every request the same way, after an optional delay (tests, unattended demos).
#[derive(Debug, Clone)]
pub struct ScriptedPrompt {
    /// The answer.
    pub answer: ScriptedAnswer,
    /// How long "the end user" takes.
    pub delay: Duration,
}

/// What a scripted prompt answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptedAnswer {
    /// Allow what was asked.
    AllowAll,
    /// Allow viewing only.
    AllowViewOnly,
    /// Deny.
    Deny,
    /// Never answer (the timeout denies).
    Ignore,
}

impl ConsentPrompt for ScriptedPrompt {
    async fn ask(&self, request: &ConsentRequest) -> ConsentOutcome {
        tokio::time::sleep(self.delay).await;
        match self.answer {
            ScriptedAnswer::AllowAll => ConsentOutcome::Granted(request.capabilities),
            ScriptedAnswer::AllowViewOnly => ConsentOutcome::Granted(request.capabilities.intersect(Capabilities::VIEW)),
            ScriptedAnswer::Deny => ConsentOutcome::Denied,
            ScriptedAnswer::Ignore => std::future::pending().await,
        }
    }
}
