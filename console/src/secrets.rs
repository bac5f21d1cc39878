//! Where the CLI reads passwords: a prompt on the terminal (not echoed), or, for scripts and
//! when standard input is not a terminal, standard input, one password per line (a one-time
//! password on the first line, the new password on the second).

use std::io::{self, BufRead, IsTerminal as _};

/// A source of passwords.
pub enum Secrets<R> {
    /// Prompt on the terminal.
    Terminal,
    /// One password per line.
    Lines(R),
}

impl Secrets<io::StdinLock<'static>> {
    /// Standard input's lines when `from_stdin` is set or standard input is not a terminal;
    /// terminal prompts otherwise.
    #[must_use]
    pub fn standard(from_stdin: bool) -> Self {
        let stdin = io::stdin();
        if from_stdin || !stdin.is_terminal() { Secrets::Lines(stdin.lock()) } else { Secrets::Terminal }
    }
}

impl<R: BufRead> Secrets<R> {
    /// Whether passwords are prompted for (so a new one is asked twice).
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self, Secrets::Terminal)
    }

    /// The next password, prompted with `prompt` or read from the next line; `None` when there
    /// is none (no more lines, an empty line, nothing typed).
    pub fn next(&mut self, prompt: &str) -> io::Result<Option<String>> {
        let password = match self {
            Secrets::Terminal => rpassword::prompt_password(prompt)?,
            Secrets::Lines(lines) => {
                let mut line = String::new();
                lines.read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
        };
        Ok(Some(password).filter(|p| !p.is_empty()))
    }

    /// A new password: on a terminal asked twice (`repeat: `), which must match; from lines,
    /// the next line. `None` when none is given.
    pub fn new_password(&mut self, prompt: &str) -> anyhow::Result<Option<String>> {
        let Some(password) = self.next(prompt)? else { return Ok(None) };
        if self.is_terminal() && self.next("repeat: ")?.as_deref() != Some(password.as_str()) {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        Ok(Some(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_one_password_each_and_none_when_they_end() {
        let mut secrets = Secrets::Lines(io::Cursor::new("one-time\r\nlantern orbit seven meadow\n"));
        assert_eq!(secrets.next("").unwrap().as_deref(), Some("one-time"));
        assert_eq!(secrets.new_password("").unwrap().as_deref(), Some("lantern orbit seven meadow"));
        assert_eq!(secrets.new_password("").unwrap(), None);
        let mut blank = Secrets::Lines(io::Cursor::new("\n"));
        assert_eq!(blank.next("").unwrap(), None, "an empty line is no password");
    }
}
