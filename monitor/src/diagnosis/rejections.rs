//! Why offered sessions were rejected: when most offers fail, the cause
//! that explains most of the failures names the rule, and the text gives
//! its numbers and the settings that fix it — for the proxy and for the
//! server. Every setting named here was checked against its project's
//! documentation (HAProxy 2.6's configuration.txt, nginx's
//! ngx_http_ssl_module, OpenSSL's SSL_free and SSL_set_shutdown pages).

use std::fmt::Write as _;

use super::{
    CAUSE_DOMINANT_PCT, Counts, Diagnosis, MIN_OFFERS, MOSTLY_REJECTED_PCT, RULE_CLEAN_REJECTIONS,
    RULE_EXPIRED, RULE_NO_CACHE, RULE_RESTART, RULE_TICKET_KEYS, RULE_UNCLEAN_REJECTIONS,
    RULE_UNKNOWN_REJECTIONS, Severity, Verdict, WITHOUT_DATA_PCT, at_least, pct, plural,
};
use crate::stats::{Cause, Role};

/// A cause in words, for the texts.
const fn words(c: Cause) -> &'static str {
    match c {
        Cause::AfterUnclean => "after an unclean close",
        Cause::AfterClean => "after a clean close",
        Cause::Expired => "expired",
        Cause::ServerRestart => "issued before a restart",
        Cause::NoCache => "no cache",
        Cause::TicketRejected => "ticket refused",
        Cause::Unknown => "unknown",
    }
}

/// The cause with the most rejections, if it has at least
/// [`CAUSE_DOMINANT_PCT`] of them and no other cause has as many.
#[must_use]
pub fn dominant(c: &Counts) -> Option<Cause> {
    let by = c.causes();
    let (top, n) = by[0];
    let tie = by[1].1 == n;
    (n > 0 && !tie && at_least(n, c.rejected, CAUSE_DOMINANT_PCT)).then_some(top)
}

/// "unclean close 40, clean close 35, unknown 25": the causes with
/// rejections, most first.
fn breakdown(c: &Counts) -> String {
    c.causes()
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(k, n)| format!("{} {n}", words(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rejections rule for `c`.
pub(super) fn judge(role: Role, c: &Counts) -> Verdict {
    if c.offered < MIN_OFFERS {
        return Verdict::Undecided;
    }
    if !at_least(c.rejected, c.offered, MOSTLY_REJECTED_PCT) {
        return Verdict::Clear;
    }
    let head = format!(
        "{}% of {} offered sessions were rejected ({}).",
        pct(c.rejected, c.offered),
        c.offered,
        c.rejected
    );
    let (rule_name, severity, text) = explain(dominant(c), role, c, &head);
    Verdict::Fires(Diagnosis {
        rule: rule_name,
        severity,
        text,
    })
}

/// The rule, severity and text for rejections mostly due to `cause`
/// (`None`: no one cause).
fn explain(
    cause: Option<Cause>,
    role: Role,
    c: &Counts,
    head: &str,
) -> (&'static str, Severity, String) {
    let n = cause.map_or(0, |k| c.rejected_by(k));
    let share = if n == c.rejected {
        format!("All {n} rejections")
    } else {
        format!("{n} of {} rejections ({}%)", c.rejected, pct(n, c.rejected))
    };
    match cause {
        Some(Cause::AfterUnclean) => (
            RULE_UNCLEAN_REJECTIONS,
            Severity::Critical,
            after_unclean(role, c, head, &share),
        ),
        Some(Cause::AfterClean) => (
            RULE_CLEAN_REJECTIONS,
            Severity::Critical,
            format!(
                "{head} {share} came from connections closed cleanly: the server forgot those \
                 sessions all the same. Check that its session cache holds enough of them \
                 (nginx `ssl_session_cache shared:NAME:SIZE`, about 4,000 sessions a megabyte; \
                 HAProxy `tune.ssl.cachesize`, 20,000 by default), that its workers share it \
                 (nginx's `builtin` cache is per worker, `shared` is not), and that only one \
                 server answers at this address."
            ),
        ),
        Some(Cause::Expired) => (
            RULE_EXPIRED,
            Severity::Warning,
            format!(
                "{head} {share} were older than any session this server has been seen to resume, \
                 while younger ones resumed: it expires sessions. If the offers come after idle \
                 periods, give sessions a longer life: nginx `ssl_session_timeout` (5 minutes \
                 by default), HAProxy `tune.ssl.lifetime` (300 s by default), OpenSSL \
                 `SSL_CTX_set_timeout`."
            ),
        ),
        Some(Cause::ServerRestart) => (
            RULE_RESTART,
            Severity::Warning,
            format!(
                "{head} {share} were issued before a moment after which every older session was \
                 refused and newer ones resumed: the server lost its cache (a restart or \
                 reload). This clears by itself; if it recurs, find what restarts the server, \
                 or let it issue session tickets whose keys outlive a restart (TLS ≤ 1.2: \
                 nginx `ssl_session_ticket_key`, HAProxy `tls-ticket-keys`)."
            ),
        ),
        Some(Cause::NoCache) => (
            RULE_NO_CACHE,
            Severity::Critical,
            format!(
                "{head} {share} were refused by a server that resumes no session, not even one whose \
                 connection closed cleanly: it keeps no session cache. Turn one on (nginx \
                 `ssl_session_cache shared:SSL:10m`; its default, `none`, hands out session IDs \
                 and stores nothing) or let it issue session tickets (nginx \
                 `ssl_session_tickets on`)."
            ),
        ),
        Some(Cause::TicketRejected) => (
            RULE_TICKET_KEYS,
            Severity::Critical,
            format!(
                "{head} {share} were TLS ≤ 1.2 session tickets the server would not take: its ticket \
                 keys changed, or servers with different keys answer at this address. When \
                 rotating, keep the previous key for decryption (nginx: the new \
                 `ssl_session_ticket_key` first and the previous one after it; HAProxy: append \
                 the new key to the `tls-ticket-keys` file and reload), and give every instance \
                 behind one address the same keys."
            ),
        ),
        Some(Cause::Unknown) => (
            RULE_UNKNOWN_REJECTIONS,
            Severity::Warning,
            format!(
                "{head} {} have no cause tlsmon can name: the connection that held the session \
                 was not seen (it began before tlsmon started, or its ticket could not be tied \
                 to one), or the evidence fits more than one cause. By cause: {}.",
                share,
                breakdown(c)
            ),
        ),
        None => (
            RULE_UNKNOWN_REJECTIONS,
            Severity::Warning,
            format!(
                "{head} No one cause explains most of them: {}.",
                breakdown(c)
            ),
        ),
    }
}

/// `rejected-after-unclean-close`: the seed's problem. The fix is on the
/// side that closes without close_notify, or on the server that drops the
/// session when it happens.
fn after_unclean(role: Role, c: &Counts, head: &str, share: &str) -> String {
    let n = c.rejected_by(Cause::AfterUnclean);
    let mut text = match role {
        Role::Backend => format!(
            "{head} {share} came from connections that ended without close_notify (this host \
             reset {}): the backend drops a session on an unclean close, as OpenSSL does.",
            plural(c.rst_by_client, "connection", "connections"),
        ),
        Role::Frontend | Role::Unknown => format!(
            "{head} {share} came from connections that ended without close_notify (clients \
             reset {}): this server drops a session on an unclean close, as OpenSSL does.",
            plural(c.rst_by_client, "connection", "connections"),
        ),
    };
    let idle = c.after_unclean_without_data;
    let checks = idle > 0 && at_least(idle, n, WITHOUT_DATA_PCT);
    if checks {
        let _ = write!(
            text,
            " {idle} of those {n} sessions were last held by short connections that carried \
             no application data, the signature of health checks: HAProxy's checks of an `ssl` \
             server are SSL too, resume the traffic's session and close without close_notify. \
             Make them plain TCP checks with `no-check-ssl` on the server line, or point them \
             at a port of their own (`port`)."
        );
    }
    match role {
        Role::Backend => {
            if !checks {
                text.push_str(
                    " On the proxy: stop resetting backend connections (HAProxy: `option \
                     nolinger` closes them with a RST, in TCP mode without close_notify; remove \
                     it), and in HTTP mode keep them open for reuse (`http-reuse`, `safe` by \
                     default) rather than closing each.",
                );
            }
            text.push_str(
                " On the backend: issue stateless session tickets (nothing in its cache to \
                 drop), or, on a server built on OpenSSL, mark each connection shut down \
                 (SSL_shutdown, or SSL_set_shutdown with SSL_SENT_SHUTDOWN) before SSL_free, \
                 also after a reset.",
            );
        }
        Role::Frontend | Role::Unknown => text.push_str(
            " Clients' closes are theirs: let this server issue stateless session tickets \
             (HAProxy issues TLS ≤ 1.2 tickets unless `no-tls-tickets` is set on the bind \
             line; Debian's default haproxy.cfg sets it in `ssl-default-bind-options`), or, \
             if it is built on OpenSSL, mark each connection shut down (SSL_shutdown or \
             SSL_set_shutdown) before freeing it.",
        ),
    }
    text
}
