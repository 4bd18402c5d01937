//! The rules that are not about why offers were rejected.

use super::{
    Counts, Diagnosis, FAILED_PCT, HRR_PCT, MIN_CLOSES, MIN_HANDSHAKES, MIN_RESUMED,
    NO_OFFER_MIN_FULL, RULE_FAILED, RULE_HRR, RULE_NO_OFFERS, RULE_SESSION_ID_ONLY, Severity,
    UNCLEAN_CLOSES_PCT, Verdict, at_least, pct,
};
use crate::stats::Role;

/// This proxy never offers a session to a busy backend.
pub(super) fn no_offers(role: Role, c: &Counts) -> Verdict {
    if role != Role::Backend || c.full < NO_OFFER_MIN_FULL {
        return Verdict::Undecided;
    }
    if c.offered > 0 {
        return Verdict::Clear;
    }
    Verdict::Fires(Diagnosis {
        rule: RULE_NO_OFFERS,
        severity: Severity::Warning,
        text: format!(
            "{} full handshakes and not one resumption offered: this proxy keeps no session for \
             this backend, or the backend hands out none to keep. HAProxy offers by default \
             (`ssl-reuse`): look for `no-ssl-reuse` on the server line or in `default-server`. \
             A server that sends an empty session ID and no ticket cannot be resumed (nginx \
             with `ssl_session_cache off` and `ssl_session_tickets off`).",
            c.full
        ),
    })
}

/// Many `HelloRetryRequest`s.
pub(super) fn hello_retries(c: &Counts) -> Verdict {
    let hs = c.handshakes();
    if hs < MIN_HANDSHAKES {
        return Verdict::Undecided;
    }
    if !at_least(c.hrr, hs, HRR_PCT) {
        return Verdict::Clear;
    }
    Verdict::Fires(Diagnosis {
        rule: RULE_HRR,
        severity: Severity::Warning,
        text: format!(
            "{} HelloRetryRequests for {hs} handshakes ({}%): the client's key_share does not \
             include a group the server accepts, costing a round trip each. Offer the server's \
             preferred group (e.g. X25519) first.",
            c.hrr,
            pct(c.hrr, hs)
        ),
    })
}

/// Handshakes that failed (alert, RST) or never finished.
pub(super) fn failures(c: &Counts) -> Verdict {
    let bad = c.failed + c.incomplete;
    let attempts = c.handshakes() + bad;
    if attempts < MIN_HANDSHAKES {
        return Verdict::Undecided;
    }
    if !at_least(bad, attempts, FAILED_PCT) {
        return Verdict::Clear;
    }
    Verdict::Fires(Diagnosis {
        rule: RULE_FAILED,
        severity: Severity::Warning,
        text: format!(
            "{bad} of {attempts} handshakes did not complete ({}%: {} failed with an alert or \
             reset, {} got no answer): check certificates, versions and ciphers on both sides, \
             and timeouts.",
            pct(bad, attempts),
            c.failed,
            c.incomplete
        ),
    })
}

/// Resumption works, but only by session ID while most connections end
/// uncleanly: fragile.
pub(super) fn session_id_only(c: &Counts) -> Verdict {
    let closes = c.clean_closes + c.unclean_closes;
    if c.resumed < MIN_RESUMED || closes < MIN_CLOSES {
        return Verdict::Undecided;
    }
    if c.resumed_by.session_id != c.resumed
        || !at_least(c.unclean_closes, closes, UNCLEAN_CLOSES_PCT)
    {
        return Verdict::Clear;
    }
    Verdict::Fires(Diagnosis {
        rule: RULE_SESSION_ID_ONLY,
        severity: Severity::Info,
        text: format!(
            "All {} resumptions use session IDs and {} of {closes} connections ({}%) ended \
             without close_notify: an OpenSSL-based server would drop these sessions. Prefer \
             session tickets or clean closes.",
            c.resumed,
            c.unclean_closes,
            pct(c.unclean_closes, closes)
        ),
    })
}
