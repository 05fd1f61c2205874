//! The plugin's config. Patterns are parsed, and keywords prepared, while the JSON is
//! read, so a bad one is reported with its path (`rules[2].patterns[0]: ...`) and the
//! hooks get them ready to scan.

use crate::literal::{Set, phrase_required, required_with};
use crate::syntax::{self, Ast};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// Most rules in a config.
pub const MAX_RULES: usize = 200;
/// Most keywords in all rules together.
pub const MAX_KEYWORDS: usize = 1000;
/// Most patterns in all rules together.
pub const MAX_PATTERNS: usize = 500;
/// Longest keyword or injection phrase, in bytes.
pub const MAX_KEYWORD_BYTES: usize = 256;
/// Most injection phrases.
pub const MAX_PHRASES: usize = 200;
/// Compiled size of all patterns together, in VM instructions.
pub const MAX_TOTAL_PROGRAM: u32 = 200_000;
/// Longest rule name (findings carry it; the host allows 64 bytes).
pub const MAX_NAME_BYTES: usize = 64;
/// Longest rule message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 500;

/// The plugin's config, as the hooks use it: every string in one text arena and every
/// literal in another, the rules, keywords and patterns in flat tables pointing into
/// them.
///
/// Read from the tenant's JSON (patterns parsed and mined on the way), or from the
/// binary form [`Config::prepare`] writes, which the host keeps and hands to every call:
/// reading that back is a handful of copies rather than a parse and hundreds of small
/// allocations.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tables {
    /// Keyword and pattern rules, in order.
    pub rules: Vec<Rule>,
    /// Refuse requests whose text parts have more characters than this.
    pub max_prompt_chars: Option<u64>,
    /// Prompt-injection detection; absent = off.
    pub injection: Option<Injection>,
    /// Every rule's keywords, then the injection phrases.
    pub phrases: Vec<Phrase>,
    /// Every rule's patterns.
    pub patterns: Vec<Pattern>,
    /// Names, messages, keywords and pattern sources.
    text: String,
    /// Normalized literal strings.
    #[serde(with = "serde_bytes")]
    lits: Vec<u8>,
    /// Literal sets: runs of spans into `lits`.
    sets: Vec<Span>,
}

/// The plugin's config; see the crate docs and [`Tables`].
#[derive(Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Config(Tables);

impl std::ops::Deref for Config {
    type Target = Tables;

    fn deref(&self) -> &Tables {
        &self.0
    }
}

/// A run of bytes in one of the arenas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    at: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.at as usize..(self.at as usize).saturating_add(self.len as usize)
    }
}

/// A run of entries in one of the tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    at: u32,
    len: u32,
}

impl Run {
    /// Indexes of the run.
    pub fn range(self) -> std::ops::Range<usize> {
        self.at as usize..(self.at as usize).saturating_add(self.len as usize)
    }

    /// Entries in the run.
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// Whether the run is empty.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// A set of normalized strings, as stored in [`Tables`].
#[derive(Clone, Copy)]
pub struct SetRef<'a> {
    lits: &'a [u8],
    spans: &'a [Span],
}

impl<'a> SetRef<'a> {
    /// The strings.
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let lits = self.lits;
        self.spans
            .iter()
            .map(move |s| lits.get(s.range()).unwrap_or_default())
    }

    /// How many strings.
    pub fn len(self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.spans.is_empty()
    }
}

impl Tables {
    /// A string of the text arena.
    pub fn str(&self, s: Span) -> &str {
        self.text.get(s.range()).unwrap_or_default()
    }

    /// A literal set.
    pub fn set(&self, r: Run) -> SetRef<'_> {
        SetRef {
            lits: &self.lits,
            spans: self.sets.get(r.range()).unwrap_or_default(),
        }
    }

    /// A rule's name.
    pub fn name(&self, r: &Rule) -> &str {
        self.str(r.name)
    }

    /// A rule's keywords.
    pub fn keywords(&self, r: &Rule) -> &[Phrase] {
        self.phrases.get(r.keywords.range()).unwrap_or_default()
    }

    /// A rule's patterns.
    pub fn patterns_of(&self, r: &Rule) -> &[Pattern] {
        self.patterns.get(r.patterns.range()).unwrap_or_default()
    }

    /// The injection phrases admins added.
    pub fn injection_phrases(&self, i: &Injection) -> &[Phrase] {
        self.phrases.get(i.phrases.range()).unwrap_or_default()
    }

    fn push_text(&mut self, s: &str) -> Span {
        let at = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            at,
            len: s.len() as u32,
        }
    }

    fn push_set(&mut self, set: &Set) -> Run {
        let at = self.sets.len() as u32;
        for s in set {
            let span = Span {
                at: self.lits.len() as u32,
                len: s.len() as u32,
            };
            self.lits.extend_from_slice(s);
            self.sets.push(span);
        }
        Run {
            at,
            len: set.len() as u32,
        }
    }

    fn push_phrases(&mut self, list: Vec<PhraseIn>) -> Run {
        let at = self.phrases.len() as u32;
        let len = list.len() as u32;
        for k in list {
            let phrase = Phrase {
                text: self.push_text(&k.text),
                words: self.push_set(&k.words),
                anchored: k.anchored,
            };
            self.phrases.push(phrase);
        }
        Run { at, len }
    }

    /// Lays the JSON config out in tables.
    fn from_fields(f: Fields) -> Tables {
        let mut t = Tables {
            max_prompt_chars: f.max_prompt_chars,
            ..Tables::default()
        };
        for r in f.rules {
            let name = t.push_text(&r.name);
            let message = r.message.as_deref().map(|m| t.push_text(m));
            let keywords = t.push_phrases(r.keywords);
            let at = t.patterns.len() as u32;
            for p in &r.patterns {
                let pattern = Pattern {
                    source: t.push_text(&p.source),
                    req: p.req.as_ref().map(|s| t.push_set(s)),
                    size: p.size,
                };
                t.patterns.push(pattern);
            }
            t.rules.push(Rule {
                name,
                action: r.action,
                keywords,
                patterns: Run {
                    at,
                    len: r.patterns.len() as u32,
                },
                teams: r.teams,
                models: r.models,
                apply_to: r.apply_to,
                message,
            });
        }
        t.injection = f.injection.map(|i| Injection {
            action: i.action,
            phrases: t.push_phrases(i.phrases),
            builtin: i.builtin,
        });
        t
    }
}

/// Reads the config as raw JSON first and then parses that directly: the SDK reads
/// configs through `serde_path_to_error`, which costs about a third more; the path is
/// only worked out, by parsing again, for a config that fails. The binary (prepared)
/// form is read as the tables it holds.
impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Tables::deserialize(d).map(Config);
        }
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let f = match serde_json::from_str::<Fields>(raw.get()) {
            Ok(f) => f,
            Err(_) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                let e = match serde_path_to_error::deserialize::<_, Fields>(&mut de) {
                    Ok(_) => return Err(de::Error::custom("config did not parse twice alike")),
                    Err(e) => e,
                };
                let path = e.path().to_string();
                let mut msg = e.inner().to_string();
                let at = format!(
                    " at line {} column {}",
                    e.inner().line(),
                    e.inner().column()
                );
                if let Some(stripped) = msg.strip_suffix(&at) {
                    msg = stripped.to_string();
                }
                return Err(de::Error::custom(match path.as_str() {
                    "" | "." | "?" => msg,
                    _ => format!("{path}: {msg}"),
                }));
            }
        };
        Ok(Config(Tables::from_fields(f)))
    }
}

impl Config {
    /// The checked config in the binary form the host keeps (see `Plugin::prepare`).
    pub fn prepare(&self) -> Option<Vec<u8>> {
        postcard::to_allocvec(self).ok()
    }

    /// Reads back what [`Config::prepare`] wrote.
    pub fn from_prepared(data: &[u8]) -> Option<Config> {
        postcard::from_bytes(data).ok()
    }
}

/// One rule.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rule {
    /// Named in findings and denials.
    pub name: Span,
    /// What a match does.
    pub action: Action,
    /// Its keywords, in [`Tables::phrases`].
    pub keywords: Run,
    /// Its regular expressions, in [`Tables::patterns`].
    pub patterns: Run,
    /// Only for requests of these teams; absent = every request.
    pub teams: Option<Vec<String>>,
    /// Only for requested models matching these globs; absent = every model.
    pub models: Option<Vec<String>>,
    /// Which text the rule checks.
    pub apply_to: ApplyTo,
    /// Added to the denial message.
    pub message: Option<Span>,
}

/// [`Config`] as its JSON reads.
#[derive(Deserialize)]
#[serde(rename = "config", deny_unknown_fields)]
struct Fields {
    #[serde(default)]
    rules: Vec<RuleIn>,
    #[serde(default)]
    max_prompt_chars: Option<u64>,
    #[serde(default)]
    injection: Option<InjectionIn>,
}

/// A rule as its JSON reads.
#[derive(Deserialize)]
#[serde(rename = "rule", deny_unknown_fields)]
struct RuleIn {
    name: String,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    keywords: Vec<PhraseIn>,
    #[serde(default)]
    patterns: Vec<PatternIn>,
    #[serde(default)]
    teams: Option<Vec<String>>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    apply_to: ApplyTo,
    #[serde(default)]
    message: Option<String>,
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse the request (or withhold the answer).
    #[default]
    Deny,
    /// Let it through and record a finding.
    Flag,
}

/// Which text a rule checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyTo {
    /// The conversation sent to the model.
    #[default]
    Request,
    /// The model's answer.
    Response,
    /// Both.
    Both,
}

impl ApplyTo {
    /// Whether requests are checked.
    pub fn request(self) -> bool {
        matches!(self, ApplyTo::Request | ApplyTo::Both)
    }

    /// Whether answers are checked.
    pub fn response(self) -> bool {
        matches!(self, ApplyTo::Response | ApplyTo::Both)
    }
}

/// Prompt-injection detection.
#[derive(Debug, Serialize, Deserialize)]
pub struct Injection {
    /// What a detection does.
    pub action: InjectionAction,
    /// Phrases added to the built-in ones, in [`Tables::phrases`].
    pub phrases: Run,
    /// Whether the built-in phrases are used.
    pub builtin: bool,
}

/// Prompt-injection detection as its JSON reads.
#[derive(Deserialize)]
#[serde(rename = "injection", deny_unknown_fields)]
struct InjectionIn {
    #[serde(default)]
    action: InjectionAction,
    #[serde(default)]
    phrases: Vec<PhraseIn>,
    #[serde(default = "yes")]
    builtin: bool,
}

fn yes() -> bool {
    true
}

/// What a prompt-injection detection does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectionAction {
    /// Let the request through and record a finding.
    #[default]
    Flag,
    /// Refuse the request.
    Deny,
    /// No detection.
    Off,
}

/// A keyword or phrase, with the literals the prefilter looks for.
#[derive(Debug, Serialize, Deserialize)]
pub struct Phrase {
    /// The phrase, trimmed.
    pub text: Span,
    /// Normalized strings every match contains, all of them (see
    /// [`phrase_required`]), in [`Tables::set`].
    pub words: Run,
    /// Every match starts where the first word is found.
    pub anchored: bool,
}

/// A keyword or phrase as read from JSON.
struct PhraseIn {
    text: String,
    words: Set,
    anchored: bool,
}

impl<'de> Deserialize<'de> for PhraseIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let text = s.trim();
        if text.is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        if text.len() > MAX_KEYWORD_BYTES {
            return Err(de::Error::custom(format!(
                "longer than {MAX_KEYWORD_BYTES} bytes"
            )));
        }
        let (words, anchored) = phrase_required(text);
        let text = if text.len() == s.len() {
            s
        } else {
            text.to_string()
        };
        Ok(PhraseIn {
            text,
            words,
            anchored,
        })
    }
}

/// A checked regular expression, with what the scan needs to know without parsing it
/// again (it is parsed again, into an [`Ast`], only when its literals occur).
#[derive(Debug, Serialize, Deserialize)]
pub struct Pattern {
    /// The pattern.
    pub source: Span,
    /// A set of normalized strings one of which every match contains.
    pub req: Option<Run>,
    /// Its compiled size, in VM instructions.
    pub size: u32,
}

/// A pattern as read from JSON.
struct PatternIn {
    source: String,
    req: Option<Set>,
    size: u32,
}

thread_local! {
    /// Buffers reused while the patterns of a config are checked.
    static SCRATCH: std::cell::RefCell<(Ast, Vec<u8>)> = std::cell::RefCell::default();
}

impl PatternIn {
    /// Parses and mines `source`.
    fn new(source: &str) -> Result<Self, syntax::Error> {
        SCRATCH.with_borrow_mut(|(ast, arena)| {
            syntax::parse_into(source, ast)?;
            Ok(PatternIn {
                source: source.to_string(),
                req: required_with(ast, arena),
                size: ast.size,
            })
        })
    }
}

impl<'de> Deserialize<'de> for PatternIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PatternIn;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a regular expression (string)")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<PatternIn, E> {
                PatternIn::new(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Checks what serde cannot; the error names the field.
pub fn validate(c: &Config) -> Result<(), String> {
    if c.rules.len() > MAX_RULES {
        return Err(format!(
            "rules: at most {MAX_RULES} rules (got {})",
            c.rules.len()
        ));
    }
    let (mut keywords, mut patterns, mut program) = (0usize, 0usize, 0u32);
    for (i, r) in c.rules.iter().enumerate() {
        let at = At(i);
        let name = c.name(r);
        if name.trim().is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(format!("{at}.name: longer than {MAX_NAME_BYTES} bytes"));
        }
        if matches!(name, "injection" | "max_prompt_chars") {
            return Err(format!(
                "{at}.name: '{name}' is reserved for the plugin's own findings"
            ));
        }
        if let Some(j) = c.rules[..i].iter().position(|o| c.name(o) == name) {
            return Err(format!("{at}.name: '{name}' is already used by rules[{j}]"));
        }
        if r.keywords.is_empty() && r.patterns.is_empty() {
            return Err(format!("{at}: needs at least one keyword or pattern"));
        }
        keywords += r.keywords.len();
        if keywords > MAX_KEYWORDS {
            return Err(format!(
                "{at}.keywords: more than {MAX_KEYWORDS} keywords in all rules"
            ));
        }
        for (j, p) in c.patterns_of(r).iter().enumerate() {
            patterns += 1;
            if patterns > MAX_PATTERNS {
                return Err(format!(
                    "{at}.patterns[{j}]: more than {MAX_PATTERNS} patterns in all rules"
                ));
            }
            program = program.saturating_add(p.size);
            if program > MAX_TOTAL_PROGRAM {
                return Err(format!(
                    "{at}.patterns[{j}]: patterns too large in all (over {MAX_TOTAL_PROGRAM} instructions compiled)"
                ));
            }
        }
        strings(at, "teams", r.teams.as_deref(), "team")?;
        strings(at, "models", r.models.as_deref(), "model glob")?;
        if let Some(m) = r.message
            && m.len as usize > MAX_MESSAGE_BYTES
        {
            return Err(format!(
                "{at}.message: longer than {MAX_MESSAGE_BYTES} bytes"
            ));
        }
    }
    if c.max_prompt_chars == Some(0) {
        return Err("max_prompt_chars: must be at least 1".into());
    }
    if let Some(inj) = &c.injection {
        if inj.phrases.len() > MAX_PHRASES {
            return Err(format!(
                "injection.phrases: at most {MAX_PHRASES} phrases (got {})",
                inj.phrases.len()
            ));
        }
        if inj.action != InjectionAction::Off && !inj.builtin && inj.phrases.is_empty() {
            return Err(
                "injection: nothing to detect: keep `builtin` true or list `phrases` (or set `action` to `off`)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// `rules[i]` in an error, formatted only when one is returned (configs are checked
/// on every call).
#[derive(Clone, Copy)]
struct At(usize);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rules[{}]", self.0)
    }
}

fn strings(at: At, field: &str, list: Option<&[String]>, what: &str) -> Result<(), String> {
    let Some(list) = list else { return Ok(()) };
    if list.is_empty() {
        return Err(format!(
            "{at}.{field}: must not be empty (leave it out to apply to every request)"
        ));
    }
    match list.iter().position(|s| s.is_empty()) {
        Some(k) => Err(format!("{at}.{field}[{k}]: a {what} must not be empty")),
        None => Ok(()),
    }
}
