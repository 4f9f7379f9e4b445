//! Which chunks are a chunk's neighbours, for the `neighbours` edge: a row of chunks, or a grid of them
//! (an image's tiles).

use serde::{Deserialize, Serialize};

/// Which chunks are neighbours: chunks laid out in rows of `cols` (0: one row), and those within
/// `reach_x` columns and `reach_y` rows of a chunk are its neighbours (itself included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbourhood {
    /// Chunks per row; 0 for a single row of every chunk.
    pub cols: u32,
    /// How many columns away a neighbour may be.
    pub reach_x: u32,
    /// How many rows away a neighbour may be.
    pub reach_y: u32,
}

impl Default for Neighbourhood {
    /// The chunk before and the chunk after.
    fn default() -> Self {
        Self {
            cols: 0,
            reach_x: 1,
            reach_y: 0,
        }
    }
}

impl Neighbourhood {
    /// The neighbours of `chunk` (itself included) among `chunks` chunks, in order.
    pub fn of(&self, chunk: u32, chunks: u32) -> Vec<u32> {
        let cols = if self.cols == 0 {
            chunks.max(1)
        } else {
            self.cols
        };
        let rows = chunks.div_ceil(cols);
        let (x, y) = (chunk % cols, chunk / cols);
        let mut neighbours = Vec::new();
        for row in y.saturating_sub(self.reach_y)..=(y + self.reach_y).min(rows.saturating_sub(1)) {
            for col in x.saturating_sub(self.reach_x)..=(x + self.reach_x).min(cols - 1) {
                let neighbour = row * cols + col;
                if neighbour < chunks {
                    neighbours.push(neighbour);
                }
            }
        }
        neighbours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_found_in_rows_and_columns() {
        let line = Neighbourhood::default();
        assert_eq!(line.of(0, 5), vec![0, 1]);
        assert_eq!(line.of(2, 5), vec![1, 2, 3]);
        assert_eq!(line.of(4, 5), vec![3, 4]);
        // 3 columns, 7 chunks: rows 0-2, the last row holds chunk 6 alone.
        let grid = Neighbourhood {
            cols: 3,
            reach_x: 1,
            reach_y: 1,
        };
        assert_eq!(grid.of(4, 7), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(grid.of(0, 7), vec![0, 1, 3, 4]);
        assert_eq!(grid.of(6, 7), vec![3, 4, 6]);
        let wide = Neighbourhood {
            cols: 4,
            reach_x: 2,
            reach_y: 0,
        };
        assert_eq!(wide.of(1, 8), vec![0, 1, 2, 3]);
    }
}
