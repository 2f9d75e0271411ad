//! Reading a config file as JSON: strictly (a duplicated key is an error), following its
//! `extends` chain, and wording serde's errors for a person.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::ConfigError;

/// Rewrites serde's messages into the words of a config file ("key" rather than "field").
pub(super) fn explain(msg: &str) -> String {
    // serde lists the choices as "one of `a`, `b` or `c`"; a config reader wants "a, b, c".
    let split = |rest: &str| {
        let (got, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches("one of ")
            .replace('`', "")
            .replace(" or ", ", ");
        (got.to_string(), expected)
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (_, expected) = split(rest);
        return format!("unknown key (expected {expected})");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (got, expected) = split(rest);
        return format!("unknown value {got:?} (expected {expected})");
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        return format!("missing key `{}", rest);
    }
    msg.to_string()
}

/// Reads a JSON file and the chain of files it `extends`, merged base-first.
pub(super) fn load_merged(path: &Path, seen: &mut Vec<PathBuf>) -> Result<Value, ConfigError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if seen.contains(&canonical) {
        return Err(ConfigError::ExtendsLoop {
            file: seen[0].clone(),
            again: canonical,
        });
    }
    seen.push(canonical);
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.into(),
        source,
    })?;
    let mut value: Value = strict_json(&text).map_err(|e| ConfigError::Json {
        file: path.into(),
        reason: e.to_string(),
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Err(ConfigError::Key {
            file: path.into(),
            key: "(top level)".into(),
            reason: "expected a JSON object".into(),
        });
    };
    match obj.remove("extends") {
        None => Ok(value),
        Some(Value::String(base)) => {
            let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
            // A base that cannot be read is this file's `extends` at fault.
            let mut merged = load_merged(&base_path, seen).map_err(|e| match e {
                ConfigError::Read { file, source } => ConfigError::Key {
                    file: path.into(),
                    key: "extends".into(),
                    reason: format!("{}: {source}", file.display()),
                },
                other => other,
            })?;
            merge(&mut merged, value);
            Ok(merged)
        }
        Some(other) => Err(ConfigError::Key {
            file: path.into(),
            key: "extends".into(),
            reason: format!("expected a file path string, got {other}"),
        }),
    }
}

/// Parses JSON, refusing a key given twice in one object: serde_json would keep the last
/// silently, and a config whose `lr` is written twice should say so, not pick one.
pub(super) fn strict_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Strict(Value);
    impl<'de> de::Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor)
        }
    }
    struct StrictVisitor;
    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
            Ok(Strict(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
            Ok(Strict(Value::String(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Strict, E> {
            Ok(Strict(Value::String(v)))
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Strict(Value::Array(items)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut obj = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if obj.contains_key(&key) {
                    return Err(de::Error::custom(format!("key `{key}` is given twice")));
                }
                let Strict(v) = map.next_value()?;
                obj.insert(key, v);
            }
            Ok(Strict(Value::Object(obj)))
        }
    }
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

/// Overlays `top` on `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, top) => *slot = top,
    }
}
