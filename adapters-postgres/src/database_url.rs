//! `DATABASE_URL` with one host, or several in libpq's syntax:
//! `postgres://user:pass@host1:5432,host2:5433/db?target_session_attrs=read-write`.
//!
//! sqlx's `PgConnectOptions` holds one host (a list is refused as an "invalid port number"), so the URL is
//! split here into one set of options per host, each parsed by sqlx from a one-host URL with everything
//! else unchanged. With several hosts, or `target_session_attrs=read-write` (or `primary`), the ledger
//! writes only to the host that is the primary, and finds it again when it moves ([`crate::primary`]).
//! A one-host URL without that attribute is handed to sqlx exactly as written.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::errors::ConnectError;

/// One server of the URL: its options, and `host:port` for logs and metrics.
#[derive(Clone)]
pub struct Host {
    pub label: String,
    pub options: PgConnectOptions,
}

impl std::fmt::Debug for Host {
    // The options hold the password: only the label is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("label", &self.label).finish_non_exhaustive()
    }
}

/// A parsed `DATABASE_URL`.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    /// The servers, in the URL's order (the order in which a primary is looked for).
    pub hosts: Vec<Host>,
    /// Whether only a primary may be used: several hosts, or a `target_session_attrs` that asks for it.
    pub primary_only: bool,
}

/// The query parameter of libpq that says which server of the list a session may use.
const TARGET_SESSION_ATTRS: &str = "target_session_attrs";

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Self::one_host(url, false);
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        let (credentials, host_list) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
            None => (String::new(), authority),
        };
        let (path_and_query, wants_primary) = without_target_session_attrs(path_and_query)?;
        let hosts: Vec<&str> = host_list.split(',').collect();
        if hosts.len() == 1 {
            // As sqlx reads it, unless the attribute asked for a primary (sqlx would only warn about it).
            return if wants_primary {
                Self::one_host(&format!("{scheme}://{authority}{path_and_query}"), true)
            } else {
                Self::one_host(url, false)
            };
        }
        let hosts = hosts
            .into_iter()
            .map(|host| {
                if host.is_empty() {
                    return Err(ConnectError::UnsupportedUrl("DATABASE_URL names an empty host in its host list"));
                }
                host_from(&format!("{scheme}://{credentials}{host}{path_and_query}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hosts, primary_only: true })
    }

    fn one_host(url: &str, primary_only: bool) -> Result<Self, ConnectError> {
        Ok(Self { hosts: vec![host_from(url)?], primary_only })
    }

    /// Where the URL points, without the password, for logs.
    pub fn describe(&self) -> String {
        let Some(first) = self.hosts.first() else { return "no host".to_owned() };
        let options = &first.options;
        let place = if self.hosts.len() == 1 {
            format!("host={} port={}", options.get_host(), options.get_port())
        } else {
            let labels: Vec<&str> = self.hosts.iter().map(|host| host.label.as_str()).collect();
            format!("hosts={}", labels.join(","))
        };
        let target = if self.primary_only { " target_session_attrs=primary" } else { "" };
        format!(
            "{place} database={} user={}{target}",
            options.get_database().unwrap_or("(default)"),
            options.get_username()
        )
    }
}

fn host_from(url: &str) -> Result<Host, ConnectError> {
    let options = PgConnectOptions::from_str(url).map_err(ConnectError::InvalidUrl)?;
    Ok(Host { label: format!("{}:{}", options.get_host(), options.get_port()), options })
}

/// The path and query without `target_session_attrs`, and whether it asked for a primary. A value that
/// asks for a standby is refused: the ledger writes.
fn without_target_session_attrs(path_and_query: &str) -> Result<(String, bool), ConnectError> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Ok((path_and_query.to_owned(), false));
    };
    let mut wants_primary = false;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((TARGET_SESSION_ATTRS, "read-write" | "primary")) => wants_primary = true,
            Some((TARGET_SESSION_ATTRS, "any")) => {}
            Some((TARGET_SESSION_ATTRS, _)) => {
                return Err(ConnectError::UnsupportedUrl(
                    "target_session_attrs must be read-write, primary or any: the ledger writes, so it cannot use a standby",
                ));
            }
            _ => kept.push(pair),
        }
    }
    let query = kept.join("&");
    Ok((if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }, wants_primary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(url: &DatabaseUrl) -> Vec<&str> {
        url.hosts.iter().map(|host| host.label.as_str()).collect()
    }

    #[test]
    fn several_hosts_become_one_set_of_options_each_and_only_a_primary_will_do() {
        let url = DatabaseUrl::parse(
            "postgres://ledger:s3cret@db1:5432,db2:5433,db3/bitburst?target_session_attrs=read-write&sslmode=disable",
        )
        .expect("a valid list");
        assert_eq!(labels(&url), ["db1:5432", "db2:5433", "db3:5432"]);
        assert!(url.primary_only);
        for host in &url.hosts {
            assert_eq!(host.options.get_database(), Some("bitburst"));
            assert_eq!(host.options.get_username(), "ledger");
        }
        let described = url.describe();
        assert_eq!(
            described,
            "hosts=db1:5432,db2:5433,db3:5432 database=bitburst user=ledger target_session_attrs=primary"
        );
        assert!(!described.contains("s3cret"));
    }

    #[test]
    fn several_hosts_need_no_attribute_and_primary_means_read_write() {
        for url in ["postgres://u@a:1,b:2/db", "postgresql://u@a:1,b:2/db?target_session_attrs=primary"] {
            let parsed = DatabaseUrl::parse(url).expect("valid");
            assert_eq!(labels(&parsed), ["a:1", "b:2"], "{url}");
            assert!(parsed.primary_only, "{url}");
        }
    }

    #[test]
    fn a_host_shows_no_password_when_debugged() {
        let url = DatabaseUrl::parse("postgres://u:s3cret@a:1,b:2/db").expect("valid");
        assert!(!format!("{url:?}").contains("s3cret"), "{url:?}");
    }

    #[test]
    fn one_host_is_read_as_before() {
        let url = DatabaseUrl::parse("postgres://ledger:s3cret@localhost:5444/bitburst").expect("valid");
        assert_eq!(labels(&url), ["localhost:5444"]);
        assert!(!url.primary_only);
        assert_eq!(url.describe(), "host=localhost port=5444 database=bitburst user=ledger");
    }

    #[test]
    fn one_host_may_still_ask_for_a_primary() {
        let url = DatabaseUrl::parse("postgres://u@h:7/db?target_session_attrs=read-write").expect("valid");
        assert_eq!(labels(&url), ["h:7"]);
        assert!(url.primary_only);
    }

    #[test]
    fn urls_the_ledger_cannot_honour_are_refused() {
        for (url, why) in [
            ("postgres://u@a:1,b:2/db?target_session_attrs=read-only", "asks for a standby"),
            ("postgres://u@a:1/db?target_session_attrs=prefer-standby", "asks for a standby"),
            ("postgres://u@a:1,,b:2/db", "an empty host"),
            ("postgres://u@a:1,b:notaport/db", "a bad port"),
            ("postgres://u@a:1,b:99999/db", "a port out of range"),
        ] {
            assert!(DatabaseUrl::parse(url).is_err(), "{url}: {why}");
        }
    }
}
