//! XGBoost boosters read and evaluated in Rust, from XGBoost's own model file (UBJSON, as the
//! trainer saves it with libxgboost): the voter does not load libxgboost, whose 17 MB library
//! was most of the XGBoost voter's resident memory.
//!
//! The booster is trained with XGBoost's quantile loss (`reg:quantileerror`) at every level of
//! the forecast at once: one tree per level per round (`tree_info` says which), so one
//! prediction answers all levels. A prediction is XGBoost's: each level starts from its
//! `base_score` and adds, in tree order and in single precision, the leaf each tree's walk
//! reaches (a node sends an input below its split condition left, a missing one the node's
//! default way). `the_rust_booster_predicts_as_libxgboost` in the trainer's tests holds the two
//! to the same outputs.

use crate::ubjson::{self, Value};

/// One node of a tree; a leaf has `left == LEAF`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// Input compared at this node.
    feature: u32,
    /// The split condition; at a leaf, the leaf's value.
    value: f32,
    left: u32,
    right: u32,
    default_left: bool,
}

const LEAF: u32 = u32::MAX;

/// Tree walks interleaved per row.
const WALKS: usize = 8;

/// The trees' statistics that a prediction does not read: checked as the file is read, not kept
/// (they were half of what loading a booster held at once).
const UNREAD: [&str; 4] = ["loss_changes", "sum_hessian", "base_weights", "parents"];

/// A booster, its trees flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct Xgb {
    /// Every tree's nodes, one after the other.
    nodes: Vec<Node>,
    /// Where each tree's nodes start in `nodes`, and which output it adds to.
    trees: Vec<(u32, u32)>,
    /// The starting value of each output.
    base: Vec<f32>,
    width: usize,
}

impl Xgb {
    /// Reads an XGBoost model saved as UBJSON whose feature names must be `features`, in that
    /// order, answering `outputs` quantiles per row.
    pub fn load(bytes: &[u8], features: &[String], outputs: usize) -> Result<Self, String> {
        let model = ubjson::parse_without(bytes, &UNREAD)
            .map_err(|e| format!("not an XGBoost model: {e}"))?;
        let learner = model.at(&["learner"])?;
        let names: Vec<&str> = match learner.at(&["feature_names"])? {
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if names != features {
            return Err(format!(
                "the booster's features {names:?} are not the metadata's {features:?}"
            ));
        }
        let objective = text(learner.at(&["objective", "name"])?)?;
        if objective != "reg:quantileerror" {
            return Err(format!(
                "objective {objective:?}; this build reads boosters of reg:quantileerror"
            ));
        }
        let base = base_scores(text(learner.at(&["learner_model_param", "base_score"])?)?)?;
        if base.len() != outputs {
            return Err(format!(
                "the booster answers {} quantiles; the metadata has {outputs}",
                base.len()
            ));
        }
        let booster = learner.at(&["gradient_booster", "model"])?;
        let Value::Array(trees) = booster.at(&["trees"])? else {
            return Err("the booster's trees are not a list".into());
        };
        let groups = numbers(booster, "tree_info")?;
        if groups.len() != trees.len() || trees.is_empty() {
            return Err(format!(
                "{} trees and {} tree outputs",
                trees.len(),
                groups.len()
            ));
        }
        let mut xgb = Self {
            nodes: Vec::new(),
            trees: Vec::with_capacity(trees.len()),
            base,
            width: features.len(),
        };
        for (tree, group) in trees.iter().zip(groups) {
            let group = index(*group, outputs)
                .and_then(|g| u32::try_from(g).ok())
                .ok_or_else(|| format!("a tree adds to output {group} of {outputs}"))?;
            let start = u32::try_from(xgb.nodes.len()).map_err(|_| "too many nodes")?;
            xgb.trees.push((start, group));
            xgb.read_tree(tree)?;
        }
        xgb.nodes.shrink_to_fit();
        Ok(xgb)
    }

    fn read_tree(&mut self, tree: &Value) -> Result<(), String> {
        let [features, values, left, right, default_left] = [
            "split_indices",
            "split_conditions",
            "left_children",
            "right_children",
            "default_left",
        ]
        .map(|key| numbers(tree, key));
        let (features, values, left, right) = (features?, values?, left?, right?);
        let default_left = default_left?;
        let n = features.len();
        if [values.len(), left.len(), right.len(), default_left.len()] != [n; 4] || n == 0 {
            return Err("a tree's node arrays differ in length".into());
        }
        let child = |c: f64| {
            if c == -1.0 {
                Some(LEAF)
            } else {
                index(c, n).and_then(|c| u32::try_from(c).ok())
            }
        };
        for i in 0..n {
            let (Some(l), Some(r)) = (child(left[i]), child(right[i])) else {
                return Err(format!("node {i} has a child outside its tree"));
            };
            let feature = match index(features[i], self.width) {
                _ if l == LEAF => 0,
                Some(f) => u32::try_from(f).map_err(|_| "too many inputs")?,
                None => return Err(format!("node {i} splits on input {}", features[i])),
            };
            self.nodes.push(Node {
                feature,
                value: values[i] as f32,
                left: l,
                right: r,
                default_left: default_left[i] != 0.0,
            });
        }
        Ok(())
    }

    /// The quantiles of each row of `rows` (row-major, `width` values per row): one value per
    /// output per row, row after row.
    pub fn quantiles(&self, rows: &[f64]) -> Result<Vec<f64>, String> {
        if self.width == 0 || !rows.len().is_multiple_of(self.width) {
            return Err(format!(
                "{} inputs are not rows of {}",
                rows.len(),
                self.width
            ));
        }
        // Tree by tree over all the rows, so that each tree's nodes stay in cache while the rows
        // walk it (as libxgboost does in blocks of rows); each row still sums its trees in
        // order, so the result is the same as row by row.
        let rows32: Vec<f32> = rows.iter().map(|v| *v as f32).collect();
        let n = rows32.len() / self.width;
        let outputs = self.base.len();
        let mut sums: Vec<f32> = Vec::with_capacity(n * outputs);
        for _ in 0..n {
            sums.extend_from_slice(&self.base);
        }
        // Eight trees at a time per row: their walks are independent, so the processor overlaps
        // their loads and mispredicted branches (about 1.8 times the speed of one walk at a time,
        // `cargo bench -p ml-inference --bench inference`).
        let mut trees = self.trees.chunks_exact(WALKS);
        for chunk in trees.by_ref() {
            let roots: [usize; WALKS] = std::array::from_fn(|k| chunk[k].0 as usize);
            for (row, sum) in rows32
                .chunks_exact(self.width)
                .zip(sums.chunks_exact_mut(outputs))
            {
                let leaves = self.leaves(roots, row);
                for ((_, group), leaf) in chunk.iter().zip(leaves) {
                    sum[*group as usize] += leaf;
                }
            }
        }
        for (start, group) in trees.remainder() {
            for (row, sum) in rows32
                .chunks_exact(self.width)
                .zip(sums.chunks_exact_mut(outputs))
            {
                sum[*group as usize] += self.leaves([*start as usize], row)[0];
            }
        }
        Ok(sums.into_iter().map(f64::from).collect())
    }

    /// The values of the leaves a row reaches in the trees whose roots are `nodes[roots[k]]`,
    /// the walks interleaved.
    fn leaves<const K: usize>(&self, roots: [usize; K], row: &[f32]) -> [f32; K] {
        let mut at = roots;
        // Depth is bounded by the node count; the bound guards against a cyclic artifact.
        for _ in 0..self.nodes.len() {
            let mut walking = false;
            for k in 0..K {
                let node = self.nodes[at[k]];
                if node.left == LEAF {
                    continue;
                }
                walking = true;
                let x = row[node.feature as usize];
                // A missing input takes the node's default way; `x < value` is false for it.
                let left = x < node.value || (x.is_nan() && node.default_left);
                at[k] = roots[k] + if left { node.left } else { node.right } as usize;
            }
            if !walking {
                break;
            }
        }
        at.map(|a| {
            let node = self.nodes[a];
            if node.left == LEAF { node.value } else { 0.0 }
        })
    }
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| "a model parameter is not text".to_owned())
}

fn numbers<'a>(v: &'a Value, key: &str) -> Result<&'a [f64], String> {
    v.at(&[key])?
        .as_numbers()
        .ok_or_else(|| format!("{key} is not a list of numbers"))
}

/// `x` as an index below `len`, if it is one.
fn index(x: f64, len: usize) -> Option<usize> {
    (x >= 0.0 && x.fract() == 0.0 && x < len as f64).then_some(x as usize)
}

/// XGBoost's `base_score`: one number, or `[a,b,...]` for several outputs.
fn base_scores(s: &str) -> Result<Vec<f32>, String> {
    s.trim_matches(['[', ']'])
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| format!("base_score {s:?} is not a list of numbers"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_boosters_load_and_answer_finite_quantiles() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/xgboost");
        let metadata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        let features: Vec<String> = serde_json::from_value(metadata["features"].clone()).unwrap();
        for file in ["up.ubj", "down.ubj"] {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let xgb = Xgb::load(&bytes, &features, 7).unwrap();
            assert_eq!(xgb.trees.len(), 700, "{file}");
            let row = vec![1.0; features.len()];
            let q = xgb.quantiles(&row).unwrap();
            assert_eq!(q.len(), 7);
            assert!(q.iter().all(|v| v.is_finite()), "{q:?}");
            let mut missing = row.clone();
            missing[0] = f64::NAN;
            assert_eq!(xgb.quantiles(&missing).unwrap().len(), 7);
            assert!(
                Xgb::load(&bytes, &features[1..], 7)
                    .unwrap_err()
                    .contains("features")
            );
            assert!(
                Xgb::load(&bytes, &features, 3)
                    .unwrap_err()
                    .contains("quantiles")
            );
            assert!(Xgb::load(&bytes[..bytes.len() / 2], &features, 7).is_err());
            assert!(xgb.quantiles(&row[1..]).is_err());
        }
    }

    #[test]
    fn base_scores_read_as_xgboost_writes_them() {
        assert_eq!(base_scores("[5E-1,2.5E-1]").unwrap(), vec![0.5, 0.25]);
        assert_eq!(base_scores("5E-1").unwrap(), vec![0.5]);
        assert!(base_scores("[a]").is_err());
    }
}
