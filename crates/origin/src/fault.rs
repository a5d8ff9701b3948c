//! Faults an origin can be told to show: refuse, hang, a fixed status, or slowness.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What an origin does wrong; `None` is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Healthy.
    #[default]
    None,
    /// Close the listener and every open connection: connections are refused (a crash).
    Refuse,
    /// Accept and read requests but never answer while the fault lasts.
    Hang,
    /// Answer every request, probes included, with this status.
    Status(u16),
    /// Answer normally after this extra delay.
    Slow(Duration),
}

/// A fault that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultParseError(String);

impl fmt::Display for FaultParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown fault {:?}: expected none, refuse, hang, status:<100-599> or slow:<ms>",
            self.0
        )
    }
}

impl std::error::Error for FaultParseError {}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || FaultParseError(s.to_string());
        match s {
            "none" | "" => Ok(Fault::None),
            "refuse" => Ok(Fault::Refuse),
            "hang" => Ok(Fault::Hang),
            _ => match s.split_once(':') {
                Some(("status", code)) => match code.parse::<u16>() {
                    Ok(c) if (100..=599).contains(&c) => Ok(Fault::Status(c)),
                    _ => Err(err()),
                },
                Some(("slow", ms)) => ms
                    .parse::<u64>()
                    .map(|ms| Fault::Slow(Duration::from_millis(ms)))
                    .map_err(|_| err()),
                _ => Err(err()),
            },
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::Refuse => f.write_str("refuse"),
            Fault::Hang => f.write_str("hang"),
            Fault::Status(c) => write!(f, "status:{c}"),
            Fault::Slow(d) => write!(f, "slow:{}", d.as_millis()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_fault() {
        for s in ["none", "refuse", "hang", "status:503", "slow:300"] {
            assert_eq!(s.parse::<Fault>().unwrap().to_string(), s);
        }
        assert_eq!("status:503".parse::<Fault>(), Ok(Fault::Status(503)));
        assert!("status:99".parse::<Fault>().is_err());
        assert!("status:x".parse::<Fault>().is_err());
        assert!("explode".parse::<Fault>().is_err());
        assert!("slow:".parse::<Fault>().is_err());
    }
}
