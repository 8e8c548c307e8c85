//! The one rule for short text fields (names, titles): trimmed, not blank,
//! no control characters, at most so many characters. The OpenAPI pattern
//! below says exactly the same, so clients can check before they send.

/// A short, single-line text field of at most `max` characters after trimming.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    pub max: usize,
}

impl Text {
    /// Trims surrounding white space and checks what is left.
    pub fn check(self, raw: &str) -> Result<String, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be blank".into());
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let length = trimmed.chars().count();
        if length > self.max {
            return Err(format!(
                "must be at most {} characters, not {length}",
                self.max
            ));
        }
        Ok(trimmed.to_owned())
    }
}

/// The key a filter compares stored keys with: trimmed and in lower case, as
/// stored keys are. `None` when no stored value can equal it (it is blank or
/// holds control characters), so the answer is an empty page.
pub fn filter_key(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty() && !trimmed.chars().any(char::is_control)).then(|| trimmed.to_lowercase())
}

/// Rust's `char::is_whitespace`, as a regular-expression class body.
const SPACE: &str = r"\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Rust's `char::is_control`, as a regular-expression class body.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

impl Text {
    /// The ECMA-262 pattern that accepts exactly what [`Text::check`] accepts.
    pub fn pattern(self) -> String {
        let inner = self.max.saturating_sub(2);
        format!(
            "^[{SPACE}]*[^{SPACE}{CONTROL}](?:[^{CONTROL}]{{0,{inner}}}[^{SPACE}{CONTROL}])?[{SPACE}]*$"
        )
    }

    /// The OpenAPI schema of a field that follows this rule.
    pub fn schema(self, example: &str) -> utoipa::openapi::schema::Object {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .pattern(Some(self.pattern()))
            .description(Some(format!(
                "1 to {} characters once surrounding white space is trimmed; no control characters.",
                self.max
            )))
            .examples([serde_json::json!(example)])
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::Text;

    #[test]
    fn trims_and_counts_characters_not_bytes() {
        let rule = Text { max: 3 };
        assert_eq!(rule.check("  äöü \n").as_deref(), Ok("äöü"));
        assert!(rule.check("abcd").is_err());
        assert!(rule.check(" \t ").is_err());
        assert!(rule.check("a\u{0}b").is_err());
    }

    #[test]
    fn filters_that_no_stored_value_can_equal_have_no_key() {
        assert_eq!(super::filter_key(" HDMI ").as_deref(), Some("hdmi"));
        assert_eq!(super::filter_key("a\u{0}"), None);
        assert_eq!(super::filter_key("  "), None);
    }
}
