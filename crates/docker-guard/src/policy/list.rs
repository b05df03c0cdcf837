//! Container listings through the guard show opted-in containers only: the guard adds the
//! opt-in label to the listing's `filters`, so the engine itself leaves the others out and a
//! caller never sees their names, images or labels.

use super::{OPT_IN_LABEL, OPT_IN_VALUE, Refusal, Rule};
use serde_json::{Value, json};

/// The label filter that selects opted-in containers.
pub fn opt_in_filter() -> String {
    format!("{OPT_IN_LABEL}={OPT_IN_VALUE}")
}

/// `filters` (the query parameter's JSON, if any) with the opt-in label added. Both of the
/// engine's forms are read: `{"label": ["k=v"]}` and the older `{"label": {"k=v": true}}`.
pub fn with_opt_in(filters: Option<&str>) -> Result<String, Refusal> {
    let malformed = |why: &str| Refusal::new(Rule::Malformed, format!("filters: {why}"));
    let mut filters: Value = match filters {
        None => json!({}),
        Some(raw) if raw.trim().is_empty() => json!({}),
        Some(raw) => serde_json::from_str(raw).map_err(|_| malformed("not JSON"))?,
    };
    let map = filters
        .as_object_mut()
        .ok_or_else(|| malformed("not a JSON object"))?;
    if map
        .keys()
        .any(|k| k != "label" && k.eq_ignore_ascii_case("label"))
    {
        return Err(malformed("a \"label\" key in another case"));
    }
    let filter = opt_in_filter();
    match map.get_mut("label") {
        None => {
            map.insert("label".into(), json!([filter]));
        }
        Some(Value::Array(labels)) => labels.push(Value::String(filter)),
        Some(Value::Object(labels)) => {
            labels.insert(filter, Value::Bool(true));
        }
        Some(_) => return Err(malformed("\"label\" is not a list")),
    }
    Ok(filters.to_string())
}

/// The filters that select the opted-in containers of one compose service.
pub fn service_filters(project: &str, service: &str) -> String {
    json!({"label": [
        format!("com.docker.compose.project={project}"),
        format!("com.docker.compose.service={service}"),
        opt_in_filter(),
    ]})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opt_in_label_is_added_in_either_form() {
        let added =
            |f: Option<&str>| -> Value { serde_json::from_str(&with_opt_in(f).unwrap()).unwrap() };
        assert_eq!(added(None), json!({"label": ["autoscaler.enable=true"]}));
        assert_eq!(
            added(Some(
                r#"{"label":["com.docker.compose.service=web"],"status":["running"]}"#
            )),
            json!({"label": ["com.docker.compose.service=web", "autoscaler.enable=true"], "status": ["running"]})
        );
        assert_eq!(
            added(Some(r#"{"label":{"a=b":true}}"#)),
            json!({"label": {"a=b": true, "autoscaler.enable=true": true}})
        );
        for bad in ["[1]", "nope", r#"{"label":"x"}"#, r#"{"Label":["x"]}"#] {
            assert_eq!(
                with_opt_in(Some(bad)).unwrap_err().rule,
                Rule::Malformed,
                "{bad}"
            );
        }
    }
}
