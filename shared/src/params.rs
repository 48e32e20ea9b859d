//! Action parameters: typed access with errors that name the parameter.
//!
//! OpenWhisk hands an action a JSON object. The wsk CLI sends values that parse as JSON
//! typed (`-p minutes 5` arrives as the number 5, `-p pathStyle true` as a boolean), while
//! other clients send strings, so every accessor accepts both forms. Every error names the
//! parameter and the expected form; a secret parameter's value is never echoed back.

use std::fmt;

use serde_json::{Map, Value};

use crate::secret::Secret;

/// The parameters of one activation (a JSON object).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Map<String, Value>);

/// A parameter that is missing or not of the expected form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name, as the user passes it with `-p`.
    pub name: String,
    /// What was expected, e.g. "an integer from 1 to 1440".
    pub expected: String,
    /// What was received (already shortened; `None` for a missing or secret value).
    pub got: Option<String>,
}

impl ParamError {
    /// A parameter that is required and absent.
    pub fn missing(name: &str, expected: &str) -> ParamError {
        ParamError { name: name.to_string(), expected: expected.to_string(), got: None }
    }

    /// A parameter whose value does not fit; `got` is shown to the user.
    pub fn invalid(name: &str, expected: &str, got: &Value) -> ParamError {
        ParamError { name: name.to_string(), expected: expected.to_string(), got: Some(shorten(got)) }
    }

    /// A parameter whose value does not fit and must not be echoed (a secret).
    pub fn invalid_secret(name: &str, expected: &str) -> ParamError {
        ParamError { name: name.to_string(), expected: expected.to_string(), got: None }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.got {
            None => write!(f, "parameter '{}': expected {}", self.name, self.expected),
            Some(got) => write!(f, "parameter '{}': expected {}, got {}", self.name, self.expected, got),
        }
    }
}

impl std::error::Error for ParamError {}

fn shorten(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 80 {
        s
    } else {
        let head: String = s.chars().take(77).collect();
        format!("{head}...")
    }
}

impl Params {
    /// Wraps a JSON value, which must be an object.
    pub fn from_value(value: Value) -> Result<Params, ParamError> {
        match value {
            Value::Object(map) => Ok(Params(map)),
            Value::Null => Ok(Params::default()),
            other => Err(ParamError::invalid("value", "a JSON object of parameters", &other)),
        }
    }

    /// The parameters as a JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The underlying map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Sets a parameter (used when merging stored config with new values).
    pub fn insert(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_string(), value);
    }

    /// Removes a parameter and returns it.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// The raw value; `null` counts as absent.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// True when the parameter is present and not null.
    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    /// A string parameter; numbers and booleans are accepted and rendered as text.
    pub fn str(&self, name: &str) -> Result<Option<String>, ParamError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(other) => Err(ParamError::invalid(name, "a string", other)),
        }
    }

    /// A required, non-empty string parameter.
    pub fn required_str(&self, name: &str) -> Result<String, ParamError> {
        match self.str(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ParamError::invalid(name, "a non-empty string", &Value::String(String::new()))),
            None => Err(ParamError::missing(name, "a non-empty string")),
        }
    }

    /// A secret parameter: a string whose value never appears in an error.
    pub fn secret(&self, name: &str) -> Result<Option<Secret>, ParamError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(Secret::new(s.clone()))),
            Some(Value::String(_)) => Err(ParamError::invalid_secret(name, "a non-empty string")),
            Some(_) => Err(ParamError::invalid_secret(name, "a string")),
        }
    }

    /// A required secret parameter.
    pub fn required_secret(&self, name: &str) -> Result<Secret, ParamError> {
        self.secret(name)?.ok_or_else(|| ParamError::missing(name, "a non-empty string"))
    }

    /// An unsigned integer in `min..=max`, given as a number or a string of digits.
    pub fn u64_in(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ParamError> {
        let expected = format!("an integer from {min} to {max}");
        let Some(v) = self.raw(name) else { return Ok(None) };
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                // 5.0 from a JSON encoder that writes floats is still 5.
                n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ParamError::invalid(name, &expected, v)),
        }
    }

    /// A boolean, given as `true`/`false` or the strings "true"/"false" (any case).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ParamError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v @ Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(ParamError::invalid(name, "true or false", v)),
            },
            Some(other) => Err(ParamError::invalid(name, "true or false", other)),
        }
    }

    /// A list of strings, given as a JSON array or a comma-separated string.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ParamError> {
        let expected = "a comma-separated string or an array of strings";
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                Ok(Some(s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()))
            }
            Some(v @ Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(|s| s.trim().to_string()).ok_or_else(|| ParamError::invalid(name, expected, v)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(ParamError::invalid(name, expected, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Params {
        Params::from_value(v).unwrap()
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        let ps = p(json!({"a": 5, "b": "7", "c": 5.0, "d": "x", "e": -1, "f": 0}));
        assert_eq!(ps.u64_in("a", 1, 10).unwrap(), Some(5));
        assert_eq!(ps.u64_in("b", 1, 10).unwrap(), Some(7));
        assert_eq!(ps.u64_in("c", 1, 10).unwrap(), Some(5));
        assert_eq!(ps.u64_in("missing", 1, 10).unwrap(), None);
        let err = ps.u64_in("d", 1, 10).unwrap_err();
        assert_eq!(err.to_string(), "parameter 'd': expected an integer from 1 to 10, got \"x\"");
        assert!(ps.u64_in("e", 1, 10).is_err());
        assert!(ps.u64_in("f", 1, 10).is_err());
    }

    #[test]
    fn secrets_are_never_echoed() {
        let ps = p(json!({"secretAccessKey": 12345, "empty": ""}));
        let err = ps.secret("secretAccessKey").unwrap_err().to_string();
        assert!(!err.contains("12345"), "{err}");
        assert_eq!(
            ps.required_secret("nope").unwrap_err().to_string(),
            "parameter 'nope': expected a non-empty string"
        );
        assert!(ps.secret("empty").is_err());
    }

    #[test]
    fn bools_and_lists() {
        let ps = p(json!({"t": "TRUE", "f": false, "l": "created, deleted", "a": ["updated"], "bad": [1]}));
        assert_eq!(ps.bool("t").unwrap(), Some(true));
        assert_eq!(ps.bool("f").unwrap(), Some(false));
        assert_eq!(ps.list("l").unwrap().unwrap(), vec!["created", "deleted"]);
        assert_eq!(ps.list("a").unwrap().unwrap(), vec!["updated"]);
        assert!(ps.list("bad").is_err());
        assert!(Params::from_value(json!([1])).is_err());
    }
}
