//! Secrets never reach an output: a URL's credentials (`http://user:pw@host`) are masked where
//! the URL is shown, and the API key and URL password are masked in anything a server or the
//! transport said (error bodies and messages in the raw log), since servers echo them back.

use std::borrow::Cow;

/// What replaces a secret.
const MASK: &str = "***";

/// `url` with its password (or a lone user name, often a token) and every query value
/// (`?token=…`, `?api_key=…`: where services put keys) replaced by `***`.
pub fn url(text: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(text) else {
        return text.to_string();
    };
    let mut masked = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
        masked = true;
    } else if !parsed.username().is_empty() {
        let _ = parsed.set_username(MASK);
        masked = true;
    }
    if parsed.query().is_some_and(|q| !q.is_empty()) {
        let names: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let query: Vec<String> = names.iter().map(|k| format!("{k}={MASK}")).collect();
        parsed.set_query(Some(&query.join("&")));
        masked = true;
    }
    if !masked {
        return text.to_string();
    }
    // The URL crate adds a `/` path to a bare origin; keep the user's form otherwise.
    let shown = parsed.to_string();
    match text.ends_with('/') || parsed.path() != "/" || parsed.query().is_some() {
        true => shown,
        false => shown.trim_end_matches('/').to_string(),
    }
}

/// The secrets of a run, masked wherever a text may carry them.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The API key (if any) and the credentials in the target URL. Values too short to be told
    /// apart from ordinary text are left out.
    pub fn new(api_key: Option<&str>, target_url: &str) -> Secrets {
        let mut secrets: Vec<String> = api_key.map(str::to_string).into_iter().collect();
        if let Ok(parsed) = reqwest::Url::parse(target_url) {
            secrets.extend(parsed.password().map(str::to_string));
            secrets.extend(parsed.query_pairs().map(|(_, v)| v.into_owned()));
            if !parsed.username().is_empty() {
                secrets.push(parsed.username().to_string());
            }
        }
        secrets.retain(|s| s.len() >= 4);
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Secrets(secrets)
    }

    /// `text` with every secret masked.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_everything_but_their_credentials() {
        assert_eq!(
            url("http://user:hunter2@host:8000/v1"),
            "http://user:***@host:8000/v1"
        );
        assert_eq!(url("http://sk-token@host:8000"), "http://***@host:8000");
        assert_eq!(url("http://localhost:11434"), "http://localhost:11434");
        assert_eq!(url("not a url"), "not a url");
        assert_eq!(
            url("http://prom:9090/api/v1/write?token=s3cret&tenant=a"),
            "http://prom:9090/api/v1/write?token=***&tenant=***"
        );
        let secrets = Secrets::new(None, "http://prom:9090/write?token=s3cret-token");
        assert_eq!(
            secrets
                .apply("error sending request for url (http://prom:9090/write?token=s3cret-token)"),
            "error sending request for url (http://prom:9090/write?token=***)"
        );
    }

    #[test]
    fn secrets_are_masked_in_what_servers_say() {
        let secrets = Secrets::new(Some("sk-secret-key"), "http://bob:pa55word@host");
        let said = "401: invalid key sk-secret-key for http://bob:pa55word@host";
        assert_eq!(
            secrets.apply(said),
            "401: invalid key *** for http://bob:***@host"
        );
        assert!(matches!(secrets.apply("fine"), Cow::Borrowed(_)));
    }
}
