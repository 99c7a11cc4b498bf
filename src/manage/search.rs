//! Search, as the issue list, `picket issues --query`, `picket events --query` and the Web
//! API's `query` all understand it: Sentry's syntax for the common cases.
//!
//! `is:unresolved|resolved|ignored|assigned|unassigned|for_review`, `level:`, `release:` (and
//! `release:latest`), `environment:`, `assigned:me|none|EMAIL`, `firstSeen:-24h`,
//! `lastSeen:+7d` (or `>DATE`, `<DATE`), `times_seen:>100`, `user.id:`, `user.email:`,
//! `user.username:`, `user.ip:`, `has:KEY`, any tag `key:value`; `!` before a key negates it,
//! values may be quoted, listed (`key:[a,b]`) or have wildcards (`key:*value*`); everything
//! else is free text, matched against an issue's title and culprit (anywhere) and the whole
//! words of its events' messages. Parsing is pure (and fuzzed); matching reads the search index of
//! `store::slices`, and [`Scope`] gives the counts of the environments and releases a search
//! names.

use std::collections::HashSet;

use redb::ReadTransaction;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::event::derived::{self, SEP, field_term, words};
use crate::store::issues::{Issue, MAX_SEEN_VALUES, Status};
use crate::store::slices::{self, ISSUE_SLICES, ISSUE_TERMS, ISSUE_USERS, SLICE_HOURS};
use crate::store::{ISSUE_HOURS, StoreError};

/// Why a query cannot be understood; the message names the part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("query: {0}")]
pub struct SearchError(pub String);

/// A parsed query: conditions that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub negated: bool,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Test {
    /// `is:` values, any of which may hold.
    Is(Vec<IsValue>),
    Level(Vec<String>),
    /// `release:` patterns; `latest` is the project's newest release.
    Release(Vec<Pattern>),
    Environment(Vec<Pattern>),
    /// `me`, `none` or an email.
    Assigned(Vec<String>),
    /// First (or last) seen after or before a time.
    Seen {
        first: bool,
        bound: Bound,
    },
    TimesSeen {
        op: Compare,
        n: u64,
    },
    /// A tag or user field with any of these values.
    Field {
        key: String,
        values: Vec<Pattern>,
    },
    /// Events with any value of this key.
    Has(String),
    /// Free text (lowercase): a word, or a quoted phrase.
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum IsValue {
    Unresolved,
    Resolved,
    Ignored,
    Assigned,
    Unassigned,
    /// Unresolved and new or regressed within the last week.
    ForReview,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Bound {
    /// At or after a time (Unix seconds) …
    After(f64),
    /// … or before it.
    Before(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Compare {
    Greater,
    AtLeast,
    Less,
    AtMost,
    Equal,
}

impl Compare {
    fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Compare::Greater => a > b,
            Compare::AtLeast => a >= b,
            Compare::Less => a < b,
            Compare::AtMost => a <= b,
            Compare::Equal => a == b,
        }
    }
}

/// A value, exact or with `*` wildcards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pattern(pub String);

impl Pattern {
    pub fn is_exact(&self) -> bool {
        !self.0.contains('*')
    }

    /// Whether a value matches (`*` stands for any run of characters).
    pub fn matches(&self, value: &str) -> bool {
        let parts: Vec<&str> = self.0.split('*').collect();
        let [first, middle @ .., last] = parts.as_slice() else {
            return self.0 == value;
        };
        if parts.len() == 1 {
            return self.0 == value;
        }
        let Some(mut rest) = value.strip_prefix(first) else {
            return false;
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }

    /// The literal text before the first wildcard.
    fn prefix(&self) -> &str {
        self.0.split('*').next().unwrap_or("")
    }
}

/// Values of `level:`.
const LEVELS: [&str; 5] = ["fatal", "error", "warning", "info", "debug"];

impl Query {
    /// Parses a query at `now` (relative times are fixed then).
    pub fn parse(text: &str, now: f64) -> Result<Query, SearchError> {
        let mut conditions = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let (condition, after) = condition(rest, now)?;
            if let Some(c) = condition {
                conditions.push(c);
            }
            rest = after.trim_start();
        }
        Ok(Query { conditions })
    }

    /// Reads `release:latest` as the project's newest release (by first appearance), once,
    /// before the query is matched; a project without releases leaves it as written.
    pub fn resolve_latest(
        &mut self,
        txn: &ReadTransaction,
        project: u64,
    ) -> Result<(), StoreError> {
        let asks = self.conditions.iter().any(
            |c| matches!(&c.test, Test::Release(values) if values.iter().any(|p| p.0 == "latest")),
        );
        if asks {
            let stats = txn.open_table(crate::store::RELEASE_STATS)?;
            if let Some((latest, _)) = crate::store::releases::newest(&stats, project)? {
                self.with_latest(&latest);
            }
        }
        Ok(())
    }

    /// `release:latest` as `latest`.
    pub fn with_latest(&mut self, latest: &str) {
        for c in &mut self.conditions {
            if let Test::Release(values) = &mut c.test {
                for p in values.iter_mut().filter(|p| p.0 == "latest") {
                    p.0 = latest.to_string();
                }
            }
        }
    }

    /// Adds a condition that a value of a key is one of `values` (the list's menus).
    pub fn require(&mut self, test: Test) {
        self.conditions.push(Condition {
            negated: false,
            test,
        });
    }

    /// Whether the query says which statuses it wants.
    pub fn names_status(&self) -> bool {
        self.conditions.iter().any(|c| {
            matches!(&c.test, Test::Is(v) if v.iter().any(|v| matches!(v, IsValue::Unresolved | IsValue::Resolved | IsValue::Ignored | IsValue::ForReview)))
        })
    }

    /// The environments and releases the query keeps to, whose counts are the ones to show.
    pub fn scope(&self) -> Scope {
        let mut scope = Scope::default();
        for c in self.conditions.iter().filter(|c| !c.negated) {
            match &c.test {
                Test::Environment(values) => {
                    if let Some(exact) = exact_values(values) {
                        scope.environments = exact;
                    }
                }
                Test::Release(values) => {
                    if let Some(exact) = exact_values(values) {
                        scope.releases = exact;
                    }
                }
                _ => {}
            }
        }
        scope
    }

    /// Refuses what does not apply to single events (an issue's events table).
    pub fn for_events(&self) -> Result<(), SearchError> {
        for c in &self.conditions {
            let name = match &c.test {
                Test::Is(_) => "is:",
                Test::Assigned(_) => "assigned:",
                Test::Seen { first: true, .. } => "firstSeen:",
                Test::Seen { first: false, .. } => "lastSeen:",
                Test::TimesSeen { .. } => "times_seen:",
                _ => continue,
            };
            return Err(SearchError(format!(
                "{name} filters issues, not events (an issue's events are searched by tags, \
                 user, release, environment, level and text)"
            )));
        }
        Ok(())
    }

    /// Texts a matching event holds verbatim: for each wanted condition on a value stored as
    /// sent (a tag, a user field, the release or environment), any of its values. An event
    /// whose bytes lack one cannot match, and need not be decoded.
    pub fn verbatim(&self) -> Vec<Vec<String>> {
        self.conditions
            .iter()
            .filter(|c| !c.negated)
            .filter_map(|c| match &c.test {
                Test::Release(values) => exact_values(values),
                Test::Environment(values) => exact_values(values),
                // Derived from other fields: not in the event as they read.
                Test::Field { key, .. }
                    if matches!(key.as_str(), "browser" | "os" | "runtime" | "user") =>
                {
                    None
                }
                Test::Field { values, .. } => exact_values(values),
                _ => None,
            })
            .collect()
    }

    /// Whether a stored event matches (only conditions [`Query::for_events`] allows).
    pub fn matches_event(&self, ev: &Event) -> bool {
        let tags = derived::counted(ev);
        let terms = derived::terms(ev, &tags);
        let has_field = |key: &str, values: &[Pattern]| {
            let prefix = format!("{key}{SEP}");
            terms.iter().any(|t| {
                t.strip_prefix(&prefix)
                    .is_some_and(|v| values.iter().any(|p| p.matches(v)))
            })
        };
        let haystack = haystack_of(&ev.title(), &ev.culprit());
        self.conditions.iter().all(|c| {
            let holds = match &c.test {
                Test::Level(levels) => levels.iter().any(|l| l == ev.level.as_str()),
                Test::Release(values) => has_field("release", values),
                Test::Environment(values) => has_field("environment", values),
                Test::Field { key, values } => has_field(key, values),
                Test::Has(key) => has_field(key, &[Pattern("*".into())]),
                Test::Text(text) => {
                    haystack.contains(text.as_str()) || words(text).all(|w| terms.contains(&w))
                }
                _ => true,
            };
            holds != c.negated
        })
    }

    /// The issues among `candidates` (with their lowercase title and culprit) that match.
    pub fn matching<'i, 'h>(
        &self,
        txn: &ReadTransaction,
        project: u64,
        candidates: impl Iterator<Item = (&'i Issue, &'h str)>,
        ctx: &Context<'_>,
    ) -> Result<Vec<&'i Issue>, StoreError> {
        let index = txn.open_table(ISSUE_TERMS)?;
        let candidates: Vec<(&'i Issue, &'h str)> = candidates.collect();
        // Release and environment are answered by the issue's own lists, unless one is full.
        let full_lists = candidates.iter().any(|(i, _)| {
            i.releases.len() >= MAX_SEEN_VALUES || i.environments.len() >= MAX_SEEN_VALUES
        });
        let mut found: Vec<Lookup> = Vec::with_capacity(self.conditions.len());
        for c in &self.conditions {
            // A wanted term that many issues carry is asked per issue instead (only the issues
            // that pass everything else are asked); a negated one, or a wildcard, is read whole.
            let cap = if c.negated { usize::MAX } else { SCAN_CAP };
            let field = |key: &str, values: &[Pattern]| -> Result<Lookup, StoreError> {
                let mut out = HashSet::new();
                let mut probe = Vec::new();
                for p in values {
                    if p.is_exact() {
                        let exact = field_term(key, &p.0);
                        match slices::issues_with_term(&index, project, &exact, cap)? {
                            Some(set) => out.extend(set),
                            None => probe.push(exact),
                        }
                    } else {
                        let skip = key.len() + SEP.len_utf8();
                        let prefix = field_term(key, p.prefix());
                        let keep = |t: &str| p.matches(&t[skip..]);
                        out.extend(slices::issues_with(&index, project, &prefix, keep)?);
                    }
                }
                Ok(Lookup::Found { set: out, probe })
            };
            let lookup = match &c.test {
                Test::Release(values) if full_lists => field("release", values),
                Test::Environment(values) if full_lists => field("environment", values),
                Test::Field { key, values } => field(key, values),
                Test::Has(key) => field(key, &[Pattern("*".into())]),
                Test::Text(text) => {
                    // Every word of the phrase, as a whole word of the events' messages.
                    let mut all: Option<HashSet<u64>> = None;
                    let mut probe = Vec::new();
                    for w in words(text) {
                        match slices::issues_with_term(&index, project, &w, cap)? {
                            Some(with) => {
                                all = Some(match all {
                                    None => with,
                                    Some(before) => before.intersection(&with).copied().collect(),
                                })
                            }
                            None => probe.push(w),
                        }
                    }
                    Ok(Lookup::Words { set: all, probe })
                }
                _ => Ok(Lookup::None),
            }?;
            found.push(lookup);
        }
        let asked = |issue: u64, term: &str| -> bool {
            slices::has_term(&index, project, term, issue).unwrap_or(false)
        };
        let week_ago = ctx.now - 7.0 * 86_400.0;
        let mut out = Vec::new();
        for (issue, haystack) in candidates {
            let indexed = |lookup: &Lookup| match lookup {
                Lookup::None => false,
                Lookup::Found { set, probe } => {
                    set.contains(&issue.id) || probe.iter().any(|t| asked(issue.id, t))
                }
                Lookup::Words { set, probe } => {
                    set.as_ref().is_none_or(|s| s.contains(&issue.id))
                        && (set.is_some() || !probe.is_empty())
                        && probe.iter().all(|t| asked(issue.id, t))
                }
            };
            // Conditions that ask the index per issue come last.
            let order = self
                .conditions
                .iter()
                .zip(&found)
                .filter(|(_, l)| !l.probes())
                .chain(
                    self.conditions
                        .iter()
                        .zip(&found)
                        .filter(|(_, l)| l.probes()),
                );
            let ok = order.into_iter().all(|(c, lookup)| {
                let in_set = || indexed(lookup);
                let holds = match &c.test {
                    Test::Is(values) => values.iter().any(|v| match v {
                        IsValue::Unresolved => issue.status == Status::Unresolved,
                        IsValue::Resolved => issue.status == Status::Resolved,
                        IsValue::Ignored => issue.status == Status::Ignored,
                        IsValue::Assigned => issue.assignee.is_some(),
                        IsValue::Unassigned => issue.assignee.is_none(),
                        IsValue::ForReview => {
                            issue.status == Status::Unresolved
                                && (issue.first_seen >= week_ago
                                    || issue.regressed_at.is_some_and(|t| t >= week_ago))
                        }
                    }),
                    Test::Level(levels) => levels.iter().any(|l| l == issue.level.as_str()),
                    Test::Release(values) => {
                        issue
                            .releases
                            .iter()
                            .any(|r| values.iter().any(|p| p.matches(r)))
                            || issue.releases.len() >= MAX_SEEN_VALUES && in_set()
                    }
                    Test::Environment(values) => {
                        issue
                            .environments
                            .iter()
                            .any(|e| values.iter().any(|p| p.matches(e)))
                            || issue.environments.len() >= MAX_SEEN_VALUES && in_set()
                    }
                    Test::Assigned(who) => who.iter().any(|w| match w.as_str() {
                        "me" => ctx
                            .me
                            .is_some_and(|me| issue.assignee.as_deref() == Some(me)),
                        "none" => issue.assignee.is_none(),
                        email => issue
                            .assignee
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(email)),
                    }),
                    Test::Seen { first, bound } => {
                        let t = if *first {
                            issue.first_seen
                        } else {
                            issue.last_seen
                        };
                        match bound {
                            Bound::After(at) => t >= *at,
                            Bound::Before(at) => t < *at,
                        }
                    }
                    Test::TimesSeen { op, n } => op.holds((ctx.times_seen)(issue), *n),
                    Test::Field { .. } | Test::Has(_) => in_set(),
                    Test::Text(text) => haystack.contains(text.as_str()) || in_set(),
                };
                holds != c.negated
            });
            if ok {
                out.push(issue);
            }
        }
        Ok(out)
    }
}

/// What a search of one project found: the matching issues, and the scope whose counts they
/// are shown with.
pub struct Found<'i> {
    pub issues: Vec<&'i Issue>,
    pub scope: Scope,
}

impl Query {
    /// Searches a project's issues (with their lowercase title and culprit, see
    /// [`haystack`]) as `me`, counting events `since` a time if given: reads
    /// `release:latest`, keeps to issues seen since, and matches.
    pub fn find<'i, 'h>(
        &self,
        txn: &ReadTransaction,
        project: u64,
        candidates: impl Iterator<Item = (&'i Issue, &'h str)>,
        me: Option<&str>,
        since: Option<f64>,
    ) -> Result<Found<'i>, StoreError> {
        let mut query = self.clone();
        query.resolve_latest(txn, project)?;
        let mut scope = query.scope();
        scope.since = since;
        let narrow = scope.is_narrow();
        let times_seen = |i: &Issue| -> u64 {
            if narrow {
                scope.count(txn, i).map_or(0, |c| c.events)
            } else {
                i.count
            }
        };
        let ctx = Context {
            me,
            now: crate::time::now(),
            times_seen: &times_seen,
        };
        let seen = candidates.filter(|(i, _)| since.is_none_or(|t| i.last_seen >= t));
        let issues = query.matching(txn, project, seen, &ctx)?;
        Ok(Found { issues, scope })
    }
}

/// What free text matches of an issue itself: its title and culprit, lowercase, on two lines
/// (so that a phrase never runs from one into the other).
pub fn haystack(issue: &Issue) -> String {
    haystack_of(&issue.title, &issue.culprit)
}

/// A title and culprit as free text matches them (an issue's, or an event's).
fn haystack_of(title: &str, culprit: &str) -> String {
    format!("{title}\n{culprit}").to_lowercase()
}

/// Index rows a wanted term's scan reads before the term is asked per issue instead.
const SCAN_CAP: usize = 2_000;

/// How the index answers one condition.
enum Lookup {
    /// Not from the index.
    None,
    /// Issues with any of the terms: those read, and terms to ask per issue.
    Found {
        set: HashSet<u64>,
        probe: Vec<String>,
    },
    /// Issues with every word: those read (`None`: no word was read whole), and words to ask
    /// per issue.
    Words {
        set: Option<HashSet<u64>>,
        probe: Vec<String>,
    },
}

impl Lookup {
    fn probes(&self) -> bool {
        match self {
            Lookup::None => false,
            Lookup::Found { probe, .. } | Lookup::Words { probe, .. } => !probe.is_empty(),
        }
    }
}

/// The values, when none has a wildcard.
fn exact_values(values: &[Pattern]) -> Option<Vec<String>> {
    values
        .iter()
        .all(Pattern::is_exact)
        .then(|| values.iter().map(|p| p.0.clone()).collect())
}

/// What matching needs besides the issues.
pub struct Context<'a> {
    /// The searching user's email, for `assigned:me`.
    pub me: Option<&'a str>,
    pub now: f64,
    /// An issue's events as `times_seen:` counts them (those of the scope).
    pub times_seen: &'a dyn Fn(&Issue) -> u64,
}

/// Reads one condition from the start of `text`: the condition (none for a lone `!`), and
/// the text after it.
fn condition(text: &str, now: f64) -> Result<(Option<Condition>, &str), SearchError> {
    let (negated, body) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let key_len = body
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')))
        .unwrap_or(body.len());
    if key_len > 0 && body[key_len..].starts_with(':') {
        let key = &body[..key_len];
        let (values, rest) = values(key, &body[key_len + 1..])?;
        let test = test(key, values, now)?;
        return Ok((Some(Condition { negated, test }), rest));
    }
    if negated {
        let word: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        return Err(SearchError(format!(
            "'!{word}' negates nothing: write !key:value"
        )));
    }
    let (phrase, rest) = if let Some(quoted) = body.strip_prefix('"') {
        let (phrase, rest) = quoted_value(quoted)
            .ok_or_else(|| SearchError(format!("the quote in '{}' is not closed", body)))?;
        (phrase, rest)
    } else {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        (body[..end].to_string(), &body[end..])
    };
    let phrase = phrase.trim().to_lowercase();
    if phrase.is_empty() {
        return Ok((None, rest));
    }
    Ok((
        Some(Condition {
            negated: false,
            test: Test::Text(phrase),
        }),
        rest,
    ))
}

/// A quoted value after its opening quote (`\"` is a quote): the value and what follows.
fn quoted_value(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '"' => return Some((out, &text[at + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The value or values after `key:`, and what follows them.
fn values<'t>(key: &str, text: &'t str) -> Result<(Vec<String>, &'t str), SearchError> {
    if let Some(quoted) = text.strip_prefix('"') {
        let (v, rest) = quoted_value(quoted)
            .ok_or_else(|| SearchError(format!("the quote after '{key}:' is not closed")))?;
        return Ok((vec![v], rest));
    }
    if let Some(list) = text.strip_prefix('[') {
        let mut out = Vec::new();
        let mut rest = list;
        loop {
            rest = rest.trim_start();
            let (v, after) = if let Some(q) = rest.strip_prefix('"') {
                quoted_value(q).ok_or_else(|| {
                    SearchError(format!("a quote in the list after '{key}:' is not closed"))
                })?
            } else {
                let end = rest.find([',', ']']).ok_or_else(|| {
                    SearchError(format!("the list after '{key}:[' is not closed with ]"))
                })?;
                (rest[..end].trim().to_string(), &rest[end..])
            };
            if !v.is_empty() {
                out.push(v);
            }
            let after = after.trim_start();
            if let Some(r) = after.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = after.strip_prefix(']') {
                if out.is_empty() {
                    return Err(SearchError(format!("the list after '{key}:' is empty")));
                }
                return Ok((out, r));
            } else {
                return Err(SearchError(format!(
                    "the list after '{key}:[' is not closed with ]"
                )));
            }
        }
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    if end == 0 {
        return Err(SearchError(format!(
            "'{key}:' has no value (write {key}:value, quoted if it has spaces)"
        )));
    }
    Ok((vec![text[..end].to_string()], &text[end..]))
}

fn test(key: &str, values: Vec<String>, now: f64) -> Result<Test, SearchError> {
    let one = |what: &str| -> Result<String, SearchError> {
        match values.as_slice() {
            [v] => Ok(v.clone()),
            _ => Err(SearchError(format!("{key}: takes one {what}, not a list"))),
        }
    };
    let patterns = || values.iter().map(|v| Pattern(v.clone())).collect();
    Ok(match key {
        "is" => Test::Is(
            values
                .iter()
                .map(|v| match v.as_str() {
                    "unresolved" => Ok(IsValue::Unresolved),
                    "resolved" => Ok(IsValue::Resolved),
                    "ignored" | "archived" | "muted" => Ok(IsValue::Ignored),
                    "assigned" => Ok(IsValue::Assigned),
                    "unassigned" => Ok(IsValue::Unassigned),
                    "for_review" => Ok(IsValue::ForReview),
                    other => Err(SearchError(format!(
                        "is:{other} is not supported (unresolved, resolved, ignored, \
                         assigned, unassigned or for_review)"
                    ))),
                })
                .collect::<Result<_, _>>()?,
        ),
        "level" => Test::Level(
            values
                .iter()
                .map(|v| {
                    let l = v.to_ascii_lowercase();
                    let l = if l == "warn" { "warning".into() } else { l };
                    if LEVELS.contains(&l.as_str()) {
                        Ok(l)
                    } else {
                        Err(SearchError(format!(
                            "level:{v} is not a level (fatal, error, warning, info or debug)"
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        "release" => Test::Release(patterns()),
        "environment" => Test::Environment(patterns()),
        "assigned" | "assigned_to" => Test::Assigned(
            values
                .iter()
                .map(|v| v.trim_start_matches('#').to_string())
                .collect(),
        ),
        "firstSeen" | "first_seen" | "lastSeen" | "last_seen" | "age" => Test::Seen {
            first: !key.starts_with("last"),
            bound: bound(key, &one("time")?, now)?,
        },
        "times_seen" | "timesSeen" => {
            let v = one("number")?;
            let (op, digits) = comparison(&v);
            let n = digits.parse().map_err(|_| {
                SearchError(format!(
                    "{key}:{v} needs a number, after >, >=, < or <= if you like \
                     ({key}:>100)"
                ))
            })?;
            Test::TimesSeen { op, n }
        }
        "has" => Test::Has(one("key")?),
        "message" => {
            let text = one("text")?.trim().to_lowercase();
            if text.is_empty() {
                return Err(SearchError(format!("{key}: needs text to look for")));
            }
            Test::Text(text)
        }
        "user.ip_address" => Test::Field {
            key: "user.ip".into(),
            values: patterns(),
        },
        key => Test::Field {
            key: key.to_string(),
            values: patterns(),
        },
    })
}

fn comparison(v: &str) -> (Compare, &str) {
    for (prefix, op) in [
        (">=", Compare::AtLeast),
        ("<=", Compare::AtMost),
        (">", Compare::Greater),
        ("<", Compare::Less),
        ("=", Compare::Equal),
    ] {
        if let Some(rest) = v.strip_prefix(prefix) {
            return (op, rest);
        }
    }
    (Compare::Equal, v)
}

/// `-24h` (within the last 24 hours), `+7d` (longer ago than 7 days), `>2026-01-01`,
/// `<2026-01-01T12:00:00`.
fn bound(key: &str, v: &str, now: f64) -> Result<Bound, SearchError> {
    let bad = || {
        SearchError(format!(
            "{key}:{v} is not a time: write -24h (within the last 24 hours), +7d (longer ago \
             than 7 days), or >DATE / <DATE"
        ))
    };
    if let Some(rest) = v.strip_prefix('-') {
        return Ok(Bound::After(now - duration(rest).ok_or_else(bad)?));
    }
    if let Some(rest) = v.strip_prefix('+') {
        return Ok(Bound::Before(now - duration(rest).ok_or_else(bad)?));
    }
    let (op, date) = comparison(v);
    let at = crate::time::parse_iso(date)
        .or_else(|| crate::time::parse_iso(&format!("{date}T00:00:00")))
        .ok_or_else(bad)?;
    match op {
        Compare::Greater | Compare::AtLeast => Ok(Bound::After(at)),
        Compare::Less | Compare::AtMost => Ok(Bound::Before(at)),
        Compare::Equal => Err(bad()),
    }
}

/// `30m`, `24h`, `7d`, `2w` in seconds.
pub fn duration(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse::<u32>().ok()?.into();
    let unit = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return None,
    };
    Some(n * unit)
}

/// The environments and releases whose events a list or page counts (empty: all), and the
/// time since which (`None`: all time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub environments: Vec<String>,
    pub releases: Vec<String>,
    pub since: Option<f64>,
}

/// An issue's events and users within a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counted {
    pub events: u64,
    pub users: u64,
    pub users_estimated: bool,
}

impl Scope {
    /// Whether the scope counts only some of an issue's events.
    pub fn is_narrow(&self) -> bool {
        !self.environments.is_empty() || !self.releases.is_empty() || self.since.is_some()
    }

    /// Whether a slice (by its name) is in the scope.
    pub fn admits(&self, slice: &str) -> bool {
        let (env, release) = slices::split_slice(slice);
        (self.environments.is_empty() || self.environments.iter().any(|e| e == env))
            && (self.releases.is_empty() || self.releases.iter().any(|r| r == release))
    }

    /// What the scope says it counts, for the page ("in production, release shop@1.1, last
    /// 24 hours"); empty for everything.
    pub fn describe(&self, period: &str) -> String {
        let mut parts = Vec::new();
        if !self.environments.is_empty() {
            parts.push(format!("in {}", self.environments.join(" or ")));
        }
        if !self.releases.is_empty() {
            parts.push(format!("of release {}", self.releases.join(" or ")));
        }
        if self.since.is_some() && !period.is_empty() {
            parts.push(format!("in the last {period}"));
        }
        parts.join(", ")
    }

    /// Whether the scope keeps to some environments or releases (counts come from slices).
    fn by_slice(&self) -> bool {
        !self.environments.is_empty() || !self.releases.is_empty()
    }

    /// An issue's events and users in the scope. Users are those of its environments and
    /// releases over all time (a time range narrows the events only).
    pub fn count(&self, txn: &ReadTransaction, issue: &Issue) -> Result<Counted, StoreError> {
        let (p, i) = (issue.project, issue.id);
        let mut counted = if self.by_slice() {
            let all = slices::read_slices(&txn.open_table(ISSUE_SLICES)?, p, i)?;
            let kept: Vec<&(String, slices::SliceStats)> =
                all.iter().filter(|(name, _)| self.admits(name)).collect();
            let (users, users_estimated) =
                slices::users_of(&txn.open_table(ISSUE_USERS)?, p, i, &kept)?;
            Counted {
                events: kept.iter().map(|(_, s)| s.count).sum(),
                users,
                users_estimated,
            }
        } else {
            Counted {
                events: issue.count,
                users: issue.user_count(),
                users_estimated: issue.users_estimated(),
            }
        };
        if let Some(since) = self.since {
            let from = (since.max(0.0) / 3600.0) as u64;
            let hours = self.hourly(txn, issue, from, u64::MAX - 1)?;
            counted.events = hours.iter().map(|(_, n)| n).sum();
        }
        Ok(counted)
    }

    /// An issue's events per hour in the scope (by the events' own time), from hour `from`
    /// to `to`: its slices' buckets, or its own when the scope keeps to no environment or
    /// release.
    pub fn hourly(
        &self,
        txn: &ReadTransaction,
        issue: &Issue,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let (p, i) = (issue.project, issue.id);
        if self.by_slice() {
            slices::hourly(&txn.open_table(SLICE_HOURS)?, p, i, from, to, |s| {
                self.admits(s)
            })
        } else {
            crate::store::issues::hourly(&txn.open_table(ISSUE_HOURS)?, p, i, from, to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn parse(q: &str) -> Vec<Condition> {
        Query::parse(q, NOW).expect(q).conditions
    }

    fn err(q: &str) -> String {
        Query::parse(q, NOW).expect_err(q).to_string()
    }

    fn field(key: &str, values: &[&str]) -> Test {
        Test::Field {
            key: key.into(),
            values: values.iter().map(|v| Pattern(v.to_string())).collect(),
        }
    }

    #[test]
    fn sentry_syntax_parses() {
        let c = parse(
            r#"is:unresolved level:error !browser:Chrome user.email:"a b@x.io" os:[Linux, "Mac OS"] url:*checkout* order 1234 "key error""#,
        );
        let tests: Vec<(bool, Test)> = c.into_iter().map(|c| (c.negated, c.test)).collect();
        assert_eq!(
            tests,
            vec![
                (false, Test::Is(vec![IsValue::Unresolved])),
                (false, Test::Level(vec!["error".into()])),
                (true, field("browser", &["Chrome"])),
                (false, field("user.email", &["a b@x.io"])),
                (false, field("os", &["Linux", "Mac OS"])),
                (false, field("url", &["*checkout*"])),
                (false, Test::Text("order".into())),
                (false, Test::Text("1234".into())),
                (false, Test::Text("key error".into())),
            ]
        );
    }

    #[test]
    fn times_and_counts_parse() {
        let c = parse("firstSeen:-24h lastSeen:+7d times_seen:>100 age:>2026-01-01");
        assert_eq!(
            c[0].test,
            Test::Seen {
                first: true,
                bound: Bound::After(NOW - 86_400.0)
            }
        );
        assert_eq!(
            c[1].test,
            Test::Seen {
                first: false,
                bound: Bound::Before(NOW - 7.0 * 86_400.0)
            }
        );
        assert_eq!(
            c[2].test,
            Test::TimesSeen {
                op: Compare::Greater,
                n: 100
            }
        );
        assert!(matches!(
            c[3].test,
            Test::Seen {
                bound: Bound::After(_),
                ..
            }
        ));
    }

    #[test]
    fn what_cannot_be_parsed_says_why() {
        assert!(err("is:sleeping").contains("is:sleeping is not supported"));
        assert!(err("level:loud").contains("level:loud is not a level"));
        assert!(err("times_seen:many").contains("needs a number"));
        assert!(err("firstSeen:yesterday").contains("is not a time"));
        assert!(err(r#"user.email:"ann"#).contains("quote after 'user.email:' is not closed"));
        assert!(err("os:[Linux, Mac").contains("not closed with ]"));
        assert!(err("browser: Chrome").contains("'browser:' has no value"));
        assert!(err("!chrome").contains("negates nothing"));
        assert!(err(r#""order 12"#).contains("is not closed"));
        assert!(err(r#"message:"  ""#).contains("message: needs text"));
    }

    #[test]
    fn wildcards_match_anywhere() {
        let p = Pattern("*checkout*".into());
        assert!(p.matches("https://shop/checkout/pay"));
        assert!(!p.matches("https://shop/cart"));
        assert!(Pattern("shop@1.*".into()).matches("shop@1.12"));
        assert!(!Pattern("shop@1.*".into()).matches("shop@2.0"));
        assert!(Pattern("a*b*a".into()).matches("aba"));
        assert!(!Pattern("a*b*a".into()).matches("ab"));
        assert!(Pattern("exact".into()).matches("exact"));
    }

    #[test]
    fn the_scope_is_the_named_environments_and_releases() {
        let mut q = Query::parse("environment:production release:latest", NOW).unwrap();
        q.with_latest("shop@1.1");
        let scope = q.scope();
        assert_eq!(scope.environments, ["production"]);
        assert_eq!(scope.releases, ["shop@1.1"]);
        assert!(scope.admits(&slices::slice_name(Some("production"), Some("shop@1.1"))));
        assert!(!scope.admits(&slices::slice_name(Some("staging"), Some("shop@1.1"))));
        let wild = Query::parse("release:shop*", NOW).unwrap().scope();
        assert!(wild.releases.is_empty());
    }

    #[test]
    fn issue_conditions_are_refused_for_events() {
        let q = Query::parse("is:unresolved browser:Chrome", NOW).unwrap();
        assert!(q.for_events().unwrap_err().0.contains("is: filters issues"));
        assert!(
            Query::parse("user.id:12 release:1.2", NOW)
                .unwrap()
                .for_events()
                .is_ok()
        );
    }
}
