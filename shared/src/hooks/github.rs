//! GitHub repository webhooks as a registration plugin (`source=github`).
//!
//! CREATE posts `{api}/repos/{owner}/{repo}/hooks` with the receiver URL and the secret
//! (GitHub then signs every delivery with `X-Hub-Signature-256`); DELETE removes the hook
//! (already gone is fine); PAUSE/UNPAUSE patch `active`. Calls use `Authorization: Bearer
//! <accessToken>`. This plugin knows nothing about triggers or the receiver.

use serde_json::{json, Value};

use super::registrar::{base_url, Endpoint, Http, Method, Registrar, RegistrationError};
use crate::params::{ParamError, Params};
use crate::secret::Secret;

/// The public GitHub API, unless `githubApi` says otherwise (GitHub Enterprise, tests).
pub const DEFAULT_API: &str = "https://api.github.com";
/// Events subscribed unless `events` says otherwise.
pub const DEFAULT_EVENTS: [&str; 1] = ["push"];

/// The GitHub registration plugin.
#[derive(Default)]
pub struct GitHub {
    http: Http,
}

impl GitHub {
    /// A plugin with its own HTTP client.
    pub fn new() -> GitHub {
        GitHub { http: Http::new() }
    }

    fn repository(params: &Params) -> Result<(String, String), ParamError> {
        let raw = params.required_str("repository")?;
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        match raw.trim().split_once('/') {
            Some((owner, repo)) if valid(owner) && valid(repo) => Ok((owner.to_string(), repo.to_string())),
            _ => Err(ParamError::invalid("repository", "owner/repo", &Value::String(raw))),
        }
    }

    fn events(params: &Params) -> Result<Vec<String>, ParamError> {
        match params.list("events")? {
            None => Ok(DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect()),
            Some(list) if list.is_empty() => Err(ParamError::invalid(
                "events",
                "a non-empty list of GitHub event names (e.g. push, pull_request, *)",
                params.raw("events").unwrap_or(&Value::Null),
            )),
            Some(list) => Ok(list),
        }
    }

    fn hooks_url(params: &Params) -> Result<String, ParamError> {
        let api = base_url(params, "githubApi", Some(DEFAULT_API))?;
        let (owner, repo) = GitHub::repository(params)?;
        Ok(format!("{api}/repos/{owner}/{repo}/hooks"))
    }

    fn token(params: &Params) -> Result<Secret, ParamError> {
        let token = params.required_secret("accessToken")?;
        Ok(Secret::new(format!("Bearer {}", token.expose())))
    }

    fn hook_url(params: &Params, id: &str) -> Result<String, RegistrationError> {
        let hooks = GitHub::hooks_url(params)
            .map_err(|e| RegistrationError::Rejected { status: 400, message: e.to_string() })?;
        if !id.chars().all(|c| c.is_ascii_digit()) || id.is_empty() {
            return Err(RegistrationError::Rejected {
                status: 400,
                message: format!("GitHub hook id {id:?} is not a number"),
            });
        }
        Ok(format!("{hooks}/{id}"))
    }

    fn auth(params: &Params) -> Result<Secret, RegistrationError> {
        GitHub::token(params).map_err(|e| RegistrationError::Rejected { status: 400, message: e.to_string() })
    }
}

impl Registrar for GitHub {
    fn name(&self) -> &'static str {
        "github"
    }

    fn params(&self) -> &'static [&'static str] {
        &["repository", "accessToken", "events", "githubApi"]
    }

    fn secret_params(&self) -> &'static [&'static str] {
        &["accessToken"]
    }

    fn validate(&self, params: &Params) -> Result<(), ParamError> {
        GitHub::hooks_url(params)?;
        GitHub::token(params)?;
        GitHub::events(params)?;
        Ok(())
    }

    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<String>, RegistrationError> {
        let bad = |e: ParamError| RegistrationError::Rejected { status: 400, message: e.to_string() };
        let url = GitHub::hooks_url(params).map_err(bad)?;
        let events = GitHub::events(params).map_err(bad)?;
        let body = json!({
            "name": "web",
            "active": true,
            "events": events,
            "config": {
                "url": endpoint.url,
                "content_type": "json",
                "secret": endpoint.secret.expose(),
                "insecure_ssl": "0",
            },
        });
        let (owner, repo) = GitHub::repository(params).map_err(bad)?;
        let what = format!("creating a webhook on GitHub repository {owner}/{repo}");
        let answer = self
            .http
            .expect_ok(Method::Post, &url, Some(&GitHub::auth(params)?), Some(&body), &what, false)?
            .unwrap_or(Value::Null);
        let id = match answer.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(RegistrationError::Server(format!("{what}: the answer has no hook id"))),
        };
        Ok(Some(id))
    }

    fn unregister(&self, params: &Params, id: &str) -> Result<(), RegistrationError> {
        let url = GitHub::hook_url(params, id)?;
        let what = format!("deleting GitHub webhook {id}");
        self.http.expect_ok(Method::Delete, &url, Some(&GitHub::auth(params)?), None, &what, true).map(|_| ())
    }

    fn set_active(&self, params: &Params, id: &str, active: bool) -> Result<(), RegistrationError> {
        let url = GitHub::hook_url(params, id)?;
        let what = format!("{} GitHub webhook {id}", if active { "activating" } else { "deactivating" });
        let body = json!({ "active": active });
        self.http.expect_ok(Method::Patch, &url, Some(&GitHub::auth(params)?), Some(&body), &what, false).map(|_| ())
    }

    fn removal(&self, params: &Params, id: &str) -> (String, String) {
        let repo = params.str("repository").ok().flatten().unwrap_or_default();
        let url = GitHub::hooks_url(params).map(|h| format!("{h}/{id}")).unwrap_or_default();
        (
            format!("GitHub repository {repo}, webhook {id}"),
            format!("curl -X DELETE -H \"Authorization: Bearer $GITHUB_TOKEN\" {url}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Params {
        Params::from_value(v).unwrap()
    }

    #[test]
    fn parameters_are_checked_without_io() {
        let g = GitHub::new();
        assert!(g.validate(&p(json!({"repository": "o/r", "accessToken": "t"}))).is_ok());
        let err = g.validate(&p(json!({"repository": "o", "accessToken": "t"}))).unwrap_err();
        assert_eq!(err.to_string(), "parameter 'repository': expected owner/repo, got \"o\"");
        let err = g.validate(&p(json!({"repository": "o/r"}))).unwrap_err();
        assert_eq!(err.name, "accessToken");
        let err = g.validate(&p(json!({"repository": "o/r", "accessToken": "t", "githubApi": "ftp://x"}))).unwrap_err();
        assert_eq!(err.name, "githubApi");
        let err = g.validate(&p(json!({"repository": "o/r", "accessToken": "t", "events": []}))).unwrap_err();
        assert_eq!(err.name, "events");
        assert_eq!(
            GitHub::hooks_url(&p(json!({"repository": "o/r", "githubApi": "http://127.0.0.1:9/"}))).unwrap(),
            "http://127.0.0.1:9/repos/o/r/hooks"
        );
    }
}
