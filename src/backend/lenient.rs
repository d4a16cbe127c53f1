//! Typed, borrowing views of streamed JSON chunks that read like `serde_json::Value` lookups:
//! a field of the wrong type counts as absent instead of failing the chunk. Parsing a chunk into
//! these borrows its strings from the read (no map, no per-field allocation); the profile of a
//! run at 1,000 streams had a full `Value` per chunk, with its map inserts, as a fifth of the
//! client's CPU.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A string field: `Some` only when the value is a string (`v.as_str()`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The string unless absent, of another type, or empty.
    pub fn non_empty(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

/// A number field: `Some` for any JSON number, as `v.as_u64()` then `v.as_f64()` would read it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Num(pub Option<f64>);

impl Num {
    /// The count it holds: a non-negative integer as is, a float truncated (negative: 0).
    pub fn count(self) -> Option<u64> {
        self.0.map(|f| f as u64)
    }
}

/// An object field: `Some` with the fields of `T` when the value is an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

/// An array of objects: empty when the value is not an array; an element that is not an object
/// reads as `T::default()`, as indexing a `Value` would.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

/// Whether a field is present and not `null`, and how many elements it has if it is an array.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Presence {
    /// Present and not `null`.
    pub set: bool,
    /// Its element count, when it is an array.
    pub len: Option<usize>,
}

// Visitor methods that answer `$out` for a kind of JSON value they do not keep, consuming it.
macro_rules! scalars_are {
    ($out:expr) => {
        units_are!($out);
        numbers_are!($out);
    };
}
macro_rules! numbers_are {
    ($out:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}
// `null` and booleans.
macro_rules! units_are {
    ($out:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}
macro_rules! strings_are {
    ($out:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}
macro_rules! maps_are {
    ($out:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($out)
        }
    };
}
macro_rules! seqs_are {
    ($out:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($out)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(s))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(s))))
            }
            // A string with escapes is unescaped into a scratch buffer: it is copied.
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(s.to_string()))))
            }
            scalars_are!(Text(None));
            maps_are!(Text(None));
            seqs_are!(Text(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Num, E> {
                Ok(Num(Some(n as f64)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Num, E> {
                Ok(Num(Some(n as f64)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Num, E> {
                Ok(Num(Some(n)))
            }
            units_are!(Num(None));
            strings_are!(Num(None));
            maps_are!(Num(None));
            seqs_are!(Num(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Presence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const SET: Presence = Presence {
            set: true,
            len: None,
        };
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Presence;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Presence, E> {
                Ok(Presence::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Presence, E> {
                Ok(Presence::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Presence, E> {
                Ok(SET)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Presence, A::Error> {
                let mut len = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    len += 1;
                }
                Ok(Presence {
                    set: true,
                    len: Some(len),
                })
            }
            numbers_are!(SET);
            strings_are!(SET);
            maps_are!(SET);
        }
        d.deserialize_any(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            scalars_are!(Obj(None));
            strings_are!(Obj(None));
            seqs_are!(Obj(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(Obj(item)) = seq.next_element::<Obj<T>>()? {
                    items.push(item.unwrap_or_default());
                }
                Ok(List(items))
            }
            scalars_are!(List(Vec::new()));
            strings_are!(List(Vec::new()));
            maps_are!(List(Vec::new()));
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Probe<'a> {
        #[serde(borrow)]
        s: Text<'a>,
        n: Num,
        p: Presence,
        o: Obj<Inner>,
        l: List<Inner>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    struct Inner {
        k: Num,
    }

    fn probe(json: &str) -> Probe<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_field_of_another_type_reads_as_absent() {
        let p = probe(r#"{"s":{"x":[1]},"n":"7","p":null,"o":[1,2],"l":{"k":1}}"#);
        assert_eq!(p.s, Text(None));
        assert_eq!(p.n, Num(None));
        assert_eq!(p.p, Presence::default());
        assert_eq!(p.o, Obj(None));
        assert!(p.l.0.is_empty());
        let p = probe(r#"{"s":5,"n":true,"o":"x","l":"x"}"#);
        assert_eq!((p.s, p.n, p.o), (Text(None), Num(None), Obj(None)));
    }

    #[test]
    fn values_of_the_right_type_are_read_and_strings_borrowed_unless_escaped() {
        let p = probe(r#"{"s":"hi","n":-3,"p":[1,{}],"o":{"k":2.9},"l":[{"k":1},7,{"x":0}]}"#);
        assert!(matches!(p.s.0, Some(Cow::Borrowed("hi"))));
        assert_eq!(
            p.n.count(),
            Some(0),
            "a negative count is 0, as Value's as_f64 cast"
        );
        assert_eq!(
            p.p,
            Presence {
                set: true,
                len: Some(2)
            }
        );
        assert_eq!(p.o.0.map(|i| i.k.count()), Some(Some(2)));
        let ks: Vec<_> = p.l.0.iter().map(|i| i.k.count()).collect();
        assert_eq!(
            ks,
            [Some(1), None, None],
            "a non-object element reads as empty"
        );
        let p = probe(r#"{"s":"a\nb"}"#);
        assert!(matches!(p.s.0, Some(Cow::Owned(ref s)) if s == "a\nb"));
        assert_eq!(probe(r#"{"s":""}"#).s.non_empty(), None);
        assert_eq!(
            probe(r#"{"p":false}"#).p,
            Presence {
                set: true,
                len: None
            }
        );
    }

    #[test]
    fn reads_from_a_value_as_well() {
        let v: serde_json::Value = serde_json::from_str(r#"{"s":"v","l":[{"k":4}]}"#).unwrap();
        let p = Probe::deserialize(&v).unwrap();
        assert_eq!(p.s.non_empty(), Some("v"));
        assert_eq!(p.l.0[0].k.count(), Some(4));
    }
}
