//! The generated reports (`docs/EVALUATION.md`, `models/README.md`): their prose is a Markdown
//! template beside the code that fills it (`templates/*.md`), with `{{name}}` where a measured
//! value or a generated table goes, so that the words are edited as text and the figures are
//! never typed by hand.

/// Fills every `{{name}}` of `template` with its value in `fields`; `Err` names a placeholder
/// left unfilled (a field the template asks for and the code does not give).
pub fn fill(template: &str, fields: &[(&str, String)]) -> Result<String, String> {
    let mut out = template.to_owned();
    for (name, value) in fields {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    match template_field(&out) {
        Some(name) => Err(format!(
            "the template asks for {{{{{name}}}}}, which is not given"
        )),
        None => Ok(out),
    }
}

/// The first `{{name}}` left in `text` (a name of letters, digits and `_`).
fn template_field(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some((_, after)) = rest.split_once("{{") {
        let name = after.split_once("}}").map(|(name, _)| name)?;
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Some(name);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_filled_everywhere_and_none_is_left() {
        assert_eq!(
            fill("a {{b}} c {{b}}", &[("b", "x".into())]).unwrap(),
            "a x c x"
        );
        let err = fill("a {{b}} {{c}}", &[("b", "x".into())]).unwrap_err();
        assert!(err.contains("{{c}}"), "{err}");
        assert_eq!(
            fill("`{{ not a field }}`", &[]).unwrap(),
            "`{{ not a field }}`"
        );
    }
}
