//! The credentials rockraft-ctl (and the tests and benchmarks through it) authenticate with:
//! `--user`/`--pass`, or `ROCKRAFT_AUTH` (`user:pass`, or a password for the default user).
//!
//! Without a user name the default user's is sent (`AUTH default pass`), which also works
//! against a node that needs no password (its default user takes any).

use std::sync::RwLock;

static CREDENTIALS: RwLock<Option<(String, String)>> = RwLock::new(None);

/// Sets the credentials every later connection uses (`None`: no AUTH).
pub fn set(user: Option<&str>, pass: Option<&str>) {
    let creds = pass.map(|p| (user.unwrap_or("default").to_string(), p.to_string()));
    *CREDENTIALS.write().unwrap_or_else(|e| e.into_inner()) = creds;
}

/// Sets the credentials from `ROCKRAFT_AUTH`, if it is set.
pub fn from_env() {
    if let Ok(v) = std::env::var("ROCKRAFT_AUTH") {
        match v.split_once(':') {
            Some((u, p)) => set(Some(u), Some(p)),
            None => set(None, Some(&v)),
        }
    }
}

/// The credentials in use: (user, password).
pub fn get() -> Option<(String, String)> {
    CREDENTIALS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `redis://` URL of `host:port` with the credentials in use.
pub fn url(host_port: &str) -> String {
    match get() {
        Some((u, p)) => format!("redis://{}:{}@{host_port}/", escape(&u), escape(&p)),
        None => format!("redis://{host_port}/"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_escaped_in_the_url() {
        super::set(Some("app"), Some("p@ss:w/rd"));
        assert_eq!(
            super::url("127.0.0.1:6379"),
            "redis://app:p%40ss%3Aw%2Frd@127.0.0.1:6379/"
        );
        super::set(None, None);
        assert_eq!(super::url("127.0.0.1:6379"), "redis://127.0.0.1:6379/");
    }
}
