//! docs/format.md inlines fastcdc's mask table so a second implementation need not read the
//! crate; this keeps the copy true.

#[test]
fn the_mask_table_in_format_md_is_fastcdcs() {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/format.md"))
            .expect("docs/format.md");
    let section = &spec[spec.find("**Masks.**").expect("Masks paragraph")..];
    let section = &section[..section.find("**Cut.**").expect("Cut paragraph")];
    let mut found = 0;
    for row in section
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("`0x"))
    {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        for pair in cells.chunks(2) {
            let index: usize = pair[0].parse().expect("an index");
            let value = u64::from_str_radix(pair[1].trim_matches('`').trim_start_matches("0x"), 16)
                .expect("a hex mask");
            assert_eq!(value, fastcdc::v2020::MASKS[index], "MASKS[{index}]");
            found += 1;
        }
    }
    assert_eq!(found, 21, "indexes 5 ..= 25 are listed");
    for index in 0..5 {
        assert_eq!(fastcdc::v2020::MASKS[index], 0);
    }
}
