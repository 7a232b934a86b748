//! Command lines of declared shell executors: `parse_command` splits
//! `--exec NAME=COMMAND` into an argv (used by the config at start and by
//! the executor), `show_argv` prints one back for the task log.

/// Splits a command line into argv, the way a worker reads `--exec
/// NAME=COMMAND`: words are separated by whitespace; `'...'` keeps its
/// content literally; `"..."` too, except that `\"` and `\\` inside it stand
/// for `"` and `\`; outside quotes `\` takes the next character literally.
/// Quoted and unquoted parts next to each other form one word (`a'b c'` is
/// `ab c`), and `''` is an empty word. No variables, globs or other shell
/// syntax: the program runs without a shell.
///
/// Errors on an empty command, an unclosed quote or a trailing `\`.
pub fn parse_command(text: &str) -> Result<Vec<String>, String> {
    let mut argv = Vec::new();
    let mut word = String::new();
    // True once the current word has started, so `''` yields an empty word.
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    argv.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed single quote in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed double quote in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed double quote in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing backslash in {text:?}")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        argv.push(word);
    }
    if argv.is_empty() {
        return Err("empty command".into());
    }
    Ok(argv)
}

pub(super) fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c))
            {
                arg.clone()
            } else {
                format!("{arg:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
