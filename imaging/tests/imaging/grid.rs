//! Cutting an image into tiles: sizes, clipping, and which tiles a halo reaches.

use taskq_image::{Rect, TileGrid, TileSize};

fn grid(width: u32, height: u32, tile: &str) -> TileGrid {
    TileGrid::new(width, height, tile.parse().unwrap()).unwrap()
}

#[test]
fn tile_sizes_parse_square_and_rectangular() {
    assert_eq!(
        "13".parse::<TileSize>().unwrap(),
        TileSize {
            width: 13,
            height: 13
        }
    );
    assert_eq!(
        "4096x1".parse::<TileSize>().unwrap(),
        TileSize {
            width: 4096,
            height: 1
        }
    );
    assert_eq!(
        " 5 X 7 ".parse::<TileSize>().unwrap(),
        TileSize {
            width: 5,
            height: 7
        }
    );
    assert_eq!(
        TileSize {
            width: 5,
            height: 7
        }
        .to_string(),
        "5x7"
    );
}

#[test]
fn edge_tiles_are_clipped_and_a_big_tile_is_the_image() {
    let g = grid(10, 7, "4");
    assert_eq!((g.cols(), g.rows(), g.len()), (3, 2, 6));
    assert_eq!(g.tile(0).unwrap(), Rect::new(0, 0, 4, 4));
    assert_eq!(g.tile(2).unwrap(), Rect::new(8, 0, 2, 4));
    assert_eq!(g.tile(5).unwrap(), Rect::new(8, 4, 2, 3));
    assert!(g.tile(6).is_err());
    let one = grid(10, 7, "100x3");
    assert_eq!((one.cols(), one.rows(), one.tile_width()), (1, 3, 10));
    assert_eq!(one.tile(2).unwrap(), Rect::new(0, 6, 10, 1));
    // Every pixel is in exactly one tile.
    let g = grid(37, 23, "5x11");
    let mut seen = vec![0u8; 37 * 23];
    for t in 0..g.len() {
        let r = g.tile(t).unwrap();
        for y in r.y..r.bottom() {
            for x in r.x..r.right() {
                seen[(y * 37 + x) as usize] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&n| n == 1));
}

#[test]
fn expand_clips_to_the_image() {
    assert_eq!(
        Rect::new(4, 0, 4, 4).expand(3, 10, 10),
        Rect::new(1, 0, 9, 7)
    );
    assert_eq!(
        Rect::new(0, 0, 10, 10).expand(50, 10, 10),
        Rect::new(0, 0, 10, 10)
    );
    assert_eq!(
        Rect::new(2, 2, 1, 1).expand(0, 10, 10),
        Rect::new(2, 2, 1, 1)
    );
}

#[test]
fn neighbourhood_reaches_as_far_as_the_radius() {
    let g = grid(10, 7, "4");
    assert_eq!(g.neighbourhood(0, 0).unwrap(), vec![0]);
    assert_eq!(g.neighbourhood(0, 1).unwrap(), vec![0, 1, 3, 4]);
    assert_eq!(g.neighbourhood(4, 1).unwrap(), vec![0, 1, 2, 3, 4, 5]);
    // Tiles of 2 with a radius of 5 reach three tiles each way, beyond the 8 neighbours.
    let small = grid(20, 20, "2");
    let n = small.neighbourhood(55, 5).unwrap(); // tile (5, 5), pixels 10..12
    assert_eq!(n.len(), 7 * 7);
    assert_eq!((n[0], n[48]), (22, 88));
    // The brute-force definition: every tile whose rect meets the expanded rect.
    for t in 0..small.len() {
        let halo = small.tile(t).unwrap().expand(5, 20, 20);
        let brute: Vec<usize> = (0..small.len())
            .filter(|&o| small.tile(o).unwrap().intersect(&halo).is_some())
            .collect();
        assert_eq!(small.neighbourhood(t, 5).unwrap(), brute, "tile {t}");
    }
}
