//! Which changes and events a trigger wants: the feed's own `prefix`/`suffix`/`events`
//! parameters ([`ChangeFilter`]) and CloudEvents Subscriptions API filters
//! ([`SubscriptionFilter`]) for the hooks pattern. Plain functions, no I/O.
//!
//! This module does not list or push anything down: the core also passes the prefix to the
//! source's listing; matching it here again is harmless.
//!
//! # Subscription filter semantics
//! Dialects `exact`, `prefix`, `suffix`, `all`, `any`, `not` (Subscriptions API 0.1,
//! 3.2.4.1.1); `sql` and unknown dialects are rejected when parsed, as the spec requires.
//! Comparisons are case-sensitive. Only context attributes are looked at (top-level members
//! except `data` and `data_base64`). A missing or `null` attribute makes `exact`, `prefix`
//! and `suffix` false (as in the CESQL test suite and Knative); `not` simply inverts its
//! nested result (as Knative does), so `not exact` on a missing attribute is true. A
//! boolean or integer attribute is compared by its canonical string form (`true`, `5`),
//! as Knative's prefix/suffix filters (`fmt.Sprintf("%v")`) and CESQL's string casts do;
//! object and array values are not attribute values and never match. Filter values
//! themselves must be non-empty strings.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::change::{Change, ChangeKind};
use crate::params::{ParamError, Params};

const EVENTS_EXPECTED: &str = "a non-empty list of created, updated, deleted (or the legacy added, modified)";

/// The feed's own change filter: key prefix, key suffix and change kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeFilter {
    prefix: Option<String>,
    suffix: Option<String>,
    kinds: HashSet<ChangeKind>,
}

impl Default for ChangeFilter {
    /// Every key, every kind.
    fn default() -> Self {
        ChangeFilter {
            prefix: None,
            suffix: None,
            kinds: [ChangeKind::Created, ChangeKind::Updated, ChangeKind::Deleted].into_iter().collect(),
        }
    }
}

impl ChangeFilter {
    /// Reads `prefix`, `suffix` and `events` (a list; default: all kinds); errors name the parameter.
    pub fn from_params(params: &Params) -> Result<ChangeFilter, ParamError> {
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let prefix = non_empty(params.str("prefix")?);
        let suffix = non_empty(params.str("suffix")?);
        let kinds = match params.list("events")? {
            None => ChangeFilter::default().kinds,
            Some(names) => {
                let raw = params.raw("events").cloned().unwrap_or(Value::Null);
                if names.is_empty() {
                    return Err(ParamError::invalid("events", EVENTS_EXPECTED, &raw));
                }
                let mut kinds = HashSet::new();
                for name in &names {
                    let kind = match name.to_ascii_lowercase().as_str() {
                        "created" | "added" => ChangeKind::Created,
                        "updated" | "modified" => ChangeKind::Updated,
                        "deleted" => ChangeKind::Deleted,
                        _ => return Err(ParamError::invalid("events", EVENTS_EXPECTED, &raw)),
                    };
                    kinds.insert(kind);
                }
                kinds
            }
        };
        Ok(ChangeFilter { prefix, suffix, kinds })
    }

    /// The key prefix, if any (the core also pushes it down to the listing).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The key suffix, if any.
    pub fn suffix(&self) -> Option<&str> {
        self.suffix.as_deref()
    }

    /// True when changes of this kind are wanted.
    pub fn wants(&self, kind: ChangeKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// True when the change's kind is wanted and its key has the prefix and the suffix.
    pub fn matches(&self, change: &Change) -> bool {
        self.matches_key(change.kind, &change.key)
    }

    /// True when `kind` is wanted and `key` has the prefix and the suffix (a log record).
    pub fn matches_key(&self, kind: ChangeKind, key: &str) -> bool {
        self.wants(kind)
            && self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

/// Nested filters deeper than this are rejected, so matching can never exhaust the stack.
const MAX_DEPTH: usize = 32;

/// One CloudEvents Subscriptions API filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionFilter {
    /// Every listed attribute equals its value.
    Exact(BTreeMap<String, String>),
    /// Every listed attribute starts with its value.
    Prefix(BTreeMap<String, String>),
    /// Every listed attribute ends with its value.
    Suffix(BTreeMap<String, String>),
    /// Every nested filter holds (at least one).
    All(Vec<SubscriptionFilter>),
    /// At least one nested filter holds (at least one given).
    Any(Vec<SubscriptionFilter>),
    /// The nested filter does not hold.
    Not(Box<SubscriptionFilter>),
}

/// Why a subscription filter was rejected; `path` locates it (`filters[1].all[0].exact`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// The JSON at `path` is not of the form the dialect needs.
    Shape {
        /// Where.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// A dialect this implementation does not support (`sql` included).
    UnknownDialect {
        /// Where.
        path: String,
        /// The dialect name given.
        dialect: String,
    },
    /// An empty attribute map, an empty nested list, or an empty attribute name or value.
    Empty {
        /// Where.
        path: String,
        /// What is empty.
        what: &'static str,
    },
    /// Filters nested deeper than the limit.
    TooDeep {
        /// Where.
        path: String,
    },
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::Shape { path, expected } => write!(f, "{path}: expected {expected}"),
            FilterError::UnknownDialect { path, dialect } => write!(
                f,
                "{path}: unsupported filter dialect {dialect:?} (expected exact, prefix, suffix, all, any or not)"
            ),
            FilterError::Empty { path, what } => write!(f, "{path}: {what} must not be empty"),
            FilterError::TooDeep { path } => write!(f, "{path}: filters nested deeper than {MAX_DEPTH} levels"),
        }
    }
}

impl std::error::Error for FilterError {}

impl SubscriptionFilter {
    /// Parses one filter in the spec's JSON form, e.g. `{"exact": {"type": "x"}}`.
    pub fn parse(value: &Value) -> Result<SubscriptionFilter, FilterError> {
        parse_at(value, "filter", 0)
    }

    /// True when the event (a structured-mode JSON CloudEvent) passes this filter.
    pub fn matches(&self, event: &Value) -> bool {
        match self {
            SubscriptionFilter::Exact(attrs) => all_attributes(attrs, event, |got, want| got == want),
            SubscriptionFilter::Prefix(attrs) => all_attributes(attrs, event, |got, want| got.starts_with(want)),
            SubscriptionFilter::Suffix(attrs) => all_attributes(attrs, event, |got, want| got.ends_with(want)),
            SubscriptionFilter::All(filters) => filters.iter().all(|f| f.matches(event)),
            SubscriptionFilter::Any(filters) => filters.iter().any(|f| f.matches(event)),
            SubscriptionFilter::Not(filter) => !filter.matches(event),
        }
    }
}

/// Parses a subscription's `filters` array (`null` counts as empty).
pub fn parse_filters(value: &Value) -> Result<Vec<SubscriptionFilter>, FilterError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            items.iter().enumerate().map(|(i, item)| parse_at(item, &format!("filters[{i}]"), 0)).collect()
        }
        _ => Err(FilterError::Shape { path: "filters".into(), expected: "an array of filter expressions" }),
    }
}

/// True when every filter passes; no filters means true.
pub fn matches_all(filters: &[SubscriptionFilter], event: &Value) -> bool {
    filters.iter().all(|f| f.matches(event))
}

fn parse_at(value: &Value, path: &str, depth: usize) -> Result<SubscriptionFilter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(FilterError::TooDeep { path: path.to_string() });
    }
    let shape = || FilterError::Shape {
        path: path.to_string(),
        expected: "an object with exactly one dialect, e.g. {\"exact\": {\"type\": \"com.example.created\"}}",
    };
    let Value::Object(expression) = value else { return Err(shape()) };
    let mut members = expression.iter();
    let (Some((dialect, body)), None) = (members.next(), members.next()) else { return Err(shape()) };
    let here = format!("{path}.{dialect}");
    match dialect.as_str() {
        "exact" => Ok(SubscriptionFilter::Exact(parse_attributes(body, &here)?)),
        "prefix" => Ok(SubscriptionFilter::Prefix(parse_attributes(body, &here)?)),
        "suffix" => Ok(SubscriptionFilter::Suffix(parse_attributes(body, &here)?)),
        "all" => Ok(SubscriptionFilter::All(parse_nested(body, &here, depth)?)),
        "any" => Ok(SubscriptionFilter::Any(parse_nested(body, &here, depth)?)),
        "not" => match body {
            Value::Object(_) => Ok(SubscriptionFilter::Not(Box::new(parse_at(body, &here, depth + 1)?))),
            // A one-element array is read as the one nested filter; any other count is wrong.
            Value::Array(items) if items.len() == 1 => {
                Ok(SubscriptionFilter::Not(Box::new(parse_at(&items[0], &format!("{here}[0]"), depth + 1)?)))
            }
            _ => Err(FilterError::Shape { path: here, expected: "exactly one nested filter expression" }),
        },
        _ => Err(FilterError::UnknownDialect { path: path.to_string(), dialect: dialect.clone() }),
    }
}

fn parse_attributes(body: &Value, path: &str) -> Result<BTreeMap<String, String>, FilterError> {
    let Value::Object(map) = body else {
        return Err(FilterError::Shape { path: path.to_string(), expected: "an object of attribute names to strings" });
    };
    if map.is_empty() {
        return Err(FilterError::Empty { path: path.to_string(), what: "the attribute map" });
    }
    let mut attrs = BTreeMap::new();
    for (name, value) in map {
        if name.is_empty() {
            return Err(FilterError::Empty { path: path.to_string(), what: "an attribute name" });
        }
        let at = format!("{path}.{name}");
        match value {
            Value::String(s) if s.is_empty() => return Err(FilterError::Empty { path: at, what: "the value" }),
            Value::String(s) => {
                attrs.insert(name.clone(), s.clone());
            }
            _ => return Err(FilterError::Shape { path: at, expected: "a string value" }),
        }
    }
    Ok(attrs)
}

fn parse_nested(body: &Value, path: &str, depth: usize) -> Result<Vec<SubscriptionFilter>, FilterError> {
    let Value::Array(items) = body else {
        return Err(FilterError::Shape { path: path.to_string(), expected: "an array of filter expressions" });
    };
    if items.is_empty() {
        return Err(FilterError::Empty { path: path.to_string(), what: "the list of nested filters" });
    }
    items.iter().enumerate().map(|(i, item)| parse_at(item, &format!("{path}[{i}]"), depth + 1)).collect()
}

fn all_attributes(attrs: &BTreeMap<String, String>, event: &Value, test: impl Fn(&str, &str) -> bool) -> bool {
    attrs.iter().all(|(name, want)| attribute(event, name).is_some_and(|got| test(&got, want)))
}

/// A context attribute's value as a string; `None` when missing, null or not an attribute value.
fn attribute<'a>(event: &'a Value, name: &str) -> Option<Cow<'a, str>> {
    if name == "data" || name == "data_base64" {
        return None;
    }
    match event.get(name)? {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        Params::from_value(v).unwrap()
    }

    fn change(kind: ChangeKind, key: &str) -> Change {
        Change { kind, key: key.to_string(), entry: None, old_version: None }
    }

    #[test]
    fn change_filter_defaults_to_everything() {
        let f = ChangeFilter::from_params(&params(json!({}))).unwrap();
        assert_eq!(f, ChangeFilter::default());
        assert!(f.matches(&change(ChangeKind::Deleted, "any/key")));
        assert_eq!(f.prefix(), None);
        let f = ChangeFilter::from_params(&params(json!({"prefix": "", "suffix": null}))).unwrap();
        assert_eq!((f.prefix(), f.suffix()), (None, None));
    }

    #[test]
    fn change_filter_prefix_suffix_and_kinds() {
        let f = ChangeFilter::from_params(&params(
            json!({"prefix": "img/", "suffix": ".JPG", "events": "created, modified"}),
        ))
        .unwrap();
        assert_eq!(f.prefix(), Some("img/"));
        assert!(f.matches(&change(ChangeKind::Created, "img/a.JPG")));
        assert!(f.matches(&change(ChangeKind::Updated, "img/a.JPG")));
        assert!(!f.matches(&change(ChangeKind::Deleted, "img/a.JPG")), "kind not wanted");
        assert!(!f.matches(&change(ChangeKind::Created, "img/a.jpg")), "suffix is case-sensitive");
        assert!(!f.matches(&change(ChangeKind::Created, "doc/a.JPG")), "prefix");

        let f = ChangeFilter::from_params(&params(json!({"events": ["deleted", "ADDED"]}))).unwrap();
        assert!(f.wants(ChangeKind::Deleted) && f.wants(ChangeKind::Created) && !f.wants(ChangeKind::Updated));
    }

    #[test]
    fn change_filter_errors_name_the_parameter() {
        let expected = "parameter 'events': expected a non-empty list of created, updated, deleted \
                        (or the legacy added, modified)";
        let err = ChangeFilter::from_params(&params(json!({"events": "created,renamed"}))).unwrap_err();
        assert_eq!(err.to_string(), format!("{expected}, got \"created,renamed\""));
        let err = ChangeFilter::from_params(&params(json!({"events": []}))).unwrap_err();
        assert_eq!(err.to_string(), format!("{expected}, got []"));
        let err = ChangeFilter::from_params(&params(json!({"events": " , "}))).unwrap_err();
        assert_eq!(err.name, "events");
        let err = ChangeFilter::from_params(&params(json!({"prefix": {"a": 1}}))).unwrap_err();
        assert_eq!(err.name, "prefix");
    }

    fn event() -> Value {
        json!({
            "specversion": "1.0",
            "id": "abc",
            "source": "https://s3.example.com/photos",
            "type": "org.openwhisk.feeds.s3.object.created",
            "subject": "img/Cat.jpg",
            "count": 5,
            "flag": true,
            "nothing": null,
            "nested": {"a": "b"},
            "data": {"key": "img/Cat.jpg", "bucket": "photos"},
        })
    }

    #[track_caller]
    fn check(filter: Value, event: Value, expected: bool) {
        let parsed = SubscriptionFilter::parse(&filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(parsed.matches(&event), expected, "filter {filter} on event {event}");
    }

    #[test]
    fn subscription_filters_match() {
        let table = [
            (json!({"exact": {"type": "org.openwhisk.feeds.s3.object.created"}}), true),
            (json!({"exact": {"type": "org.openwhisk.feeds.s3.object.deleted"}}), false),
            (json!({"exact": {"type": "ORG.openwhisk.feeds.s3.object.created"}}), false),
            (json!({"exact": {"subject": "img/Cat.jpg", "source": "https://s3.example.com/photos"}}), true),
            (json!({"exact": {"subject": "img/Cat.jpg", "source": "https://other"}}), false),
            (json!({"prefix": {"type": "org.openwhisk.feeds.s3."}}), true),
            (json!({"prefix": {"subject": "IMG/"}}), false),
            (json!({"suffix": {"subject": ".jpg"}}), true),
            (json!({"suffix": {"subject": ".JPG"}}), false),
            // Missing attributes never match exact/prefix/suffix.
            (json!({"exact": {"missing": "x"}}), false),
            (json!({"prefix": {"missing": "x"}}), false),
            (json!({"suffix": {"missing": "x"}}), false),
            (json!({"exact": {"nothing": "null"}}), false),
            (json!({"exact": {"type": "org.openwhisk.feeds.s3.object.created", "missing": "x"}}), false),
            // `not` inverts the nested result, missing attribute included.
            (json!({"not": {"exact": {"missing": "x"}}}), true),
            (json!({"not": {"exact": {"subject": "img/Cat.jpg"}}}), false),
            (json!({"not": [{"prefix": {"subject": "doc/"}}]}), true),
            // Data members are not attributes.
            (json!({"exact": {"data": "x"}}), false),
            (json!({"exact": {"key": "img/Cat.jpg"}}), false),
            // Non-string attributes compare by their canonical string form.
            (json!({"exact": {"count": "5"}}), true),
            (json!({"prefix": {"count": "5"}}), true),
            (json!({"exact": {"flag": "true"}}), true),
            (json!({"exact": {"flag": "TRUE"}}), false),
            (json!({"exact": {"nested": "{\"a\":\"b\"}"}}), false),
            (json!({"all": [{"prefix": {"type": "org."}}, {"suffix": {"subject": ".jpg"}}]}), true),
            (json!({"all": [{"prefix": {"type": "org."}}, {"suffix": {"subject": ".png"}}]}), false),
            (json!({"any": [{"suffix": {"subject": ".png"}}, {"suffix": {"subject": ".jpg"}}]}), true),
            (json!({"any": [{"suffix": {"subject": ".png"}}, {"exact": {"missing": "x"}}]}), false),
            (
                json!({"all": [{"any": [{"exact": {"flag": "true"}}]}, {"not": {"not": {"exact": {"id": "abc"}}}}]}),
                true,
            ),
        ];
        for (filter, expected) in table {
            check(filter, event(), expected);
        }
    }

    #[test]
    fn filters_on_a_non_object_event_never_match_attributes() {
        check(json!({"exact": {"type": "x"}}), json!([1, 2]), false);
        check(json!({"not": {"exact": {"type": "x"}}}), json!("text"), true);
    }

    #[test]
    fn a_list_of_filters_must_all_hold() {
        let filters = parse_filters(&json!([{"prefix": {"type": "org."}}, {"suffix": {"subject": ".jpg"}}])).unwrap();
        assert!(matches_all(&filters, &event()));
        let filters = parse_filters(&json!([{"prefix": {"type": "org."}}, {"suffix": {"subject": ".png"}}])).unwrap();
        assert!(!matches_all(&filters, &event()));
        assert!(matches_all(&parse_filters(&json!([])).unwrap(), &event()));
        assert!(parse_filters(&json!(null)).unwrap().is_empty());
    }

    #[track_caller]
    fn check_rejected(filter: Value, message: &str) {
        match SubscriptionFilter::parse(&filter) {
            Ok(parsed) => panic!("{filter} was accepted as {parsed:?}"),
            Err(e) => assert_eq!(e.to_string(), message, "filter {filter}"),
        }
    }

    #[test]
    fn bad_filters_are_rejected_with_their_location() {
        let one = "an object with exactly one dialect, e.g. {\"exact\": {\"type\": \"com.example.created\"}}";
        check_rejected(json!("exact"), &format!("filter: expected {one}"));
        check_rejected(json!({}), &format!("filter: expected {one}"));
        check_rejected(json!({"exact": {"type": "a"}, "prefix": {"type": "b"}}), &format!("filter: expected {one}"));
        check_rejected(
            json!({"sql": "source LIKE '%x%'"}),
            "filter: unsupported filter dialect \"sql\" (expected exact, prefix, suffix, all, any or not)",
        );
        check_rejected(
            json!({"Exact": {"type": "a"}}),
            "filter: unsupported filter dialect \"Exact\" (expected exact, prefix, suffix, all, any or not)",
        );
        check_rejected(json!({"exact": {}}), "filter.exact: the attribute map must not be empty");
        check_rejected(json!({"prefix": {"": "x"}}), "filter.prefix: an attribute name must not be empty");
        check_rejected(json!({"suffix": {"type": ""}}), "filter.suffix.type: the value must not be empty");
        check_rejected(json!({"exact": {"count": 5}}), "filter.exact.count: expected a string value");
        check_rejected(json!({"exact": ["type"]}), "filter.exact: expected an object of attribute names to strings");
        check_rejected(json!({"all": []}), "filter.all: the list of nested filters must not be empty");
        check_rejected(json!({"any": {"exact": {"type": "a"}}}), "filter.any: expected an array of filter expressions");
        check_rejected(json!({"not": []}), "filter.not: expected exactly one nested filter expression");
        check_rejected(
            json!({"not": [{"exact": {"a": "b"}}, {"exact": {"c": "d"}}]}),
            "filter.not: expected exactly one nested filter expression",
        );
        check_rejected(
            json!({"all": [{"exact": {"type": "a"}}, {"any": [{"nope": {}}]}]}),
            "filter.all[1].any[0]: unsupported filter dialect \"nope\" (expected exact, prefix, suffix, all, any or not)",
        );
        let err = parse_filters(&json!([{"exact": {"type": "a"}}, {"exact": {"type": ""}}])).unwrap_err();
        assert_eq!(err.to_string(), "filters[1].exact.type: the value must not be empty");
        let err = parse_filters(&json!({"exact": {"type": "a"}})).unwrap_err();
        assert_eq!(err.to_string(), "filters: expected an array of filter expressions");
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let mut filter = json!({"exact": {"type": "a"}});
        for _ in 0..40 {
            filter = json!({"not": filter});
        }
        let err = SubscriptionFilter::parse(&filter).unwrap_err();
        assert!(matches!(err, FilterError::TooDeep { .. }), "{err}");
        let mut ok = json!({"exact": {"type": "a"}});
        for _ in 0..MAX_DEPTH {
            ok = json!({"any": [ok]});
        }
        assert!(SubscriptionFilter::parse(&ok).is_ok());
    }
}
