//! The relay's error type: every failure a request can meet, with the HTTP status and the
//! stable machine-readable code the API reports.

use crate::store::StoreError;
use deskline_protocol::session::{Refusal, RefusalKind};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Signed in with a one-time password: only setting one's own password is allowed.
    #[error("set your own password first (POST /api/v1/me/password): this account's password was set by someone else")]
    PasswordChangeRequired,
    /// The password was right; the account also needs its second factor's code.
    #[error("enter the code your authenticator app shows (or a recovery code)")]
    SecondFactorRequired,
    /// A wrong second-factor code at sign-in.
    #[error("wrong second-factor code")]
    WrongSecondFactor,
    /// An administrator requires a second factor and this account has none yet.
    #[error("set up a second factor first (POST /api/v1/me/second-factor): an administrator requires one")]
    SecondFactorEnrolmentRequired,
    /// The thing named does not exist (or the caller may not know it exists).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Bad input; `code` names the problem, the message the field.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// Conflicts with what exists (a taken name, a state that does not allow it).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// Too many attempts.
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The session state machine refused the action.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// Storage failed (reported without details).
    #[error("internal error")]
    Store(#[from] StoreError),
    /// Anything else internal (reported without details).
    #[error("internal error")]
    Internal(String),
    /// The answer of the relay node a request was passed to (several nodes share the
    /// database), passed back as it came: its status and its JSON body.
    #[error("{body}")]
    Forwarded {
        /// Its HTTP status.
        status: u16,
        /// Its JSON body.
        body: String,
    },
}

impl Error {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthorized(_) | Error::SecondFactorRequired | Error::WrongSecondFactor => 401,
            Error::Forbidden(_) | Error::PasswordChangeRequired | Error::SecondFactorEnrolmentRequired => 403,
            Error::NotFound(_) => 404,
            Error::BadRequest { .. } => 400,
            Error::Conflict { .. } => 409,
            Error::RateLimited { .. } => 429,
            Error::Refused(r) => match r.kind() {
                RefusalKind::Forbidden => 403,
                RefusalKind::Conflict => 409,
                RefusalKind::BadRequest => 400,
                RefusalKind::Gone => 404,
            },
            Error::Store(_) | Error::Internal(_) => 500,
            Error::Forwarded { status, .. } => *status,
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::PasswordChangeRequired => "password_change_required",
            Error::SecondFactorRequired => "second_factor_required",
            Error::WrongSecondFactor => "wrong_second_factor",
            Error::SecondFactorEnrolmentRequired => "second_factor_enrolment_required",
            Error::NotFound(_) => "not_found",
            Error::BadRequest { code, .. } | Error::Conflict { code, .. } => code,
            Error::RateLimited { .. } => "rate_limited",
            Error::Refused(r) => r.code(),
            Error::Store(_) | Error::Internal(_) => "internal",
            Error::Forwarded { .. } => "forwarded",
        }
    }

    /// A 400 for a field.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Error {
        Error::BadRequest { code, message: message.into() }
    }

    /// A 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict { code, message: message.into() }
    }
}
