//! Postfix's address classes (`canonical_classes`, `masquerade_classes`): which of the four
//! kinds of address a table applies to.

/// The kind of an address being rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    EnvelopeSender,
    EnvelopeRecipient,
    HeaderSender,
    HeaderRecipient,
}

impl Class {
    pub fn is_sender(self) -> bool {
        matches!(self, Class::EnvelopeSender | Class::HeaderSender)
    }
}

/// A set of classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classes {
    envelope_sender: bool,
    envelope_recipient: bool,
    header_sender: bool,
    header_recipient: bool,
}

impl Classes {
    /// From the configuration's words (config checked them; unknown words are ignored).
    pub fn parse(words: &[String]) -> Classes {
        let has = |w: &str| words.iter().any(|x| x == w);
        Classes {
            envelope_sender: has("envelope_sender"),
            envelope_recipient: has("envelope_recipient"),
            header_sender: has("header_sender"),
            header_recipient: has("header_recipient"),
        }
    }

    pub fn has(self, class: Class) -> bool {
        match class {
            Class::EnvelopeSender => self.envelope_sender,
            Class::EnvelopeRecipient => self.envelope_recipient,
            Class::HeaderSender => self.header_sender,
            Class::HeaderRecipient => self.header_recipient,
        }
    }
}
