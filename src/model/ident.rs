//! The rules for every name a user gives: task ids, job ids, node ids,
//! executor names, tags and the namespace. Checked where a name enters
//! (config, CLI, HTTP, [`crate::Client`]), never where a stored record is
//! read, so records written by an older version with odd ids still read
//! and cancel.
//!
//! Every name is 1 to [`Name::max_len`] bytes of ASCII letters, digits and
//! `-` `_` `.`, plus the extra characters its kind allows (`:` in most).
//! What is refused, and why:
//! - whitespace and control characters: they break log lines, the CLI's
//!   tables and shell scripts that read them;
//! - `|` and `,`: the separators of the data model (`id|attempt` entries,
//!   `exec:{executor}|{tags}` park keys, tag lists);
//! - `@`: reserved for the cron slot ids `{job}@{slot_ms}`, which only the
//!   scheduler creates, so a submitter cannot take a future slot's id and
//!   make its firing silently skip;
//! - `:` in node ids: per-node keys are `{node}:{component}`;
//! - `{` `}`: Redis hash tags; `/` `?` `#` `%`: path segments of the HTTP
//!   API, so an id is always one clean segment.

use std::fmt;

/// What kind of name is checked: decides the length limit, the extra
/// characters and the wording of the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// A task id given by the submitter (`--id`, `"id"`).
    TaskId,
    /// A cron job id.
    JobId,
    /// A node id (`node_id`).
    NodeId,
    /// An executor name (`--exec NAME=…`, a task's `executor`).
    Executor,
    /// A worker tag or a task's required tag.
    Tag,
    /// The key namespace.
    Namespace,
}

impl Name {
    /// The most bytes a name of this kind may have: 200 for task and job
    /// ids, 128 for node ids, 64 for the rest.
    pub fn max_len(self) -> usize {
        match self {
            Name::TaskId | Name::JobId => 200,
            Name::NodeId => 128,
            Name::Executor | Name::Tag | Name::Namespace => 64,
        }
    }

    /// The characters allowed beyond ASCII letters, digits, `-`, `_`, `.`.
    pub fn extra_chars(self) -> &'static str {
        match self {
            Name::NodeId => "",
            Name::Tag => ":=",
            Name::TaskId | Name::JobId | Name::Executor | Name::Namespace => ":",
        }
    }

    fn allows(self, c: char) -> bool {
        c.is_ascii_alphanumeric() || "-_.".contains(c) || self.extra_chars().contains(c)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Name::TaskId => "task id",
            Name::JobId => "job id",
            Name::NodeId => "node id",
            Name::Executor => "executor name",
            Name::Tag => "tag",
            Name::Namespace => "namespace",
        })
    }
}

/// Checks `value` as a name of `kind`. The error is one line that names
/// the kind, quotes the value (escaped, so control characters cannot
/// reach a terminal) and says what is allowed.
pub fn check(kind: Name, value: &str) -> Result<(), String> {
    let allowed = || {
        let extra: Vec<String> = kind
            .extra_chars()
            .chars()
            .map(|c| format!("`{c}`"))
            .collect();
        let mut set = "letters, digits, `-`, `_`, `.`".to_string();
        if !extra.is_empty() {
            set = format!("{set}, {}", extra.join(", "));
        }
        format!("use 1-{} ASCII {set}", kind.max_len())
    };
    let shown = || value.escape_debug().take(80).collect::<String>();
    if value.is_empty() {
        return Err(format!("invalid {kind}: empty; {}", allowed()));
    }
    if value.len() > kind.max_len() {
        return Err(format!(
            "invalid {kind} `{}…`: {} bytes; {}",
            shown(),
            value.len(),
            allowed()
        ));
    }
    if let Some(c) = value.chars().find(|&c| !kind.allows(c)) {
        let why = match c {
            '@' if kind == Name::TaskId => {
                " (`@` is reserved for cron slot ids `{job}@{slot}`, which only the scheduler creates)"
                    .to_string()
            }
            c if c.is_whitespace() || c.is_control() => format!(" ({:?} not allowed)", c),
            c => format!(" (`{c}` not allowed)"),
        };
        return Err(format!("invalid {kind} `{}`{why}; {}", shown(), allowed()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_sets() {
        check(Name::TaskId, "order-123_v2.retry:1").unwrap();
        check(Name::JobId, "nightly.backup:eu").unwrap();
        check(Name::NodeId, "host-1_a.b").unwrap();
        check(Name::Executor, "mail:send").unwrap();
        check(Name::Tag, "region=eu").unwrap();
        check(Name::Namespace, "prod:eu").unwrap();
        check(Name::TaskId, &"a".repeat(200)).unwrap();
    }

    #[test]
    fn refuses_separators_reserved_and_control_characters() {
        for (kind, bad) in [
            (Name::TaskId, "tick@1798761600000"),
            (Name::TaskId, "a|b"),
            (Name::TaskId, "a b"),
            (Name::TaskId, "a\nb"),
            (Name::TaskId, "a/b"),
            (Name::TaskId, "a\u{0}b"),
            (Name::TaskId, "é"),
            (Name::TaskId, ""),
            (Name::NodeId, "n:1"),
            (Name::Tag, "a,b"),
            (Name::Executor, "x|y"),
            (Name::Namespace, "{ns}"),
            (Name::JobId, "j@1"),
        ] {
            let e = check(kind, bad).unwrap_err();
            assert!(!e.contains('\n'), "one line: {e}");
            assert!(e.contains(&kind.to_string()), "{e}");
        }
        assert!(check(Name::TaskId, &"a".repeat(201)).is_err());
        assert!(check(Name::TaskId, "t@1").unwrap_err().contains("reserved"));
    }
}
