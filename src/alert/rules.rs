//! Which alert rules an event sets off, decided by the writer as it folds the event into its
//! issue: a new issue, a regression, an ignored issue coming back, a frequency threshold. Pure
//! apart from the frequency windows it keeps in memory.

use std::collections::{HashMap, VecDeque};

use crate::store::alerts::{AlertRules, Rule};
use crate::store::issues::{Issue, Status};

/// Events per minute of each issue of the projects with a frequency rule, for the last hour
/// or so. Counting starts when the server does.
#[derive(Default)]
pub struct Windows {
    minutes: HashMap<(u64, u64), VecDeque<(u64, u64)>>,
    events: u64,
}

/// The longest window kept.
const MAX_WINDOW_MINUTES: u64 = 24 * 60;

impl Windows {
    /// Counts one event at `at` (Unix seconds) and returns the issue's events in the last
    /// `minutes` minutes.
    fn count(&mut self, project: u64, issue: u64, at: f64, minutes: u64) -> u64 {
        let minute = (at / 60.0) as u64;
        let minutes = minutes.clamp(1, MAX_WINDOW_MINUTES);
        self.events += 1;
        if self.events.is_multiple_of(100_000) {
            // Forget issues quiet for longer than any window.
            self.minutes.retain(|_, b| {
                b.back()
                    .is_some_and(|(m, _)| m + MAX_WINDOW_MINUTES > minute)
            });
        }
        let buckets = self.minutes.entry((project, issue)).or_default();
        match buckets.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => buckets.push_back((minute, 1)),
        }
        while buckets
            .front()
            .is_some_and(|(m, _)| *m + MAX_WINDOW_MINUTES <= minute)
        {
            buckets.pop_front();
        }
        buckets
            .iter()
            .rev()
            .take_while(|(m, _)| m + minutes > minute)
            .map(|(_, n)| n)
            .sum()
    }
}

/// An alert an event set off.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggered {
    pub rule: Rule,
    pub detail: String,
}

/// The rules this event sets off on its issue (already updated with it), given the issue's
/// status before it and whether it is the issue's first event. A rule that fired for the
/// issue within `throttle` seconds (its own window, for the frequency rule) stays quiet.
/// Records the firing on the issue.
pub fn evaluate(
    rules: &AlertRules,
    before: Status,
    first: bool,
    issue: &mut Issue,
    at: f64,
    windows: &mut Windows,
    throttle: f64,
) -> Vec<Triggered> {
    let mut fired = Vec::new();
    if first {
        fired.push((Rule::NewIssue, "a new issue".to_string(), throttle));
    }
    if before == Status::Resolved && issue.status == Status::Unresolved {
        fired.push((
            Rule::Regression,
            "a regression: an event on a resolved issue".to_string(),
            throttle,
        ));
    }
    if before == Status::Ignored && issue.status == Status::Unresolved {
        fired.push((
            Rule::Reappeared,
            "an ignored issue is back: its ignore condition ran out".to_string(),
            throttle,
        ));
    }
    if let Some(f) = rules.frequency.filter(|f| f.events > 0 && f.minutes > 0) {
        let seen = windows.count(issue.project, issue.id, at, f.minutes);
        if seen > f.events {
            let unit = if f.minutes == 1 { "minute" } else { "minutes" };
            fired.push((
                Rule::Frequency,
                format!(
                    "more than {} events in {} {unit} ({seen})",
                    f.events, f.minutes
                ),
                (f.minutes * 60) as f64,
            ));
        }
    }
    throttled(rules, issue, at, fired)
}

/// The alert user feedback on an issue sets off, throttled like the others.
pub fn on_feedback(
    rules: &AlertRules,
    issue: &mut Issue,
    at: f64,
    throttle: f64,
    message: &str,
) -> Vec<Triggered> {
    let quoted: String = message.chars().take(200).collect();
    let detail = format!("new user feedback: \"{quoted}\"");
    throttled(rules, issue, at, vec![(Rule::Feedback, detail, throttle)])
}

/// Keeps the rules that are on and have not fired for the issue within their window, and
/// records their firing on the issue.
fn throttled(
    rules: &AlertRules,
    issue: &mut Issue,
    at: f64,
    fired: Vec<(Rule, String, f64)>,
) -> Vec<Triggered> {
    let mut out = Vec::new();
    for (rule, detail, window) in fired {
        if !rules.fires(rule) {
            continue;
        }
        let last = issue
            .alerted
            .iter()
            .find(|(r, _)| *r == rule)
            .map(|(_, t)| *t);
        if last.is_some_and(|t| at - t < window) {
            continue;
        }
        issue.alerted.retain(|(r, _)| *r != rule);
        issue.alerted.push((rule, at));
        out.push(Triggered { rule, detail });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::alerts::Frequency;

    fn issue() -> Issue {
        Issue {
            project: 1,
            id: 7,
            ..Default::default()
        }
    }

    #[test]
    fn new_issue_regression_and_throttle() {
        let rules = AlertRules::default();
        let mut w = Windows::default();
        let mut i = issue();
        let fired = evaluate(
            &rules,
            Status::Unresolved,
            true,
            &mut i,
            1000.0,
            &mut w,
            3600.0,
        );
        assert_eq!(fired[0].rule, Rule::NewIssue);
        assert!(
            evaluate(
                &rules,
                Status::Unresolved,
                false,
                &mut i,
                1001.0,
                &mut w,
                3600.0
            )
            .is_empty()
        );
        let fired = evaluate(
            &rules,
            Status::Resolved,
            false,
            &mut i,
            1002.0,
            &mut w,
            3600.0,
        );
        assert_eq!(fired[0].rule, Rule::Regression);
        // A second regression within the throttle window stays quiet; after it, it fires.
        assert!(
            evaluate(
                &rules,
                Status::Resolved,
                false,
                &mut i,
                2000.0,
                &mut w,
                3600.0
            )
            .is_empty()
        );
        assert_eq!(
            evaluate(
                &rules,
                Status::Resolved,
                false,
                &mut i,
                4700.0,
                &mut w,
                3600.0
            )
            .len(),
            1
        );
        let off = AlertRules {
            new_issue: false,
            ..AlertRules::default()
        };
        assert!(
            evaluate(
                &off,
                Status::Unresolved,
                true,
                &mut issue(),
                0.0,
                &mut w,
                3600.0
            )
            .is_empty()
        );
    }

    #[test]
    fn frequency_fires_once_per_window() {
        let rules = AlertRules {
            frequency: Some(Frequency {
                events: 3,
                minutes: 1,
            }),
            new_issue: false,
            ..AlertRules::default()
        };
        let mut w = Windows::default();
        let mut i = issue();
        // Ten events a second apart from `start`; how many alerts they set off.
        let mut burst = |start: f64| -> usize {
            (0..10)
                .map(|n| {
                    let at = start + f64::from(n);
                    evaluate(
                        &rules,
                        Status::Unresolved,
                        false,
                        &mut i,
                        at,
                        &mut w,
                        3600.0,
                    )
                    .len()
                })
                .sum()
        };
        let mut fired = burst(6000.0);
        assert_eq!(fired, 1, "once in the first minute");
        fired += burst(6070.0);
        assert_eq!(fired, 2, "once more in the next window");
    }
}
