//! nginx configuration: the servers of an `upstream` block name backends
//! "UPSTREAM/SERVER"; a `server` block with `listen … ssl` names frontends
//! "server NAME" after its first `server_name` (or its `listen` address when
//! it has none), in `http` and `stream` alike.
//!
//! Read the way nginx reads it at start:
//!
//! - `include` is followed wherever it stands; a relative path is relative
//!   to the directory of the main configuration file (nginx's conf prefix,
//!   which `nginx -c` sets to the file's directory); a pattern with `*`, `?`
//!   or `[` is a glob, its files read in name order, names starting with a
//!   dot left out (glob(3), as nginx calls it) and no match is no error; a
//!   plain path that does not exist is an error, as it is for nginx.
//! - Host names in `server` and `listen` are resolved once, now, with the
//!   system's resolver (getaddrinfo, as nginx does), and every address
//!   they resolve to is named. Like nginx, tlsmon does not notice when they
//!   change until it is restarted.
//! - An address without a port means port 80 (nginx's default for `listen`
//!   and for upstream servers).
//!
//! The syntax (words, `;`, `{`, `}`, `#` comments, quotes and backslash
//! escapes) is read here: the nginx parsers on crates.io either refuse every
//! directive they do not model (nginx-config) or bring a syntax-tree library
//! for a young linter's needs (nginx-lint-parser), and neither follows
//! includes as nginx does.

use std::{
    net::{IpAddr, ToSocketAddrs as _},
    path::{Path, PathBuf},
};

use super::{Addr, Builder, Names, NamesError, host_addr, push, read};

/// `include` inside included files, at most this deep (nginx has no limit
/// and recurses until it runs out of file descriptors).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Files read for one configuration, at most, counting a file each time it
/// is included.
pub const MAX_FILES: usize = 10_000;

/// Host name and port to addresses.
pub type Resolve<'a> = &'a dyn Fn(&str, u16) -> Result<Vec<IpAddr>, String>;

/// An nginx configuration with its includes expanded.
#[derive(Debug)]
pub struct NginxConfig {
    files: Vec<PathBuf>,
    directives: Vec<Directive>,
}

#[derive(Debug)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
    /// Index into [`NginxConfig::files`], and 1-based line.
    file: usize,
    line: usize,
}

impl NginxConfig {
    /// Reads `path` and every file it includes.
    pub fn load(path: &Path) -> Result<Self, NamesError> {
        let path = std::path::absolute(path).map_err(|source| NamesError::Io {
            path: path.to_owned(),
            source,
        })?;
        let prefix = path.parent().map(Path::to_owned).unwrap_or_default();
        let mut loader = Loader {
            prefix,
            files: Vec::new(),
            reads: 0,
        };
        let directives = loader.file(&path, 0)?;
        Ok(Self {
            files: loader.files,
            directives,
        })
    }

    /// Every file read, once, in the order nginx first reads them (the
    /// order `nginx -T` prints them in).
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Names {
    /// Reads names from an nginx configuration, resolving host names with
    /// the system's resolver.
    pub fn from_nginx_config(path: &Path) -> Result<Self, NamesError> {
        Ok(Self::from_nginx(&NginxConfig::load(path)?, &system_resolve))
    }

    /// Names from a loaded configuration. Never fails: what it cannot use
    /// is listed in [`Self::skipped`].
    #[must_use]
    pub fn from_nginx(config: &NginxConfig, resolve: Resolve<'_>) -> Self {
        let mut walk = Walk {
            config,
            resolve,
            b: Builder::default(),
        };
        walk.block(&config.directives, false);
        walk.b.finish()
    }
}

fn system_resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    (host, port)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .map_err(|e| e.to_string())
}

struct Walk<'c> {
    config: &'c NginxConfig,
    resolve: Resolve<'c>,
    b: Builder,
}

impl Walk<'_> {
    /// `ssl`: `ssl on;` in force (the directive nginx 1.25 removed).
    fn block(&mut self, directives: &[Directive], ssl: bool) {
        let ssl = ssl || on(directives, "ssl");
        for d in directives {
            match (d.name.as_str(), &d.block) {
                ("upstream", Some(servers)) => {
                    let name = d.args.first().map_or("", String::as_str);
                    for s in servers.iter().filter(|s| s.name == "server") {
                        self.upstream_server(name, s);
                    }
                }
                ("server", Some(body)) => self.server(body, ssl),
                (_, Some(body)) => self.block(body, ssl),
                _ => {}
            }
        }
    }

    fn upstream_server(&mut self, upstream: &str, d: &Directive) {
        let Some(addr) = d.args.first() else {
            return self.skip(
                d,
                &format!("upstream {upstream}: `server` without an address"),
            );
        };
        if d.args.iter().any(|a| a.starts_with("service=")) {
            let why = format!("upstream {upstream}: server {addr}: SRV records are not resolved");
            return self.skip(d, &why);
        }
        let name = format!("{upstream}/{addr}");
        match self.addrs(addr) {
            Ok(addrs) => {
                for a in addrs {
                    match a {
                        Addr::Exact(ep) => push(self.b.backends.entry(ep).or_default(), &name),
                        Addr::AnyAddress(_) => {
                            let why = format!("upstream {upstream}: server {addr}: no address");
                            self.skip(d, &why);
                        }
                    }
                }
            }
            Err(why) => self.skip(d, &format!("upstream {upstream}: server {addr}: {why}")),
        }
    }

    fn server(&mut self, body: &[Directive], ssl: bool) {
        let ssl = ssl || on(body, "ssl");
        let server_name = body
            .iter()
            .filter(|d| d.name == "server_name")
            .flat_map(|d| &d.args)
            .find(|n| !n.is_empty() && *n != "_");
        for listen in body.iter().filter(|d| d.name == "listen") {
            let Some(addr) = listen.args.first() else {
                continue;
            };
            let params = listen.args.get(1..).unwrap_or_default();
            // QUIC listens on UDP; without `ssl` a listen is plain TCP.
            if params.iter().any(|p| p == "quic") || !(ssl || params.iter().any(|p| p == "ssl")) {
                continue;
            }
            let name = format!("server {}", server_name.unwrap_or(addr));
            match self.addrs(addr) {
                Ok(addrs) => {
                    for a in addrs {
                        let names = match a {
                            Addr::Exact(ep) => self.b.frontends.entry(ep).or_default(),
                            Addr::AnyAddress(port) => {
                                self.b.frontend_ports.entry(port).or_default()
                            }
                        };
                        push(names, &name);
                    }
                }
                Err(why) => self.skip(listen, &format!("listen {addr}: {why}")),
            }
        }
    }

    /// nginx's address forms: `443`, `*:443`, `ADDR`, `ADDR:443`, `[V6]`,
    /// `[V6]:443`, `HOST[:443]`, `unix:PATH`.
    fn addrs(&self, s: &str) -> Result<Vec<Addr>, String> {
        if s.starts_with("unix:") {
            return Err("a UNIX socket".to_owned());
        }
        if s.contains('$') {
            return Err("variables are not expanded".to_owned());
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port {p:?}"))
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or("missing `]`")?;
            match after.strip_prefix(':') {
                Some(p) => (host, port(p)?),
                None if after.is_empty() => (host, 80),
                None => return Err("junk after `]`".to_owned()),
            }
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            ("*", port(s)?)
        } else {
            match s.rsplit_once(':') {
                Some((host, p)) => (host, port(p)?),
                None => (s, 80),
            }
        };
        if host == "*" || host.parse::<IpAddr>().is_ok() {
            return host_addr(host, port).map(|a| vec![a]);
        }
        let ips = (self.resolve)(host, port).map_err(|e| format!("cannot resolve {host}: {e}"))?;
        if ips.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        ips.iter()
            .map(|ip| host_addr(&ip.to_string(), port))
            .collect()
    }

    fn skip(&mut self, d: &Directive, why: &str) {
        let file = self.config.files.get(d.file).map(|f| f.display());
        let at = file.map_or_else(String::new, |f| format!("{f}:"));
        self.b.skipped.push(format!("{at}{}: {why}", d.line));
    }
}

/// Whether `NAME on;` stands among the directives.
fn on(directives: &[Directive], name: &str) -> bool {
    directives
        .iter()
        .any(|d| d.name == name && d.block.is_none() && d.args.first().is_some_and(|a| a == "on"))
}

struct Loader {
    prefix: PathBuf,
    files: Vec<PathBuf>,
    /// Files read, counting each time a file is included again.
    reads: usize,
}

impl Loader {
    fn file(&mut self, path: &Path, depth: usize) -> Result<Vec<Directive>, NamesError> {
        let parse_error = |line, message: String| NamesError::Parse {
            path: path.to_owned(),
            line,
            message,
        };
        self.reads += 1;
        if self.reads > MAX_FILES {
            return Err(parse_error(
                0,
                format!("more than {MAX_FILES} files included"),
            ));
        }
        let text = read(path)?;
        let index = self
            .files
            .iter()
            .position(|f| f == path)
            .unwrap_or_else(|| {
                self.files.push(path.to_owned());
                self.files.len() - 1
            });
        let mut tokens = tokens(&text)
            .map_err(|(line, m)| parse_error(line, m))?
            .into_iter();
        self.block(&mut tokens, index, depth, false)
            .map_err(|e| match e {
                Problem::Here(line, m) => parse_error(line, m),
                Problem::Names(e) => e,
            })
    }

    /// Directives up to the end of the block (`inner`) or of the file.
    fn block(
        &mut self,
        tokens: &mut std::vec::IntoIter<(Token, usize)>,
        file: usize,
        depth: usize,
        inner: bool,
    ) -> Result<Vec<Directive>, Problem> {
        let mut out = Vec::new();
        let mut words: Vec<String> = Vec::new();
        let mut first_line = 0;
        loop {
            let Some((token, line)) = tokens.next() else {
                if inner {
                    return Err(Problem::Here(
                        first_line,
                        "unexpected end of file, expecting `}`".to_owned(),
                    ));
                }
                if !words.is_empty() {
                    return Err(Problem::Here(
                        first_line,
                        "unexpected end of file, expecting `;`".to_owned(),
                    ));
                }
                return Ok(out);
            };
            if words.is_empty() {
                first_line = line;
            }
            match token {
                Token::Word(w) => words.push(w),
                Token::End | Token::Open if words.is_empty() => {
                    return Err(Problem::Here(
                        line,
                        "a `;` or `{` without a directive".to_owned(),
                    ));
                }
                Token::End => {
                    let mut args = std::mem::take(&mut words);
                    let name = args.remove(0);
                    if name == "include" {
                        out.extend(self.include(&args, first_line, depth)?);
                    } else {
                        out.push(Directive {
                            name,
                            args,
                            block: None,
                            file,
                            line: first_line,
                        });
                    }
                }
                Token::Open => {
                    let mut args = std::mem::take(&mut words);
                    let name = args.remove(0);
                    let block = Some(self.block(tokens, file, depth, true)?);
                    out.push(Directive {
                        name,
                        args,
                        block,
                        file,
                        line: first_line,
                    });
                }
                Token::Close if inner && words.is_empty() => return Ok(out),
                Token::Close => return Err(Problem::Here(line, "unexpected `}`".to_owned())),
            }
        }
    }

    fn include(
        &mut self,
        args: &[String],
        line: usize,
        depth: usize,
    ) -> Result<Vec<Directive>, Problem> {
        let [pattern] = args else {
            return Err(Problem::Here(line, "`include` takes one path".to_owned()));
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(Problem::Here(
                line,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            ));
        }
        let path = self.prefix.join(pattern);
        let paths = if pattern.contains(['*', '?', '[']) {
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            let pattern = path.to_string_lossy();
            glob::glob_with(&pattern, options)
                .map_err(|e| Problem::Here(line, format!("include {pattern}: {e}")))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect()
        } else {
            vec![path]
        };
        let mut out = Vec::new();
        for p in paths {
            out.extend(self.file(&p, depth + 1).map_err(Problem::Names)?);
        }
        Ok(out)
    }
}

enum Problem {
    /// At this line of the file being read.
    Here(usize, String),
    /// In an included file, already placed.
    Names(NamesError),
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `;`
    End,
    Open,
    Close,
}

/// nginx's lexical rules (ngx_conf_file.c): words separated by white
/// space, `;`, `{` and `}`; `#` at the start of a word comments out the
/// rest of the line; `"…"` and `'…'` quote, and a backslash escapes the
/// next character.
fn tokens(text: &str) -> Result<Vec<(Token, usize)>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            ';' => out.push((Token::End, line)),
            '{' => out.push((Token::Open, line)),
            '}' => out.push((Token::Close, line)),
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            first => {
                let start = line;
                let mut word = String::new();
                let quote = (first == '"' || first == '\'').then_some(first);
                let mut pending = if quote.is_some() { None } else { Some(first) };
                loop {
                    let c = match pending.take() {
                        Some(c) => c,
                        None => match chars.next() {
                            Some(c) => c,
                            None if quote.is_some() => {
                                return Err((start, "unterminated quoted string".to_owned()));
                            }
                            None => break,
                        },
                    };
                    match c {
                        '\\' => match chars.next() {
                            Some('n') if quote.is_some() => word.push('\n'),
                            Some('t') if quote.is_some() => word.push('\t'),
                            Some(e) => word.push(e),
                            None => break,
                        },
                        c if Some(c) == quote => break,
                        c if quote.is_none() && (c.is_whitespace() || ";{}".contains(c)) => {
                            pending = Some(c);
                            break;
                        }
                        c => {
                            if c == '\n' {
                                line += 1;
                            }
                            word.push(c);
                        }
                    }
                }
                out.push((Token::Word(word), start));
                // The character that ended an unquoted word is read again.
                match pending {
                    Some('\n') => line += 1,
                    Some(';') => out.push((Token::End, line)),
                    Some('{') => out.push((Token::Open, line)),
                    Some('}') => out.push((Token::Close, line)),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
