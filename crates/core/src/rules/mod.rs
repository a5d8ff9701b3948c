//! Rule sets (edge policy, SPEC part 3): parsing and validation with JSON paths, a compiled
//! matcher, and evaluation as a pure function from a request's facts to [`Actions`].
//!
//! Semantics, where the SPEC leaves a choice:
//! - A route's rule sets run in order, each rule in order. A rule matches when every condition
//!   it gives holds (none: always). Every matching rule contributes its actions until a
//!   matching rule with `stop: true`; no later rule, in its set or a later one, is evaluated.
//! - Conditions look at the request as the client sent it (before any rewrite): `methods`
//!   (case-sensitive tokens), `schemes`, `paths` (as routes: exact or `/prefix/*`),
//!   `path_regex` (unanchored: it may match anywhere; write `^…$`), `headers` (any field line
//!   of the name may satisfy `equals`/`regex`), `query` (raw, undecoded `name=value` pairs;
//!   `name` alone has the empty value), `cookies` (from every `Cookie` header, values as sent),
//!   `client_ips` (an unknown client address matches none) and `not_client_ips` (an unknown
//!   client address is in none). Regexes use the `regex` crate: linear time, no look-around
//!   or back-references.
//! - Single-valued actions: the first matching rule that gives one wins (as HAProxy's first
//!   matching `use_backend` or `redirect`): `respond` or `redirect` (a rule may not give both),
//!   `rewrite` (the first one that applies to the path: a `from` the path starts with, a
//!   pattern that matches), `pool`. Every matching `rate_limit` applies. Header edits add up
//!   in rule order; within a rule, `remove`, then `set`, then `add`.
//! - A `respond` or `redirect` ends the request before anything on the way to an origin: with
//!   one, no rate limit, rewrite, pool or request header applies. Later matching rules are
//!   still evaluated (unless one stopped), so their response headers reach that reply too.
//! - A rate limit keyed by a header that the request lacks, or by `client_ip` when the address
//!   is unknown, does not apply (nginx's `limit_req` does the same with an empty key).
//!   `burst` defaults to one second's worth.
//! - `rewrite.path_prefix` replaces a leading `from`; `rewrite.path_regex` replaces the first
//!   match of `pattern`, its `replace` naming the pattern's groups. A result not starting with
//!   `/` gets one.
//! - Templates (`template.rs`): `{1}`…`{9}` in `location`, `body` and header values are the
//!   groups of the rule's `when.path_regex`; naming a group the pattern lacks is a config
//!   error. A `{` not starting a `{name}` is text.
//! - Rules cannot edit the headers Portico owns (`Via`, `X-Request-Id`, `X-Forwarded-*`,
//!   `X-Portico-*`) nor framing and hop-by-hop headers (`Content-Length`,
//!   `Transfer-Encoding`, `Connection`, …): a config error.

mod compiled;
mod eval;
mod facts;
pub mod raw;
mod template;
mod validate;
mod warnings;

pub use compiled::{CompiledRuleSets, RateKeySpec, RateLimit, RuleId, RuleRef, RuleSetId};
pub use eval::{Actions, Ending, HeaderEdit, RateKey, RateLimitHit};
pub use facts::{RequestFacts, Scheme, client_ip};
pub use validate::{MAX_RATE, MAX_RULES_PER_SET, parse_rule_sets};

#[cfg(test)]
mod tests;
