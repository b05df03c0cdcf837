//! Random Forest: trained by smartcore, whose artifact (its serde JSON) is the model file.
//!
//! smartcore's forest only answers with the majority class; the probability of a violation is
//! the share of trees that vote for it, as in Breiman's forest and scikit-learn. The trees are
//! read out of smartcore's own serialization into flat node arrays, which also makes a
//! prediction a few hundred nanoseconds.

use smartcore::ensemble::random_forest_classifier::RandomForestClassifier;
use smartcore::linalg::basic::matrix::DenseMatrix;

/// smartcore's forest type for our data: f64 features, i32 labels (0, 1).
pub type SmartcoreForest = RandomForestClassifier<f64, i32, DenseMatrix<f64>, Vec<i32>>;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// Input index compared at this node.
    feature: u32,
    /// Go to `when_le` when the input is at most this, else to `when_gt` (smartcore's rule).
    threshold: f64,
    when_le: u32,
    when_gt: u32,
    /// For leaves: whether the leaf's class is the violation class.
    violation: bool,
    leaf: bool,
}

/// A trained forest, flattened for prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    trees: Vec<Vec<Node>>,
}

impl Forest {
    /// Reads smartcore's JSON of a forest trained on `width` inputs with labels 0 and 1.
    pub fn from_smartcore_json(bytes: &[u8], width: usize) -> Result<Self, String> {
        // Deserializing into smartcore's type checks that this is one of its forests.
        let forest: SmartcoreForest = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a smartcore random forest: {e}"))?;
        let value = serde_json::to_value(&forest).map_err(|e| e.to_string())?;
        let classes: Vec<i64> = value["classes"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        let positive = classes
            .iter()
            .position(|c| *c == 1)
            .ok_or("the forest was not trained with violations (class 1)")?;
        let trees = value["trees"].as_array().ok_or("the forest has no trees")?;
        let trees = trees
            .iter()
            .map(|tree| read_tree(tree, width, positive))
            .collect::<Result<Vec<_>, _>>()?;
        if trees.is_empty() {
            return Err("the forest has no trees".into());
        }
        Ok(Self { trees })
    }

    /// Number of trees.
    pub fn len(&self) -> usize {
        self.trees.len()
    }

    /// Whether the forest has no trees (never true for a loaded forest).
    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    /// Share of trees voting for a violation.
    pub fn probability(&self, row: &[f64]) -> f64 {
        let votes = self.trees.iter().filter(|tree| leaf(tree, row)).count();
        votes as f64 / self.trees.len() as f64
    }
}

/// Walks one tree; `true` when it ends in a violation leaf.
fn leaf(tree: &[Node], row: &[f64]) -> bool {
    let mut node = &tree[0];
    // Depth is bounded by the node count; the bound guards against a cyclic artifact.
    for _ in 0..tree.len() {
        if node.leaf {
            return node.violation;
        }
        let next = if row[node.feature as usize] <= node.threshold {
            node.when_le
        } else {
            node.when_gt
        };
        node = &tree[next as usize];
    }
    false
}

fn read_tree(tree: &serde_json::Value, width: usize, positive: usize) -> Result<Vec<Node>, String> {
    let nodes = tree["nodes"].as_array().ok_or("a tree has no nodes")?;
    let count = nodes.len();
    let index = |v: &serde_json::Value| -> Result<Option<u32>, String> {
        match v.as_u64() {
            Some(i) if (i as usize) < count => Ok(Some(i as u32)),
            Some(i) => Err(format!("child {i} outside a tree of {count} nodes")),
            None => Ok(None),
        }
    };
    nodes
        .iter()
        .map(|n| {
            let (le, gt) = (index(&n["true_child"])?, index(&n["false_child"])?);
            let feature = n["split_feature"].as_u64().unwrap_or(0) as u32;
            let leaf = le.is_none() && gt.is_none();
            if !leaf && feature as usize >= width {
                return Err(format!(
                    "a split on input {feature}, but the model has {width} inputs"
                ));
            }
            Ok(Node {
                feature,
                threshold: n["split_value"].as_f64().unwrap_or(f64::NAN),
                when_le: le.unwrap_or(0),
                when_gt: gt.or(le).unwrap_or(0),
                violation: n["output"].as_u64() == Some(positive as u64),
                leaf,
            })
        })
        .collect()
}
