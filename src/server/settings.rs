//! Where `charla serve`'s settings come from, in order of precedence: the command line, then
//! `CHARLA_*` environment variables, then a `--config` file (TOML), then the built-in defaults.
//!
//! Done once over the command's clap definition, not flag by flag, so that a new flag is
//! settable everywhere the day it is added: [`from_env`] gives every flag its variable
//! (`--max-conns` → `CHARLA_MAX_CONNS`), and [`from_file`] turns each key of the file into that
//! flag's default value (`max-conns = 100`), which clap then ranks below the environment and
//! the command line by itself. Each key is checked against the flag it names before it is
//! used, so that a typo or a wrong value is reported as the file's, with its key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

/// The prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "CHARLA_";

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the config file {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("the config file {file} is not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error(
        "the config file {file} sets '{key}', which is not a setting of charla serve (its settings are the long flags of `charla serve --help`, without the dashes)"
    )]
    UnknownKey { file: PathBuf, key: String },
    #[error("the config file {file} sets '{key}' to {found}, but it takes {expected}")]
    WrongType { file: PathBuf, key: String, found: &'static str, expected: String },
    #[error("the config file {file} sets '{key}' to a value it does not take: {reason}")]
    Invalid { file: PathBuf, key: String, reason: String },
}

/// The environment variable of the flag `long`: `max-conns` → `CHARLA_MAX_CONNS`.
pub fn env_name(long: &str) -> String {
    format!("{ENV_PREFIX}{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// Gives every long flag of `command` without one its environment variable ([`env_name`]),
/// except those in `own`: flags whose variable the program reads itself.
pub fn from_env(command: Command, own: &'static [&'static str]) -> Command {
    command.mut_args(|arg| match arg.get_long() {
        Some(long) if !matches!(long, "help" | "version") && arg.get_env().is_none() && !own.contains(&long) => {
            // `--help` shows the variable, not its value: it may be a password.
            let name = env_name(long);
            arg.env(name).hide_env_values(true)
        }
        _ => arg,
    })
}

/// Makes each setting of the config file `file` the default value of its flag in `command`.
/// Keys are the long flags without dashes (positional arguments by their name); `config`
/// itself cannot be set there.
pub fn from_file(command: Command, file: &Path) -> Result<Command, SettingsError> {
    let text = std::fs::read_to_string(file).map_err(|source| SettingsError::Read { file: file.into(), source })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SettingsError::Syntax { file: file.into(), message: e.to_string() })?;
    let mut command = command;
    for (key, value) in &table {
        let arg =
            find(&command, key).ok_or_else(|| SettingsError::UnknownKey { file: file.into(), key: key.clone() })?;
        let values = values_of(&arg, value).map_err(|(found, expected)| SettingsError::WrongType {
            file: file.into(),
            key: key.clone(),
            found,
            expected,
        })?;
        check(&command, &arg, &values).map_err(|reason| SettingsError::Invalid {
            file: file.into(),
            key: key.clone(),
            reason,
        })?;
        let id = arg.get_id().clone();
        command = command.mut_arg(id, |arg| arg.default_values(values));
    }
    Ok(command)
}

/// The argument a file's key names: a long flag, or a positional argument by its name.
fn find(command: &Command, key: &str) -> Option<Arg> {
    if matches!(key, "config" | "help" | "version") {
        return None;
    }
    let by_long = command.get_arguments().find(|a| a.get_long() == Some(key));
    let by_name = || command.get_positionals().find(|a| a.get_id() == key);
    by_long.or_else(by_name).cloned()
}

/// The values a TOML value gives `arg`, as its command line would: a flag takes `true` or
/// `false`, a repeatable option one value or a list, any other option one value.
fn values_of(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, (&'static str, String)> {
    let what = |v: &toml::Value| match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) | toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    };
    let shown = value_name(arg);
    if !arg.get_action().takes_values() {
        return match value {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err((what(other), "true or false".into())),
        };
    }
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        toml::Value::Array(items) if repeatable => items
            .iter()
            .map(|item| scalar(item).ok_or((what(item), format!("a list of {shown}"))))
            .collect::<Result<_, _>>(),
        toml::Value::Array(_) => Err(("a list", format!("one {shown}"))),
        other => match scalar(other) {
            Some(s) => Ok(vec![s]),
            None if repeatable => Err((what(other), format!("{shown} or a list of them"))),
            None => Err((what(other), format!("one {shown}"))),
        },
    }
}

/// How `--help` names the values `arg` takes.
fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map_or_else(|| arg.get_id().to_string().to_uppercase(), |name| name.to_string())
}

/// Whether `command` takes `values` for `arg`, said as clap's parser of that argument says
/// it when it does not.
fn check(command: &Command, arg: &Arg, values: &[String]) -> Result<(), String> {
    // A positional argument is tried alone, as the first: where it stands among the others
    // would take values for them.
    let command = match arg.get_long() {
        Some(_) => command.clone(),
        None => Command::new(command.get_name().to_string()).arg(arg.clone()),
    };
    let mut line: Vec<OsString> = vec![command.get_name().into()];
    for value in values {
        match arg.get_long() {
            _ if !arg.get_action().takes_values() => {
                if value == "true" {
                    line.push(format!("--{}", arg.get_long().unwrap_or_default()).into());
                }
            }
            Some(long) => line.extend([format!("--{long}").into(), value.into()]),
            None => line.push(value.into()),
        }
    }
    let Err(error) = command.try_get_matches_from(line) else { return Ok(()) };
    // Only what is wrong with this argument; anything else (a bad environment variable) is
    // reported by the real parse, as its own.
    let about_this = error.get(clap::error::ContextKind::InvalidArg).is_some_and(|shown| match arg.get_long() {
        Some(long) => shown.to_string().starts_with(&format!("--{long}")),
        None => true,
    });
    if !about_this {
        return Ok(());
    }
    match std::error::Error::source(&error) {
        Some(reason) => Err(format!("{reason} (expected {})", value_name(arg))),
        None => {
            let said = error.to_string();
            let first = said.lines().next().unwrap_or_default();
            Err(first.trim_start_matches("error: ").to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgMatches;

    fn command() -> Command {
        Command::new("serve")
            .arg(Arg::new("host"))
            .arg(Arg::new("port").value_parser(clap::value_parser!(u16)))
            .arg(Arg::new("max_conns").long("max-conns").value_parser(clap::value_parser!(usize)).default_value("10"))
            .arg(Arg::new("listen").long("listen").action(ArgAction::Append))
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
            .arg(Arg::new("config").long("config"))
    }

    fn with_file(text: &str) -> Result<Command, SettingsError> {
        let dir = std::env::temp_dir().join(format!("charla-settings-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("charla.toml");
        std::fs::write(&file, text).unwrap();
        let result = from_file(command(), &file);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    fn parse(command: Command, args: &[&str]) -> ArgMatches {
        command.try_get_matches_from(std::iter::once("serve").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn a_file_sets_defaults_that_the_command_line_overrides() {
        let command = with_file("max-conns = 5\nlisten = [\"a\", \"b\"]\nquiet = true\nhost = \"h\"\n").unwrap();
        let m = parse(command.clone(), &[]);
        assert_eq!(m.get_one::<usize>("max_conns"), Some(&5));
        assert_eq!(m.get_many::<String>("listen").unwrap().collect::<Vec<_>>(), ["a", "b"]);
        assert!(m.get_flag("quiet"));
        assert_eq!(m.get_one::<String>("host").map(String::as_str), Some("h"));
        let m = parse(command, &["--max-conns", "7", "--listen", "c"]);
        assert_eq!(m.get_one::<usize>("max_conns"), Some(&7));
        assert_eq!(m.get_many::<String>("listen").unwrap().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn every_long_flag_gets_its_variable() {
        let command = from_env(command(), &["listen"]);
        let env =
            |id: &str| command.get_arguments().find(|a| a.get_id() == id).unwrap().get_env().map(|e| e.to_owned());
        assert_eq!(env("max_conns"), Some("CHARLA_MAX_CONNS".into()));
        assert_eq!(env("listen"), None);
        assert_eq!(env("host"), None);
    }

    #[test]
    fn a_bad_file_is_named_with_its_key() {
        let unknown = with_file("max-connz = 5\n").unwrap_err().to_string();
        assert!(unknown.contains("sets 'max-connz', which is not a setting"), "{unknown}");
        assert!(unknown.contains("charla.toml"), "{unknown}");
        let wrong = with_file("max-conns = [1]\n").unwrap_err().to_string();
        assert!(wrong.contains("sets 'max-conns' to a list, but it takes one MAX_CONNS"), "{wrong}");
        let flag = with_file("quiet = \"yes\"\n").unwrap_err().to_string();
        assert!(flag.contains("sets 'quiet' to a string, but it takes true or false"), "{flag}");
        let invalid = with_file("max-conns = \"many\"\n").unwrap_err().to_string();
        assert!(invalid.contains("sets 'max-conns' to a value it does not take: invalid digit"), "{invalid}");
        let syntax = with_file("max-conns = \n").unwrap_err().to_string();
        assert!(syntax.contains("is not valid TOML"), "{syntax}");
        let positional = with_file("port = 70000\n").unwrap_err().to_string();
        assert!(
            positional.contains("sets 'port' to a value it does not take: 70000 is not in 0..=65535"),
            "{positional}"
        );
        let itself = with_file("config = \"other.toml\"\n").unwrap_err().to_string();
        assert!(itself.contains("sets 'config'"), "{itself}");
    }
}
