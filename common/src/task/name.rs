//! Which kind names are accepted: they become queue names and travel in every message.

/// The longest kind name.
pub const KIND_NAME_MAX: usize = 64;

/// Checks a kind name: `[a-z0-9][a-z0-9._-]*`, at most [`KIND_NAME_MAX`] characters. The error says
/// what is wrong and what is allowed.
pub fn validate_kind_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if first_ok && rest_ok && name.len() <= KIND_NAME_MAX {
        Ok(())
    } else {
        Err(format!(
            "kind name '{name}' is invalid: use lowercase letters, digits, '.', '_' and '-', starting \
             with a letter or digit, at most {KIND_NAME_MAX} characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_with_dots_dashes_and_underscores() {
        for good in ["square", "sum-squares", "a", "0x", "img.blur_v2"] {
            assert!(validate_kind_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Square",
            "-a",
            ".a",
            "_a",
            "a b",
            "a/b",
            "a;rm",
            "é",
            &"a".repeat(65),
        ] {
            let error = validate_kind_name(bad).unwrap_err();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
    }
}
