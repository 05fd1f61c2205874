//! The plugin's config. Patterns are parsed, and keywords prepared, while the JSON is
//! read, so a bad one is reported with its path (`rules[2].patterns[0]: ...`) and the
//! hooks get them ready to scan.

use crate::literal::{Set, phrase_required, required_with};
use crate::syntax::{self, Ast};
use serde::Deserialize;
use serde::de::{self, Deserializer};

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

/// The plugin's config; see the crate docs.
#[derive(Debug, Default)]
pub struct Config {
    /// Keyword and pattern rules, in order.
    pub rules: Vec<Rule>,
    /// Refuse requests whose text parts have more characters than this.
    pub max_prompt_chars: Option<u64>,
    /// Prompt-injection detection; absent = off.
    pub injection: Option<Injection>,
}

/// [`Config`] as serde reads it.
#[derive(Deserialize)]
#[serde(rename = "config", deny_unknown_fields)]
struct Fields {
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    max_prompt_chars: Option<u64>,
    #[serde(default)]
    injection: Option<Injection>,
}

/// Reads the config as raw JSON first and then parses that directly: the SDK reads
/// configs through `serde_path_to_error`, which costs about a third more on every call
/// (configs are parsed on every call); the path is only worked out, by parsing again,
/// for a config that fails.
impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
        Ok(Config {
            rules: f.rules,
            max_prompt_chars: f.max_prompt_chars,
            injection: f.injection,
        })
    }
}

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Named in findings and denials.
    pub name: String,
    /// What a match does.
    #[serde(default)]
    pub action: Action,
    /// Words or phrases: case-insensitive, flexible whitespace, whole words.
    #[serde(default)]
    pub keywords: Vec<Phrase>,
    /// Regular expressions.
    #[serde(default)]
    pub patterns: Vec<Pattern>,
    /// Only for requests of these teams; absent = every request.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// Only for requested models matching these globs; absent = every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Which text the rule checks.
    #[serde(default)]
    pub apply_to: ApplyTo,
    /// Added to the denial message.
    #[serde(default)]
    pub message: Option<String>,
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse the request (or withhold the answer).
    #[default]
    Deny,
    /// Let it through and record a finding.
    Flag,
}

/// Which text a rule checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    /// What a detection does.
    #[serde(default)]
    pub action: InjectionAction,
    /// Phrases added to the built-in ones.
    #[serde(default)]
    pub phrases: Vec<Phrase>,
    /// Whether the built-in phrases are used.
    #[serde(default = "yes")]
    pub builtin: bool,
}

fn yes() -> bool {
    true
}

/// What a prompt-injection detection does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
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

/// A keyword or phrase, with the literal the prefilter looks for.
#[derive(Debug)]
pub struct Phrase {
    /// The phrase, trimmed.
    pub text: String,
    /// Normalized strings every match contains, all of them (see
    /// [`phrase_required`]).
    pub words: Set,
    /// Every match starts where `words[0]` is found.
    pub anchored: bool,
}

impl<'de> Deserialize<'de> for Phrase {
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
        Ok(Phrase {
            text,
            words,
            anchored,
        })
    }
}

/// A checked regular expression, with what the scan needs to know without parsing it
/// again (it is parsed again, into an [`Ast`], only when its literals occur).
#[derive(Debug)]
pub struct Pattern {
    /// The pattern.
    pub source: String,
    /// A set of normalized strings one of which every match contains.
    pub req: Option<Set>,
    /// Its compiled size, in VM instructions.
    pub size: u32,
}

thread_local! {
    /// Buffers reused while the patterns of a config are checked.
    static SCRATCH: std::cell::RefCell<(Ast, Vec<u8>)> = std::cell::RefCell::default();
}

impl Pattern {
    /// Parses and mines `source`.
    pub fn new(source: &str) -> Result<Self, syntax::Error> {
        SCRATCH.with_borrow_mut(|(ast, arena)| {
            syntax::parse_into(source, ast)?;
            Ok(Pattern {
                source: source.to_string(),
                req: required_with(ast, arena),
                size: ast.size,
            })
        })
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Pattern;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a regular expression (string)")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Pattern, E> {
                Pattern::new(s).map_err(E::custom)
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
        if r.name.trim().is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        if r.name.len() > MAX_NAME_BYTES {
            return Err(format!("{at}.name: longer than {MAX_NAME_BYTES} bytes"));
        }
        if matches!(r.name.as_str(), "injection" | "max_prompt_chars") {
            return Err(format!(
                "{at}.name: '{}' is reserved for the plugin's own findings",
                r.name
            ));
        }
        if let Some(j) = c.rules[..i].iter().position(|o| o.name == r.name) {
            return Err(format!(
                "{at}.name: '{}' is already used by rules[{j}]",
                r.name
            ));
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
        for (j, p) in r.patterns.iter().enumerate() {
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
        if let Some(m) = &r.message
            && m.len() > MAX_MESSAGE_BYTES
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
