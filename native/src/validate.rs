//! The strict Avro reader's rules, natively: is a body exactly the canonical encoding of one value of the
//! writer schema? The same rules as `stream_scorer/codec/strict.py`, which documents them; here the body
//! is only walked, never turned into values (arrow-avro does that once the body is known to be good).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// One type of a schema; children are indices into [`Tree::nodes`] (so recursive records are cycles).
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Enum(usize),
    Fixed(usize),
    Union(Vec<usize>),
    Record(Vec<usize>),
    Array(usize),
    Map(usize),
}

/// A schema compiled for walking; built from its Avro parsing canonical form (full names, no namespaces).
pub struct Tree {
    nodes: Vec<Node>,
    root: usize,
}

/// Why a body is refused: `trailing` is its own reason; every other problem is malformed Avro.
pub enum Bad {
    Malformed(String),
    Trailing(usize),
}

/// Nesting deeper than this is refused (a recursive schema cannot make the walk overflow the stack).
const MAX_DEPTH: usize = 200;

impl Tree {
    /// Compile a schema given in parsing canonical form; an error names what is unsupported.
    pub fn parse(json: &str) -> Result<Tree, String> {
        let value: Value = serde_json::from_str(json).map_err(|e| format!("schema is not JSON: {e}"))?;
        let mut tree = Tree { nodes: Vec::new(), root: 0 };
        let mut names = HashMap::new();
        tree.root = tree.node(&value, &mut names)?;
        Ok(tree)
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn node(&mut self, schema: &Value, names: &mut HashMap<String, usize>) -> Result<usize, String> {
        match schema {
            Value::String(name) => match primitive(name) {
                Some(node) => Ok(self.push(node)),
                None => names.get(name.as_str()).copied().ok_or_else(|| format!("unknown type {name:?}")),
            },
            Value::Array(branches) => {
                let children = branches.iter().map(|b| self.node(b, names)).collect::<Result<Vec<_>, _>>()?;
                Ok(self.push(Node::Union(children)))
            }
            Value::Object(object) => {
                let kind = match object.get("type") {
                    Some(Value::String(kind)) => kind.as_str(),
                    Some(other) => return self.node(other, names),
                    None => return Err("a schema object without a type".into()),
                };
                if let Some(node) = primitive(kind) {
                    return Ok(self.push(node));
                }
                let id = self.push(Node::Null); // reserved, so that the type can refer to itself
                if let Some(Value::String(name)) = object.get("name") {
                    names.insert(name.clone(), id);
                }
                let node = match kind {
                    "record" | "error" => {
                        let fields = object.get("fields").and_then(Value::as_array).ok_or("a record without fields")?;
                        let mut children = Vec::with_capacity(fields.len());
                        for field in fields {
                            children.push(self.node(field.get("type").ok_or("a field without a type")?, names)?);
                        }
                        Node::Record(children)
                    }
                    "enum" => Node::Enum(object.get("symbols").and_then(Value::as_array).ok_or("an enum without symbols")?.len()),
                    "fixed" => Node::Fixed(object.get("size").and_then(Value::as_u64).ok_or("a fixed without a size")? as usize),
                    "array" => Node::Array(self.node(object.get("items").ok_or("an array without items")?, names)?),
                    "map" => Node::Map(self.node(object.get("values").ok_or("a map without values")?, names)?),
                    other => return Err(format!("unsupported type {other:?}")),
                };
                self.nodes[id] = node;
                Ok(id)
            }
            _ => Err("a schema must be a string, a list or an object".into()),
        }
    }

    /// Check that `body` is exactly one canonical encoding of a value of the schema.
    pub fn check(&self, body: &[u8]) -> Result<(), Bad> {
        let mut cursor = Cursor { b: body, p: 0 };
        cursor.value(self, self.root, 0).map_err(Bad::Malformed)?;
        if cursor.p != body.len() {
            return Err(Bad::Trailing(body.len() - cursor.p));
        }
        Ok(())
    }
}

fn primitive(name: &str) -> Option<Node> {
    Some(match name {
        "null" => Node::Null,
        "boolean" => Node::Boolean,
        "int" => Node::Int,
        "long" => Node::Long,
        "float" => Node::Float,
        "double" => Node::Double,
        "bytes" => Node::Bytes,
        "string" => Node::Str,
        _ => return None,
    })
}

const TRUNCATED: &str = "truncated: the body ends inside a value";

struct Cursor<'a> {
    b: &'a [u8],
    p: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let x = *self.b.get(self.p).ok_or(TRUNCATED)?;
        self.p += 1;
        Ok(x)
    }

    fn left(&self) -> usize {
        self.b.len() - self.p
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut x = self.byte()?;
        let mut n = u64::from(x & 0x7F);
        let mut shift = 0u32;
        while x >= 0x80 {
            shift += 7;
            if shift > 63 {
                return Err("a varint longer than 10 bytes".into());
            }
            x = self.byte()?;
            if shift == 63 && x > 1 && x < 0x80 {
                return Err("a varint past 64 bits".into());
            }
            n |= u64::from(x & 0x7F) << shift;
            if x < 0x80 && x == 0 {
                return Err("an overlong varint (a zero last byte)".into());
            }
        }
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn length(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        if n < 0 || n as u64 > self.left() as u64 {
            return Err(format!("a length of {n} with {} bytes left", self.left()));
        }
        Ok(n as usize)
    }

    fn skip(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.left() {
            return Err(TRUNCATED.into());
        }
        self.p += n;
        Ok(&self.b[self.p - n..self.p])
    }

    fn string(&mut self) -> Result<&str, String> {
        let n = self.length()?;
        let bytes = self.skip(n)?;
        std::str::from_utf8(bytes).map_err(|_| "a string that is not UTF-8".to_string())
    }

    fn value(&mut self, tree: &Tree, id: usize, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        match &tree.nodes[id] {
            Node::Null => {}
            Node::Boolean => {
                let x = self.byte()?;
                if x > 1 {
                    return Err(format!("a boolean byte {x} (0 or 1 only)"));
                }
            }
            Node::Int => {
                let n = self.long()?;
                if i32::try_from(n).is_err() {
                    return Err("an int past 32 bits".into());
                }
            }
            Node::Long => {
                self.long()?;
            }
            Node::Float => {
                self.skip(4)?;
            }
            Node::Double => {
                self.skip(8)?;
            }
            Node::Bytes => {
                let n = self.length()?;
                self.skip(n)?;
            }
            Node::Str => {
                self.string()?;
            }
            Node::Enum(symbols) => {
                let i = self.long()?;
                if i32::try_from(i).is_err() {
                    return Err("an int past 32 bits".into());
                }
                if i < 0 || i as usize >= *symbols {
                    return Err(format!("enum index {i} out of range 0..{}", *symbols as i64 - 1));
                }
            }
            Node::Fixed(size) => {
                if *size > self.left() {
                    return Err(format!("a fixed of {size} bytes past the end"));
                }
                self.p += size;
            }
            Node::Union(branches) => {
                let i = self.long()?;
                if i < 0 || i as usize >= branches.len() {
                    return Err(format!("union index {i} out of range 0..{}", branches.len() as i64 - 1));
                }
                self.value(tree, branches[i as usize], depth + 1)?;
            }
            Node::Record(fields) => {
                for field in fields {
                    self.value(tree, *field, depth + 1)?;
                }
            }
            Node::Array(items) => self.blocks(tree, *items, false, depth)?,
            Node::Map(values) => self.blocks(tree, *values, true, depth)?,
        }
        Ok(())
    }

    fn blocks(&mut self, tree: &Tree, item: usize, map: bool, depth: usize) -> Result<(), String> {
        let mut keys: HashSet<Vec<u8>> = HashSet::new();
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            let mut size = -1i128;
            let mut n = i128::from(count);
            if n < 0 {
                n = -n;
                size = i128::from(self.long()?);
            }
            if n > self.left() as i128 {
                return Err(format!("a block of {n} items with {} bytes left", self.left()));
            }
            let start = self.p;
            for _ in 0..n {
                if map {
                    let key = self.string()?.as_bytes().to_vec();
                    if !keys.insert(key) {
                        return Err("a map key given twice".into());
                    }
                }
                self.value(tree, item, depth + 1)?;
            }
            if size >= 0 && (self.p - start) as i128 != size {
                return Err(format!("a block of {size} bytes that holds {}", self.p - start));
            }
        }
    }
}
