use super::next_version;

#[test]
fn the_next_version_follows_the_highest_that_exists() {
    let nodes: Vec<String> = [
        "product-1",
        "product-3",
        "product-x",
        "productive-9",
        "other-7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(next_version("product", &nodes), 4);
    assert_eq!(next_version("customer", &nodes), 1);
}
