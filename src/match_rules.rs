//! Higress's per-route configuration: `_rules_` → rules, and a request's facts → its
//! configuration.
//!
//! Higress hands a plugin one document: the `defaultConfig` keys plus `_rules_`, one object per
//! `matchRules` entry, each holding its `config` keys and one selector (`_match_route_` from
//! `ingress`, `_match_domain_` from `domain`, `_match_service_` from `service`). What follows is
//! what Higress's own plugin SDKs do with it (alibaba/higress
//! `plugins/wasm-rust/src/rule_matcher.rs`, higress-group/wasm-go
//! `pkg/matcher/rule_matcher.go`), which this module follows:
//!
//! - a rule's configuration is read **on its own**, as a whole document: a key it leaves out
//!   takes its default, not the global value;
//! - the global configuration is the document itself, present when it has any key besides
//!   `_rules_` (or is empty: `{}` means defaults everywhere); without one, a request no rule
//!   matches is not touched by the plugin at all;
//! - the **first** rule in `_rules_` order whose selector matches wins, whatever its kind; the
//!   "route before domain" priority Higress documents comes from the order its console writes the
//!   rules in (route rules first), not from the matcher;
//! - `_match_domain_`: `*suffix` and `prefix*` wildcards, otherwise exact, compared with
//!   `:authority` without its port; `_match_service_`: `host` or `host:port` against the
//!   upstream cluster name `direction|port|subset|host`; `_match_route_prefix_`: a prefix of the
//!   route name.
//!
//! Stricter than those SDKs, so that a mistake shows at load instead of as a rule that never
//! matches: selector lists must be non-empty arrays of non-empty strings, a rule must have exactly
//! one selector (as the Rust SDK requires), and an unknown `_match_*` key is refused. The
//! own-span keys (`export`, ...) are refused in a rule unless its `export` is the global one:
//! the export queue is made once per worker from the global configuration.
//!
//! Pure: the facts a request is matched on are fetched through a callback, each at most once
//! and only when a rule needs it.

use crate::config::{Config, ConfigError};
use crate::host::HostKind;
use serde_json::{Map, Value};
use std::rc::Rc;

/// The key Higress puts its rules under.
pub const RULES_KEY: &str = "_rules_";

const MATCH_ROUTE: &str = "_match_route_";
const MATCH_DOMAIN: &str = "_match_domain_";
const MATCH_SERVICE: &str = "_match_service_";
const MATCH_ROUTE_PREFIX: &str = "_match_route_prefix_";

/// What a request is matched on; the host says where each comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// The name of the route the request took.
    RouteName,
    /// `:authority`, with its port if it has one.
    Authority,
    /// The upstream cluster, `outbound|<port>|<subset>|<host>` on Higress.
    ClusterName,
}

/// The rules of a configuration, and the global configuration if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRules {
    global: Option<Rc<Config>>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    selector: Selector,
    /// The selector's list, as written.
    names: Vec<String>,
    config: Rc<Config>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selector {
    /// `_match_route_`: route names.
    Route,
    /// `_match_route_prefix_`: prefixes of route names.
    RoutePrefix,
    /// `_match_domain_`: domains, see [`domain_matches`].
    Domain,
    /// `_match_service_`: services, see [`service_matches`].
    Service,
}

impl MatchRules {
    /// The configuration for requests no rule matches; `None`: leave them alone.
    pub fn global(&self) -> Option<&Rc<Config>> {
        self.global.as_ref()
    }

    /// The configuration for a request: the first rule that matches, else the global one;
    /// `None` when neither applies. `fact` is asked for each fact at most once.
    pub fn select(&self, mut fact: impl FnMut(Fact) -> Option<String>) -> Option<&Rc<Config>> {
        let mut facts = Facts {
            lookup: &mut fact,
            known: [None, None, None],
        };
        self.rules
            .iter()
            .find(|rule| rule.matches(&mut facts))
            .map(|rule| &rule.config)
            .or(self.global.as_ref())
    }
}

/// The facts of one request, fetched on first use.
struct Facts<'a> {
    lookup: &'a mut dyn FnMut(Fact) -> Option<String>,
    known: [Option<String>; 3],
}

impl Facts<'_> {
    /// A missing fact reads as empty, as in Higress's SDKs.
    fn get(&mut self, fact: Fact) -> &str {
        let lookup = &mut self.lookup;
        self.known[fact as usize].get_or_insert_with(|| lookup(fact).unwrap_or_default())
    }
}

impl Rule {
    fn matches(&self, facts: &mut Facts<'_>) -> bool {
        let names = self.names.iter().map(String::as_str);
        match self.selector {
            Selector::Route => {
                let route = facts.get(Fact::RouteName);
                names.into_iter().any(|name| name == route)
            }
            Selector::RoutePrefix => {
                let route = facts.get(Fact::RouteName);
                names.into_iter().any(|prefix| route.starts_with(prefix))
            }
            Selector::Domain => {
                let host = strip_port(facts.get(Fact::Authority));
                names.into_iter().any(|domain| domain_matches(domain, host))
            }
            Selector::Service => {
                let cluster = facts.get(Fact::ClusterName);
                names
                    .into_iter()
                    .any(|service| service_matches(service, cluster))
            }
        }
    }
}

/// `*.example.com` matches the hosts ending with `.example.com` (`*` alone matches every host),
/// `example.*` those starting with `example.`; anything else only itself.
fn domain_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('*') {
        host.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        host.starts_with(prefix)
    } else {
        host == pattern
    }
}

/// `host` or `host:port` against a cluster named `direction|port|subset|host`; a cluster name
/// of any other shape matches nothing.
fn service_matches(service: &str, cluster: &str) -> bool {
    let mut parts = cluster.as_bytes().split(|b| *b == b'|');
    let (Some(_), Some(port), Some(_), Some(host), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    match service.rsplit_once(':') {
        Some((wanted_host, wanted_port)) => {
            wanted_host.as_bytes() == host && wanted_port.as_bytes() == port
        }
        None => service.as_bytes() == host,
    }
}

/// `host:port` → `host`; a bracketed IPv6 address keeps its colons.
fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(colon) if authority.rfind(']').is_none_or(|end| end < colon) => &authority[..colon],
        _ => authority,
    }
}

/// Reads `_rules_` from the configuration `bytes`, whose global configuration (the whole
/// document, `_` keys ignored) is `global`, on a host of `kind`. `Ok(None)`: there are no rules
/// and `global` applies to every request.
pub fn parse(
    bytes: &[u8],
    global: &Config,
    kind: HostKind,
) -> Result<Option<MatchRules>, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let unreadable = || error(String::new(), "must be a JSON object");
    let document = Document::read(bytes).ok_or_else(unreadable)?;
    let rules = match document.rules {
        RulesKey::Absent => return Ok(None),
        RulesKey::NotArray => {
            return Err(error(
                RULES_KEY.to_owned(),
                "must be an array of rule objects",
            ))
        }
        RulesKey::Array(rules) => rules,
    };
    if rules.is_empty() {
        return if document.has_global {
            Ok(None)
        } else {
            Err(error(
                RULES_KEY.to_owned(),
                "has no rules and the configuration has no other key, so nothing would apply",
            ))
        };
    }
    let rules = rules
        .iter()
        .enumerate()
        .map(|(index, (value, raw))| parse_rule(index, value, raw, global, kind))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(MatchRules {
        global: document.has_global.then(|| Rc::new(global.clone())),
        rules,
    }))
}

/// The top level of a configuration document, as far as the rules need it.
struct Document<'b> {
    /// Whether there is a key besides `_rules_`: then the document is also the global
    /// configuration.
    has_global: bool,
    /// `_rules_`; the last one, as a JSON object with a repeated key reads.
    rules: RulesKey<'b>,
}

enum RulesKey<'b> {
    Absent,
    NotArray,
    /// Each element, and its bytes.
    Array(Vec<(Value, &'b [u8])>),
}

impl<'b> Document<'b> {
    /// Walks the top-level object, keeping each rule's bytes: a rule goes through
    /// [`Config::parse`] as written, so the module needs no JSON encoder (nor a float printer).
    /// `bytes` has been read by serde_json already (the global configuration), so this only
    /// finds where values end; each value is still read by serde_json.
    fn read(bytes: &'b [u8]) -> Option<Document<'b>> {
        let mut document = Document {
            has_global: false,
            rules: RulesKey::Absent,
        };
        let mut pos = expect(bytes, skip_whitespace(bytes, 0), b'{')?;
        if bytes.get(skip_whitespace(bytes, pos)) == Some(&b'}') {
            return Some(document);
        }
        loop {
            let key_start = skip_whitespace(bytes, pos);
            let key_end = value_end(bytes, key_start)?;
            let start =
                skip_whitespace(bytes, expect(bytes, skip_whitespace(bytes, key_end), b':')?);
            let end = value_end(bytes, start)?;
            if is_rules_key(bytes.get(key_start..key_end)?) {
                document.rules = match bytes.get(start) {
                    Some(b'[') => RulesKey::Array(elements(bytes, start)?),
                    _ => RulesKey::NotArray,
                };
            } else {
                document.has_global = true;
            }
            pos = skip_whitespace(bytes, end);
            match bytes.get(pos)? {
                b',' => pos += 1,
                b'}' => return Some(document),
                _ => return None,
            }
        }
    }
}

/// Whether the quoted key `raw` reads `_rules_` (escapes included).
fn is_rules_key(raw: &[u8]) -> bool {
    if !raw.contains(&b'\\') {
        return raw.get(1..raw.len().saturating_sub(1)) == Some(RULES_KEY.as_bytes());
    }
    matches!(serde_json::from_slice(raw), Ok(Value::String(key)) if key == RULES_KEY)
}

/// The elements of the array whose `[` is at `pos`, each read and with its bytes.
fn elements(bytes: &[u8], pos: usize) -> Option<Vec<(Value, &[u8])>> {
    let mut pos = expect(bytes, pos, b'[')?;
    let mut out = Vec::new();
    if bytes.get(skip_whitespace(bytes, pos)) == Some(&b']') {
        return Some(out);
    }
    loop {
        let start = skip_whitespace(bytes, pos);
        let end = value_end(bytes, start)?;
        let raw = bytes.get(start..end)?;
        out.push((serde_json::from_slice(raw).ok()?, raw));
        pos = skip_whitespace(bytes, end);
        match bytes.get(pos)? {
            b',' => pos += 1,
            b']' => return Some(out),
            _ => return None,
        }
    }
}

/// Where the (valid) JSON value starting at `pos` ends.
fn value_end(bytes: &[u8], pos: usize) -> Option<usize> {
    match bytes.get(pos)? {
        b'"' => string_end(bytes, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = pos;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            (i > pos).then_some(i)
        }
    }
}

/// The position after the string whose opening quote is at `pos`.
fn string_end(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// The position after `byte`, if it is at `pos`.
fn expect(bytes: &[u8], pos: usize, byte: u8) -> Option<usize> {
    (bytes.get(pos) == Some(&byte)).then_some(pos + 1)
}

fn parse_rule(
    index: usize,
    value: &Value,
    raw: &[u8],
    global: &Config,
    kind: HostKind,
) -> Result<Rule, ConfigError> {
    let at = format!("{RULES_KEY}[{index}]");
    let Value::Object(map) = value else {
        return Err(error(
            at,
            "must be an object: a selector and the rule's configuration",
        ));
    };
    let (selector, names) = parse_selector(&at, map)?;
    // The rule is a whole configuration of its own, read by the same parser (which ignores the
    // `_match_*` keys, as every `_` key).
    let config = Config::parse(raw).map_err(|e| {
        let key = if e.key.is_empty() {
            at.clone()
        } else {
            format!("{at}.{}", e.key)
        };
        error(key, e.reason)
    })?;
    if config.host.is_some_and(|host| host != kind) {
        return Err(error(
            format!("{at}.host"),
            "must be \"higress\" (or left out): rules are read only on Higress",
        ));
    }
    if let Some(own_span) = &config.own_span {
        // The export queue is made once per worker, from the global configuration.
        let reason = match &global.own_span {
            Some(g) if g.export == own_span.export => None,
            Some(_) => Some(
                "must be the global configuration's `export`, unchanged: the export queue is \
                 made once per worker from it",
            ),
            None => Some(
                "is only allowed in a rule when the global configuration has the same \
                 `export`: the export queue is made once per worker from it",
            ),
        };
        if let Some(reason) = reason {
            return Err(error(format!("{at}.export"), reason));
        }
    }
    Ok(Rule {
        selector,
        names,
        config: Rc::new(config),
    })
}

const SELECTOR_LIST: &str =
    "`_match_route_`, `_match_domain_`, `_match_service_`, `_match_route_prefix_`";

fn parse_selector(
    at: &str,
    map: &Map<String, Value>,
) -> Result<(Selector, Vec<String>), ConfigError> {
    let mut found = None;
    for (key, value) in map {
        if !key.starts_with("_match_") {
            continue;
        }
        let here = format!("{at}.{key}");
        let selector = match key.as_str() {
            MATCH_ROUTE => Selector::Route,
            MATCH_DOMAIN => Selector::Domain,
            MATCH_SERVICE => Selector::Service,
            MATCH_ROUTE_PREFIX => Selector::RoutePrefix,
            _ => {
                return Err(error(
                    here,
                    format!("unknown selector (expected one of: {SELECTOR_LIST})"),
                ))
            }
        };
        if found.is_some() {
            return Err(error(
                here,
                format!("a rule has exactly one selector (one of: {SELECTOR_LIST})"),
            ));
        }
        found = Some((selector, names(&here, value)?));
    }
    found.ok_or_else(|| {
        error(
            at.to_owned(),
            format!("needs a selector (one of: {SELECTOR_LIST})"),
        )
    })
}

/// A non-empty array of non-empty strings.
fn names(key: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let names: Option<Vec<String>> = match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect(),
        _ => None,
    };
    names.ok_or_else(|| {
        error(
            key.to_owned(),
            "must be a non-empty array of non-empty strings",
        )
    })
}

fn error(key: String, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BaggageMode;

    fn rules(document: &str) -> Result<Option<MatchRules>, ConfigError> {
        let global = Config::parse(document.as_bytes())?;
        parse(document.as_bytes(), &global, HostKind::Higress)
    }

    fn chosen(
        rules: &MatchRules,
        route: &str,
        authority: &str,
        cluster: &str,
    ) -> Option<BaggageMode> {
        rules
            .select(|fact| {
                Some(match fact {
                    Fact::RouteName => route,
                    Fact::Authority => authority,
                    Fact::ClusterName => cluster,
                })
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
            })
            .map(|config| config.baggage)
    }

    #[test]
    fn domain_patterns_follow_higress() {
        let cases = [
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", true),
            ("example.*", "example.org", true),
            ("example.*", "www.example.org", false),
            ("mcp.example.com", "mcp.example.com", true),
            ("mcp.example.com", "api.mcp.example.com", false),
            ("*", "anything", true),
            ("*", "", true),
        ];
        for (pattern, host, expected) in cases {
            assert_eq!(domain_matches(pattern, host), expected, "{pattern} {host}");
        }
    }

    #[test]
    fn the_port_is_stripped_but_not_an_ipv6_address() {
        assert_eq!(strip_port("mcp.example.com:8443"), "mcp.example.com");
        assert_eq!(strip_port("mcp.example.com"), "mcp.example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("10.0.0.1:80"), "10.0.0.1");
    }

    #[test]
    fn services_match_the_cluster_host_and_optionally_its_port() {
        let cluster = "outbound|8080||mcp.default.svc.cluster.local";
        let cases = [
            ("mcp.default.svc.cluster.local", cluster, true),
            ("mcp.default.svc.cluster.local:8080", cluster, true),
            ("mcp.default.svc.cluster.local:9090", cluster, false),
            ("mcp.default.svc.cluster.local:", cluster, false),
            ("other.default.svc.cluster.local", cluster, false),
            (
                "mcp.default.svc.cluster.local",
                "mcp.default.svc.cluster.local",
                false,
            ),
            ("mcp.dns", "outbound|443||mcp.dns|extra", false),
            ("mcp.dns", "outbound|443|v1|mcp.dns", true),
        ];
        for (name, cluster, expected) in cases {
            assert_eq!(service_matches(name, cluster), expected, "{name} {cluster}");
        }
    }

    #[test]
    fn the_first_matching_rule_wins_then_the_global_configuration() {
        let rules = rules(
            r#"{"baggage":"header","_rules_":[
                {"_match_domain_":["*.example.com"],"baggage":"drop"},
                {"_match_route_":["r1"],"baggage":"merge"},
                {"_match_route_prefix_":["r"],"baggage":"meta"}]}"#,
        )
        .ok()
        .flatten();
        let rules = rules.as_ref();
        let pick = |route, authority| rules.and_then(|r| chosen(r, route, authority, ""));
        assert_eq!(pick("r1", "a.example.com"), Some(BaggageMode::Drop));
        assert_eq!(pick("r1", "a.example.org"), Some(BaggageMode::Merge));
        assert_eq!(pick("r2", "a.example.org"), Some(BaggageMode::Meta));
        assert_eq!(pick("x", "a.example.org"), Some(BaggageMode::Header));
    }

    #[test]
    fn without_a_global_configuration_an_unmatched_request_gets_none() {
        let rules = rules(r#"{"_rules_":[{"_match_route_":["r1"],"baggage":"drop"}]}"#)
            .ok()
            .flatten();
        assert!(rules.as_ref().is_some_and(|r| r.global().is_none()));
        let rules = rules.as_ref();
        assert_eq!(
            rules.and_then(|r| chosen(r, "r1", "", "")),
            Some(BaggageMode::Drop)
        );
        assert_eq!(rules.and_then(|r| chosen(r, "r2", "", "")), None);
    }

    #[test]
    fn facts_are_read_once_and_only_when_a_rule_needs_them() {
        let rules = rules(
            r#"{"host":"higress","_rules_":[
                {"_match_route_":["a"]},{"_match_route_":["b"]},{"_match_route_prefix_":["c"]}]}"#,
        )
        .ok()
        .flatten();
        let mut asked = Vec::new();
        let chosen = rules.as_ref().and_then(|r| {
            r.select(|fact| {
                asked.push(fact);
                None
            })
        });
        // Nothing matched: the global configuration.
        assert!(chosen.is_some_and(|c| c.host == Some(HostKind::Higress)));
        assert_eq!(asked, vec![Fact::RouteName]);
    }

    #[test]
    fn no_rules_means_the_global_configuration_everywhere() {
        for document in [
            "",
            "{}",
            r#"{"baggage":"drop"}"#,
            r#"{"baggage":"drop","_rules_":[]}"#,
        ] {
            assert_eq!(rules(document).map(|r| r.is_none()), Ok(true), "{document}");
        }
    }

    #[test]
    fn each_rule_is_read_from_its_own_bytes_as_serde_json_reads_the_document() {
        // Brackets and quotes inside strings, an escaped `_rules_` key, a repeated key (the last
        // one counts, as in serde_json's map) and a fractional number inside a rule.
        let document = r#"{"_note_":"}]\"[{","host":"higress","export":{"cluster":"otel"},
            "_rules_":[{"_match_route_":["old"]}],
            "\u005frules_" : [ {"_match_domain_":["a]\"}b"],"baggage":"drop"} ,
                {"_match_route_":["r"],"export":{"cluster":"otel"},
                 "root_sampling_ratio":0.25} ] }"#;
        let rules = rules(document).ok().flatten();
        let rules = rules.as_ref();
        assert_eq!(rules.map(|r| r.rules.len()), Some(2));
        assert_eq!(
            rules.and_then(|r| chosen(r, "", "a]\"}b", "")),
            Some(BaggageMode::Drop)
        );
        let ratio = rules
            .and_then(|r| r.select(|f| (f == Fact::RouteName).then(|| "r".to_owned())))
            .and_then(|c| c.own_span.as_ref())
            .map(|o| o.root_sampling_millionths);
        assert_eq!(ratio, Some(250_000));
        assert!(rules.is_some_and(|r| r.global().is_some()));
    }

    #[test]
    fn errors_name_the_rule_and_its_key() {
        let cases = [
            (r#"{"_rules_":{}}"#, "_rules_"),
            (r#"{"_rules_":[]}"#, "_rules_"),
            (r#"{"_rules_":[1]}"#, "_rules_[0]"),
            (r#"{"_rules_":[{"baggage":"drop"}]}"#, "_rules_[0]"),
            (
                r#"{"_rules_":[{"_match_route_":"r1"}]}"#,
                "_rules_[0]._match_route_",
            ),
            (
                r#"{"_rules_":[{"_match_route_":[]}]}"#,
                "_rules_[0]._match_route_",
            ),
            (
                r#"{"_rules_":[{"_match_route_":[""]}]}"#,
                "_rules_[0]._match_route_",
            ),
            (
                r#"{"_rules_":[{"_match_domain_":[1]}]}"#,
                "_rules_[0]._match_domain_",
            ),
            (
                r#"{"_rules_":[{"_match_consumer_":["c"]}]}"#,
                "_rules_[0]._match_consumer_",
            ),
            (
                r#"{"_rules_":[{"_match_domain_":["a"],"_match_route_":["r"]}]}"#,
                "_rules_[0]._match_route_",
            ),
            (
                r#"{"_rules_":[{"_match_route_":["r"]},{"_match_route_":["s"],"baggage":"keep"}]}"#,
                "_rules_[1].baggage",
            ),
            (
                r#"{"_rules_":[{"_match_route_":["r"],"precedance":1}]}"#,
                "_rules_[0].precedance",
            ),
            (
                r#"{"_rules_":[{"_match_route_":["r"],"host":"envoy"}]}"#,
                "_rules_[0].host",
            ),
            (
                r#"{"_rules_":[{"_match_route_":["r"],"export":{"cluster":"otel"}}]}"#,
                "_rules_[0].export",
            ),
            (
                r#"{"_rules_":[{"_match_route_":["r"],"client_span":true}]}"#,
                "_rules_[0].client_span",
            ),
        ];
        for (document, key) in cases {
            let err = rules(document).err();
            assert_eq!(
                err.as_ref().map(|e| e.key.as_str()),
                Some(key),
                "{document}"
            );
        }
    }
}
