//! Bounded memory: the reader holds one band of rows, the assembler only out-of-order bands.

use taskq_image::{Blur, PixelFormat, RowAssembler, TileGrid, TileReader};

use crate::harness::{encode_png, random_image};

#[test]
fn the_reader_holds_at_most_a_band_and_yields_tiles_early() {
    let png = encode_png(&random_image(97, 61, PixelFormat::RGB8, 2));
    for (tile, tile_height) in [("10x7", 7), ("97x1", 1), ("13", 13)] {
        let radius = Blur::new(3.0).unwrap().radius();
        let mut reader = TileReader::new(&png[..], tile.parse().unwrap(), radius).unwrap();
        let first = reader.next_tile().unwrap().unwrap();
        assert_eq!(first.index, 0);
        // The first tile comes as soon as its rows and the halo below are decoded, not later.
        assert_eq!(reader.rows_read(), tile_height + radius, "tiles {tile}");
        let mut count = 1;
        while let Some(tile) = reader.next_tile().unwrap() {
            assert_eq!(tile.index, count);
            count += 1;
        }
        assert_eq!(count, reader.grid().len());
        let bound = (tile_height + 2 * radius) as usize;
        assert!(
            reader.max_rows_held() <= bound,
            "{tile}: {} rows held",
            reader.max_rows_held()
        );
        assert!(
            reader.max_rows_held() >= bound.min(61) - 1,
            "{tile}: the band is dropped too early?"
        );
        assert!(reader.next_tile().unwrap().is_none());
    }
}

#[test]
fn the_assembler_drops_a_band_once_written_and_ignores_repeats() {
    let grid = TileGrid::new(12, 9, "4x3".parse().unwrap()).unwrap(); // 3 x 3 tiles
    let image = random_image(12, 9, PixelFormat::RGBA8, 4);
    let tile = |t: usize| image.crop(grid.tile(t).unwrap()).unwrap();
    let mut out = RowAssembler::new(Vec::new(), grid, PixelFormat::RGBA8).unwrap();
    for t in [3, 4, 5, 8] {
        assert!(out.add(t, tile(t)).unwrap());
    }
    assert_eq!((out.held_tiles(), out.bands_written()), (4, 0));
    assert!(!out.add(4, tile(4)).unwrap(), "a repeat of a held tile");
    assert!(out.add(0, tile(0)).unwrap());
    assert!(out.add(1, tile(1)).unwrap());
    assert_eq!((out.held_tiles(), out.bands_written()), (6, 0));
    assert!(out.add(2, tile(2)).unwrap());
    // Band 0 completed band 1 too: both written and dropped; tile 8 waits for 6 and 7.
    assert_eq!((out.held_tiles(), out.bands_written()), (1, 2));
    assert!(!out.add(1, tile(1)).unwrap(), "a repeat of a written tile");
    assert_eq!(out.held_tiles(), 1);
    out.add(7, tile(7)).unwrap();
    out.add(6, tile(6)).unwrap();
    assert_eq!((out.held_tiles(), out.bands_written()), (0, 3));
    let png = out.finish().unwrap();
    assert_eq!(crate::harness::decode_png(&png), image);
}
