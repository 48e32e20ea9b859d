//! The GitHub feature: repository webhooks as a registration plugin of the hooks pattern
//! (`source=github`; the receiver's GitHub signature check is the pattern's, `hooks::process`).
//!
//! CREATE posts `{api}/repos/{owner}/{repo}/hooks` with the receiver URL and the secret
//! (GitHub then signs every delivery with `X-Hub-Signature-256`); UPDATE patches the hook in
//! place (GitHub refuses a second hook with the same URL and overlapping events: 422 "Hook
//! already exists on this repository"), always with the secret, since a `config` without one
//! removes it; DELETE removes the hook; PAUSE/UNPAUSE patch `active`. Calls use
//! `Authorization: Bearer <accessToken>`, `Accept: application/vnd.github+json` and a pinned
//! `X-GitHub-Api-Version`.
//!
//! GitHub answers 404 both for a hook that is gone and for a token that can no longer
//! administer the repository (it hides what it does not let you see), so a 404 on DELETE or
//! PATCH counts as "gone" only when the repository is visible with admin rights.
//! This plugin knows nothing about triggers or the receiver.

use std::fmt;

use serde_json::{json, Value};

use crate::hooks::registrar::{
    base_url, status_error, Call, Endpoint, Http, Method, Registrar, RegistrationError, RegistrationId,
};
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::ParamSpec;

/// The public GitHub API, unless `githubApi` says otherwise (GitHub Enterprise, tests).
pub const DEFAULT_API: &str = "https://api.github.com";
/// The REST API version every call pins.
pub const API_VERSION: &str = "2022-11-28";
/// Headers every call sends.
const HEADERS: [(&str, &str); 2] = [("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", API_VERSION)];
/// Events subscribed unless `events` says otherwise.
pub const DEFAULT_EVENTS: [&str; 1] = ["push"];

/// A GitHub webhook's id: decimal digits, as GitHub gives it and as the feed stores it (the
/// receiver compares `X-GitHub-Hook-ID` with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookId(String);

impl RegistrationId for HookId {
    const FORM: &'static str = "a GitHub hook id: decimal digits";
    fn parse(stored: &str) -> Option<HookId> {
        (!stored.is_empty() && stored.chars().all(|c| c.is_ascii_digit())).then(|| HookId(stored.to_string()))
    }
    fn to_stored(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The GitHub registration plugin.
/// Its requests go through the process's one producer client (`Http::shared`).
pub struct GitHub;

impl GitHub {
    /// `repository` as `owner/repo`, or, as the Apache webhook feed takes it, `repo` with the
    /// owner in `username` (apache/openwhisk-catalog packages/github/webhook.js:44-52, 62).
    fn repository(params: &Params) -> Result<(String, String), ParamError> {
        let raw = params.required_str("repository")?;
        let username = params.str("username")?.filter(|u| !u.trim().is_empty()).map(|u| u.trim().to_string());
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        match (raw.trim().split_once('/'), username) {
            (Some((owner, _)), Some(user)) if !owner.eq_ignore_ascii_case(&user) => Err(ParamError::invalid(
                "username",
                &format!("nothing, or the owner {owner:?} that repository already names"),
                &Value::String(user),
            )),
            (Some((owner, repo)), _) if valid(owner) && valid(repo) => Ok((owner.to_string(), repo.to_string())),
            (None, Some(user)) if valid(&user) && valid(raw.trim()) => Ok((user, raw.trim().to_string())),
            _ => Err(ParamError::invalid(
                "repository",
                "owner/repo (or repo with the owner in username)",
                &Value::String(raw),
            )),
        }
    }

    /// The API base: `githubApi`, or `baseUrl`, the Apache webhook feed's name for it
    /// (webhook.js:38-42); both at once must agree. The token goes there, so neither is ignored.
    fn api(params: &Params) -> Result<String, ParamError> {
        let api = base_url(params, "githubApi", Some(DEFAULT_API))?;
        match params.str("baseUrl")? {
            None => Ok(api),
            Some(_) => {
                let base = base_url(params, "baseUrl", None)?;
                if params.has("githubApi") && !base.eq_ignore_ascii_case(&api) {
                    return Err(ParamError::invalid(
                        "baseUrl",
                        "nothing, or the same URL as githubApi",
                        &Value::String(base),
                    ));
                }
                Ok(base)
            }
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
        let api = GitHub::api(params)?;
        let (owner, repo) = GitHub::repository(params)?;
        Ok(format!("{api}/repos/{owner}/{repo}/hooks"))
    }

    fn token(params: &Params) -> Result<Secret, ParamError> {
        let token = params.required_secret("accessToken")?;
        Ok(Secret::new(format!("Bearer {}", token.expose())))
    }

    fn hook_url(params: &Params, id: &HookId) -> Result<String, RegistrationError> {
        let hooks = GitHub::hooks_url(params).map_err(bad)?;
        Ok(format!("{hooks}/{id}"))
    }

    /// A call with GitHub's headers and token; `secret` is the hook secret in its body, if any.
    fn call<'a>(
        params: &Params,
        method: Method,
        url: &'a str,
        body: Option<&'a Value>,
        what: &'a str,
        secret: Option<&Secret>,
    ) -> Result<Call<'a>, RegistrationError> {
        let token = params.required_secret("accessToken").map_err(bad)?;
        let auth = Secret::new(format!("Bearer {}", token.expose()));
        let mut secrets = vec![token];
        secrets.extend(secret.cloned());
        Ok(Call { method, url, auth: Some(auth), headers: &HEADERS, body, what, secrets })
    }

    /// The hook document: events, active, and the whole `config` with the secret (a `config`
    /// without `secret` removes it).
    fn hook(params: &Params, endpoint: &Endpoint) -> Result<Value, RegistrationError> {
        let events = GitHub::events(params).map_err(bad)?;
        Ok(json!({
            "name": "web",
            "active": endpoint.active,
            "events": events,
            "config": {
                "url": endpoint.url,
                "content_type": "json",
                "secret": endpoint.secret.expose(),
                "insecure_ssl": "0",
            },
        }))
    }

    fn patch_hook(&self, params: &Params, id: &HookId, endpoint: &Endpoint) -> Result<HookId, RegistrationError> {
        let url = GitHub::hook_url(params, id)?;
        let what = format!("updating GitHub webhook {id}");
        let mut body = GitHub::hook(params, endpoint)?;
        if let Value::Object(m) = &mut body {
            m.remove("name");
        }
        let call = GitHub::call(params, Method::Patch, &url, Some(&body), &what, Some(&endpoint.secret))?;
        let reply = Http::shared().send(&call)?;
        match reply.status {
            200..=299 => Ok(id.clone()),
            // Gone (deleted at GitHub by hand): register it again.
            404 => {
                self.gone_or_hidden(params, &what)?;
                self.register(params, endpoint)?
                    .ok_or_else(|| RegistrationError::Server(format!("{what}: no hook id after re-creating it")))
            }
            _ => Err(status_error(&reply, &call)),
        }
    }

    /// After a 404 on a hook: `Ok` when the repository is visible with admin rights (the hook
    /// is really gone), else the error that the token can no longer administer it.
    fn gone_or_hidden(&self, params: &Params, what: &str) -> Result<(), RegistrationError> {
        let api = base_url(params, "githubApi", Some(DEFAULT_API)).map_err(bad)?;
        let (owner, repo) = GitHub::repository(params).map_err(bad)?;
        let url = format!("{api}/repos/{owner}/{repo}");
        let check = format!("checking access to GitHub repository {owner}/{repo}");
        let reply = Http::shared().send(&GitHub::call(params, Method::Get, &url, None, &check, None)?)?;
        let admin = reply.status == 200 && reply.body.pointer("/permissions/admin") == Some(&Value::Bool(true));
        if admin {
            return Ok(());
        }
        Err(RegistrationError::Rejected {
            status: 404,
            message: format!(
                "{what}: HTTP 404, and the token can no longer administer {owner}/{repo} (the repository answers \
                 {}): the hook may still be at GitHub",
                reply.status
            ),
        })
    }
}

fn bad(e: ParamError) -> RegistrationError {
    RegistrationError::Rejected { status: 400, message: e.to_string() }
}

impl Registrar for GitHub {
    type Id = HookId;

    fn name(&self) -> &'static str {
        "github"
    }

    fn params(&self) -> &'static [ParamSpec] {
        &[
            ParamSpec {
                name: "repository",
                secret: false,
                required: true,
                doc: "owner/repo (or repo with the owner in username)",
            },
            ParamSpec {
                name: "accessToken",
                secret: true,
                required: true,
                doc: "a GitHub token that may manage the repository's hooks",
            },
            ParamSpec {
                name: "events",
                secret: false,
                required: false,
                doc: "GitHub events to deliver (default push)",
            },
            ParamSpec {
                name: "githubApi",
                secret: false,
                required: false,
                doc: "GitHub API URL (default https://api.github.com)",
            },
            ParamSpec {
                name: "username",
                secret: false,
                required: false,
                doc: "the owner, the Apache webhook feed's name for it",
            },
            ParamSpec {
                name: "baseUrl",
                secret: false,
                required: false,
                doc: "githubApi, the Apache webhook feed's name for it",
            },
        ]
    }

    fn validate(&self, params: &Params) -> Result<(), ParamError> {
        GitHub::hooks_url(params)?;
        GitHub::token(params)?;
        GitHub::events(params)?;
        Ok(())
    }

    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<HookId>, RegistrationError> {
        let url = GitHub::hooks_url(params).map_err(bad)?;
        let (owner, repo) = GitHub::repository(params).map_err(bad)?;
        let what = format!("creating a webhook on GitHub repository {owner}/{repo}");
        let body = GitHub::hook(params, endpoint)?;
        let call = GitHub::call(params, Method::Post, &url, Some(&body), &what, Some(&endpoint.secret))?;
        let reply = Http::shared().send(&call)?;
        if reply.status == 404 {
            return Err(RegistrationError::Rejected {
                status: 404,
                message: format!(
                    "{what}: HTTP 404: the repository does not exist or the token has no admin rights on it \
                     (a classic token needs the admin:repo_hook or repo scope, a fine-grained one Webhooks: write)"
                ),
            });
        }
        if !(200..300).contains(&reply.status) {
            return Err(status_error(&reply, &call));
        }
        let id = match reply.body.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return Err(RegistrationError::Server(format!("{what}: the answer has no hook id"))),
        };
        HookId::parse(&id)
            .map(Some)
            .ok_or_else(|| RegistrationError::Server(format!("{what}: the answer's hook id {id:?} is not a number")))
    }

    fn update(&self, params: &Params, id: &HookId, endpoint: &Endpoint) -> Option<Result<HookId, RegistrationError>> {
        Some(self.patch_hook(params, id, endpoint))
    }

    fn unregister(&self, params: &Params, id: &HookId) -> Result<(), RegistrationError> {
        let url = GitHub::hook_url(params, id)?;
        let what = format!("deleting GitHub webhook {id}");
        let call = GitHub::call(params, Method::Delete, &url, None, &what, None)?;
        let reply = Http::shared().send(&call)?;
        match reply.status {
            200..=299 => Ok(()),
            404 | 410 => self.gone_or_hidden(params, &what),
            _ => Err(status_error(&reply, &call)),
        }
    }

    fn set_active(&self, params: &Params, id: &HookId, active: bool) -> Result<(), RegistrationError> {
        let url = GitHub::hook_url(params, id)?;
        let what = format!("{} GitHub webhook {id}", if active { "activating" } else { "deactivating" });
        let body = json!({ "active": active });
        Http::shared()
            .expect_ok(&GitHub::call(params, Method::Patch, &url, Some(&body), &what, None)?, false)
            .map(|_| ())
    }

    fn removal(&self, params: &Params, id: &HookId) -> (String, String) {
        let repo = GitHub::repository(params).map(|(o, r)| format!("{o}/{r}")).unwrap_or_default();
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

    /// The registration stored today is GitHub's hook id as it answered it (a JSON number,
    /// written in decimal): it reads back as itself; anything else is not a GitHub hook id.
    #[test]
    fn stored_hook_ids_of_existing_triggers_parse() {
        for stored in ["1", "12345678", "498877445", "0012"] {
            let id = HookId::parse(stored).unwrap_or_else(|| panic!("{stored}"));
            assert_eq!(id.to_stored(), stored);
        }
        for bad in ["", "-1", "12a", " 12", "owfeed-1", "1.5"] {
            assert_eq!(HookId::parse(bad), None, "{bad}");
        }
        let url = GitHub::hook_url(&p(json!({"repository": "o/r"})), &HookId::parse("42").unwrap()).unwrap();
        assert_eq!(url, "https://api.github.com/repos/o/r/hooks/42");
    }

    #[test]
    fn parameters_are_checked_without_io() {
        let g = GitHub;
        assert!(g.validate(&p(json!({"repository": "o/r", "accessToken": "t"}))).is_ok());
        let err = g.validate(&p(json!({"repository": "o", "accessToken": "t"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'repository': expected owner/repo (or repo with the owner in username), got \"o\""
        );
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

    /// The Apache webhook feed's parameters are honoured, never ignored
    /// (apache/openwhisk-catalog packages/github/webhook.js): `baseUrl` is the API the token
    /// goes to (38-42), `username` the owner of a `repository` given without one (44-52, 62).
    #[test]
    fn the_apache_webhook_feeds_parameters_are_honoured() {
        let hooks = |v: Value| GitHub::hooks_url(&p(v)).map_err(|e| e.to_string());
        assert_eq!(
            hooks(json!({"repository": "repo", "username": "octo"})).unwrap(),
            "https://api.github.com/repos/octo/repo/hooks"
        );
        assert_eq!(
            hooks(json!({"repository": "o/r", "baseUrl": "https://ghe.example.com/api/v3/"})).unwrap(),
            "https://ghe.example.com/api/v3/repos/o/r/hooks"
        );
        assert_eq!(
            hooks(json!({"repository": "o/r", "username": "O"})).unwrap(),
            "https://api.github.com/repos/o/r/hooks"
        );
        let err = hooks(json!({"repository": "o/r", "username": "someone"})).unwrap_err();
        assert!(err.starts_with("parameter 'username'"), "{err}");
        let both = json!({"repository": "o/r", "githubApi": "https://a.example", "baseUrl": "https://b.example"});
        assert!(hooks(both).unwrap_err().starts_with("parameter 'baseUrl'"));
        let same = json!({"repository": "o/r", "githubApi": "https://a.example", "baseUrl": "https://a.example/"});
        assert_eq!(hooks(same).unwrap(), "https://a.example/repos/o/r/hooks");
        assert!(hooks(json!({"repository": "o/r", "baseUrl": "ftp://x"}))
            .unwrap_err()
            .starts_with("parameter 'baseUrl'"));
        assert!(hooks(json!({"repository": "repo"})).unwrap_err().starts_with("parameter 'repository'"));
    }
}
