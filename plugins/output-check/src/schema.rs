//! A compact JSON Schema validator: a schema (a [`Value`]) is compiled once per call
//! into a small tree of [`Check`]s, then an answer is checked against it.
//!
//! Covers the validation keywords of drafts 4 to 2020-12 that a structured answer
//! needs (see the crate docs for the list). Annotations (`title`, `description`,
//! `default`, `examples`, `format`, `$schema`, `$id`, `$comment`, `x-*`...) are
//! ignored; any other keyword is an error naming it and the schema's JSON pointer, so
//! that a typo in the admin's schema is refused rather than silently ignored.
//!
//! Violations name the JSON pointer of the offending value and the rule it breaks,
//! never the value itself: an answer may carry secrets, and the message goes to the
//! client and the log.

use regex_lite::{Regex, RegexBuilder};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Longest `pattern` (or `patternProperties` key) accepted, in bytes.
pub(crate) const MAX_PATTERN: usize = 1024;
/// Compiled size limit of one pattern (`regex-lite`'s default is 10 MiB).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
/// Most `$ref`s followed in a row without descending into the answer: past this the
/// schema is looping (`{"$ref": "#"}`) and the check gives up.
pub(crate) const MAX_REFS: u32 = 64;
/// Deepest nesting of subschema checks (the answer's own nesting included).
pub(crate) const MAX_DEPTH: u32 = 256;
/// Most subschema checks for one answer.
pub(crate) const MAX_STEPS: u32 = 100_000;

/// A compiled schema: a tree (a graph, with `$ref`) of checks; node 0 is the root.
#[derive(Clone, Debug)]
pub(crate) struct Schema {
    nodes: Vec<Vec<Check>>,
}

/// Why a schema does not compile: the JSON pointer of the (sub)schema and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SchemaError {
    /// JSON pointer of the subschema within the schema (`""` for the root).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// The result of checking a value against a [`Schema`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The value matches.
    Valid,
    /// The first violation: `"<pointer>: <rule broken>"`.
    Invalid(String),
    /// The check hit a limit ([`MAX_REFS`], [`MAX_DEPTH`], [`MAX_STEPS`]) before it
    /// could decide; says which and where.
    GaveUp(String),
}

/// JSON types, as bits of a mask.
const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const OBJECT: u8 = 4;
const ARRAY: u8 = 8;
const NUMBER: u8 = 16;
const STRING: u8 = 32;
const INTEGER: u8 = 64;
const TYPE_NAMES: [(u8, &str); 7] = [
    (NULL, "null"),
    (BOOLEAN, "boolean"),
    (OBJECT, "object"),
    (ARRAY, "array"),
    (NUMBER, "number"),
    (STRING, "string"),
    (INTEGER, "integer"),
];

/// One compiled rule. Rules about one kind of value pass any other kind.
#[derive(Clone, Debug)]
enum Check {
    /// The `false` schema.
    False,
    /// `type`: a mask of the allowed types.
    Type(u8),
    /// `enum`.
    Enum(Vec<Value>),
    /// `const`.
    Const(Value),
    /// `minimum`, or `exclusiveMinimum` when `exclusive`.
    Min(Number, bool),
    /// `maximum`, or `exclusiveMaximum` when `exclusive`.
    Max(Number, bool),
    /// `multipleOf` (greater than zero).
    MultipleOf(Number),
    /// `minLength`, in characters.
    MinLength(u64),
    /// `maxLength`, in characters.
    MaxLength(u64),
    /// `pattern`: unanchored search.
    Pattern(Regex),
    /// `prefixItems` (or the array form of `items`), then `items` (or
    /// `additionalItems`) for the rest.
    Items {
        prefix: Vec<usize>,
        rest: Option<usize>,
    },
    /// `contains`, with `minContains` (default 1) and `maxContains`.
    Contains {
        schema: usize,
        min: u64,
        max: Option<u64>,
    },
    /// `minItems`.
    MinItems(u64),
    /// `maxItems`.
    MaxItems(u64),
    /// `uniqueItems: true`.
    UniqueItems,
    /// `required`.
    Required(Vec<String>),
    /// `minProperties`.
    MinProperties(u64),
    /// `maxProperties`.
    MaxProperties(u64),
    /// `properties` (sorted by name), `patternProperties` and `additionalProperties`.
    Properties {
        named: Vec<(String, usize)>,
        patterns: Vec<(Regex, usize)>,
        additional: Option<usize>,
    },
    /// `propertyNames`.
    PropertyNames(usize),
    /// `dependentRequired` (or the array form of draft-4 `dependencies`).
    DependentRequired(Vec<(String, Vec<String>)>),
    /// `dependentSchemas` (or the schema form of draft-4 `dependencies`).
    DependentSchemas(Vec<(String, usize)>),
    /// `allOf`.
    AllOf(Vec<usize>),
    /// `anyOf`.
    AnyOf(Vec<usize>),
    /// `oneOf`.
    OneOf(Vec<usize>),
    /// `not`.
    Not(usize),
    /// `if`, `then`, `else`.
    If {
        cond: usize,
        then: Option<usize>,
        otherwise: Option<usize>,
    },
    /// `$ref` to a local JSON pointer.
    Ref(usize),
}

/// Keywords that only annotate: accepted and ignored. `$defs` and `definitions` hold
/// subschemas that are compiled when a `$ref` points into them.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "$comment",
    "$anchor",
    "$dynamicAnchor",
    "$recursiveAnchor",
    "$vocabulary",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "format",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
    "contentSchema",
];

/// Keywords this validator understands.
const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "prefixItems",
    "additionalItems",
    "contains",
    "minContains",
    "maxContains",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
];

/// Keywords of the specs that this validator does not implement.
const UNSUPPORTED: &[&str] = &[
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$recursiveRef",
];

impl Schema {
    /// Compiles `root` (an object or a boolean). Every keyword must be known (see the
    /// module docs), every `$ref` local, every pattern compile.
    pub(crate) fn compile(root: &Value) -> Result<Schema, SchemaError> {
        let mut c = Compiler {
            root,
            nodes: Vec::new(),
            refs: BTreeMap::new(),
            queue: Vec::new(),
        };
        c.refs.insert(String::new(), 0);
        let mut path = String::new();
        c.node(root, &mut path)?;
        // `$ref` targets, compiled here rather than where they are met so that long
        // chains of definitions do not nest.
        while let Some((idx, mut path)) = c.queue.pop() {
            let target = root.pointer(&path).unwrap_or(&Value::Null);
            let checks = c.checks(target, &mut path)?;
            c.nodes[idx] = checks;
        }
        Ok(Schema { nodes: c.nodes })
    }

    /// Checks `doc`; the first violation found, depth first, in schema order.
    pub(crate) fn check(&self, doc: &Value) -> Outcome {
        let mut run = Run {
            nodes: &self.nodes,
            steps: 0,
            quiet: 0,
        };
        match run.validate(0, doc, &Path::Root, 0, 0) {
            Ok(()) => Outcome::Valid,
            Err(Fail::Invalid(m)) => Outcome::Invalid(m),
            Err(Fail::GaveUp(m)) => Outcome::GaveUp(m),
        }
    }
}

/// Compilation state.
struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Vec<Check>>,
    /// `$ref` targets (JSON pointers) already given a node.
    refs: BTreeMap<String, usize>,
    /// `$ref` targets still to compile: node and pointer.
    queue: Vec<(usize, String)>,
}

fn error(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Appends `/seg` to a JSON pointer, escaped.
fn push_segment(path: &mut String, seg: &str) {
    path.push('/');
    for ch in seg.chars() {
        match ch {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// A URI fragment with its `%XX` escapes decoded.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Compiler<'_> {
    /// Compiles `v` (at `path`) into a new node.
    fn node(&mut self, v: &Value, path: &mut String) -> Result<usize, SchemaError> {
        let idx = self.nodes.len();
        self.nodes.push(Vec::new());
        let checks = self.checks(v, path)?;
        self.nodes[idx] = checks;
        Ok(idx)
    }

    /// Compiles the subschema `v` found at `path` + `/seg...`.
    fn child(&mut self, v: &Value, path: &mut String, segs: &[&str]) -> Result<usize, SchemaError> {
        let len = path.len();
        for s in segs {
            push_segment(path, s);
        }
        let r = self.node(v, path);
        path.truncate(len);
        r
    }

    /// Compiles each subschema of the array `v` (keyword `kw`).
    fn list(&mut self, v: &Value, path: &mut String, kw: &str) -> Result<Vec<usize>, SchemaError> {
        let Some(items) = v.as_array() else {
            return Err(error(path, format!("'{kw}' must be an array of schemas")));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, s) in items.iter().enumerate() {
            out.push(self.child(s, path, &[kw, &i.to_string()])?);
        }
        Ok(out)
    }

    /// Compiles each subschema of the object `v` (keyword `kw`), by name.
    fn map(
        &mut self,
        v: &Value,
        path: &mut String,
        kw: &str,
    ) -> Result<Vec<(String, usize)>, SchemaError> {
        let Some(m) = v.as_object() else {
            return Err(error(path, format!("'{kw}' must be an object of schemas")));
        };
        let mut out = Vec::with_capacity(m.len());
        for (k, s) in m {
            out.push((k.clone(), self.child(s, path, &[kw, k])?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The node for `$ref` `r`, queued for compiling if it is new.
    fn reference(&mut self, r: &str, path: &str) -> Result<usize, SchemaError> {
        let unsupported = || {
            error(
                path,
                format!("unsupported $ref '{r}' (only local JSON pointers: '#', '#/$defs/name')"),
            )
        };
        let Some(fragment) = r.strip_prefix('#') else {
            return Err(unsupported());
        };
        let pointer = percent_decode(fragment).ok_or_else(unsupported)?;
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(unsupported());
        }
        if let Some(&idx) = self.refs.get(&pointer) {
            return Ok(idx);
        }
        match self.root.pointer(&pointer) {
            Some(Value::Object(_) | Value::Bool(_)) => {}
            Some(_) => return Err(error(path, format!("$ref '{r}' is not a schema"))),
            None => return Err(error(path, format!("$ref '{r}' points to nothing"))),
        }
        let idx = self.nodes.len();
        self.nodes.push(Vec::new());
        self.refs.insert(pointer.clone(), idx);
        self.queue.push((idx, pointer));
        Ok(idx)
    }

    /// The checks of the schema `v` at `path`.
    fn checks(&mut self, v: &Value, path: &mut String) -> Result<Vec<Check>, SchemaError> {
        let m = match v {
            Value::Bool(true) => return Ok(Vec::new()),
            Value::Bool(false) => return Ok(vec![Check::False]),
            Value::Object(m) => m,
            _ => return Err(error(path, "a schema must be an object or a boolean")),
        };
        for k in m.keys() {
            let k = k.as_str();
            if UNSUPPORTED.contains(&k) {
                return Err(error(path, format!("unsupported keyword '{k}'")));
            }
            if !(KEYWORDS.contains(&k) || ANNOTATIONS.contains(&k) || k.starts_with("x-")) {
                return Err(error(path, format!("unknown keyword '{k}'")));
            }
        }
        let mut out = Vec::new();
        if let Some(t) = m.get("type") {
            out.push(Check::Type(type_mask(t).map_err(|e| error(path, e))?));
        }
        if let Some(v) = m.get("enum") {
            let Some(values) = v.as_array() else {
                return Err(error(path, "'enum' must be an array"));
            };
            out.push(Check::Enum(values.clone()));
        }
        if let Some(v) = m.get("const") {
            out.push(Check::Const(v.clone()));
        }
        if let Some(r) = m.get("$ref") {
            let Some(r) = r.as_str() else {
                return Err(error(path, "'$ref' must be a string"));
            };
            out.push(Check::Ref(self.reference(r, path)?));
        }
        self.numbers(m, path, &mut out)?;
        if let Some(n) = count(m, "minLength", path)? {
            out.push(Check::MinLength(n));
        }
        if let Some(n) = count(m, "maxLength", path)? {
            out.push(Check::MaxLength(n));
        }
        if let Some(p) = m.get("pattern") {
            let Some(p) = p.as_str() else {
                return Err(error(path, "'pattern' must be a string"));
            };
            out.push(Check::Pattern(pattern(p).map_err(|e| error(path, e))?));
        }
        self.arrays(m, path, &mut out)?;
        self.objects(m, path, &mut out)?;
        if let Some(v) = m.get("allOf") {
            out.push(Check::AllOf(self.list(v, path, "allOf")?));
        }
        if let Some(v) = m.get("anyOf") {
            out.push(Check::AnyOf(self.list(v, path, "anyOf")?));
        }
        if let Some(v) = m.get("oneOf") {
            out.push(Check::OneOf(self.list(v, path, "oneOf")?));
        }
        if let Some(v) = m.get("not") {
            out.push(Check::Not(self.child(v, path, &["not"])?));
        }
        if let Some(v) = m.get("if") {
            let cond = self.child(v, path, &["if"])?;
            let then = match m.get("then") {
                Some(s) => Some(self.child(s, path, &["then"])?),
                None => None,
            };
            let otherwise = match m.get("else") {
                Some(s) => Some(self.child(s, path, &["else"])?),
                None => None,
            };
            out.push(Check::If {
                cond,
                then,
                otherwise,
            });
        }
        Ok(out)
    }

    /// `minimum`, `maximum`, both forms of `exclusiveMinimum`/`exclusiveMaximum`, and
    /// `multipleOf`.
    fn numbers(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Check>,
    ) -> Result<(), SchemaError> {
        for (kw, ex, is_min) in [
            ("minimum", "exclusiveMinimum", true),
            ("maximum", "exclusiveMaximum", false),
        ] {
            let limit = match m.get(kw) {
                None => None,
                Some(Value::Number(n)) => Some(n.clone()),
                Some(_) => return Err(error(path, format!("'{kw}' must be a number"))),
            };
            // Draft 4: a boolean that makes `minimum`/`maximum` exclusive; later drafts:
            // a limit of its own.
            let (exclusive, own) = match m.get(ex) {
                None | Some(Value::Bool(false)) => (false, None),
                Some(Value::Bool(true)) => (true, None),
                Some(Value::Number(n)) => (false, Some(n.clone())),
                Some(_) => {
                    return Err(error(path, format!("'{ex}' must be a number or a boolean")));
                }
            };
            let make = |n: Number, e: bool| {
                if is_min {
                    Check::Min(n, e)
                } else {
                    Check::Max(n, e)
                }
            };
            if let Some(n) = limit {
                out.push(make(n, exclusive));
            }
            if let Some(n) = own {
                out.push(make(n, true));
            }
        }
        if let Some(v) = m.get("multipleOf") {
            match v {
                Value::Number(n) if n.as_f64().is_some_and(|f| f > 0.0) => {
                    out.push(Check::MultipleOf(n.clone()));
                }
                _ => return Err(error(path, "'multipleOf' must be a number above 0")),
            }
        }
        Ok(())
    }

    /// The array keywords.
    fn arrays(
        &mut self,
        m: &Map<String, Value>,
        path: &mut String,
        out: &mut Vec<Check>,
    ) -> Result<(), SchemaError> {
        if let Some(n) = count(m, "minItems", path)? {
            out.push(Check::MinItems(n));
        }
        if let Some(n) = count(m, "maxItems", path)? {
            out.push(Check::MaxItems(n));
        }
        match m.get("uniqueItems") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => out.push(Check::UniqueItems),
            Some(_) => return Err(error(path, "'uniqueItems' must be a boolean")),
        }
        let mut prefix = match m.get("prefixItems") {
            Some(v) => Some(self.list(v, path, "prefixItems")?),
            None => None,
        };
        let mut rest = None;
        match m.get("items") {
            None => {}
            Some(v @ Value::Array(_)) => {
                if prefix.is_some() {
                    return Err(error(
                        path,
                        "'items' must be a schema when 'prefixItems' is given",
                    ));
                }
                prefix = Some(self.list(v, path, "items")?);
            }
            Some(v) => rest = Some(self.child(v, path, &["items"])?),
        }
        // `additionalItems` only applies after a tuple (draft 4 to 2019-09).
        if rest.is_none()
            && prefix.is_some()
            && let Some(v) = m.get("additionalItems")
        {
            rest = Some(self.child(v, path, &["additionalItems"])?);
        }
        if prefix.is_some() || rest.is_some() {
            out.push(Check::Items {
                prefix: prefix.unwrap_or_default(),
                rest,
            });
        }
        if let Some(v) = m.get("contains") {
            let schema = self.child(v, path, &["contains"])?;
            let min = count(m, "minContains", path)?.unwrap_or(1);
            let max = count(m, "maxContains", path)?;
            out.push(Check::Contains { schema, min, max });
        }
        Ok(())
    }

    /// The object keywords.
    fn objects(
        &mut self,
        m: &Map<String, Value>,
        path: &mut String,
        out: &mut Vec<Check>,
    ) -> Result<(), SchemaError> {
        if let Some(v) = m.get("required") {
            out.push(Check::Required(names(v).ok_or_else(|| {
                error(path, "'required' must be an array of strings")
            })?));
        }
        if let Some(n) = count(m, "minProperties", path)? {
            out.push(Check::MinProperties(n));
        }
        if let Some(n) = count(m, "maxProperties", path)? {
            out.push(Check::MaxProperties(n));
        }
        let named = match m.get("properties") {
            Some(v) => self.map(v, path, "properties")?,
            None => Vec::new(),
        };
        let mut patterns = Vec::new();
        if let Some(v) = m.get("patternProperties") {
            let Some(pm) = v.as_object() else {
                return Err(error(
                    path,
                    "'patternProperties' must be an object of schemas",
                ));
            };
            for (p, s) in pm {
                let re = pattern(p).map_err(|e| error(path, format!("patternProperties: {e}")))?;
                patterns.push((re, self.child(s, path, &["patternProperties", p])?));
            }
        }
        let additional = match m.get("additionalProperties") {
            Some(v) => Some(self.child(v, path, &["additionalProperties"])?),
            None => None,
        };
        if !named.is_empty() || !patterns.is_empty() || additional.is_some() {
            out.push(Check::Properties {
                named,
                patterns,
                additional,
            });
        }
        if let Some(v) = m.get("propertyNames") {
            out.push(Check::PropertyNames(self.child(
                v,
                path,
                &["propertyNames"],
            )?));
        }
        let mut required = Vec::new();
        let mut schemas = Vec::new();
        if let Some(v) = m.get("dependentRequired") {
            let Some(dm) = v.as_object() else {
                return Err(error(path, "'dependentRequired' must be an object"));
            };
            for (k, v) in dm {
                let list = names(v).ok_or_else(|| {
                    error(path, "'dependentRequired' values must be arrays of strings")
                })?;
                required.push((k.clone(), list));
            }
        }
        if let Some(v) = m.get("dependentSchemas") {
            schemas = self.map(v, path, "dependentSchemas")?;
        }
        // Draft 4 to 7: an array of names or a schema per property.
        if let Some(v) = m.get("dependencies") {
            let Some(dm) = v.as_object() else {
                return Err(error(path, "'dependencies' must be an object"));
            };
            for (k, v) in dm {
                match names(v) {
                    Some(list) => required.push((k.clone(), list)),
                    None => schemas.push((k.clone(), self.child(v, path, &["dependencies", k])?)),
                }
            }
        }
        if !required.is_empty() {
            out.push(Check::DependentRequired(required));
        }
        if !schemas.is_empty() {
            out.push(Check::DependentSchemas(schemas));
        }
        Ok(())
    }
}

/// The mask of a `type` value.
fn type_mask(t: &Value) -> Result<u8, String> {
    let one = |v: &Value| -> Result<u8, String> {
        let Some(name) = v.as_str() else {
            return Err("'type' must be a type name or an array of them".into());
        };
        TYPE_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(bit, _)| *bit)
            .ok_or_else(|| format!("'type' names an unknown type '{name}'"))
    };
    match t {
        Value::Array(list) => list.iter().try_fold(0, |mask, v| Ok(mask | one(v)?)),
        v => one(v),
    }
}

/// A list of strings (`required`, `dependentRequired` values).
fn names(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(String::from))
        .collect()
}

/// A non-negative integer keyword (`5` or `5.0`).
fn count(m: &Map<String, Value>, kw: &str, path: &str) -> Result<Option<u64>, SchemaError> {
    let Some(v) = m.get(kw) else {
        return Ok(None);
    };
    let n = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
            // In range and integral: the cast is exact.
            .map(|f| f as u64)
    });
    n.map(Some)
        .ok_or_else(|| error(path, format!("'{kw}' must be a non-negative integer")))
}

/// A `pattern`, compiled (unanchored, `regex-lite` syntax).
fn pattern(p: &str) -> Result<Regex, String> {
    if p.len() > MAX_PATTERN {
        return Err(format!(
            "a pattern of {} bytes is longer than the {MAX_PATTERN} allowed",
            p.len()
        ));
    }
    RegexBuilder::new(p)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pattern '{p}' does not compile: {e}"))
}

/// Where a value sits in the answer, as a linked list on the stack; shown as a JSON
/// pointer (`/` for the root).
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segs = Vec::new();
        let mut p = self;
        loop {
            match p {
                Path::Root => break,
                Path::Key(up, k) => {
                    segs.push(k.replace('~', "~0").replace('/', "~1"));
                    p = up;
                }
                Path::Index(up, i) => {
                    segs.push(i.to_string());
                    p = up;
                }
            }
        }
        if segs.is_empty() {
            return f.write_str("/");
        }
        for s in segs.iter().rev() {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// Why a value failed.
enum Fail {
    /// A violation, described (empty when checking quietly, inside `anyOf` and the like).
    Invalid(String),
    /// A limit was hit.
    GaveUp(String),
}

/// One check of one answer.
struct Run<'s> {
    nodes: &'s [Vec<Check>],
    steps: u32,
    /// Above zero while checking a branch whose violations are not reported.
    quiet: u32,
}

/// `1 item`, `2 items`.
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The JSON type of a value, for messages.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Number(_) => "number",
        Value::String(_) => "string",
    }
}

/// A number as an exact integer, when it is one.
fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn is_integer(n: &Number) -> bool {
    as_int(n).is_some()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// Whether a value compared `ord` to a bound lies on its `side` (or on it, when the
/// bound is not exclusive).
fn beyond(ord: Option<Ordering>, side: Ordering, exclusive: bool) -> bool {
    ord == Some(side) || (!exclusive && ord == Some(Ordering::Equal))
}

/// Numeric order of two JSON numbers (exact for integers).
fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Whether `a` is a multiple of `m` (exact for integers; within rounding otherwise).
fn multiple_of(a: &Number, m: &Number) -> bool {
    if let (Some(x), Some(y)) = (as_int(a), as_int(m))
        && y != 0
    {
        return x % y == 0;
    }
    let (Some(x), Some(y)) = (a.as_f64(), m.as_f64()) else {
        return false;
    };
    let q = x / y;
    if !q.is_finite() {
        return false;
    }
    (q - q.round()).abs() <= q.abs().max(1.0) * 4.0 * f64::EPSILON
}

/// JSON equality: numbers compare by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// A hash consistent with [`json_eq`] (numbers hash by their `f64` value, object
/// members whatever their order).
fn json_hash(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            // -0.0 == 0.0
            (2u8, if f == 0.0 { 0 } else { f.to_bits() }).hash(h);
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for x in a {
                json_hash(x, h);
            }
        }
        Value::Object(m) => {
            let mut sum = 0u64;
            for (k, x) in m {
                let mut eh = DefaultHasher::new();
                k.hash(&mut eh);
                json_hash(x, &mut eh);
                sum = sum.wrapping_add(eh.finish());
            }
            (5u8, m.len(), sum).hash(h);
        }
    }
}

/// A short JSON rendering of a schema's value for a message, or nothing when long.
fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        format!(" {s}")
    } else {
        String::new()
    }
}

impl Run<'_> {
    /// Checks a count against a `min*` (`at_least`) or `max*` bound, naming what is
    /// counted (`one`/`many`) in the failure.
    fn bound(
        &self,
        path: &Path,
        n: usize,
        limit: u64,
        at_least: bool,
        (one, many): (&str, &str),
    ) -> Result<(), Fail> {
        let ok = if at_least {
            n as u64 >= limit
        } else {
            n as u64 <= limit
        };
        if ok {
            return Ok(());
        }
        let rule = if at_least {
            format!("at least {limit} required")
        } else {
            format!("at most {limit} allowed")
        };
        Err(self.invalid(path, || format!("{}; {rule}", plural(n, one, many))))
    }

    fn invalid(&self, path: &Path, message: impl FnOnce() -> String) -> Fail {
        if self.quiet > 0 {
            Fail::Invalid(String::new())
        } else {
            Fail::Invalid(format!("{path}: {}", message()))
        }
    }

    /// Whether `v` matches `node`, without describing why not.
    fn matches(
        &mut self,
        node: usize,
        v: &Value,
        path: &Path,
        depth: u32,
        refs: u32,
    ) -> Result<bool, Fail> {
        self.quiet += 1;
        let r = self.validate(node, v, path, depth, refs);
        self.quiet -= 1;
        match r {
            Ok(()) => Ok(true),
            Err(Fail::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Checks `v` (at `path`) against `node`. `depth` counts nested checks, `refs` the
    /// `$ref`s followed since the last step into the answer.
    fn validate(
        &mut self,
        node: usize,
        v: &Value,
        path: &Path,
        depth: u32,
        refs: u32,
    ) -> Result<(), Fail> {
        self.spend(1, path)?;
        if depth > MAX_DEPTH {
            return Err(Fail::GaveUp(format!(
                "{path}: gave up: checks nested more than {MAX_DEPTH} deep"
            )));
        }
        let nodes = self.nodes;
        for c in nodes.get(node).map(Vec::as_slice).unwrap_or_default() {
            self.rule(c, v, path, depth, refs)?;
        }
        Ok(())
    }

    /// Checks `v` against one rule.
    fn rule(
        &mut self,
        c: &Check,
        v: &Value,
        path: &Path,
        depth: u32,
        refs: u32,
    ) -> Result<(), Fail> {
        let d = depth + 1;
        match (c, v) {
            (Check::False, _) => {
                Err(self.invalid(path, || "not allowed (the schema is false)".into()))
            }
            (Check::Type(mask), v) => {
                let ok = match v {
                    Value::Number(n) => {
                        mask & NUMBER != 0 || (mask & INTEGER != 0 && is_integer(n))
                    }
                    v => {
                        let bit = match v {
                            Value::Null => NULL,
                            Value::Bool(_) => BOOLEAN,
                            Value::Object(_) => OBJECT,
                            Value::Array(_) => ARRAY,
                            _ => STRING,
                        };
                        mask & bit != 0
                    }
                };
                if ok {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    let names: Vec<&str> = TYPE_NAMES
                        .iter()
                        .filter(|(bit, _)| mask & bit != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    format!("expected {}, found {}", names.join(" or "), type_of(v))
                }))
            }
            (Check::Enum(values), v) => {
                if values.iter().any(|x| json_eq(x, v)) {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    let list = Value::Array(values.clone());
                    format!("not one of the 'enum' values{}", shown(&list))
                }))
            }
            (Check::Const(x), v) => {
                if json_eq(x, v) {
                    return Ok(());
                }
                Err(self.invalid(path, || format!("not the 'const' value{}", shown(x))))
            }
            (Check::Min(limit, exclusive), Value::Number(n)) => {
                if beyond(num_cmp(n, limit), Ordering::Greater, *exclusive) {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    if *exclusive {
                        format!("must be greater than {limit} (exclusiveMinimum)")
                    } else {
                        format!("less than the minimum {limit}")
                    }
                }))
            }
            (Check::Max(limit, exclusive), Value::Number(n)) => {
                if beyond(num_cmp(n, limit), Ordering::Less, *exclusive) {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    if *exclusive {
                        format!("must be less than {limit} (exclusiveMaximum)")
                    } else {
                        format!("greater than the maximum {limit}")
                    }
                }))
            }
            (Check::MultipleOf(m), Value::Number(n)) => {
                if multiple_of(n, m) {
                    return Ok(());
                }
                Err(self.invalid(path, || format!("not a multiple of {m}")))
            }
            (Check::MinLength(min), Value::String(s)) => {
                let chars = s.chars().count();
                if chars as u64 >= *min {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    format!(
                        "{}; at least {min} required",
                        plural(chars, "character", "characters")
                    )
                }))
            }
            (Check::MaxLength(max), Value::String(s)) => {
                if s.len() as u64 <= *max {
                    return Ok(());
                }
                let chars = s.chars().count();
                if chars as u64 <= *max {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    format!(
                        "{}; at most {max} allowed",
                        plural(chars, "character", "characters")
                    )
                }))
            }
            (Check::Pattern(re), Value::String(s)) => {
                if re.is_match(s) {
                    return Ok(());
                }
                Err(self.invalid(path, || {
                    format!("does not match the pattern '{}'", re.as_str())
                }))
            }
            (Check::Items { prefix, rest }, Value::Array(a)) => {
                for (i, item) in a.iter().enumerate() {
                    let node = match prefix.get(i) {
                        Some(&n) => n,
                        None => match *rest {
                            Some(n) => n,
                            None => break,
                        },
                    };
                    if i >= prefix.len() && self.is_false(node) {
                        return Err(self.invalid(path, || {
                            format!(
                                "{}; at most {} allowed",
                                plural(a.len(), "item", "items"),
                                prefix.len()
                            )
                        }));
                    }
                    self.validate(node, item, &Path::Index(path, i), d, 0)?;
                }
                Ok(())
            }
            (Check::Contains { schema, min, max }, Value::Array(a)) => {
                let mut found = 0usize;
                for (i, item) in a.iter().enumerate() {
                    if self.matches(*schema, item, &Path::Index(path, i), d, 0)? {
                        found += 1;
                    }
                }
                if (found as u64) < *min {
                    return Err(self.invalid(path, || {
                        if found == 0 {
                            "no item matches 'contains'".into()
                        } else {
                            format!(
                                "{} 'contains'; at least {min} required",
                                plural(found, "item matches", "items match")
                            )
                        }
                    }));
                }
                if let Some(max) = max
                    && found as u64 > *max
                {
                    return Err(self.invalid(path, || {
                        format!(
                            "{} 'contains'; at most {max} allowed",
                            plural(found, "item matches", "items match")
                        )
                    }));
                }
                Ok(())
            }
            (Check::MinItems(min), Value::Array(a)) => {
                self.bound(path, a.len(), *min, true, ("item", "items"))
            }
            (Check::MaxItems(max), Value::Array(a)) => {
                self.bound(path, a.len(), *max, false, ("item", "items"))
            }
            (Check::UniqueItems, Value::Array(a)) => match self.duplicate(a, path)? {
                None => Ok(()),
                Some((i, j)) => Err(self.invalid(path, || {
                    format!("items {i} and {j} are equal; 'uniqueItems' forbids duplicates")
                })),
            },
            (Check::Required(names), Value::Object(m)) => {
                match names.iter().find(|n| !m.contains_key(n.as_str())) {
                    None => Ok(()),
                    Some(n) => {
                        Err(self.invalid(path, || format!("missing required property '{n}'")))
                    }
                }
            }
            (Check::MinProperties(min), Value::Object(m)) => {
                self.bound(path, m.len(), *min, true, ("property", "properties"))
            }
            (Check::MaxProperties(max), Value::Object(m)) => {
                self.bound(path, m.len(), *max, false, ("property", "properties"))
            }
            (
                Check::Properties {
                    named,
                    patterns,
                    additional,
                },
                Value::Object(m),
            ) => {
                for (k, x) in m {
                    let at = Path::Key(path, k);
                    let mut seen = false;
                    if let Ok(i) = named.binary_search_by(|(n, _)| n.as_str().cmp(k)) {
                        seen = true;
                        self.validate(named[i].1, x, &at, d, 0)?;
                    }
                    self.spend(patterns.len(), &at)?;
                    for (re, node) in patterns {
                        if re.is_match(k) {
                            seen = true;
                            self.validate(*node, x, &at, d, 0)?;
                        }
                    }
                    if !seen && let Some(node) = *additional {
                        if self.is_false(node) {
                            return Err(self.invalid(&at, || {
                                "property not allowed ('additionalProperties' is false)".into()
                            }));
                        }
                        self.validate(node, x, &at, d, 0)?;
                    }
                }
                Ok(())
            }
            (Check::PropertyNames(node), Value::Object(m)) => {
                for k in m.keys() {
                    let at = Path::Key(path, k);
                    let name = Value::String(k.clone());
                    if !self.matches(*node, &name, &at, d, 0)? {
                        return Err(self.invalid(&at, || {
                            "the property name does not match 'propertyNames'".into()
                        }));
                    }
                }
                Ok(())
            }
            (Check::DependentRequired(deps), Value::Object(m)) => {
                for (k, needed) in deps {
                    if !m.contains_key(k) {
                        continue;
                    }
                    if let Some(n) = needed.iter().find(|n| !m.contains_key(n.as_str())) {
                        return Err(self
                            .invalid(path, || format!("property '{k}' requires property '{n}'")));
                    }
                }
                Ok(())
            }
            (Check::DependentSchemas(deps), Value::Object(m)) => {
                for (k, node) in deps {
                    if m.contains_key(k) {
                        self.validate(*node, v, path, d, refs)?;
                    }
                }
                Ok(())
            }
            (Check::AllOf(list), v) => {
                for node in list {
                    self.validate(*node, v, path, d, refs)?;
                }
                Ok(())
            }
            (Check::AnyOf(list), v) => {
                for node in list {
                    if self.matches(*node, v, path, d, refs)? {
                        return Ok(());
                    }
                }
                Err(self.invalid(path, || {
                    format!("matches none of the {} 'anyOf' schemas", list.len())
                }))
            }
            (Check::OneOf(list), v) => {
                let mut hits = Vec::new();
                for (i, node) in list.iter().enumerate() {
                    if self.matches(*node, v, path, d, refs)? {
                        hits.push(i);
                        if hits.len() > 1 {
                            break;
                        }
                    }
                }
                match hits.as_slice() {
                    [_] => Ok(()),
                    [] => Err(self.invalid(path, || {
                        format!("matches none of the {} 'oneOf' schemas", list.len())
                    })),
                    [i, j, ..] => Err(self.invalid(path, || {
                        format!("matches 'oneOf' schemas {i} and {j}; exactly one allowed")
                    })),
                }
            }
            (Check::Not(node), v) => {
                if self.matches(*node, v, path, d, refs)? {
                    return Err(self.invalid(path, || "matches the 'not' schema".into()));
                }
                Ok(())
            }
            (
                Check::If {
                    cond,
                    then,
                    otherwise,
                },
                v,
            ) => {
                let branch = if self.matches(*cond, v, path, d, refs)? {
                    then
                } else {
                    otherwise
                };
                match branch {
                    Some(node) => self.validate(*node, v, path, d, refs),
                    None => Ok(()),
                }
            }
            (Check::Ref(node), v) => {
                if refs >= MAX_REFS {
                    return Err(Fail::GaveUp(format!(
                        "{path}: gave up: more than {MAX_REFS} $refs in a row (a $ref loop?)"
                    )));
                }
                self.validate(*node, v, path, d, refs + 1)
            }
            // A rule about another kind of value.
            _ => Ok(()),
        }
    }

    /// Whether `node` is the `false` schema.
    fn is_false(&self, node: usize) -> bool {
        matches!(
            self.nodes.get(node).map(Vec::as_slice),
            Some([Check::False])
        )
    }

    /// Counts `n` more checks (at `path`); gives up past [`MAX_STEPS`].
    fn spend(&mut self, n: usize, path: &Path) -> Result<(), Fail> {
        self.steps = self
            .steps
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if self.steps > MAX_STEPS {
            return Err(Fail::GaveUp(format!(
                "{path}: gave up after {MAX_STEPS} checks"
            )));
        }
        Ok(())
    }

    /// The first two equal items of the array `a` (at `path`), if any.
    fn duplicate(&mut self, a: &[Value], path: &Path) -> Result<Option<(usize, usize)>, Fail> {
        if a.len() < 2 {
            return Ok(None);
        }
        self.spend(a.len(), path)?;
        let mut keyed: Vec<(u64, usize)> = a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut h = DefaultHasher::new();
                json_hash(x, &mut h);
                (h.finish(), i)
            })
            .collect();
        keyed.sort_unstable();
        let mut best: Option<(usize, usize)> = None;
        // Within a run of equal hashes (in index order), the first item equal to an
        // earlier one gives that run's first duplicate.
        for run in keyed.chunk_by(|x, y| x.0 == y.0) {
            'run: for (n, &(_, j)) in run.iter().enumerate() {
                for &(_, i) in &run[..n] {
                    self.spend(1, path)?;
                    if json_eq(&a[i], &a[j]) {
                        if best.is_none_or(|b| j < b.1) {
                            best = Some((i, j));
                        }
                        break 'run;
                    }
                }
            }
        }
        Ok(best)
    }
}
