//! Random Forest as a quantile regression forest: smartcore grows the regression trees (its
//! serde JSON is the model file); the quantiles come from the training targets that fell in each
//! leaf, as in Meinshausen's quantile regression forests.
//!
//! smartcore answers only with the mean of a leaf, so the trees are read out of its
//! serialization into flat node arrays; the trainer passes every training window down every tree
//! and writes, per leaf, the targets' quantiles at the forecast's levels (the leaf table, a file
//! beside the model). A forecast averages, per level, the quantiles of the leaves a window
//! reaches in each tree.

use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::RandomForestRegressor;
use smartcore::linalg::basic::matrix::DenseMatrix;

/// smartcore's forest type for our data: f64 inputs and targets.
pub type SmartcoreForest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// One node, 24 bytes (a voter holds some 30,000 of them).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// Go to `when_le` when the input is at most this, else to `when_gt` (smartcore's rule).
    threshold: f64,
    /// Input index compared at this node; [`LEAF`] at a leaf.
    feature: u32,
    /// At a leaf: its slot among the tree's leaves (in node order).
    when_le: u32,
    when_gt: u32,
}

/// `Node::feature` of a leaf.
const LEAF: u32 = u32::MAX;

/// One flattened tree.
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
    /// smartcore's answer at each leaf (by slot): the mean of its bootstrap targets.
    outputs: Vec<f64>,
}

/// The trees of a forest, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct Trees {
    trees: Vec<Tree>,
}

impl Trees {
    /// Reads smartcore's JSON of a regression forest trained on `width` inputs.
    ///
    /// The file is read straight into the few fields a prediction needs (each tree's nodes),
    /// not into smartcore's forest and then a JSON tree: that held the model three times over
    /// while loading, which was most of the Random Forest voter's peak memory.
    pub fn from_smartcore_json(bytes: &[u8], width: usize) -> Result<Self, String> {
        let file: SmartcoreFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a smartcore random forest regressor: {e}"))?;
        let trees = file
            .forest_regressor
            .trees
            .into_iter()
            .map(|tree| read_tree(tree.nodes, width))
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

    /// Nodes of tree `t`.
    pub fn nodes(&self, t: usize) -> usize {
        self.trees.get(t).map_or(0, |tree| tree.nodes.len())
    }

    /// Leaves of tree `t`.
    fn leaves(&self, t: usize) -> usize {
        self.trees.get(t).map_or(0, |tree| tree.outputs.len())
    }

    /// The slot among tree `t`'s leaves of node `node`, if it is a leaf.
    fn slot(&self, t: usize, node: usize) -> Option<usize> {
        let node = self.trees.get(t)?.nodes.get(node)?;
        (node.feature == LEAF).then_some(node.when_le as usize)
    }

    /// The leaf (its node index) `row` reaches in tree `t`.
    pub fn leaf(&self, t: usize, row: &[f64]) -> usize {
        let tree = &self.trees[t].nodes;
        let mut at = 0usize;
        // Depth is bounded by the node count; the bound guards against a cyclic artifact.
        for _ in 0..tree.len() {
            let node = &tree[at];
            if node.feature == LEAF {
                return at;
            }
            at = if row.get(node.feature as usize).copied().unwrap_or(0.0) <= node.threshold {
                node.when_le
            } else {
                node.when_gt
            } as usize;
        }
        at
    }
}

impl Trees {
    /// smartcore's own prediction for `row`: the mean over the trees of their leaves' outputs
    /// (to check this reading of the trees against smartcore).
    pub fn mean_output(&self, row: &[f64]) -> f64 {
        let sum: f64 = (0..self.trees.len())
            .map(|t| {
                let slot = self.slot(t, self.leaf(t, row)).unwrap_or(usize::MAX);
                self.trees[t].outputs.get(slot).copied().unwrap_or(f64::NAN)
            })
            .sum();
        sum / self.trees.len() as f64
    }
}

/// Quantiles of the training targets in each leaf: `trees[t]` lists tree `t`'s leaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafTable {
    /// The levels of every `quantiles` vector.
    pub levels: Vec<f64>,
    pub trees: Vec<Vec<Leaf>>,
}

/// One leaf's targets, summarized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// Node index in its tree.
    pub node: usize,
    /// Training targets that reached it.
    pub samples: usize,
    /// Single precision: plenty for a quantile of a log ratio, and half the file.
    pub quantiles: Vec<f32>,
}

/// The empirical quantile at `level` of sorted `values` (linear between order statistics).
pub fn empirical_quantile(sorted: &[f64], level: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = level.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo as f64)
}

impl LeafTable {
    /// Passes every row of `rows` (with its target) down every tree and summarizes each leaf.
    pub fn build(trees: &Trees, rows: &[Vec<f64>], targets: &[f64], levels: &[f64]) -> Self {
        let tables = (0..trees.len())
            .map(|t| {
                let mut per_leaf: std::collections::BTreeMap<usize, Vec<f64>> =
                    std::collections::BTreeMap::new();
                for (row, y) in rows.iter().zip(targets) {
                    per_leaf.entry(trees.leaf(t, row)).or_default().push(*y);
                }
                per_leaf
                    .into_iter()
                    .map(|(node, mut ys)| {
                        ys.sort_by(f64::total_cmp);
                        Leaf {
                            node,
                            samples: ys.len(),
                            quantiles: levels
                                .iter()
                                .map(|l| empirical_quantile(&ys, *l) as f32)
                                .collect(),
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            levels: levels.to_vec(),
            trees: tables,
        }
    }
}

/// A trained quantile regression forest, flattened for prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    trees: Trees,
    /// Per tree, `leaves x levels` quantiles by leaf slot, as the leaf table has them (NaN for a
    /// leaf without samples).
    quantiles: Vec<Vec<f32>>,
    levels: usize,
}

impl Forest {
    /// The trees with their leaf table, which must answer `levels` quantiles.
    pub fn new(trees: Trees, table: &LeafTable, levels: &[f64]) -> Result<Self, String> {
        if table.levels != levels {
            return Err(format!(
                "the leaf table's levels {:?} are not the forecast's {levels:?}",
                table.levels
            ));
        }
        if table.trees.len() != trees.len() {
            return Err(format!(
                "the leaf table covers {} trees of {}",
                table.trees.len(),
                trees.len()
            ));
        }
        let width = levels.len();
        let mut quantiles = Vec::with_capacity(trees.len());
        for (t, leaves) in table.trees.iter().enumerate() {
            let mut flat = vec![f32::NAN; trees.leaves(t) * width];
            for leaf in leaves {
                let slot = trees.slot(t, leaf.node);
                let (Some(slot), true) = (slot, leaf.quantiles.len() == width) else {
                    return Err(format!("a leaf of tree {t} does not fit the tree"));
                };
                flat[slot * width..(slot + 1) * width].copy_from_slice(&leaf.quantiles);
            }
            quantiles.push(flat);
        }
        Ok(Self {
            trees,
            quantiles,
            levels: width,
        })
    }

    /// Appends the forest's quantiles for `row` to `out`: per level, the mean over the trees of
    /// the quantile of the leaf the row reaches (trees whose leaf saw no training window are
    /// left out).
    pub fn quantiles(&self, row: &[f64], out: &mut Vec<f64>) {
        let start = out.len();
        out.resize(start + self.levels, 0.0);
        let mut counted = 0.0;
        for (t, table) in self.quantiles.iter().enumerate() {
            let Some(slot) = self.trees.slot(t, self.trees.leaf(t, row)) else {
                continue;
            };
            let Some(q) = table.get(slot * self.levels..(slot + 1) * self.levels) else {
                continue;
            };
            if q.iter().any(|v| v.is_nan()) {
                continue;
            }
            for (o, v) in out[start..].iter_mut().zip(q) {
                *o += f64::from(*v);
            }
            counted += 1.0;
        }
        for o in &mut out[start..] {
            *o = if counted > 0.0 {
                *o / counted
            } else {
                f64::NAN
            };
        }
    }
}

/// smartcore's serialization of a regression forest, as far as a prediction reads it (serde
/// skips the other fields).
#[derive(Deserialize)]
struct SmartcoreFile {
    forest_regressor: SmartcoreTrees,
}

#[derive(Deserialize)]
struct SmartcoreTrees {
    trees: Vec<SmartcoreTree>,
}

#[derive(Deserialize)]
struct SmartcoreTree {
    nodes: Vec<SmartcoreNode>,
}

#[derive(Deserialize)]
struct SmartcoreNode {
    output: Option<f64>,
    #[serde(default)]
    split_feature: u64,
    split_value: Option<f64>,
    true_child: Option<u64>,
    false_child: Option<u64>,
}

fn read_tree(nodes: Vec<SmartcoreNode>, width: usize) -> Result<Tree, String> {
    let count = nodes.len();
    if count == 0 {
        return Err("a tree has no nodes".into());
    }
    let index = |v: Option<u64>| -> Result<Option<u32>, String> {
        match v {
            Some(i) if (i as usize) < count => Ok(Some(i as u32)),
            Some(i) => Err(format!("child {i} outside a tree of {count} nodes")),
            None => Ok(None),
        }
    };
    let mut outputs = Vec::new();
    let nodes = nodes
        .into_iter()
        .map(|n| {
            let (le, gt) = (index(n.true_child)?, index(n.false_child)?);
            if le.is_none() && gt.is_none() {
                let slot = outputs.len() as u32;
                outputs.push(n.output.unwrap_or(f64::NAN));
                return Ok(Node {
                    threshold: f64::NAN,
                    feature: LEAF,
                    when_le: slot,
                    when_gt: slot,
                });
            }
            let feature = u32::try_from(n.split_feature).unwrap_or(u32::MAX);
            if feature as usize >= width {
                return Err(format!(
                    "a split on input {feature}, but the model has {width} inputs"
                ));
            }
            Ok(Node {
                threshold: n.split_value.unwrap_or(f64::NAN),
                feature,
                when_le: le.unwrap_or(0),
                when_gt: gt.or(le).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Tree { nodes, outputs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empirical_quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(empirical_quantile(&v, 0.5), 3.0);
        assert_eq!(empirical_quantile(&v, 0.9), 4.6);
        assert_eq!(empirical_quantile(&v, 1.0), 5.0);
        assert!(empirical_quantile(&[], 0.5).is_nan());
    }
}
