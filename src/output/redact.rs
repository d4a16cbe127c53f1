//! Secrets never reach an output: a URL's credentials (`http://user:pw@host`) are masked where
//! the URL is shown, and the API key and URL password are masked in anything a server or the
//! transport said (error bodies and messages in the raw log), since servers echo them back.

use std::borrow::Cow;

/// What replaces a secret.
const MASK: &str = "***";

/// `url` with its password (or a lone user name, often a token) replaced by `***`.
pub fn url(text: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(text) else {
        return text.to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
    } else if !parsed.username().is_empty() {
        let _ = parsed.set_username(MASK);
    } else {
        return text.to_string();
    }
    // The URL crate adds a `/` path to a bare origin; keep the user's form otherwise.
    let shown = parsed.to_string();
    match text.ends_with('/') || parsed.path() != "/" {
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
