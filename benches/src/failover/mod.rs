//! The failover benchmark: the same pool behind Portico, Front Door-style probing, nginx and
//! HAProxy, with origin faults injected at fixed times under open-loop load.

pub mod analyze;
pub mod configs;
pub mod load;
pub mod svg;

use std::fmt;
use std::str::FromStr;

/// What goes wrong with the faulty origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The origin process dies: its port refuses connections (`refuse`).
    Crash,
    /// The origin accepts requests and never answers (`hang`).
    Hang,
    /// The origin answers every request, probes included, with 503 (`status:503`).
    Status503,
}

impl Scenario {
    /// All scenarios, in report order.
    pub const ALL: [Scenario; 3] = [Scenario::Crash, Scenario::Hang, Scenario::Status503];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Crash => "crash",
            Scenario::Hang => "hang",
            Scenario::Status503 => "503",
        }
    }

    /// The `portico-origin` fault that produces it.
    pub fn fault(self) -> &'static str {
        match self {
            Scenario::Crash => "refuse",
            Scenario::Hang => "hang",
            Scenario::Status503 => "status:503",
        }
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown scenario {s:?} (crash, hang, 503)"))
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
    /// Portico with its defaults: retries and passive ejection on, 1 s probes.
    Portico,
    /// Portico configured like Azure Front Door: 5 s probes, 3 of 4 good, no retries, no ejection.
    FrontDoor,
    /// nginx with `proxy_next_upstream` and `max_fails`.
    Nginx,
    /// HAProxy with active checks, `observe layer7`, `retry-on` and `redispatch`.
    Haproxy,
}

impl ProxyKind {
    /// All proxies, in report order.
    pub const ALL: [ProxyKind; 4] = [
        ProxyKind::Portico,
        ProxyKind::FrontDoor,
        ProxyKind::Nginx,
        ProxyKind::Haproxy,
    ];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Portico => "portico",
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
                format!("unknown proxy {s:?} (portico, frontdoor-style, nginx, haproxy)")
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
    }
}
