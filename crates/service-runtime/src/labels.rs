//! The labels an operator puts on a service to hand it to the autoscaler: the opt-in and the
//! bounds. The scaler and the Docker guard read the same names, each on its own, so that one
//! of them being wrong or bypassed does not hand over a service the operator did not.

/// A service is scaled only when its containers (Compose) or its spec (Swarm) carry this label
/// with the value [`OPT_IN_VALUE`]; nothing else is ever changed, whatever the votes say.
pub const OPT_IN_LABEL: &str = "autoscaler.enable";
/// The value of [`OPT_IN_LABEL`] that opts a service in (exactly this: `"yes"` or `"1"` do not).
pub const OPT_IN_VALUE: &str = "true";
/// The fewest replicas of the service.
pub const MIN_LABEL: &str = "autoscaler.min_replicas";
/// The most replicas of the service.
pub const MAX_LABEL: &str = "autoscaler.max_replicas";

/// Whether a label set opts its service in.
pub fn opted_in<'a>(mut label: impl FnMut(&str) -> Option<&'a str>) -> bool {
    label(OPT_IN_LABEL).is_some_and(|v| v.trim() == OPT_IN_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_the_exact_value_opts_in() {
        let labels = |v: &str| HashMap::from([(OPT_IN_LABEL.to_owned(), v.to_owned())]);
        for (value, expected) in [
            ("true", true),
            (" true ", true),
            ("yes", false),
            ("", false),
        ] {
            let set = labels(value);
            assert_eq!(
                opted_in(|k| set.get(k).map(String::as_str)),
                expected,
                "{value:?}"
            );
        }
        let empty: HashMap<String, String> = HashMap::new();
        assert!(!opted_in(|k| empty.get(k).map(String::as_str)));
    }
}
