//! A reader of Universal Binary JSON (UBJSON, draft 12), the format XGBoost saves its models in
//! (`.ubj`): just enough to read a booster without libxgboost.
//!
//! Arrays of numbers, XGBoost's typed arrays (`[$d#L...`) among them, are read into one flat
//! `Vec<f64>` rather than a value per element, so that a model of some 40,000 nodes costs a few
//! allocations. Every count read from the input is checked against the bytes left before
//! anything is allocated for it: a corrupt or hostile file is an error, never a huge allocation.

/// A UBJSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// An array whose elements are all numbers (or booleans, as 0 and 1).
    Numbers(Vec<f64>),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at `path` (object keys), or an error naming the path.
    pub fn at(&self, path: &[&str]) -> Result<&Value, String> {
        path.iter().try_fold(self, |v, key| {
            v.get(key)
                .ok_or_else(|| format!("no {:?} in the model", path.join(".")))
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array of numbers (an empty generic array counts as one).
    pub fn as_numbers(&self) -> Option<&[f64]> {
        match self {
            Value::Numbers(n) => Some(n),
            Value::Array(a) if a.is_empty() => Some(&[]),
            _ => None,
        }
    }
}

/// Nesting deeper than this is refused (XGBoost's models nest five levels).
const MAX_DEPTH: usize = 64;

/// Reads one UBJSON value that spans all of `bytes`, leaving out the members of any object named
/// in `skip` (checked, not kept: a model's statistics that a prediction does not read).
pub fn parse_without(bytes: &[u8], skip: &[&str]) -> Result<Value, String> {
    let mut reader = Reader { bytes, at: 0, skip };
    let marker = reader.byte()?;
    let value = reader.value(marker, 0)?;
    if reader.at != bytes.len() {
        return Err(format!(
            "{} bytes after the end of the UBJSON value",
            bytes.len() - reader.at
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    skip: &'a [&'a str],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| "the UBJSON ends early".to_owned())?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| "the UBJSON ends early".to_owned())?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A number of the type `marker` (big-endian, as UBJSON has them).
    fn number(&mut self, marker: u8) -> Result<f64, String> {
        Ok(match marker {
            b'i' => f64::from(i8::from_be_bytes(self.array()?)),
            b'U' => f64::from(self.byte()?),
            b'I' => f64::from(i16::from_be_bytes(self.array()?)),
            b'l' => f64::from(i32::from_be_bytes(self.array()?)),
            // Integers beyond 2^53 lose precision; no field of a model comes near.
            b'L' => i64::from_be_bytes(self.array()?) as f64,
            b'd' => f64::from(f32::from_be_bytes(self.array()?)),
            b'D' => f64::from_be_bytes(self.array()?),
            other => return Err(format!("UBJSON marker {:?} is not a number", other as char)),
        })
    }

    /// A count or length: an integer, 0 or more, and no more than the bytes left (every element
    /// takes at least one), so that what is allocated for it is bounded by the input's size.
    fn count(&mut self) -> Result<usize, String> {
        let marker = self.byte()?;
        self.count_after(marker)
    }

    /// A count whose type marker was read already.
    fn count_after(&mut self, marker: u8) -> Result<usize, String> {
        let n = self.number(marker)?;
        let left = self.bytes.len() - self.at;
        if !(n >= 0.0 && n.fract() == 0.0 && n <= left as f64) {
            return Err(format!(
                "a UBJSON count of {n} with {left} bytes left: the file is corrupt"
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, String> {
        let marker = self.byte()?;
        self.string_after(marker)
    }

    /// A string whose length's type marker was read already (object keys have no `S`).
    fn string_after(&mut self, marker: u8) -> Result<String, String> {
        let n = self.count_after(marker)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a UBJSON string is not UTF-8".into())
    }

    fn value(&mut self, marker: u8, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the UBJSON nests too deep".into());
        }
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'S' | b'H' => Value::String(self.string()?),
            b'C' => Value::String(char::from(self.byte()?).to_string()),
            b'[' => self.array_value(depth)?,
            b'{' => self.object(depth)?,
            b'N' => {
                let next = self.byte()?;
                self.value(next, depth)?
            }
            number => Value::Number(self.number(number)?),
        })
    }

    /// After `[` or `{`: the element type (`$`) and count (`#`) of an optimized container.
    fn header(&mut self) -> Result<(Option<u8>, Option<usize>), String> {
        match self.bytes.get(self.at) {
            Some(b'$') => {
                self.at += 1;
                let kind = self.byte()?;
                if self.byte()? != b'#' {
                    return Err("a typed UBJSON container has no count".into());
                }
                Ok((Some(kind), Some(self.count()?)))
            }
            Some(b'#') => {
                self.at += 1;
                Ok((None, Some(self.count()?)))
            }
            _ => Ok((None, None)),
        }
    }

    fn array_value(&mut self, depth: usize) -> Result<Value, String> {
        let (kind, count) = self.header()?;
        let mut items = Vec::new();
        match (kind, count) {
            (Some(kind), Some(n)) if b"iUIlLdD".contains(&kind) => {
                let mut numbers = Vec::with_capacity(n);
                for _ in 0..n {
                    numbers.push(self.number(kind)?);
                }
                return Ok(Value::Numbers(numbers));
            }
            (Some(kind), Some(n)) => {
                for _ in 0..n {
                    items.push(self.value(kind, depth + 1)?);
                }
            }
            (None, Some(n)) => {
                for _ in 0..n {
                    let marker = self.byte()?;
                    items.push(self.value(marker, depth + 1)?);
                }
            }
            (_, None) => loop {
                match self.byte()? {
                    b']' => break,
                    marker => items.push(self.value(marker, depth + 1)?),
                }
            },
        }
        Ok(numbers_if_all(items))
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        let (kind, count) = self.header()?;
        let mut members = Vec::new();
        let mut member = |reader: &mut Self, marker: u8| -> Result<(), String> {
            let key = reader.string_after(marker)?;
            let marker = match kind {
                Some(kind) => kind,
                None => reader.byte()?,
            };
            let value = reader.value(marker, depth + 1)?;
            if !reader.skip.contains(&key.as_str()) {
                members.push((key, value));
            }
            Ok(())
        };
        match count {
            Some(n) => {
                for _ in 0..n {
                    let first = self.byte()?;
                    member(self, first)?;
                }
            }
            None => loop {
                match self.byte()? {
                    b'}' => break,
                    first => member(self, first)?,
                }
            },
        }
        Ok(Value::Object(members))
    }
}

/// An array of numbers and booleans as [`Value::Numbers`], any other as [`Value::Array`].
fn numbers_if_all(items: Vec<Value>) -> Value {
    let number = |v: &Value| match v {
        Value::Number(n) => Some(*n),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    if !items.is_empty() && items.iter().all(|v| number(v).is_some()) {
        Value::Numbers(items.iter().filter_map(number).collect())
    } else {
        Value::Array(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_xgboost_writes() {
        // {"a": [1, 2.5], "b": typed float32 array [0.5, -1], "c": "x", "d": typed uint8 [1, 0],
        //  "e": [{"f": T}]} with an object count and untyped members.
        let mut bytes = vec![b'{'];
        bytes.extend([b'i', 1, b'a', b'[', b'U', 1, b'D']);
        bytes.extend(2.5f64.to_be_bytes());
        bytes.push(b']');
        bytes.extend([b'i', 1, b'b', b'[', b'$', b'd', b'#', b'i', 2]);
        bytes.extend(0.5f32.to_be_bytes());
        bytes.extend((-1f32).to_be_bytes());
        bytes.extend([b'i', 1, b'c', b'S', b'i', 1, b'x']);
        bytes.extend([b'i', 1, b'd', b'[', b'$', b'U', b'#', b'L']);
        bytes.extend(2i64.to_be_bytes());
        bytes.extend([1, 0]);
        bytes.extend([
            b'i', 1, b'e', b'[', b'#', b'i', 1, b'{', b'i', 1, b'f', b'T', b'}',
        ]);
        bytes.push(b'}');
        let v = parse_without(&bytes, &[]).unwrap();
        assert_eq!(v.at(&["a"]).unwrap(), &Value::Numbers(vec![1.0, 2.5]));
        assert_eq!(v.at(&["b"]).unwrap().as_numbers(), Some(&[0.5, -1.0][..]));
        assert_eq!(v.at(&["c"]).unwrap().as_str(), Some("x"));
        assert_eq!(v.at(&["d"]).unwrap().as_numbers(), Some(&[1.0, 0.0][..]));
        let e = v.at(&["e"]).unwrap();
        assert_eq!(
            e,
            &Value::Array(vec![Value::Object(vec![("f".into(), Value::Bool(true))])])
        );
        assert!(v.at(&["e", "f"]).unwrap_err().contains("e.f"));
        let without = parse_without(&bytes, &["b", "f"]).unwrap();
        assert!(without.get("b").is_none() && without.get("a").is_some());
        assert_eq!(
            without.at(&["e"]).unwrap(),
            &Value::Array(vec![Value::Object(vec![])])
        );
    }

    #[test]
    fn corrupt_input_is_an_error_not_an_allocation() {
        // A typed array claiming 2^62 elements in a few bytes.
        let mut huge = vec![b'[', b'$', b'd', b'#', b'L'];
        huge.extend((1i64 << 62).to_be_bytes());
        assert!(parse_without(&huge, &[]).unwrap_err().contains("corrupt"));
        assert!(
            parse_without(&[b'[', b'$', b'd', b'#', b'i', 0xff], &[]).is_err(),
            "negative count"
        );
        assert!(parse_without(b"[", &[]).is_err());
        assert!(parse_without(b"{", &[]).is_err());
        assert!(
            parse_without(b"TT", &[])
                .unwrap_err()
                .contains("after the end")
        );
        assert!(
            parse_without(&[b'['; 100], &[])
                .unwrap_err()
                .contains("too deep")
        );
        assert!(parse_without(b"q", &[]).is_err());
    }
}
