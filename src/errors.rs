//! Core errors → PostgreSQL errors with an SQLSTATE, the message and a HINT.
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;
use txclass_core::{Error, ErrorKind};

/// The SQLSTATE of each cause: what a client can branch on.
pub fn sqlstate(kind: ErrorKind) -> PgSqlErrorCode {
    match kind {
        // the model's own files are wrong (F0000, the class of configuration files)
        ErrorKind::Config => PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
        // a setting's value, or an argument, cannot be used
        ErrorKind::Setting | ErrorKind::Input => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        // the server cannot read the files (as PostgreSQL's own file reads report)
        ErrorKind::Unreadable => PgSqlErrorCode::ERRCODE_IO_ERROR,
        // a registered model's files are not the registered ones: the registry's object is not
        // in the state its registration vouched for
        ErrorKind::Changed => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        // ONNX Runtime could not load or run, or no inference worker answered
        ErrorKind::Runtime => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
    }
}

pub fn raise(e: Error) -> ! {
    let code = sqlstate(e.kind);
    let mut report = ErrorReport::new(code, e.message, "txclass");
    if let Some(h) = e.hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Unwraps a core result or raises it as a PostgreSQL ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}

/// Raises an ERROR with an SQLSTATE and a message (no HINT).
pub fn raise_plain(code: PgSqlErrorCode, message: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "txclass").report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raises an ERROR with an SQLSTATE, a message and a HINT.
pub fn raise_code(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "txclass").set_hint(hint.into()).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}
