//! The JSON shape of what travels: a region's samples are one base64 string, checked on arrival.

use taskq_image::{PixelFormat, Rect, Region, TileGrid, TileSize};

#[test]
fn a_region_is_compact_json_and_round_trips() {
    let region = Region::new(
        Rect::new(3, 4, 2, 1),
        PixelFormat::RGB8,
        vec![0, 1, 2, 3, 4, 5],
    )
    .unwrap();
    let json = serde_json::to_string(&region).unwrap();
    assert_eq!(
        json,
        r#"{"rect":{"x":3,"y":4,"width":2,"height":1},"format":{"channels":3,"bit_depth":8},"data":"AAECAwQF"}"#
    );
    assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), region);
    let big = crate::harness::random_image(64, 64, PixelFormat::RGB16, 9);
    let json = serde_json::to_string(&big).unwrap();
    assert!(
        json.len() < big.data().len() * 4 / 3 + 200,
        "{} bytes",
        json.len()
    );
    assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), big);
}

#[test]
fn damaged_regions_are_refused_with_a_reason() {
    let short = r#"{"rect":{"x":0,"y":0,"width":2,"height":1},"format":{"channels":3,"bit_depth":8},"data":"AAECAw=="}"#;
    let err = serde_json::from_str::<Region>(short)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "a 2x1 at (0, 0) region of RGB 8-bit needs 6 bytes of samples but 4 were given"
        ),
        "{err}"
    );
    let garbage = short.replace("AAECAw==", "not base64!");
    let err = serde_json::from_str::<Region>(&garbage)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("region samples are not valid base64"),
        "{err}"
    );
    let format = short.replace(r#""channels":3"#, r#""channels":5"#);
    let err = serde_json::from_str::<Region>(&format)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unsupported pixel format: 5 channels of 8 bits"),
        "{err}"
    );
}

#[test]
fn grids_and_tile_sizes_travel_validated() {
    let grid = TileGrid::new(100, 50, "4096x1".parse().unwrap()).unwrap();
    let json = serde_json::to_string(&grid).unwrap();
    assert_eq!(
        json,
        r#"{"width":100,"height":50,"tile_width":100,"tile_height":1}"#
    );
    assert_eq!(serde_json::from_str::<TileGrid>(&json).unwrap(), grid);
    let zero = r#"{"width":100,"height":50,"tile_width":0,"tile_height":1}"#;
    assert!(serde_json::from_str::<TileGrid>(zero)
        .unwrap_err()
        .to_string()
        .contains("the tile width is 0"));
    assert_eq!(
        serde_json::to_string(&TileSize {
            width: 7,
            height: 3
        })
        .unwrap(),
        r#""7x3""#
    );
    assert!(serde_json::from_str::<TileSize>(r#""7x""#).is_err());
}
