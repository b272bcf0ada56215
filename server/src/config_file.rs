//! The configuration file: redis.conf syntax (`port 7001`, `dir /var/lib/rockraft`,
//! `include other.conf`), read by `--config FILE` or a file named as the first argument, as
//! `redis-server /etc/redis/redis.conf`.
//!
//! A directive is a startup flag (by Redis's name where Redis has one, else by the flag's own
//! name), a setting `CONFIG SET` can change (applied as the node starts), or a Redis directive
//! with nothing to do here (a warning says why). Anything else stops the start with Redis's
//! "FATAL CONFIG FILE ERROR" message naming the file and line. Flags on the command line and
//! environment variables override the file. `CONFIG REWRITE` writes the settings changed since
//! back into the file ([`rewrite`]).

use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};

use crate::Config;

/// Redis's directive names for the startup flags that differ from the flag's own name.
const REDIS_NAMES: [(&str, &str); 7] = [
    ("dir", "data-dir"),
    ("loglevel", "log-level"),
    ("cluster-port", "bus-port"),
    ("cluster-announce-ip", "advertise-host"),
    ("cluster-announce-hostname", "advertise-host"),
    ("cluster-announce-bus-port", "advertise-bus-port"),
    ("cluster-announce-tls-port", "tls-port"),
];

/// Settings `CONFIG SET` changes at run time, so the file's value is applied as the node starts.
pub const RUNTIME: [&str; 15] = [
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "notify-keyspace-events",
    "hash-max-listpack-entries",
    "hash-max-ziplist-entries",
    "hash-max-listpack-value",
    "hash-max-ziplist-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-ziplist-entries",
    "zset-max-listpack-value",
    "zset-max-ziplist-value",
    "list-max-listpack-size",
    "list-compress-depth",
];

/// Redis directives that have nothing to do in rockraft, and why; a file holding them (a
/// redis.conf brought along) starts with a warning for each.
const IGNORED: [(&str, &str); 36] = [
    (
        "daemonize",
        "rockraft runs in the foreground (systemd, a container)",
    ),
    (
        "supervised",
        "rockraft runs in the foreground (systemd, a container)",
    ),
    ("pidfile", "rockraft writes no pid file"),
    ("logfile", "rockraft logs to stderr"),
    ("syslog-enabled", "rockraft logs to stderr"),
    ("syslog-ident", "rockraft logs to stderr"),
    ("always-show-logo", "no logo"),
    ("set-proc-title", "the process keeps its name"),
    ("proc-title-template", "the process keeps its name"),
    ("databases", "one database (0), as Redis Cluster"),
    (
        "save",
        "every write is in the synced raft log; SAVE writes a checkpoint",
    ),
    (
        "stop-writes-on-bgsave-error",
        "writes never depend on a snapshot",
    ),
    ("rdbcompression", "RocksDB compresses its own files"),
    ("rdbchecksum", "RocksDB checksums its own files"),
    ("dbfilename", "the data is in RocksDB under dir"),
    ("rdb-del-sync-files", "the data is in RocksDB under dir"),
    (
        "appendonly",
        "the raft log is the append-only file, always on",
    ),
    (
        "appendfilename",
        "the raft log is the append-only file, under dir",
    ),
    (
        "appenddirname",
        "the raft log is the append-only file, under dir",
    ),
    (
        "appendfsync",
        "every acknowledged write is fsynced (always)",
    ),
    (
        "no-appendfsync-on-rewrite",
        "the raft log is compacted, not rewritten",
    ),
    (
        "auto-aof-rewrite-percentage",
        "the raft log is compacted on its own",
    ),
    (
        "auto-aof-rewrite-min-size",
        "the raft log is compacted on its own",
    ),
    (
        "aof-load-truncated",
        "the raft log is checked as it is read",
    ),
    (
        "aof-use-rdb-preamble",
        "the raft log is compacted on its own",
    ),
    (
        "aof-timestamp-enabled",
        "the raft log is compacted on its own",
    ),
    (
        "cluster-enabled",
        "always a cluster (of one node, until MEET)",
    ),
    (
        "cluster-config-file",
        "the cluster's configuration is in the raft log",
    ),
    (
        "cluster-node-timeout",
        "raft's election timeout decides failover",
    ),
    ("tcp-backlog", "the system's default backlog"),
    ("timeout", "idle clients are never closed"),
    ("tcp-keepalive", "the system's keepalive"),
    ("hz", "no periodic task depends on it"),
    ("dynamic-hz", "no periodic task depends on it"),
    ("lazyfree-lazy-user-del", "deletes are RocksDB tombstones"),
    ("jemalloc-bg-thread", "rockraft allocates with mimalloc"),
];

/// One directive of the file, where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub text: String,
}

/// A setting the file gives for `CONFIG SET` to apply at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSetting {
    pub name: String,
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
    pub text: String,
}

/// Redis's fatal configuration error, naming the file and line.
pub fn fatal(file: &Path, line: usize, text: &str, reason: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (rockraft {}) ***\nReading the configuration file {}, at line {line}\n>>> '{text}'\n{reason}",
        env!("CARGO_PKG_VERSION"),
        file.display()
    )
}

/// Splits a line into arguments as Redis does (sdssplitargs, shared with inline commands):
/// None when a quote is left open or a closing quote is not followed by a space.
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let args = rockraft_resp::split_args(line.as_bytes())?;
    Some(
        args.into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect(),
    )
}

/// Reads `path` and the files it includes, in order. `include` nests at most 16 deep.
pub fn read(path: &Path) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    read_into(path, 0, &mut out)?;
    Ok(out)
}

fn read_into(path: &Path, depth: usize, out: &mut Vec<Directive>) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "Fatal error, can't open config file '{}': {e}",
            path.display()
        )
    })?;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(args) = split_args(line) else {
            return Err(fatal(
                path,
                n + 1,
                line,
                "Unbalanced quotes in configuration line",
            ));
        };
        let Some((name, rest)) = args.split_first() else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if name == "include" {
            if rest.len() != 1 {
                return Err(fatal(
                    path,
                    n + 1,
                    line,
                    "Bad directive or wrong number of arguments",
                ));
            }
            if depth >= 16 {
                return Err(fatal(path, n + 1, line, "include nested too deep"));
            }
            let inc = Path::new(&rest[0]);
            let inc = match inc.is_relative() {
                true => path.parent().unwrap_or(Path::new(".")).join(inc),
                false => inc.to_path_buf(),
            };
            read_into(&inc, depth + 1, out)?;
            continue;
        }
        out.push(Directive {
            name,
            args: rest.to_vec(),
            file: path.to_path_buf(),
            line: n + 1,
            text: line.to_string(),
        });
    }
    Ok(())
}

/// What a directive means here.
enum Meaning {
    /// The startup flag `--<flag>` and its value.
    Flag(Box<clap::Arg>, String),
    Runtime(String),
    Ignored(&'static str),
}

fn meaning(d: &Directive, warnings: &mut Vec<String>) -> Result<Meaning, String> {
    let bad = || {
        fatal(
            &d.file,
            d.line,
            &d.text,
            "Bad directive or wrong number of arguments",
        )
    };
    if let Some((_, why)) = IGNORED.iter().find(|(n, _)| *n == d.name) {
        return Ok(Meaning::Ignored(why));
    }
    if RUNTIME.contains(&d.name.as_str()) {
        // notify-keyspace-events "" is one empty argument.
        return match d.args.as_slice() {
            [v] => Ok(Meaning::Runtime(v.clone())),
            _ => Err(bad()),
        };
    }
    let flag = REDIS_NAMES
        .iter()
        .find(|(n, _)| *n == d.name)
        .map_or(d.name.as_str(), |(_, f)| f);
    let cmd = Config::command();
    let Some(arg) = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(flag) && flag != "config")
        .cloned()
    else {
        return Err(bad());
    };
    let value = match (d.name.as_str(), d.args.as_slice()) {
        // Redis binds several addresses ("bind 127.0.0.1 -::1"); rockraft binds the first.
        ("bind", [first, rest @ ..]) => {
            if !rest.is_empty() {
                warnings.push(format!(
                    "{}:{}: rockraft binds one address: {first}; the rest are ignored",
                    d.file.display(),
                    d.line
                ));
            }
            first.trim_start_matches('-').to_string()
        }
        ("loglevel", [level]) => match level.to_ascii_lowercase().as_str() {
            "debug" => "debug".into(),
            "verbose" | "notice" => "info".into(),
            "warning" => "warn".into(),
            "nothing" => "off".into(),
            _ => return Err(fatal(&d.file, d.line, &d.text, "argument(s) must be one of the following: debug, verbose, notice, warning, nothing")),
        },
        (_, [v]) => v.clone(),
        _ => return Err(bad()),
    };
    Ok(Meaning::Flag(Box::new(arg), value))
}

impl Config {
    /// The flags, environment and configuration file, as `rockraft-server` reads them. A bad
    /// file or a flag that conflicts with it prints Redis's fatal error and exits.
    pub fn load() -> Config {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        match Config::load_from(args) {
            Ok(c) => c,
            Err(LoadError::Clap(e)) => e.exit(),
            Err(LoadError::File(msg)) => {
                eprintln!("{msg}");
                std::process::exit(1);
            }
        }
    }

    /// [`Config::load`] from these arguments (the program's name first).
    pub fn load_from(args: Vec<std::ffi::OsString>) -> Result<Config, LoadError> {
        let cmd = || Config::command().args_override_self(true);
        let cli = cmd().try_get_matches_from(&args).map_err(LoadError::Clap)?;
        let first = Config::from_arg_matches(&cli).map_err(LoadError::Clap)?;
        let Some(path) = first.config.clone().or(first.config_file_arg.clone()) else {
            return Ok(first);
        };
        let path = std::path::absolute(&path).unwrap_or(path);
        let directives = read(&path).map_err(LoadError::File)?;
        let mut file_args: Vec<std::ffi::OsString> = vec![args[0].clone()];
        let (mut runtime, mut warnings) = (Vec::new(), Vec::new());
        for d in &directives {
            match meaning(d, &mut warnings).map_err(LoadError::File)? {
                Meaning::Ignored(why) => warnings.push(format!(
                    "{}:{}: '{}' ignored: {why}",
                    d.file.display(),
                    d.line,
                    d.name
                )),
                Meaning::Runtime(value) => runtime.push(RuntimeSetting {
                    name: d.name.clone(),
                    value,
                    file: d.file.clone(),
                    line: d.line,
                    text: d.text.clone(),
                }),
                Meaning::Flag(arg, value) => {
                    // The environment overrides the file, as the command line does.
                    if arg.get_env().is_some_and(|e| std::env::var_os(e).is_some()) {
                        continue;
                    }
                    file_args.push(format!("--{}", arg.get_long().expect("long")).into());
                    file_args.push(value.into());
                    // Each line is checked as it is added, so an error names its line.
                    if let Err(e) = cmd().try_get_matches_from(&file_args) {
                        let reason = e.render().to_string();
                        let reason = reason
                            .lines()
                            .next()
                            .unwrap_or("")
                            .trim_start_matches("error: ");
                        return Err(LoadError::File(fatal(&d.file, d.line, &d.text, reason)));
                    }
                }
            }
        }
        file_args.extend(args.into_iter().skip(1));
        let all = cmd()
            .try_get_matches_from(&file_args)
            .map_err(LoadError::Clap)?;
        let mut config = Config::from_arg_matches(&all).map_err(LoadError::Clap)?;
        config.config = Some(path);
        config.config_file_arg = None;
        config.file_settings = runtime;
        config.file_warnings = warnings;
        Ok(config)
    }
}

/// Why the configuration could not be read.
#[derive(Debug)]
pub enum LoadError {
    Clap(clap::Error),
    File(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Clap(e) => write!(f, "{}", e.render()),
            LoadError::File(s) => f.write_str(s),
        }
    }
}

/// Quotes a value for the file when it needs it (empty, spaces, quotes, control bytes).
fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\');
    if plain {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.bytes() {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// CONFIG REWRITE: `settings` (name, value, default) written into the file at `path` as Redis
/// does: a setting the file holds is rewritten on its first line (later lines of it removed),
/// one it lacks is appended after "# Generated by CONFIG REWRITE" when it is not the default;
/// comments and every other line stay. The new file replaces the old one atomically.
pub fn rewrite(
    path: &Path,
    settings: &[(String, String, String)],
    canon: impl Fn(&str) -> String,
) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    const MARK: &str = "# Generated by CONFIG REWRITE";
    let mut lines: Vec<String> = Vec::new();
    let mut done = std::collections::HashSet::new();
    for raw in text.lines() {
        if raw.trim() == MARK {
            continue;
        }
        let name = split_args(raw.trim())
            .and_then(|a| a.first().map(|n| canon(&n.to_ascii_lowercase())))
            .filter(|_| !raw.trim().starts_with('#'));
        match name.and_then(|n| settings.iter().find(|(s, _, _)| *s == n)) {
            Some((name, value, _)) => {
                if done.insert(name.clone()) {
                    lines.push(format!("{name} {}", quote(value)));
                }
            }
            None => lines.push(raw.to_string()),
        }
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let mut appended = false;
    for (name, value, default) in settings {
        if done.contains(name) || value == default {
            continue;
        }
        if !appended {
            lines.push(String::new());
            lines.push(MARK.into());
            appended = true;
        }
        lines.push(format!("{name} {}", quote(value)));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    let tmp = path.with_extension("rewrite.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_redis() {
        assert_eq!(split_args("port 7001").unwrap(), ["port", "7001"]);
        assert_eq!(
            split_args(r#"requirepass "a b\x41\"" 'it\'s'"#).unwrap(),
            ["requirepass", "a bA\"", "it's"]
        );
        assert_eq!(
            split_args(r#"notify-keyspace-events """#).unwrap(),
            ["notify-keyspace-events", ""]
        );
        assert!(split_args(r#"x "open"#).is_none());
        assert!(split_args(r#"x "a"b"#).is_none());
    }

    #[test]
    fn quotes_round_trip() {
        for v in ["plain", "", "a b", "q\"uote", "back\\slash", "\x01\n"] {
            let line = format!("k {}", quote(v));
            assert_eq!(split_args(&line).unwrap(), ["k", v], "{line}");
        }
    }
}
