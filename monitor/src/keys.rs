//! The dashboard's key bindings: one table that the app dispatches from,
//! the help screen and the footer draw from, and docs/dashboard.md is
//! checked against (`the_docs_list_every_binding`).

use std::fmt::Write as _;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key asks the dashboard to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Pause,
    Reset,
    NextSort,
    ReverseSort,
    Down,
    Up,
    PageDown,
    PageUp,
    First,
    Last,
    OpenFilter,
    Help,
    /// Close the help; without the help, clear the filter.
    Escape,
    /// In the filter prompt.
    ApplyFilter,
    ClearFilter,
    DeleteChar,
    DeleteLine,
}

/// Where a binding applies: the table, or the filter prompt (where every
/// other printable key is text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Table,
    Prompt,
}

/// One key as the terminal reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Code(KeyCode),
}

pub struct Binding {
    pub mode: Mode,
    pub keys: &'static [Key],
    /// How the help screen and the docs name the keys.
    pub label: &'static str,
    pub action: Action,
    pub help: &'static str,
    /// Short hint for the footer, if the binding has one.
    pub hint: Option<(&'static str, &'static str)>,
}

const fn bind(
    mode: Mode,
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    help: &'static str,
    hint: Option<(&'static str, &'static str)>,
) -> Binding {
    Binding {
        mode,
        keys,
        label,
        action,
        help,
        hint,
    }
}

use Key::{Char, Code, Ctrl};
use Mode::{Prompt, Table};

pub const BINDINGS: &[Binding] = &[
    bind(
        Table,
        &[Char('q'), Ctrl('c')],
        "q, Ctrl-C",
        Action::Quit,
        "quit",
        Some(("q", "quit")),
    ),
    bind(
        Table,
        &[Char('p')],
        "p",
        Action::Pause,
        "pause the display (counting goes on)",
        Some(("p", "pause")),
    ),
    bind(
        Table,
        &[Char('r')],
        "r",
        Action::Reset,
        "reset counters, history and diagnoses",
        Some(("r", "reset")),
    ),
    bind(
        Table,
        &[Char('s')],
        "s",
        Action::NextSort,
        "next sort column",
        Some(("s/S", "sort")),
    ),
    bind(
        Table,
        &[Char('S')],
        "S",
        Action::ReverseSort,
        "reverse the sort order",
        None,
    ),
    bind(
        Table,
        &[Code(KeyCode::Down), Char('j')],
        "↓ j",
        Action::Down,
        "select the next server",
        Some(("↑↓", "select")),
    ),
    bind(
        Table,
        &[Code(KeyCode::Up), Char('k')],
        "↑ k",
        Action::Up,
        "select the previous server",
        None,
    ),
    bind(
        Table,
        &[Code(KeyCode::PageDown)],
        "PgDn",
        Action::PageDown,
        "move down by ten",
        None,
    ),
    bind(
        Table,
        &[Code(KeyCode::PageUp)],
        "PgUp",
        Action::PageUp,
        "move up by ten",
        None,
    ),
    bind(
        Table,
        &[Code(KeyCode::Home), Char('g')],
        "Home g",
        Action::First,
        "first server",
        None,
    ),
    bind(
        Table,
        &[Code(KeyCode::End), Char('G')],
        "End G",
        Action::Last,
        "last server",
        None,
    ),
    bind(
        Table,
        &[Char('/')],
        "/",
        Action::OpenFilter,
        "filter by address, name or role",
        Some(("/", "filter")),
    ),
    bind(
        Table,
        &[Char('?')],
        "?",
        Action::Help,
        "this help",
        Some(("?", "help")),
    ),
    bind(
        Table,
        &[Code(KeyCode::Esc)],
        "Esc",
        Action::Escape,
        "close the help, or clear the filter",
        None,
    ),
    bind(
        Prompt,
        &[Code(KeyCode::Enter)],
        "Enter",
        Action::ApplyFilter,
        "apply the filter",
        Some(("Enter", "apply")),
    ),
    bind(
        Prompt,
        &[Code(KeyCode::Esc)],
        "Esc",
        Action::ClearFilter,
        "clear the filter",
        Some(("Esc", "clear")),
    ),
    bind(
        Prompt,
        &[Code(KeyCode::Backspace)],
        "Backspace",
        Action::DeleteChar,
        "delete a character",
        None,
    ),
    bind(
        Prompt,
        &[Ctrl('u')],
        "Ctrl-U",
        Action::DeleteLine,
        "delete the whole filter",
        None,
    ),
    bind(Prompt, &[Ctrl('c')], "Ctrl-C", Action::Quit, "quit", None),
];

/// The key of a terminal event; `None` for releases.
#[must_use]
pub fn key(ev: KeyEvent) -> Option<Key> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    Some(match ev.code {
        KeyCode::Char(c) if ev.modifiers.contains(KeyModifiers::CONTROL) => {
            Ctrl(c.to_ascii_lowercase())
        }
        // Some terminals report Shift with the lower-case letter.
        KeyCode::Char(c) if ev.modifiers.contains(KeyModifiers::SHIFT) => {
            Char(c.to_ascii_uppercase())
        }
        KeyCode::Char(c) => Char(c),
        code => Code(code),
    })
}

/// The action bound to `key` in `mode`.
#[must_use]
pub fn action(mode: Mode, key: Key) -> Option<Action> {
    BINDINGS
        .iter()
        .find(|b| b.mode == mode && b.keys.contains(&key))
        .map(|b| b.action)
}

/// The bindings as the Markdown table of docs/dashboard.md.
#[must_use]
pub fn markdown() -> String {
    let mut out = String::from("| key | mode | does |\n|---|---|---|\n");
    for b in BINDINGS {
        let mode = match b.mode {
            Table => "table",
            Prompt => "filter prompt",
        };
        let _ = writeln!(out, "| `{}` | {mode} | {} |", b.label, b.help);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_action_per_mode() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                for k in a.keys {
                    assert!(
                        a.mode != b.mode || !b.keys.contains(k),
                        "{k:?} is bound twice in {:?}",
                        a.mode
                    );
                }
            }
        }
    }

    #[test]
    fn shift_and_control_are_read_as_the_table_writes_them() {
        let ev = |c, m| KeyEvent::new(KeyCode::Char(c), m);
        assert_eq!(key(ev('S', KeyModifiers::SHIFT)), Some(Char('S')));
        assert_eq!(key(ev('s', KeyModifiers::SHIFT)), Some(Char('S')));
        assert_eq!(key(ev('c', KeyModifiers::CONTROL)), Some(Ctrl('c')));
        assert_eq!(action(Table, Char('S')), Some(Action::ReverseSort));
        assert_eq!(action(Prompt, Char('q')), None, "q is text in the prompt");
    }

    #[test]
    fn the_docs_list_every_binding() {
        let doc = include_str!("../../docs/dashboard.md");
        let table = markdown();
        assert!(
            doc.contains(&table),
            "docs/dashboard.md must contain the key table as keys::markdown() renders it:\n{table}"
        );
    }
}
