//! ACL users, with Redis 7.0's semantics: who may authenticate with which password, and which
//! commands, keys and channels each user may touch.
//!
//! The users are replicated state. `ACL SETUSER`, `ACL DELUSER`, `ACL LOAD` and `CONFIG SET
//! requirepass` are proposed as one internal write (`rockraft.acl …`) whose apply
//! ([`apply`]) reads the stored users, changes them and stores them back in the `script`
//! family (snapshots carry them, `FLUSHALL` leaves them). Every node keeps the applied users in
//! memory ([`Acl`]), reloaded after each round that changed them and after a snapshot or a
//! reset, and checks each command of each connection against its user ([`User::check`]).
//!
//! A user is stored as its rules with every command listed one by one (no categories), so that
//! it reads back exactly; `ACL LIST` and `ACL GETUSER` describe it the way Redis does, with the
//! categories that fit best.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;

use crate::command::acl_table::{self, R, W};
use crate::command::{self, CommandSpec};

/// Redis's ACL categories, in its order (`ACL CAT`, and the order categories are tried when a
/// user's commands are described).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Commands every connection may run, authenticated or not (Redis's `no_auth` flag).
pub fn no_auth(name: &str) -> bool {
    matches!(name, "auth" | "hello" | "quit" | "reset")
}

fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

fn category_mask(cats: &[&str]) -> u32 {
    cats.iter()
        .filter_map(|c| category_bit(c.trim_start_matches('@')))
        .fold(0, |a, b| a | b)
}

/// One command or subcommand, as ACL rules name it.
pub struct AclCommand {
    /// `get`, or `config|get` for a subcommand.
    pub fullname: String,
    pub categories: u32,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
}

/// The commands ACL rules can name, each with an id (its place in a user's command bits):
/// the table's commands in table order, each container followed by its subcommands.
pub struct AclCommands {
    pub list: Vec<AclCommand>,
    by_name: HashMap<String, usize>,
}

impl AclCommands {
    pub fn get() -> &'static AclCommands {
        static ONCE: OnceLock<AclCommands> = OnceLock::new();
        ONCE.get_or_init(|| {
            let mut list = Vec::new();
            let mut by_name = HashMap::new();
            for spec in command::table() {
                let id = list.len();
                by_name.insert(spec.name.to_string(), id);
                list.push(AclCommand {
                    fullname: spec.name.to_string(),
                    categories: category_mask(spec.categories),
                    parent: None,
                    children: Vec::new(),
                });
                for (_, sub, cats) in acl_table::SUBCOMMANDS
                    .iter()
                    .filter(|(c, _, _)| *c == spec.name)
                {
                    let sid = list.len();
                    let fullname = format!("{}|{sub}", spec.name);
                    by_name.insert(fullname.clone(), sid);
                    list.push(AclCommand {
                        fullname,
                        categories: category_mask(cats),
                        parent: Some(id),
                        children: Vec::new(),
                    });
                    list[id].children.push(sid);
                }
            }
            AclCommands { list, by_name }
        })
    }

    /// A command (`get`) or subcommand (`config|get`), case-insensitively.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The id a call of `spec` with `argv` is checked against: its subcommand's, for a
    /// container command whose subcommand Redis knows; else the command's.
    pub fn id_of(&self, spec: &CommandSpec, argv: &[Bytes]) -> usize {
        let id = self.by_name[spec.name];
        if self.list[id].children.is_empty() || argv.len() < 2 {
            return id;
        }
        let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
        self.list[id]
            .children
            .iter()
            .copied()
            .find(|&c| self.list[c].fullname[spec.name.len() + 1..] == *sub)
            .unwrap_or(id)
    }
}

/// Why a rule was refused (Redis's errno, and its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    Syntax,
    UnknownName,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    SubcommandFirstArg,
}

impl RuleError {
    pub fn message(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::UnknownName => "Unknown command or category name in ACL",
            RuleError::KeyAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// Why a command was refused (Redis's ACL_DENIED_*), with the argument at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

/// The hex SHA-256 of a password, as Redis stores it.
pub fn hash_password(pass: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, pass);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|c| c.is_ascii_whitespace() || *c == 0 || *c == 0x0b)
}

/// A key pattern with its `%R` / `%W` permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub access: u8,
    pub pattern: Vec<u8>,
}

impl KeyPattern {
    fn describe(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.access {
            a if a == R | W => b"~".as_slice(),
            R => b"%R~",
            _ => b"%W~",
        });
        out.extend_from_slice(&self.pattern);
    }
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` (Some(true)) or `skip-sanitize-payload` (Some(false)); a new
    /// user has neither.
    pub sanitize: Option<bool>,
    /// Hex SHA-256 hashes, in the order they were added.
    pub passwords: Vec<String>,
    /// One flag per [`AclCommands`] id.
    commands: Vec<bool>,
    /// `+@all` (or `allcommands`) was the last word on commands: nothing needs checking.
    all_commands: bool,
    /// Set by `+@all`, cleared by `-@all`: the user's rules start from everything (Redis's
    /// reserved "future commands" bit).
    future: bool,
    /// Allowed first arguments of otherwise denied commands (`+select|0`), by command id.
    first_args: Vec<(usize, Vec<String>)>,
    pub all_keys: bool,
    pub keys: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Vec<u8>>,
    /// Redis 7's selectors (`(~key* +get)`): more sets of command, key and channel rules, any
    /// of which may allow a call the rules above (the root selector) do not. Each is a user
    /// of which only those rules are used.
    pub selectors: Vec<User>,
}

/// Merges selector rules spread over several arguments (`(~x` `+get)` → `(~x +get)`), as
/// Redis's `ACLMergeSelectorArguments`; `Err(i)`: argument `i` opens a selector never closed.
pub fn merge_selectors<'a>(
    args: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Vec<u8>>, usize> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, a) in args.into_iter().enumerate() {
        let closes = a.last() == Some(&b')');
        // An argument that opens a selector starts a new one, even inside another (whose
        // words so far are then dropped, as Redis drops them).
        if a.first() == Some(&b'(') && !closes {
            open = Some((i, a.to_vec()));
            continue;
        }
        match &mut open {
            Some((_, sel)) => {
                sel.push(b' ');
                sel.extend_from_slice(a);
                if closes {
                    out.push(open.take().expect("open selector").1);
                }
            }
            None => out.push(a.to_vec()),
        }
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}

impl User {
    /// A new user: off, no passwords, no commands, keys or channels (Redis 7's
    /// `acl-pubsub-default resetchannels`).
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            commands: vec![false; AclCommands::get().list.len()],
            all_commands: false,
            future: false,
            first_args: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            selectors: Vec::new(),
        }
    }

    /// The default user: on, nopass, every command, key and channel.
    pub fn default_user() -> User {
        let mut u = User::new("default");
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            u.apply_rule(op.as_bytes()).expect("default rules");
        }
        u
    }

    /// Whether the user may run anything: no check is needed.
    pub fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// Applies the rules in order; none is applied if one is refused (Redis's error names it).
    pub fn apply_rules(&mut self, rules: &[Bytes]) -> Result<(), String> {
        let merged = merge_selectors(rules.iter().map(|r| &r[..])).map_err(|i| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&rules[i])
            )
        })?;
        let mut staged = self.clone();
        for r in &merged {
            if let Err(e) = staged.apply_rule(r) {
                return Err(format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(r),
                    e.message()
                ));
            }
        }
        *self = staged;
        Ok(())
    }

    /// One rule (Redis's `ACLSetUser`).
    pub fn apply_rule(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "reset" => {
                for r in [
                    "resetpass",
                    "resetkeys",
                    "resetchannels",
                    "off",
                    "sanitize-payload",
                ] {
                    self.apply_rule(r.as_bytes()).expect("reset rules");
                }
                self.selectors.clear();
                self.apply_rule(b"-@all").expect("reset rules");
            }
            "clearselectors" => self.selectors.clear(),
            _ => match op[0] {
                b'(' if op.len() >= 2 && op.ends_with(b")") => {
                    let mut selector = User::new("");
                    for word in op[1..op.len() - 1]
                        .split(|c| c.is_ascii_whitespace())
                        .filter(|w| !w.is_empty())
                    {
                        let lower = String::from_utf8_lossy(word).to_ascii_lowercase();
                        selector.apply_selector_rule(word, &lower)?;
                    }
                    self.selectors.push(selector);
                }
                b'>' | b'#' => {
                    let hash = if op[0] == b'>' {
                        hash_password(&op[1..])
                    } else if valid_hash(&op[1..]) {
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    } else {
                        return Err(RuleError::BadHash);
                    };
                    if !self.passwords.contains(&hash) {
                        self.passwords.push(hash);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let hash = if op[0] == b'<' {
                        hash_password(&op[1..])
                    } else if valid_hash(&op[1..]) {
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    } else {
                        return Err(RuleError::BadHash);
                    };
                    let Some(i) = self.passwords.iter().position(|p| *p == hash) else {
                        return Err(RuleError::NoSuchPassword);
                    };
                    self.passwords.remove(i);
                }
                _ => self.apply_selector_rule(op, &lower)?,
            },
        }
        Ok(())
    }

    /// A rule about commands, keys or channels (Redis's `ACLSetSelector`).
    fn apply_selector_rule(&mut self, op: &[u8], lower: &str) -> Result<(), RuleError> {
        let cmds = AclCommands::get();
        match lower {
            "allkeys" | "~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            "allchannels" | "&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => {
                self.commands.iter_mut().for_each(|c| *c = true);
                self.all_commands = true;
                self.future = true;
                self.first_args.clear();
            }
            "nocommands" | "-@all" => {
                self.commands.iter_mut().for_each(|c| *c = false);
                self.all_commands = false;
                self.future = false;
                self.first_args.clear();
            }
            _ if op[0] == b'~' || op[0] == b'%' => {
                if self.all_keys {
                    return Err(RuleError::KeyAfterAll);
                }
                let (access, offset) = if op[0] == b'%' {
                    let mut access = 0;
                    let mut i = 1;
                    loop {
                        match op.get(i).map(u8::to_ascii_uppercase) {
                            Some(b'R') if access & R == 0 => access |= R,
                            Some(b'W') if access & W == 0 => access |= W,
                            Some(b'~') => {
                                i += 1;
                                break;
                            }
                            _ => return Err(RuleError::Syntax),
                        }
                        i += 1;
                    }
                    (access, i)
                } else {
                    (R | W, 1)
                };
                let pattern = &op[offset..];
                if has_spaces(pattern) {
                    return Err(RuleError::Syntax);
                }
                match self.keys.iter_mut().find(|k| k.pattern == pattern) {
                    Some(k) => k.access |= access,
                    None => self.keys.push(KeyPattern {
                        access,
                        pattern: pattern.to_vec(),
                    }),
                }
                self.all_keys = false;
            }
            _ if op[0] == b'&' => {
                if self.all_channels {
                    return Err(RuleError::ChannelAfterAll);
                }
                let pattern = &op[1..];
                if has_spaces(pattern) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|c| c == pattern) {
                    self.channels.push(pattern.to_vec());
                }
                self.all_channels = false;
            }
            _ if op[0] == b'+' && op.get(1) != Some(&b'@') => {
                let name = &lower[1..];
                match name.rsplit_once('|') {
                    None => {
                        let id = cmds.lookup(name).ok_or(RuleError::UnknownName)?;
                        self.change(id, true);
                    }
                    Some((parent, sub)) => {
                        let id = cmds.lookup(parent).ok_or(RuleError::UnknownName)?;
                        if cmds.list[id].parent.is_some() {
                            return Err(RuleError::SubcommandFirstArg);
                        }
                        if sub.is_empty() {
                            return Err(RuleError::Syntax);
                        }
                        if !cmds.list[id].children.is_empty() {
                            let sid = cmds.lookup(name).ok_or(RuleError::UnknownName)?;
                            self.change(sid, true);
                        } else {
                            self.allow_first_arg(id, sub);
                        }
                    }
                }
            }
            _ if op[0] == b'-' && op.get(1) != Some(&b'@') => {
                let id = cmds.lookup(&lower[1..]).ok_or(RuleError::UnknownName)?;
                self.change(id, false);
            }
            _ if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') => {
                let bit = category_bit(&lower[2..]).ok_or(RuleError::UnknownName)?;
                let allow = op[0] == b'+';
                for id in 0..cmds.list.len() {
                    if cmds.list[id].categories & bit != 0 {
                        self.change(id, allow);
                    }
                }
            }
            _ => return Err(RuleError::Syntax),
        }
        Ok(())
    }

    fn set_bit(&mut self, id: usize, allow: bool) {
        self.commands[id] = allow;
        if !allow {
            self.all_commands = false;
        }
    }

    /// Allows or denies a command, and all its subcommands (Redis's `ACLChangeSelectorPerm`).
    fn change(&mut self, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.first_args.retain(|(c, _)| *c != id);
        for &c in &AclCommands::get().list[id].children {
            self.set_bit(c, allow);
        }
    }

    fn allow_first_arg(&mut self, id: usize, arg: &str) {
        match self.first_args.iter_mut().find(|(c, _)| *c == id) {
            Some((_, args)) => {
                if !args.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
                    args.push(arg.to_string());
                }
            }
            None => self.first_args.push((id, vec![arg.to_string()])),
        }
    }

    /// The user's command rules. `compact` is Redis's description (`ACL LIST`, `ACL
    /// GETUSER`): the categories that fit best, then single commands. Otherwise every
    /// command is listed one by one: the stored form, which reads back exactly.
    pub fn command_rules(&self, compact: bool) -> String {
        let cmds = AclCommands::get();
        let mut rules: Vec<String> = Vec::new();
        let mut fake = User::new("");
        let additive = !self.future;
        let base = if additive { "-@all" } else { "+@all" };
        rules.push(base.into());
        fake.apply_rule(base.as_bytes()).expect("base rule");
        if compact {
            // Redis's best fit: repeatedly the category with the fewest differences from the
            // user's commands (more alike than different), applied to a copy of the user.
            let mut temp = self.clone();
            let mut applied = [false; CATEGORIES.len()];
            loop {
                let mut best = None;
                let (mut mindiff, mut maxsame) = (usize::MAX, 0);
                for (j, cat) in CATEGORIES.iter().enumerate() {
                    if applied[j] {
                        continue;
                    }
                    let bit = 1u32 << j;
                    let (mut on, mut off) = (0, 0);
                    for (id, c) in cmds.list.iter().enumerate() {
                        if c.categories & bit != 0 {
                            if temp.commands[id] {
                                on += 1;
                            } else {
                                off += 1;
                            }
                        }
                    }
                    let (diff, same) = if additive { (off, on) } else { (on, off) };
                    if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                        best = Some((j, *cat));
                        mindiff = diff;
                        maxsame = same;
                    }
                }
                let Some((j, cat)) = best else { break };
                let (op, inv) = if additive {
                    (format!("+@{cat}"), format!("-@{cat}"))
                } else {
                    (format!("-@{cat}"), format!("+@{cat}"))
                };
                fake.apply_rule(op.as_bytes()).expect("category rule");
                temp.apply_rule(inv.as_bytes()).expect("category rule");
                rules.push(op);
                applied[j] = true;
            }
        }
        for (id, c) in cmds.list.iter().enumerate() {
            let user = self.commands[id];
            if user != fake.commands[id] {
                rules.push(format!("{}{}", if user { "+" } else { "-" }, c.fullname));
                fake.change(id, user);
            }
            if !user {
                if let Some((_, args)) = self.first_args.iter().find(|(c2, _)| *c2 == id) {
                    for a in args {
                        rules.push(format!("+{}|{a}", c.fullname));
                    }
                }
            }
        }
        debug_assert_eq!(fake.commands, self.commands);
        rules.join(" ")
    }

    fn flag_words(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// The key patterns as `ACL GETUSER` shows them.
    pub fn keys_text(&self) -> Vec<u8> {
        if self.all_keys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            k.describe(&mut out);
        }
        out
    }

    /// The channel patterns as `ACL GETUSER` shows them.
    pub fn channels_text(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// The user's rules in Redis's `ACL LIST` form (without `user <name> `); `compact: false`
    /// lists commands one by one (the stored form).
    pub fn describe(&self, compact: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for f in self.flag_words() {
            out.extend_from_slice(f.as_bytes());
            out.push(b' ');
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        out.extend(self.selector_text(compact));
        for s in &self.selectors {
            out.extend_from_slice(b" (");
            out.extend(s.selector_text(compact));
            out.push(b')');
        }
        out
    }

    /// The key, channel and command rules (Redis's `ACLDescribeSelector`).
    fn selector_text(&self, compact: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for k in &self.keys {
                k.describe(&mut out);
                out.push(b' ');
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.command_rules(compact).as_bytes());
        out
    }

    /// `ACL GETUSER`'s flags.
    pub fn flags(&self) -> Vec<&'static str> {
        self.flag_words()
    }

    /// Whether `pass` is one of the user's passwords (any password is, with `nopass`); a
    /// disabled user accepts none.
    pub fn accepts(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(pass);
        // Every stored hash is compared in full: the time taken says nothing about them.
        self.passwords.iter().fold(false, |found, p| {
            let same = p
                .bytes()
                .zip(hash.bytes())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0;
            found | same
        })
    }

    /// Whether the user may run `spec` with `argv`: its root rules or one of its selectors
    /// allow it; else the most telling refusal (Redis's `ACLCheckAllUserCommandPerm`: a
    /// channel over a key over the command, then the later argument).
    pub fn check(&self, spec: &CommandSpec, argv: &[Bytes]) -> Result<(), Denied> {
        let rank = |d: Denied| match d {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        };
        let mut relevant = match self.check_selector(spec, argv) {
            Ok(()) => return Ok(()),
            Err(d) => d,
        };
        for s in &self.selectors {
            match s.check_selector(spec, argv) {
                Ok(()) => return Ok(()),
                Err(d) if rank(d) > rank(relevant) => relevant = d,
                Err(_) => {}
            }
        }
        Err(relevant)
    }

    /// Whether one selector's rules allow the call (Redis's `ACLSelectorCheckCmd`).
    fn check_selector(&self, spec: &CommandSpec, argv: &[Bytes]) -> Result<(), Denied> {
        if self.unrestricted() {
            return Ok(());
        }
        let cmds = AclCommands::get();
        if !self.all_commands && !no_auth(spec.name) {
            let id = cmds.id_of(spec, argv);
            if !self.commands[id] {
                let idx = if cmds.list[id].parent.is_some() { 2 } else { 1 };
                let allowed = argv.get(idx).is_some_and(|arg| {
                    self.first_args.iter().any(|(c, args)| {
                        *c == id && args.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(arg))
                    })
                });
                if !allowed {
                    return Err(Denied::Command);
                }
            }
        }
        if !self.all_keys {
            let name = command::full_name(spec, argv);
            let access = key_access(spec, &name, argv);
            for (i, key) in spec.keys(argv).into_iter().enumerate() {
                let need = match access {
                    Some(a) => a[i.min(a.len() - 1)],
                    None => 0,
                };
                let ok = self.keys.iter().any(|p| {
                    p.access & need == need && crate::glob::glob_match(&p.pattern, key, false)
                });
                if !ok {
                    return Err(Denied::Key(position(argv, key)));
                }
            }
        }
        if !self.all_channels {
            if let Some((from, step, pattern)) = channel_args(spec.name, argv.len()) {
                let mut i = from;
                while i < argv.len() {
                    let ch = &argv[i];
                    let ok = self.channels.iter().any(|p| {
                        if pattern {
                            p[..] == ch[..]
                        } else {
                            crate::glob::glob_match(p, ch, false)
                        }
                    });
                    if !ok {
                        return Err(Denied::Channel(i));
                    }
                    i += step;
                }
            }
        }
        Ok(())
    }

    /// Whether the user (its root rules or a selector) may publish to or subscribe to
    /// `channel` (a pattern, literally).
    pub fn channel_allowed(&self, channel: &[u8], pattern: bool) -> bool {
        self.selector_allows_channel(channel, pattern)
            || self
                .selectors
                .iter()
                .any(|s| s.selector_allows_channel(channel, pattern))
    }

    fn selector_allows_channel(&self, channel: &[u8], pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if pattern {
                    p[..] == channel[..]
                } else {
                    crate::glob::glob_match(p, channel, false)
                }
            })
    }
}

/// The index in `argv` of `key` (a reference into it).
fn position(argv: &[Bytes], key: &Bytes) -> usize {
    argv.iter().position(|a| std::ptr::eq(a, key)).unwrap_or(1)
}

/// The access each key of the call needs: the table's, refined for the two commands whose
/// access depends on their arguments, as Redis's key specs do.
fn key_access(spec: &CommandSpec, name: &str, argv: &[Bytes]) -> Option<&'static [u8]> {
    match spec.name {
        // SET reads the old value only with GET.
        "set" => Some(
            if argv[3..].iter().any(|a| a.eq_ignore_ascii_case(b"get")) {
                &[R | W]
            } else {
                &[W]
            },
        ),
        // BITFIELD with GET operations only reads.
        "bitfield" => {
            let writes = argv[2..]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(b"set") || a.eq_ignore_ascii_case(b"incrby"));
            Some(if writes { &[R | W] } else { &[R] })
        }
        _ => acl_table::key_access(name).or_else(|| acl_table::key_access(spec.name)),
    }
}

/// Where a pub/sub command's channels are: (first index, step, whether they are patterns).
fn channel_args(name: &str, argc: usize) -> Option<(usize, usize, bool)> {
    match name {
        "publish" | "spublish" if argc >= 2 => Some((1, argc, false)),
        "subscribe" | "ssubscribe" => Some((1, 1, false)),
        "psubscribe" => Some((1, 1, true)),
        _ => None,
    }
}

/// Every user, by name (the default user is always there).
#[derive(Clone, Debug)]
pub struct Users {
    pub map: std::collections::BTreeMap<String, Arc<User>>,
}

impl Users {
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.map.get(name)
    }
}

/// Key of a stored user in the `script` family: `u` + its name.
pub fn user_key(name: &[u8]) -> Vec<u8> {
    [&b"u"[..], name].concat()
}

/// `[start, end)` of the stored users.
pub fn user_range() -> (Vec<u8>, Vec<u8>) {
    (b"u".to_vec(), b"v".to_vec())
}

/// Key of `CONFIG SET requirepass`'s value (replicated, as `CONFIG GET` shows it).
pub const REQUIREPASS_KEY: &[u8] = b"crequirepass";

/// Parses a stored user (its rules, commands one by one).
pub fn parse_stored(name: &str, rules: &[u8]) -> Option<User> {
    let mut u = User::new(name);
    let words = rules.split(|c| *c == b' ').filter(|r| !r.is_empty());
    let Ok(merged) = merge_selectors(words) else {
        tracing::warn!(
            user = name,
            "stored ACL rules have an unclosed selector; skipped"
        );
        return Some(u);
    };
    for r in merged.iter().map(Vec::as_slice) {
        if let Err(e) = u.apply_rule(r) {
            tracing::warn!(
                user = name,
                rule = %String::from_utf8_lossy(r),
                "stored ACL rule not understood ({}); skipped",
                e.message()
            );
        }
    }
    Some(u)
}

/// One `ACL LOG` entry.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: Vec<u8>,
    pub username: String,
    pub at_ms: u64,
    pub client_info: String,
}

/// `acllog-max-len`'s default.
pub const LOG_MAX: usize = 128;

/// The node's ACL state: the applied users, and the security log.
pub struct Acl {
    users: RwLock<Arc<Users>>,
    /// Bumped each time the users change: connections re-read their user.
    generation: AtomicU64,
    /// `--requirepass`: the default user's password until the cluster has one of its own.
    boot_password: Option<Vec<u8>>,
    log: Mutex<VecDeque<LogEntry>>,
}

impl Acl {
    pub fn new(boot_password: Option<Vec<u8>>) -> Acl {
        let acl = Acl {
            users: RwLock::new(Arc::new(Users {
                map: Default::default(),
            })),
            generation: AtomicU64::new(0),
            boot_password,
            log: Mutex::new(VecDeque::new()),
        };
        acl.install(Vec::new());
        acl
    }

    /// Replaces the users with the stored ones (`stored`: name, rules).
    pub fn install(&self, stored: Vec<(String, Vec<u8>)>) {
        let mut map: std::collections::BTreeMap<String, Arc<User>> = stored
            .into_iter()
            .filter_map(|(n, r)| parse_stored(&n, &r).map(|u| (n, Arc::new(u))))
            .collect();
        if !map.contains_key("default") {
            let mut d = User::default_user();
            if let Some(p) = &self.boot_password {
                d.apply_rule(b"resetpass").expect("rule");
                d.apply_rule(&[b">", &p[..]].concat()).expect("rule");
            }
            map.insert("default".into(), Arc::new(d));
        }
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Users { map });
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reloads the users from the node's committed state.
    pub fn reload(&self, db: &crate::db::Db) {
        self.install(db.users());
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn users(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users().get(name).cloned()
    }

    /// Whether a new connection must authenticate (the default user has a password or is
    /// off).
    pub fn auth_required(&self) -> bool {
        self.user("default").is_none_or(|d| !d.nopass || !d.enabled)
    }

    /// Whether the default user needs no password (protected mode applies).
    pub fn default_nopass(&self) -> bool {
        self.user("default").is_some_and(|d| d.nopass)
    }

    /// `CONFIG GET requirepass`: the cluster's, or this node's `--requirepass` until the
    /// cluster has one.
    pub fn requirepass(&self, db: &crate::db::Db) -> Vec<u8> {
        db.view()
            .script_entry(REQUIREPASS_KEY)
            .or_else(|| self.boot_password.clone())
            .unwrap_or_default()
    }

    /// Records a refusal (Redis's `addACLLogEntry`: a like entry within 60 s is counted).
    pub fn log(&self, mut entry: LogEntry) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let like = log.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.at_ms.abs_diff(entry.at_ms) <= 60_000
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(i) = like {
            let mut e = log.remove(i).expect("found");
            e.count += 1;
            e.at_ms = entry.at_ms;
            e.client_info = std::mem::take(&mut entry.client_info);
            log.push_front(e);
            return;
        }
        log.push_front(entry);
        log.truncate(LOG_MAX);
    }

    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().take(count).cloned().collect()
    }

    pub fn log_reset(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Applies a `rockraft.acl` entry: `SETUSER name rule…`, `DELUSER name…`, `LOAD file-text`
/// or `REQUIREPASS pass`. Everything it decides comes from the entry and the stored users.
/// The command prefix of a script run by a restricted user (see [`apply_as`]).
pub const AS_ENTRY: &[u8] = b"rockraft.as";

/// Whether `name` runs a script, whose calls a restricted user's rules must govern.
pub fn runs_script(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// `rockraft.as <user> <command…>`: applies a script command as `user`, whose rules (as this
/// entry finds them, so the same on every node) each of the script's `redis.call`s must pass.
pub fn apply_as(txn: &mut crate::db::Txn, argv: &[Bytes]) -> rockraft_resp::Reply {
    use rockraft_resp::Reply;
    if argv.len() < 3 {
        return Reply::err("ERR bad rockraft.as entry");
    }
    let name = String::from_utf8_lossy(&argv[1]).into_owned();
    let user = match txn.script_entry(&user_key(&argv[1])) {
        Some(rules) => parse_stored(&name, &rules),
        None if name == "default" => Some(User::default_user()),
        None => None,
    };
    let Some(user) = user else {
        // Deleted between the proposal and this entry: its connection is being closed.
        return Reply::err("NOPERM the user executing the script no longer exists");
    };
    // A script command, or a transaction (`rockraft.exec`) holding some.
    let (inner, apply) = match command::lookup(&argv[2]) {
        Some(spec) => match spec.kind {
            command::Kind::Write { apply, .. } => (spec.name, apply),
            _ => return Reply::err("ERR bad rockraft.as entry"),
        },
        None if argv[2].eq_ignore_ascii_case(command::multi::EXEC_ENTRY) => {
            ("", command::multi::apply_exec as command::ApplyFn)
        }
        None => return Reply::err("ERR bad rockraft.as entry"),
    };
    txn.set_acl_user((!user.unrestricted()).then(|| Arc::new(user)));
    let reply = txn.apply_command(inner, apply, &argv[2..]);
    txn.set_acl_user(None);
    reply
}

pub fn apply(txn: &mut crate::db::Txn, argv: &[Bytes]) -> rockraft_resp::Reply {
    use rockraft_resp::Reply;
    let sub = argv.get(1).map(|s| command::upper(s)).unwrap_or_default();
    let stored = |txn: &crate::db::Txn, name: &[u8]| -> Option<User> {
        let rules = txn.script_entry(&user_key(name))?;
        parse_stored(&String::from_utf8_lossy(name), &rules)
    };
    let default_of =
        |txn: &crate::db::Txn| stored(txn, b"default").unwrap_or_else(User::default_user);
    match sub.as_str() {
        "SETUSER" if argv.len() >= 3 => {
            let name = &argv[2];
            if has_spaces(name) {
                return Reply::err("ERR Usernames can't contain spaces or null characters");
            }
            let mut u = if &name[..] == b"default" {
                default_of(txn)
            } else {
                stored(txn, name).unwrap_or_else(|| User::new(&String::from_utf8_lossy(name)))
            };
            if let Err(e) = u.apply_rules(&argv[3..]) {
                return Reply::err(format!("ERR {e}"));
            }
            txn.put_script_entry(&user_key(name), &u.describe(false));
            Reply::ok()
        }
        "DELUSER" if argv.len() >= 3 => {
            if argv[2..].iter().any(|n| &n[..] == b"default") {
                return Reply::err("ERR The 'default' user cannot be removed");
            }
            let mut deleted = 0;
            for n in &argv[2..] {
                if txn.script_entry(&user_key(n)).is_some() {
                    txn.delete_script_entry(&user_key(n));
                    deleted += 1;
                }
            }
            Reply::Int(deleted)
        }
        "REQUIREPASS" if argv.len() == 3 => {
            let mut d = default_of(txn);
            d.apply_rule(b"resetpass").expect("rule");
            if argv[2].is_empty() {
                d.apply_rule(b"nopass").expect("rule");
            } else {
                d.apply_rule(&[b">", &argv[2][..]].concat()).expect("rule");
            }
            txn.put_script_entry(&user_key(b"default"), &d.describe(false));
            txn.put_script_entry(REQUIREPASS_KEY, &argv[2]);
            Reply::ok()
        }
        "LOAD" if argv.len() == 3 => match parse_file(&argv[2], "aclfile") {
            Ok(users) => {
                txn.clear_script_entries(user_range());
                let mut has_default = false;
                for u in users {
                    has_default |= u.name == "default";
                    txn.put_script_entry(&user_key(u.name.as_bytes()), &u.describe(false));
                }
                if !has_default {
                    txn.put_script_entry(
                        &user_key(b"default"),
                        &User::default_user().describe(false),
                    );
                }
                Reply::ok()
            }
            Err(e) => Reply::err(format!("ERR {e}")),
        },
        _ => Reply::err("ERR unknown ACL operation in log"),
    }
}

/// Parses an ACL file (Redis's format: `user <name> rule…` per line); the users, or every
/// error in Redis's words (`file` names the file in them).
pub fn parse_file(text: &[u8], file: &str) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    let mut errors = String::new();
    for (n, line) in text.split(|c| *c == b'\n').enumerate() {
        let lineno = n + 1;
        let line = line.trim_ascii_start();
        let line = {
            let mut end = line.len();
            while end > 0 && matches!(line[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
                end -= 1;
            }
            &line[..end]
        };
        if line.is_empty() {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|c| *c == b' ').collect();
        if words[0] != b"user" || words.len() < 2 {
            errors.push_str(&format!(
                "{file}:{lineno} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = String::from_utf8_lossy(words[1]).into_owned();
        if has_spaces(words[1]) {
            errors.push_str(&format!(
                "'{file}:{lineno}: username '{name}' contains invalid characters. "
            ));
            continue;
        }
        if users.iter().any(|u| u.name == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{name}' found on line {lineno}. "
            ));
            continue;
        }
        let mut u = User::new(&name);
        let mut syntax_error = false;
        let Ok(merged) = merge_selectors(words[2..].iter().copied()) else {
            errors.push_str(&format!(
                "{file}:{lineno}: Unmatched parenthesis in selector definition."
            ));
            continue;
        };
        for w in &merged {
            let w: &[u8] = {
                let mut end = w.len();
                while end > 0 && matches!(w[end - 1], b'\t' | b'\r' | b'\n') {
                    end -= 1;
                }
                &w[..end]
            };
            match u.apply_rule(w) {
                Ok(()) => {}
                Err(RuleError::UnknownName) => errors.push_str(&format!(
                    "{file}:{lineno}: Error in applying operation '{}': {}. ",
                    String::from_utf8_lossy(w),
                    RuleError::UnknownName.message()
                )),
                Err(e) if !syntax_error => {
                    errors.push_str(&format!("{file}:{lineno}: {}. ", e.message()));
                    syntax_error = true;
                }
                Err(_) => {}
            }
        }
        users.push(u);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        Err(errors)
    }
}

/// Redis's `ACL SAVE` text for `users`.
pub fn file_text(users: &Users) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, u) in &users.map {
        out.extend_from_slice(b"user ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&u.describe(true));
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn the_default_user_describes_as_redis_does() {
        let d = User::default_user();
        assert_eq!(
            String::from_utf8(d.describe(true)).unwrap(),
            "on nopass ~* &* +@all"
        );
        assert!(d.unrestricted());
    }

    #[test]
    fn a_new_user_is_off_with_nothing() {
        let u = User::new("alice");
        assert_eq!(
            String::from_utf8(u.describe(true)).unwrap(),
            "off resetchannels -@all"
        );
        let mut r = User::new("r");
        r.apply_rules(&b("reset")).unwrap();
        assert_eq!(
            String::from_utf8(r.describe(true)).unwrap(),
            "off sanitize-payload resetchannels -@all"
        );
    }

    #[test]
    fn rules_and_their_errors() {
        let mut u = User::new("u");
        u.apply_rules(&b("on >secret ~app:* %R~ro:* &news +@read +set -get"))
            .unwrap();
        assert!(u.accepts(b"secret"));
        assert!(!u.accepts(b"other"));
        let text = String::from_utf8(u.describe(true)).unwrap();
        assert!(
            text.starts_with(&format!(
                "on #{} ~app:* %R~ro:* resetchannels &news -@all +@read",
                hash_password(b"secret")
            )),
            "{text}"
        );
        assert!(text.contains("+set") && text.contains("-get"), "{text}");
        let err = |rules: &str| User::new("x").apply_rules(&b(rules)).unwrap_err();
        assert_eq!(
            err("+nosuch"),
            "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        assert_eq!(
            err("bogus"),
            "Error in ACL SETUSER modifier 'bogus': Syntax error"
        );
        assert!(err("~* ~a").contains("'~a': Adding a pattern after the *"));
        assert!(err("#abc").contains("must be exactly 64 characters"));
        assert!(err("<nope").contains("does not exist"));
        assert!(
            err("+config|get|x").ends_with("Allowing first-arg of a subcommand is not supported")
        );
        assert!(err("%X~a").ends_with("Syntax error"));
        // A refused rule changes nothing.
        let mut v = User::new("v");
        assert!(v.apply_rules(&b("on +get bogus")).is_err());
        assert_eq!(v, User::new("v"));
    }

    #[test]
    fn the_stored_form_reads_back_exactly() {
        for rules in [
            "on >a ~* &* +@all -@dangerous +flushall",
            "on nopass %W~w:* %R~r:* ~rw:* resetchannels &a* &b -@all +@hash +config|get +select|0 -hget",
            "off +@all -config",
            "on -@all +config -config|set",
        ] {
            let mut u = User::new("u");
            u.apply_rules(&b(rules)).unwrap();
            let stored = u.describe(false);
            let back = parse_stored("u", &stored).unwrap();
            assert_eq!(back.commands, u.commands, "{rules}");
            assert_eq!(back.describe(true), u.describe(true), "{rules}");
            assert_eq!(back.keys, u.keys);
            assert_eq!(back.channels, u.channels);
            assert_eq!(back.passwords, u.passwords);
        }
    }

    #[test]
    fn commands_keys_and_channels_are_checked() {
        let spec = |n: &str| command::lookup(n.as_bytes()).unwrap();
        let mut u = User::new("u");
        u.apply_rules(&b(
            "on nopass ~app:* %R~ro:* +@read +set +publish &news +config|get",
        ))
        .unwrap();
        assert_eq!(u.check(spec("get"), &b("get app:1")), Ok(()));
        assert_eq!(u.check(spec("get"), &b("get ro:1")), Ok(()));
        assert_eq!(u.check(spec("get"), &b("get other")), Err(Denied::Key(1)));
        assert_eq!(u.check(spec("set"), &b("set app:1 v")), Ok(()));
        assert_eq!(u.check(spec("set"), &b("set ro:1 v")), Err(Denied::Key(1)));
        assert_eq!(u.check(spec("del"), &b("del app:1")), Err(Denied::Command));
        assert_eq!(
            u.check(spec("mget"), &b("mget app:1 ro:2 x")),
            Err(Denied::Key(3))
        );
        assert_eq!(u.check(spec("publish"), &b("publish news m")), Ok(()));
        assert_eq!(
            u.check(spec("publish"), &b("publish other m")),
            Err(Denied::Channel(1))
        );
        assert_eq!(u.check(spec("config"), &b("config get maxmemory")), Ok(()));
        assert_eq!(
            u.check(spec("config"), &b("config set maxmemory 1")),
            Err(Denied::Command)
        );
        // AUTH, HELLO, QUIT and RESET are never refused.
        assert_eq!(u.check(spec("auth"), &b("auth a b")), Ok(()));
    }

    #[test]
    fn every_subcommand_belongs_to_a_table_command() {
        let cmds = AclCommands::get();
        for (c, s, _) in acl_table::SUBCOMMANDS {
            assert!(
                cmds.lookup(&format!("{c}|{s}")).is_some(),
                "{c}|{s} has no command {c} in the table"
            );
        }
    }

    #[test]
    fn the_acl_log_groups_like_refusals() {
        let acl = Acl::new(None);
        let entry = |object: &str, at_ms| LogEntry {
            count: 1,
            reason: "command",
            context: "toplevel",
            object: object.as_bytes().to_vec(),
            username: "u".into(),
            at_ms,
            client_info: String::new(),
        };
        acl.log(entry("get", 1000));
        acl.log(entry("get", 2000));
        acl.log(entry("set", 2000));
        let log = acl.log_entries(10);
        assert_eq!(log.len(), 2);
        assert_eq!((log[1].object.as_slice(), log[1].count), (&b"get"[..], 2));
        for i in 0..500 {
            acl.log(entry(&format!("k{i}"), 3000));
        }
        assert_eq!(acl.log_entries(1000).len(), LOG_MAX);
    }
}
