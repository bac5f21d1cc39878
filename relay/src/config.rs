//! The relay's config file (`/etc/deskline/relay.toml` in the package): every `serve` option
//! as a TOML key named like its flag (`--public-url` is `public_url`), flags given on the
//! command line winning over the file.
//!
//! The file is turned into the flags it stands for, placed before the command line's own, and
//! clap parses them all with the last occurrence winning: one parser, so a value is checked the
//! same way wherever it comes from. Each key is checked on its own first, so that an unknown key
//! or a bad value is an error naming the file and the line.

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Command};
use std::ffi::OsString;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// The flags a config file stands for (by key; each key appears once in TOML); `A` is the
/// `serve` command's argument set (its keys are the flags' long names with `_` for `-`).
pub fn file_args<A: Args>(path: &Path) -> anyhow::Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    parse::<A>(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// [`file_args`] on the file's text.
pub fn parse<A: Args>(text: &str) -> anyhow::Result<Vec<OsString>> {
    let table = DeTable::parse(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
    let command = A::augment_args(Command::new("serve").args_override_self(true).no_binary_name(true));
    let mut args = Vec::new();
    for (key, value) in table.get_ref() {
        let line = line_of(text, key.span().start);
        let name = key.get_ref().as_ref();
        let flag = name.replace('_', "-");
        let known = command.get_arguments().find(|a| a.get_long() == Some(flag.as_str()) && flag != "config");
        let Some(arg) = known else {
            let mut keys: Vec<String> =
                command.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != "config").map(|l| l.replace('-', "_")).collect();
            keys.sort();
            bail!("line {line}: unknown key `{name}` (known keys: {})", keys.join(", "));
        };
        let takes_value = arg.get_action().takes_values();
        let mut these = Vec::new();
        match (value.get_ref(), takes_value) {
            (DeValue::Boolean(on), false) => {
                if *on {
                    these.push(OsString::from(format!("--{flag}")));
                }
            }
            (_, false) => bail!("line {line}: `{name}` is true or false"),
            (DeValue::Array(items), true) => {
                for item in items {
                    these.push(format!("--{flag}").into());
                    these.push(scalar(item.get_ref()).with_context(|| format!("line {line}: `{name}`"))?.into());
                }
            }
            (other, true) => {
                these.push(format!("--{flag}").into());
                these.push(scalar(other).with_context(|| format!("line {line}: `{name}`"))?.into());
            }
        }
        // The value checked as the command line would check it, named by its line.
        command.clone().try_get_matches_from(&these).map_err(|e| anyhow!("line {line}: `{name}`: {}", clap_message(&e)))?;
        args.extend(these);
    }
    Ok(args)
}

/// A TOML value as the text of a flag's value.
fn scalar(value: &DeValue<'_>) -> anyhow::Result<String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => Ok(i.to_string()),
        DeValue::Float(f) => Ok(f.to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Datetime(d) => Ok(d.to_string()),
        DeValue::Array(_) | DeValue::Table(_) => bail!("expected a single value"),
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// clap's error without its "error: " prefix and usage lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}

/// Where the config file's flags go: right after the `serve` subcommand, so that flags given
/// on the command line come later and win.
#[must_use]
pub fn merge(mut args: Vec<OsString>, subcommand_at: usize, from_file: Vec<OsString>) -> Vec<OsString> {
    let tail = args.split_off(subcommand_at + 1);
    args.extend(from_file);
    args.extend(tail);
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServeOptions;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn every_key_becomes_its_flag() {
        let text = r#"
            # the relay of Example IT
            http = "0.0.0.0:443"
            public_url = "https://desk.example.org"
            plain_http = false
            organisation = "Example IT"
            max_fps = 24
            agent_binary = ["/usr/lib/deskline/deskline-agent", "/usr/lib/deskline/deskline-agent.exe"]
        "#;
        let args = strings(&parse::<ServeOptions>(text).unwrap());
        assert_eq!(
            args,
            [
                "--agent-binary", "/usr/lib/deskline/deskline-agent", "--agent-binary", "/usr/lib/deskline/deskline-agent.exe",
                "--http", "0.0.0.0:443", "--max-fps", "24", "--organisation", "Example IT", "--public-url", "https://desk.example.org",
            ]
        );
    }

    #[test]
    fn the_packaged_example_is_valid() {
        let example = include_str!("../../installers/config/relay.toml");
        let args = strings(&parse::<ServeOptions>(example).unwrap());
        assert!(args.windows(2).any(|w| w == ["--data-dir", "/var/lib/deskline"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--metrics", "127.0.0.1:9464"]), "{args:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_line() {
        let e = parse::<ServeOptions>("http = \"127.0.0.1:8443\"\n\nqiuc = \"127.0.0.1:4433\"\n").unwrap_err().to_string();
        assert!(e.starts_with("line 3: unknown key `qiuc`"), "{e}");
        assert!(e.contains("quic"), "the known keys are listed: {e}");
        let e = parse::<ServeOptions>("organisation = \"x\"\nmax_fps = \"fast\"\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2: `max_fps`: invalid value 'fast'"), "{e}");
        let e = parse::<ServeOptions>("http = \"not an address\"").unwrap_err().to_string();
        assert!(e.starts_with("line 1: `http`: invalid value"), "{e}");
        let e = parse::<ServeOptions>("plain_http = \"yes\"").unwrap_err().to_string();
        assert!(e.contains("line 1: `plain_http` is true or false"), "{e}");
        let e = parse::<ServeOptions>("config = \"/etc/other.toml\"").unwrap_err().to_string();
        assert!(e.contains("unknown key `config`"), "a config file cannot name another: {e}");
        let e = parse::<ServeOptions>("http = \n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "a TOML syntax error names its line: {e}");
    }

    #[test]
    fn flags_on_the_command_line_win_over_the_file() {
        #[derive(clap::Parser)]
        #[command(args_override_self = true)]
        struct Cli {
            #[command(subcommand)]
            command: Sub,
        }
        #[derive(clap::Subcommand)]
        enum Sub {
            Serve(ServeOptions),
        }
        let file = parse::<ServeOptions>("organisation = \"From the file\"\nmax_fps = 24\n").unwrap();
        let given: Vec<OsString> = ["deskline-relay", "serve", "--max-fps", "60"].map(OsString::from).to_vec();
        let merged = merge(given, 1, file);
        let Sub::Serve(options) = <Cli as clap::Parser>::try_parse_from(merged).unwrap().command;
        assert_eq!(options.max_fps, 60, "the flag wins");
        assert_eq!(options.organisation, "From the file");
    }
}
