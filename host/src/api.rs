//! The two model APIs the gateway speaks: each client speaks one, each provider speaks
//! one, and every difference between them (paths, bodies, streams, errors) is keyed on
//! this one enum.

/// A model API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// Anthropic Messages (`/v1/messages`); errors `{"type":"error","error":{…}}`.
    Anthropic,
    /// OpenAI Chat Completions (`/v1/chat/completions`); errors `{"error":{…}}`.
    OpenAi,
}

impl Api {
    /// Path of the model endpoint.
    pub fn model_path(self) -> &'static str {
        match self {
            Self::Anthropic => "/v1/messages",
            Self::OpenAi => "/v1/chat/completions",
        }
    }
}
