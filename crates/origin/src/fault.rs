//! Faults an origin can be told to show: refuse, hang, a fixed status, or slowness (of every
//! request or of a share of them).

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
    /// Answer `percent` % of requests (1–100) normally after this extra delay, the others at
    /// once. Which ones is deterministic: requests and probes are numbered separately, in
    /// arrival order, and spread evenly (`slow:300:10` delays every 10th request and every 10th
    /// probe; `slow:300` is `slow:300:100`, every one).
    Slow {
        /// The extra delay.
        delay: Duration,
        /// Share of requests delayed, 1–100.
        percent: u8,
    },
}

impl Fault {
    /// The extra delay this fault adds to the `seq`-th request (or probe) since the origin
    /// started, counting from 0: requests and probes are counted apart, so each class sees
    /// the share.
    pub fn delay_for(self, seq: u64) -> Duration {
        match self {
            Fault::Slow { delay, percent } if slowed(seq, percent) => delay,
            _ => Duration::ZERO,
        }
    }
}

/// Whether the `seq`-th request is one of the `percent` % delayed: the running count
/// `floor(n × percent / 100)` steps up at it, so any 100 consecutive requests hold exactly
/// `percent` delayed ones, spread evenly (every 10th for 10 %).
fn slowed(seq: u64, percent: u8) -> bool {
    let p = u64::from(percent.min(100));
    (seq + 1) * p / 100 > seq * p / 100
}

/// A fault that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultParseError(String);

impl fmt::Display for FaultParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown fault {:?}: expected none, refuse, hang, status:<100-599>, slow:<ms> or slow:<ms>:<percent 1-100>",
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
                Some(("slow", rest)) => {
                    let (ms, percent) = rest.split_once(':').unwrap_or((rest, "100"));
                    match (ms.parse::<u64>(), percent.parse::<u8>()) {
                        (Ok(ms), Ok(percent)) if (1..=100).contains(&percent) => Ok(Fault::Slow {
                            delay: Duration::from_millis(ms),
                            percent,
                        }),
                        _ => Err(err()),
                    }
                }
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
            Fault::Slow {
                delay,
                percent: 100,
            } => write!(f, "slow:{}", delay.as_millis()),
            Fault::Slow { delay, percent } => write!(f, "slow:{}:{percent}", delay.as_millis()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_fault() {
        for s in [
            "none",
            "refuse",
            "hang",
            "status:503",
            "slow:300",
            "slow:300:10",
        ] {
            assert_eq!(s.parse::<Fault>().unwrap().to_string(), s);
        }
        assert_eq!("status:503".parse::<Fault>(), Ok(Fault::Status(503)));
        assert!("status:99".parse::<Fault>().is_err());
        assert!("status:x".parse::<Fault>().is_err());
        assert!("explode".parse::<Fault>().is_err());
        assert!("slow:".parse::<Fault>().is_err());
        assert_eq!(
            "slow:300".parse::<Fault>(),
            Ok(Fault::Slow {
                delay: Duration::from_millis(300),
                percent: 100
            })
        );
        assert_eq!(
            "slow:300:100".parse::<Fault>().unwrap().to_string(),
            "slow:300"
        );
        for bad in [
            "slow:300:0",
            "slow:300:101",
            "slow:300:",
            "slow:x:10",
            "slow:300:10:1",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_share_delays_exactly_that_many_of_every_hundred_spread_evenly() {
        let d = Duration::from_millis(300);
        let ten: Fault = "slow:300:10".parse().unwrap();
        let slowed: Vec<u64> = (0..100).filter(|&n| ten.delay_for(n) == d).collect();
        assert_eq!(slowed, vec![9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
        for percent in [1u8, 3, 10, 25, 50, 99, 100] {
            let f = Fault::Slow { delay: d, percent };
            for start in [0u64, 7, 1_000_003] {
                let n = (start..start + 100)
                    .filter(|&n| f.delay_for(n) == d)
                    .count();
                assert_eq!(n, usize::from(percent), "{percent} % from {start}");
            }
        }
        let all: Fault = "slow:300".parse().unwrap();
        assert!((0..50).all(|n| all.delay_for(n) == d));
        assert!((0..50).all(|n| Fault::Hang.delay_for(n).is_zero()));
    }
}
