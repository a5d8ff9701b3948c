//! The failover benchmark: the same pool behind Portico, Front Door-style probing, nginx and
//! HAProxy, with origin faults injected at fixed times under open-loop load (and a no-fault
//! baseline measured in the same run).

pub mod analyze;
pub mod configs;
pub mod load;
pub mod svg;

use std::fmt;
use std::str::FromStr;

/// What goes wrong with the faulty origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No fault: the baseline the other rows are read against (`none`).
    None,
    /// The origin process dies: its port refuses connections (`refuse`).
    Crash,
    /// The origin accepts requests and never answers (`hang`).
    Hang,
    /// The origin answers every request, probes included, with 503 (`status:503`).
    Status503,
    /// The origin answers 10 % of its requests (and of its probes) 300 ms late (`slow:300:10`).
    Slow,
}

impl Scenario {
    /// All scenarios, in report order.
    pub const ALL: [Scenario; 5] = [
        Scenario::None,
        Scenario::Crash,
        Scenario::Hang,
        Scenario::Status503,
        Scenario::Slow,
    ];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::Crash => "crash",
            Scenario::Hang => "hang",
            Scenario::Status503 => "503",
            Scenario::Slow => "slow",
        }
    }

    /// The `portico-origin` fault that produces it.
    pub fn fault(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::Crash => "refuse",
            Scenario::Hang => "hang",
            Scenario::Status503 => "status:503",
            Scenario::Slow => "slow:300:10",
        }
    }

    /// Whether anything goes wrong at all (`false` for the baseline).
    pub fn is_fault(self) -> bool {
        self != Scenario::None
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown scenario {s:?} (none, crash, hang, 503, slow)"))
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A proxy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// Portico with its defaults: retries, passive ejection and hedging on, 1 s probes.
    Portico,
    /// The same with a fixed 1 ms hedge delay (`failover.hedging.delay_ms: 1`) instead of the
    /// adaptive one, whose floor is 5 ms: what an operator tunes for the tightest tail.
    PorticoHedge1ms,
    /// Portico configured like Azure Front Door: 5 s probes, 3 of 4 good, no retries, no
    /// ejection, no hedging.
    FrontDoor,
    /// nginx with `proxy_next_upstream` and `max_fails`.
    Nginx,
    /// HAProxy with active checks, `observe layer7`, `retry-on` and `redispatch`.
    Haproxy,
}

impl ProxyKind {
    /// All proxies, in report order (`portico-hedge-1ms` only when asked for).
    pub const ALL: [ProxyKind; 5] = [
        ProxyKind::Portico,
        ProxyKind::PorticoHedge1ms,
        ProxyKind::FrontDoor,
        ProxyKind::Nginx,
        ProxyKind::Haproxy,
    ];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Portico => "portico",
            ProxyKind::PorticoHedge1ms => "portico-hedge-1ms",
            ProxyKind::FrontDoor => "frontdoor-style",
            ProxyKind::Nginx => "nginx",
            ProxyKind::Haproxy => "haproxy",
        }
    }
}

impl FromStr for ProxyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProxyKind::ALL
            .into_iter()
            .find(|x| x.name() == s || (s == "frontdoor" && *x == ProxyKind::FrontDoor))
            .ok_or_else(|| {
                format!(
                    "unknown proxy {s:?} (portico, portico-hedge-1ms, frontdoor-style, nginx, haproxy)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        for p in ProxyKind::ALL {
            assert_eq!(p.name().parse::<ProxyKind>(), Ok(p));
        }
        assert_eq!("frontdoor".parse::<ProxyKind>(), Ok(ProxyKind::FrontDoor));
        assert!("squid".parse::<ProxyKind>().is_err());
        assert_eq!(Scenario::Slow.fault(), "slow:300:10");
        assert!(!Scenario::None.is_fault() && Scenario::Hang.is_fault());
    }
}
