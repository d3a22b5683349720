//! The ircdocs parser test vectors (`tests/data/irc-parser-tests`, CC0) against
//! `proto::irc::message`: every split vector must parse to its atoms, every join vector must
//! write one of its accepted lines.

use std::collections::BTreeMap;

use charla::proto::irc::message::Message;
use serde_json::Value;

const SPLIT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/irc-parser-tests/msg-split.json"));
const JOIN: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/irc-parser-tests/msg-join.json"));

fn vectors(json: &str) -> Vec<Value> {
    let mut file: Value = serde_json::from_str(json).expect("vector file is valid JSON");
    match file["tests"].take() {
        Value::Array(tests) => tests,
        other => panic!("vector file has no test list: {other}"),
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("expected a string, got {value}"))
}

/// The atoms of a vector as a message: tags with `""` meaning no value, missing keys empty.
fn atoms(vector: &Value) -> Message {
    let atoms = &vector["atoms"];
    let mut message = Message::new(text(&atoms["verb"]), &[]);
    if let Some(params) = atoms["params"].as_array() {
        message.params = params.iter().map(|p| text(p).into()).collect();
    }
    if let Some(source) = atoms["source"].as_str() {
        message = message.with_source(source);
    }
    if let Some(tags) = atoms["tags"].as_object() {
        for (key, value) in tags {
            message = message.with_tag(key, Some(text(value)));
        }
    }
    message
}

/// Tags as the vectors see them: one value per key, the last duplicate winning.
fn tag_map(message: &Message) -> BTreeMap<&str, Option<&str>> {
    message.tags.iter().map(|(key, _)| (key.as_str(), message.tag(key).flatten())).collect()
}

#[test]
fn split_vectors() {
    let tests = vectors(SPLIT);
    assert_eq!(tests.len(), 35);
    for vector in &tests {
        let input = text(&vector["input"]);
        let expected = atoms(vector);
        let parsed = Message::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(parsed.source, expected.source, "source of {input:?}");
        assert_eq!(parsed.command, expected.command, "verb of {input:?}");
        assert_eq!(parsed.params, expected.params, "params of {input:?}");
        assert_eq!(tag_map(&parsed), tag_map(&expected), "tags of {input:?}");
    }
}

#[test]
fn join_vectors() {
    let tests = vectors(JOIN);
    assert_eq!(tests.len(), 17);
    for vector in &tests {
        let line = atoms(vector).to_line();
        let matches: Vec<&str> = vector["matches"].as_array().map(|m| m.iter().map(text).collect()).unwrap_or_default();
        assert!(
            matches.contains(&line.as_str()),
            "{}: wrote {line:?}, expected one of {matches:?}",
            text(&vector["desc"]),
        );
    }
}
