//! Reading request bodies as the Docker engine reads them, so that what the guard checks is
//! what the engine does.
//!
//! The engine's Go decoder matches member names case-insensitively (`privileged` sets
//! `Privileged`), with Unicode case folding (`ſ` matches `s`). The guard therefore reads the
//! members it checks by lowercased name, and refuses two members whose names differ only in
//! case (which one wins would be the decoder's choice) and any member name that is not ASCII.
//!
//! Settings are compared after [`normalized`]: an absent member, `null`, `false`, `0`, `""`,
//! `[]` and `{}` all mean "the default", which is how the engine treats them.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The members of a JSON object by lowercased name: `(name as sent, value)`.
pub type Fields<'a> = BTreeMap<String, (&'a str, &'a Value)>;

/// The members of `value` (an object, or nothing for `null`/absent), by lowercased name.
/// `what` names the object in the error.
pub fn fields<'a>(value: Option<&'a Value>, what: &str) -> Result<Fields<'a>, String> {
    let mut fields = Fields::new();
    let map = match value {
        None | Some(Value::Null) => return Ok(fields),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(format!("{what} is not a JSON object")),
    };
    for (name, member) in map {
        if !name.is_ascii() {
            return Err(format!("{what} has a member name that is not ASCII"));
        }
        let key = name.to_ascii_lowercase();
        if let Some((other, _)) = fields.insert(key, (name.as_str(), member)) {
            return Err(format!(
                "{what} has both {other:?} and {name:?}: the engine would read them as one"
            ));
        }
    }
    Ok(fields)
}

/// Whether every member name in `value`, at any depth, is ASCII.
pub fn ascii_names(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && ascii_names(v)),
        Value::Array(items) => items.iter().all(ascii_names),
        _ => true,
    }
}

/// `value` with every default (`null`, `false`, `0`, `""`, `[]`, `{}`) turned into `null` and
/// dropped from objects, at any depth; so that an absent setting and its default compare equal.
pub fn normalized(value: &Value) -> Value {
    match value {
        Value::Bool(false) => Value::Null,
        Value::Number(n) if n.as_f64() == Some(0.0) => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        Value::Array(items) if items.is_empty() => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => {
            let members: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !v.is_null())
                .collect();
            if members.is_empty() {
                Value::Null
            } else {
                Value::Object(members)
            }
        }
        other => other.clone(),
    }
}

/// Whether `value` is absent or a default.
pub fn is_default(value: Option<&Value>) -> bool {
    value.is_none_or(|v| normalized(v).is_null())
}

/// Whether two settings are the same once defaults are normalized.
pub fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| v.map(normalized).unwrap_or(Value::Null);
    norm(a) == norm(b)
}

/// A string setting, `""` when absent or not a string.
pub fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_read_as_the_engine_reads_them() {
        let body = json!({"Privileged": false, "privileged": true});
        let err = fields(Some(&body), "HostConfig").unwrap_err();
        assert!(err.contains("read them as one"), "{err}");
        let body = json!({"\u{17f}ecurityOpt": ["seccomp=unconfined"]});
        assert!(fields(Some(&body), "HostConfig").is_err());
        assert!(!ascii_names(&json!({"a": [{"b\u{212a}": 1}]})));
        let body = json!({"CapAdd": ["SYS_ADMIN"]});
        let f = fields(Some(&body), "HostConfig").unwrap();
        assert_eq!(f["capadd"].0, "CapAdd");
        assert!(fields(Some(&json!([1])), "HostConfig").is_err());
        assert!(fields(None, "HostConfig").unwrap().is_empty());
    }

    #[test]
    fn defaults_compare_equal_and_settings_do_not() {
        assert!(same(None, Some(&json!(null))));
        assert!(same(Some(&json!([])), Some(&json!({"a": ""}))));
        assert!(same(
            Some(&json!({"Binds": null, "Memory": 0})),
            Some(&json!({}))
        ));
        assert!(!same(Some(&json!(["ALL"])), None));
        assert!(!same(Some(&json!(true)), Some(&json!(false))));
        assert!(is_default(Some(&json!({"x": [], "y": false}))));
        assert!(!is_default(Some(&json!({"x": ["/:/host"]}))));
    }
}
