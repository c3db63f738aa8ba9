//! What cleanup does with the rewriter (Postfix's cleanup_envelope, cleanup_message and
//! cleanup_out_recipient): the envelope sender and each header address through canonical
//! maps and masquerading; each envelope recipient through them and then through
//! `virtual_alias_maps`. A recipient that changes keeps the address it was given as its
//! RFC 3461 ORCPT (`rfc822;given`) unless the client sent one: the DSN's
//! Original-Recipient, and the log's `orig_to=` ([`original_recipient`]), as Postfix
//! reports its original recipient. A recipient whose expansion fails stays as it is:
//! routing bounces it 5.4.6 ([`Rewriter::recipient_error`]).

use envelope::{Envelope, Recipient};

use crate::{rewrite_headers, Class, Rewriter};

impl Rewriter {
    /// Rewrites `env` in place and returns the message with its headers rewritten (`None`
    /// when they did not change).
    pub fn cleanup(&self, env: &mut Envelope, message: &[u8]) -> Option<Vec<u8>> {
        if self.is_idle() && self.virtual_alias.is_empty() {
            return None; // nothing configured: the envelope stays as it is, untouched
        }
        env.sender = self.canonical(&env.sender, Class::EnvelopeSender);
        let mut recipients: Vec<Recipient> = Vec::with_capacity(env.recipients.len());
        // A set, not a scan of the list: sendmail has no recipient limit, so a scan would
        // be quadratic in a big list's length.
        let mut seen = std::collections::HashSet::with_capacity(env.recipients.len());
        for r in std::mem::take(&mut env.recipients) {
            for expanded in self.recipient(r) {
                if seen.insert(expanded.address.clone()) {
                    recipients.push(expanded);
                }
            }
        }
        env.recipients = recipients;
        if self.is_idle() {
            return None;
        }
        rewrite_headers(message, &|address, class| self.canonical(address, class))
    }

    /// One envelope recipient → its final recipients.
    fn recipient(&self, r: Recipient) -> Vec<Recipient> {
        let given = r.address.clone();
        let canonical = self.canonical(&r.address, Class::EnvelopeRecipient);
        let addresses = self.expand(&canonical).unwrap_or_else(|_| vec![canonical]);
        addresses
            .into_iter()
            .map(|address| {
                let orcpt = match (&r.orcpt, address == given) {
                    (None, false) => Some(format!("rfc822;{given}")),
                    (orcpt, _) => orcpt.clone(),
                };
                Recipient {
                    address,
                    orcpt,
                    ..r.clone()
                }
            })
            .collect()
    }
}

/// The address a recipient was given as, when it differs from where it goes now: the
/// `rfc822;` ORCPT cleanup records (or the client sent). For `orig_to=` in the log.
pub fn original_recipient(r: &Recipient) -> Option<&str> {
    let orcpt = r.orcpt.as_deref()?;
    let (kind, address) = orcpt.split_once(';')?;
    let address = address.trim();
    (kind.trim().eq_ignore_ascii_case("rfc822") && !address.eq_ignore_ascii_case(&r.address))
        .then_some(address)
}
