//! Keeping passwords out of error text that reaches a probe's answer or a log line.

/// What a password shows instead of its value.
const REDACTED: &str = "***";

/// `text` with the password of every URL (`scheme://user:password@host`) and of every
/// `password=...` pair (libpq's key-value connection strings) replaced by `***`.
///
/// Database drivers put the connection string in some of their errors; a readiness check's
/// error text is served to whoever can reach `/readyz`.
pub(crate) fn redact(text: &str) -> String {
    redact_pairs(&redact_urls(text))
}

/// Whether `c` ends a URL or a `key=value` pair in free text.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ',' | ';' | '&')
}

fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let authority_len = rest
            .find(|c: char| ends_token(c) || matches!(c, '/' | '?' | '#'))
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[authority_len..];
    }
    out.push_str(rest);
    out
}

fn redact_pairs(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let value_start = from + found + KEY.len();
        let value_len = text[value_start..]
            .find(ends_token)
            .unwrap_or(text.len() - value_start);
        out.push_str(&text[copied..value_start]);
        if value_len > 0 {
            out.push_str(REDACTED);
        }
        copied = value_start + value_len;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn the_password_of_a_url_is_redacted_and_the_host_kept() {
        assert_eq!(
            redact("cannot connect to postgres://app:hunter2@db.internal:5432/app?sslmode=off"),
            "cannot connect to postgres://app:***@db.internal:5432/app?sslmode=off"
        );
    }

    #[test]
    fn a_password_with_an_at_sign_is_redacted_whole() {
        assert_eq!(
            redact("postgres://app:p@ss@db/app failed"),
            "postgres://app:***@db/app failed"
        );
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for text in [
            "postgres://app@db/app",
            "http://example.com/a@b",
            "no url at all",
            "trailing ://",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn every_url_and_key_value_password_is_redacted() {
        assert_eq!(
            redact("a redis://:s3cret@cache b host=db PASSWORD=hunter2 user=app; c password="),
            "a redis://:***@cache b host=db PASSWORD=*** user=app; c password="
        );
    }
}
