//! Writing to stdout so that a closed pipe (`portico config history | head -3`) ends the
//! command quietly, never with a panic.

use portico_core::config::ConfigErrors;
use std::io::Write;

/// Writes to stdout. A closed stdout quietly drops the rest, and the command ends with its
/// own exit code; any other write error is returned.
pub fn out(text: std::fmt::Arguments) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// `print!` through [`out`].
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::output::out(format_args!($($arg)*)) };
}

/// `println!` through [`out`].
macro_rules! sayln {
    ($($arg:tt)*) => {
        $crate::cli::output::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Every error on stderr, one per line.
pub fn print_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
}
