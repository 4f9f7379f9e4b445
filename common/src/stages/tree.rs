//! The shape of a reduce: the outputs of the previous stage's chunks are the leaves (level 0); each
//! reduce chunk of level L >= 1 folds up to [`FAN_IN`] values of level L-1; the first level with one
//! chunk is the root, whose output is the stage's one output.
//!
//! A group starts as soon as its own children are recorded, so the folding streams too: the only wait is
//! for a group's own children, and the root waits for everything by definition.

/// Values one reduce chunk folds at most.
pub const FAN_IN: u32 = 16;

/// A reduce tree over some number of leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    leaves: u32,
}

/// One node of the tree: its level (0 for a leaf) and its index within the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// 0 for a leaf, the root's level for the root.
    pub level: u8,
    /// Position within the level, from 0.
    pub index: u32,
}

impl Tree {
    /// The tree over `leaves` leaves (at least one).
    pub fn new(leaves: u32) -> Self {
        Self {
            leaves: leaves.max(1),
        }
    }

    /// How many nodes level `level` has.
    pub fn width(&self, level: u8) -> u32 {
        let mut width = self.leaves;
        for _ in 0..level {
            width = width.div_ceil(FAN_IN);
        }
        width
    }

    /// The root's level: the first level above the leaves with one node.
    pub fn root_level(&self) -> u8 {
        let mut level = 1;
        while self.width(level) > 1 {
            level += 1;
        }
        level
    }

    /// How many reduce chunks the tree runs: every node above the leaves.
    pub fn nodes(&self) -> u32 {
        (1..=self.root_level()).map(|level| self.width(level)).sum()
    }

    /// The node that folds `node`.
    pub fn parent(&self, node: Node) -> Node {
        Node {
            level: node.level + 1,
            index: node.index / FAN_IN,
        }
    }

    /// The children of `node` (a node above the leaves), as indices in the level below.
    pub fn children(&self, node: Node) -> std::ops::Range<u32> {
        let below = self.width(node.level - 1);
        let start = node.index * FAN_IN;
        start..(start + FAN_IN).min(below)
    }

    /// True for the root.
    pub fn is_root(&self, node: Node) -> bool {
        node.level == self.root_level()
    }
}

impl Node {
    /// The node's field name in Redis: `level.index`.
    pub fn field(&self) -> String {
        format!("{}.{}", self.level, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leaf_has_a_root_right_above_it() {
        let tree = Tree::new(1);
        assert_eq!(tree.root_level(), 1);
        let root = tree.parent(Node { level: 0, index: 0 });
        assert!(tree.is_root(root));
        assert_eq!(tree.children(root), 0..1);
    }

    #[test]
    fn every_leaf_is_folded_once_on_the_way_to_the_root() {
        for leaves in [2, 15, 16, 17, 255, 256, 257, 4097] {
            let tree = Tree::new(leaves);
            for level in 1..=tree.root_level() {
                let covered: u32 = (0..tree.width(level))
                    .map(|index| tree.children(Node { level, index }).len() as u32)
                    .sum();
                assert_eq!(
                    covered,
                    tree.width(level - 1),
                    "{leaves} leaves, level {level}"
                );
            }
            assert_eq!(tree.width(tree.root_level()), 1);
            let mut node = Node {
                level: 0,
                index: leaves - 1,
            };
            while !tree.is_root(node) {
                let parent = tree.parent(node);
                assert!(tree.children(parent).contains(&node.index));
                node = parent;
            }
        }
        assert_eq!(Tree::new(257).root_level(), 3);
        assert_eq!(Tree::new(257).nodes(), 17 + 2 + 1);
        assert_eq!(Tree::new(1).nodes(), 1);
    }
}
