//! Bad input of every kind gives an error that says what was wrong and what to do.

use taskq_image::{
    assemble, AssembleError, Blur, BlurError, GridError, PixelFormat, ReadError, Rect, Region,
    RowAssembler, TileGrid, TileReader, TileSize, WriteError,
};

use crate::harness::{encode_png, random_image};

fn read_all(png: &[u8]) -> Result<usize, ReadError> {
    let reader = TileReader::new(png, "7".parse().unwrap(), 3)?;
    let mut tiles = 0;
    for tile in reader {
        tile?;
        tiles += 1;
    }
    Ok(tiles)
}

#[test]
fn not_a_png_says_what_it_starts_with() {
    let err = read_all(b"GIF89a\x01\x00\x01\x00rest").unwrap_err();
    assert!(matches!(err, ReadError::NotPng { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the input is not a PNG file (it starts with \"GIF89a\\x01\\x00\"); give a PNG image (convert other formats first)"
    );
    let empty = read_all(b"").unwrap_err().to_string();
    assert!(empty.contains("not a PNG file (it is empty)"), "{empty}");
    let short = read_all(b"\x89PN").unwrap_err().to_string();
    assert!(
        short.contains("not a PNG file (it starts with \"\\x89PN\")"),
        "{short}"
    );
}

#[test]
fn a_truncated_png_names_the_rows_read() {
    let png = encode_png(&random_image(37, 23, PixelFormat::RGB8, 3));
    // Noise does not compress, so half the file holds about half the rows.
    let err = read_all(&png[..png.len() / 2]).unwrap_err();
    let ReadError::Truncated { rows_read, height } = err else {
        panic!("expected Truncated, got {err:?}");
    };
    assert_eq!(height, 23);
    assert!((8..=14).contains(&rows_read), "{rows_read} rows");
    assert_eq!(
        err.to_string(),
        format!("the PNG ends early, after {rows_read} of its 23 rows were decoded: the file is truncated; copy or export it again")
    );
    let header = read_all(&png[..20]).unwrap_err();
    assert!(matches!(header, ReadError::Header(_)), "{header:?}");
    assert!(
        header
            .to_string()
            .starts_with("the PNG header could not be read"),
        "{header}"
    );
}

#[test]
fn damaged_image_data_is_reported_with_the_rows_read() {
    let mut png = encode_png(&random_image(37, 23, PixelFormat::RGB8, 3));
    let middle = png.len() / 2;
    png[middle] ^= 0xff;
    let err = read_all(&png).unwrap_err();
    assert!(
        matches!(err, ReadError::Corrupt { height: 23, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("the PNG image data is damaged ("),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("of its 23 rows were decoded; export it again"),
        "{err}"
    );
    // A file cut just before its end chunk has every row, and is still reported as truncated.
    let whole = encode_png(&random_image(37, 23, PixelFormat::RGB8, 3));
    let err = read_all(&whole[..whole.len() - 6]).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Truncated {
                rows_read: 23,
                height: 23
            }
        ),
        "{err:?}"
    );
}

/// CRC-32 of PNG chunks, bit by bit: enough to re-sign a header edited for a test.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn an_interlaced_png_is_refused() {
    let mut png = encode_png(&random_image(8, 8, PixelFormat::RGB8, 3));
    png[28] = 1; // IHDR's interlace method: Adam7
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = TileReader::new(&png[..], "4".parse().unwrap(), 1)
        .err()
        .unwrap();
    assert!(matches!(err, ReadError::Interlaced), "{err:?}");
    assert!(
        err.to_string().contains("re-save it without interlacing"),
        "{err}"
    );
}

#[test]
fn sigma_out_of_range_is_refused() {
    for sigma in [0.0, -1.0, 50.5, f32::NAN, f32::INFINITY] {
        let err = Blur::new(sigma).unwrap_err();
        assert!(matches!(err, BlurError::Sigma { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "blur sigma {sigma} is out of range: give a number greater than 0 and at most 50"
            )
        );
    }
    assert!(Blur::new(50.0).is_ok());
}

#[test]
fn bad_tile_sizes_say_which_part_is_wrong() {
    let cases = [
        ("0", "a tile dimension is 0"),
        ("0x4", "a tile dimension is 0"),
        ("4x0", "a tile dimension is 0"),
        ("abc", "not a whole number of pixels"),
        ("-3", "not a whole number of pixels"),
        ("4x4x4", "not a whole number of pixels"),
        ("", "a number is missing"),
        ("4x", "a number is missing"),
        ("x4", "a number is missing"),
    ];
    for (text, reason) in cases {
        let err = text.parse::<TileSize>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("tile size {text:?} is not valid ({reason}): give a size in pixels like `256` (square) or `WxH` like `4096x1`")
        );
    }
    let zero = TileGrid::new(0, 5, "2".parse().unwrap()).unwrap_err();
    assert_eq!(
        zero,
        GridError::ZeroSize {
            what: "the image width"
        }
    );
    assert_eq!(
        zero.to_string(),
        "the image width is 0 pixels: every image and tile dimension must be at least 1"
    );
}

#[test]
fn a_blur_without_its_halo_is_refused() {
    let blur = Blur::new(1.0).unwrap();
    let image = random_image(20, 20, PixelFormat::RGB8, 1);
    let tile = Rect::new(8, 8, 4, 4);
    let err = blur
        .apply(&image.crop(tile).unwrap(), 20, 20, tile)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the input region covers 4x4 at (8, 8) but blurring 4x4 at (8, 8) needs 10x10 at (5, 5) (the output grown by the radius 3, clipped to the image): send the tile with its halo"
    );
    let outside = blur
        .apply(&image, 20, 20, Rect::new(18, 0, 4, 4))
        .unwrap_err();
    assert!(
        matches!(outside, BlurError::BadOutput { .. }),
        "{outside:?}"
    );
}

#[test]
fn assembling_without_a_neighbour_names_it() {
    let grid = TileGrid::new(20, 20, "8".parse().unwrap()).unwrap();
    let image = random_image(20, 20, PixelFormat::RGB8, 1);
    let parts: Vec<Region> = [0, 1, 2, 3, 4, 6, 7, 8]
        .map(|t| image.crop(grid.tile(t).unwrap()).unwrap())
        .to_vec();
    let err = assemble(&grid, 4, 2, &parts).unwrap_err();
    assert_eq!(
        err,
        AssembleError::Missing {
            tile: 4,
            needed: Rect::new(6, 6, 12, 12),
            x: 16,
            y: 8,
            owner: 5
        }
    );
    assert!(
        err.to_string()
            .contains("pixel (16, 8) of tile 5 is in none of the parts"),
        "{err}"
    );
    assert!(matches!(
        assemble(&grid, 4, 2, &[]),
        Err(AssembleError::NoParts { tile: 4 })
    ));
    assert!(matches!(
        assemble(&grid, 9, 2, &parts),
        Err(AssembleError::Grid(GridError::NoSuchTile {
            index: 9,
            len: 9
        }))
    ));
}

#[test]
fn the_assembler_refuses_wrong_tiles_and_an_unfinished_image() {
    let grid = TileGrid::new(10, 10, "4".parse().unwrap()).unwrap();
    let image = random_image(10, 10, PixelFormat::RGB8, 1);
    let mut out = RowAssembler::new(Vec::new(), grid, PixelFormat::RGB8).unwrap();
    let wrong = out
        .add(1, image.crop(grid.tile(0).unwrap()).unwrap())
        .unwrap_err();
    assert!(
        matches!(wrong, WriteError::WrongRect { index: 1, .. }),
        "{wrong:?}"
    );
    let grey = Region::zeroed(grid.tile(0).unwrap(), PixelFormat::GREY8);
    assert!(matches!(
        out.add(0, grey),
        Err(WriteError::WrongFormat { .. })
    ));
    assert!(matches!(
        out.add(9, image.clone()),
        Err(WriteError::Grid(_))
    ));
    for t in [0, 1, 2, 4, 8] {
        out.add(t, image.crop(grid.tile(t).unwrap()).unwrap())
            .unwrap();
    }
    let err = out.finish().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the image is incomplete: 4 tiles never arrived (first: [3, 5, 6, 7]); run the missing tiles before finishing"
    );
}
