//! Chat templates for TGI's native API: OpenAI messages rendered into one
//! prompt string with the Jinja syntax of Hugging Face `chat_template`s, so
//! an operator can paste a model's template from its tokenizer_config.json.

use minijinja::{Environment, Error, ErrorKind, context};
use serde::Serialize;

use crate::openai::Message;

/// ChatML: used when a target sets no `chat_template`. It is what many
/// instruction-tuned models on TGI expect; set the model's own template for
/// the others (docs/configuration.md).
pub const DEFAULT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatTemplate")
    }
}

#[derive(Serialize)]
struct TemplateMessage {
    role: String,
    content: String,
}

impl ChatTemplate {
    pub fn new(source: Option<&str>) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.unwrap_or(DEFAULT_TEMPLATE).to_string())?;
        Ok(ChatTemplate { env })
    }

    pub fn render(&self, messages: &[Message]) -> Result<String, Error> {
        let messages: Vec<TemplateMessage> = messages
            .iter()
            .map(|m| TemplateMessage {
                // TGI templates know no `developer` role: it is OpenAI's newer name for `system`.
                role: if m.role == "developer" {
                    "system".to_string()
                } else {
                    m.role.clone()
                },
                content: m.text(),
            })
            .collect();
        self.env.get_template("chat")?.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => "",
            eos_token => "",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        serde_json::from_value(serde_json::json!({"role": role, "content": content})).unwrap()
    }

    #[test]
    fn default_template_renders_chatml_with_generation_prompt() {
        let t = ChatTemplate::new(None).unwrap();
        let out = t
            .render(&[msg("system", "be brief"), msg("user", "hi")])
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn custom_templates_and_raise_exception_work() {
        let t = ChatTemplate::new(Some("{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}[{{ m.role }}]{{ m.content }}{% endfor %}")).unwrap();
        assert_eq!(t.render(&[msg("user", "a")]).unwrap(), "[user]a");
        let err = t.render(&[msg("tool", "x")]).unwrap_err();
        assert!(err.to_string().contains("no tools"));
    }
}
