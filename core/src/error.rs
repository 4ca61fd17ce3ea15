//! Typed errors. Every message names the file or setting at fault; `hint` says how to fix it.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The model directory's contents are wrong: config.json, the ONNX graph, the tokenizer, or
    /// how they fit together (a configuration problem the model's author fixes).
    Config,
    /// A txclass setting has a value that cannot be used.
    Setting,
    /// A model file or directory cannot be read (missing, permissions, I/O).
    Unreadable,
    /// A model's files are not the ones registered (or changed while being read): registered
    /// models are immutable.
    Changed,
    /// ONNX Runtime could not be loaded or failed while running.
    Runtime,
    /// The caller passed something unusable (e.g. k = 0).
    Input,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Config, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn setting(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Setting, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn unreadable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Unreadable, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn changed(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Changed, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn runtime(message: impl Into<String>, hint: Option<String>) -> Self {
        Error { kind: ErrorKind::Runtime, message: message.into(), hint }
    }
    pub fn input(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Input, message: message.into(), hint: None }
    }
    pub fn input_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Input, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
