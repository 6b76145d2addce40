//! Errors of parsing inbound JSON and of building outbound envelopes.

use std::fmt;

/// Inbound JSON that cannot be understood even leniently. Names the JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    path: Option<String>,
    message: String,
}

impl ParseError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        Self {
            path: (!path.is_empty() && path != ".").then_some(path),
            message: message.into(),
        }
    }

    pub(crate) fn from_json(e: serde_json::Error) -> Self {
        Self {
            path: None,
            message: format!("not valid JSON: {e}"),
        }
    }

    pub(crate) fn from_path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        Self::new(path, e.into_inner().to_string())
    }

    /// The JSON path of the problem (`message.search_response[0].status`), if known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "invalid DCI message at `{p}`: {}", self.message),
            None => write!(f, "invalid DCI message: {}", self.message),
        }
    }
}

/// A builder was given input that would produce an invalid envelope. Names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {reason}")]
pub struct BuildError {
    /// The field, as a path into the envelope (`search_request[0].locale`) or a builder setting.
    pub field: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl BuildError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
