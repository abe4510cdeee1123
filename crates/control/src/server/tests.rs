//! The canned refusal is a complete, well-formed HTTP response.

use super::TOO_MANY;

#[test]
fn the_refusal_is_a_complete_503_with_its_own_length() {
    let text = std::str::from_utf8(TOO_MANY).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{text}");
    let message: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(message["message"].as_str().unwrap().contains("too many"));
}
