//! Roles and scopes, with JupyterHub 6's semantics.
//!
//! A scope is `name` or `name!filter`, where the filter is `user=NAME`,
//! `group=NAME`, `server=USER/SERVER` or `service=NAME` (and, inside role
//! definitions, the owner-relative `!user`, `!service` and `!server`).
//! Scopes imply their subscopes (`admin:users` ⊃ `users` ⊃ `read:users` ⊃
//! `read:users:name`, ...), and the metascopes `self` (a user's own
//! resources) and `inherit` (everything the token's owner has) stand for
//! sets of scopes.
//!
//! Everything here is pure: group membership, which some filter checks
//! need, is passed in by the caller. The terms follow JupyterHub's:
//! *raw* scopes may hold metascopes and unexpanded filters, *expanded*
//! scopes are fully resolved, *parsed* scopes map each scope name to the
//! resources it covers.

use std::collections::{BTreeMap, BTreeSet};

/// One scope's definition.
#[derive(Debug)]
pub struct ScopeDef {
    /// The scope's name.
    pub name: &'static str,
    /// What it grants, for people.
    pub description: &'static str,
    /// The scopes it implies.
    pub subscopes: &'static [&'static str],
}

macro_rules! scopes {
    ($($name:literal => $desc:literal $([$($sub:literal),* $(,)?])?;)*) => {
        /// Every scope JupyterHub 6 defines.
        pub static DEFINITIONS: &[ScopeDef] = &[
            $(ScopeDef { name: $name, description: $desc, subscopes: &[$($($sub),*)?] }),*
        ];
    };
}

scopes! {
    "(no_scope)" => "Identify the owner of the requesting entity.";
    "self" => "Your own resources";
    "inherit" => "Anything you have access to";
    "admin-ui" => "Access the admin page.";
    "admin:users" => "Read, modify, create, and delete users and their authentication state, not including their servers or tokens."
        ["admin:auth_state", "users", "read:roles:users", "delete:users"];
    "admin:auth_state" => "Read a user's authentication state.";
    "users" => "Read and write permissions to user models (excluding servers, tokens and authentication state)."
        ["read:users", "list:users", "users:activity"];
    "delete:users" => "Delete users.";
    "list:users" => "List users, including at least their names." ["read:users:name"];
    "read:users" => "Read user models (including the URL of the default server if it is running)."
        ["read:users:name", "read:users:groups", "read:users:activity"];
    "read:users:name" => "Read names of users.";
    "read:users:groups" => "Read users' group membership.";
    "read:users:activity" => "Read time of last user activity.";
    "read:roles" => "Read role assignments." ["read:roles:users", "read:roles:services", "read:roles:groups"];
    "read:roles:users" => "Read user role assignments.";
    "read:roles:services" => "Read service role assignments.";
    "read:roles:groups" => "Read group role assignments.";
    "users:activity" => "Update time of last user activity." ["read:users:activity"];
    "admin:servers" => "Read, start, stop, create and delete user servers and their state."
        ["admin:server_state", "servers"];
    "admin:server_state" => "Read and write users' server state.";
    "servers" => "Start and stop user servers." ["read:servers", "start:servers", "delete:servers"];
    "read:servers" => "Read users' names and their server models (excluding the server state)."
        ["read:users:name"];
    "start:servers" => "Start and edit users' servers.";
    "delete:servers" => "Stop and delete users' servers.";
    "tokens" => "Read, write, create and delete user tokens." ["read:tokens"];
    "read:tokens" => "Read user tokens.";
    "admin:groups" => "Read and write group information, create and delete groups."
        ["groups", "read:roles:groups", "delete:groups"];
    "groups" => "Read and write group information, including adding/removing any users to/from groups."
        ["read:groups", "list:groups"];
    "list:groups" => "List groups, including at least their names." ["read:groups:name"];
    "read:groups" => "Read group models." ["read:groups:name"];
    "read:groups:name" => "Read group names.";
    "delete:groups" => "Delete groups.";
    "admin:services" => "Create, read, update, delete services, not including services defined from config files."
        ["list:services", "read:services", "read:roles:services"];
    "list:services" => "List services, including at least their names." ["read:services:name"];
    "read:services" => "Read service models." ["read:services:name"];
    "read:services:name" => "Read service names.";
    "read:hub" => "Read detailed information about the Hub.";
    "access:servers" => "Access user servers via API or browser.";
    "access:services" => "Access services via API or browser.";
    "users:shares" => "Read and revoke a user's access to shared servers." ["read:users:shares"];
    "read:users:shares" => "Read servers shared with a user.";
    "groups:shares" => "Read and revoke a group's access to shared servers." ["read:groups:shares"];
    "read:groups:shares" => "Read servers shared with a group.";
    "read:shares" => "Read information about shared access to servers.";
    "shares" => "Manage access to shared servers."
        ["access:servers", "read:shares", "users:shares", "groups:shares"];
    "proxy" => "Read information about the proxy's routing table, sync the Hub with the proxy and notify the Hub about a new proxy.";
    "shutdown" => "Shutdown the hub.";
    "read:metrics" => "Read prometheus metrics.";
}

/// The definition of the scope called `name`, if there is one.
pub fn definition(name: &str) -> Option<&'static ScopeDef> {
    DEFINITIONS.iter().find(|d| d.name == name)
}

/// A built-in role: name, description and raw scopes.
#[derive(Debug)]
pub struct BuiltinRole {
    /// The role's name.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Its raw scopes.
    pub scopes: &'static [&'static str],
}

/// JupyterHub's default roles. Every user has `user`; admins also have
/// `admin`; `server` is what a user's server token gets; `token` is the
/// default for new tokens.
pub static BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        name: "user",
        description: "Standard user privileges",
        scopes: &["self"],
    },
    BuiltinRole {
        name: "admin",
        description: "Elevated privileges (can do anything)",
        scopes: &[
            "admin-ui",
            "admin:users",
            "admin:servers",
            "admin:services",
            "tokens",
            "admin:groups",
            "list:services",
            "read:services",
            "read:hub",
            "proxy",
            "shutdown",
            "access:services",
            "access:servers",
            "read:roles",
            "read:metrics",
            "shares",
        ],
    },
    BuiltinRole {
        name: "server",
        description: "Post activity only",
        scopes: &["users:activity!user", "access:servers!server"],
    },
    BuiltinRole {
        name: "token",
        description: "Token with same permissions as its owner",
        scopes: &["inherit"],
    },
];

/// The built-in role called `name`.
pub fn builtin_role(name: &str) -> Option<&'static BuiltinRole> {
    BUILTIN_ROLES.iter().find(|r| r.name == name)
}

/// A set of scopes (raw or expanded, as the context says).
pub type ScopeSet = BTreeSet<String>;

/// The resources a parsed scope covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every resource.
    All,
    /// Only these: filter kind (`user`, `group`, `server`, `service`) to
    /// names.
    Some(BTreeMap<String, BTreeSet<String>>),
}

/// Expanded scopes by scope name.
pub type Parsed = BTreeMap<String, Filter>;

/// Who holds a set of scopes: owner-relative filters and `self` expand
/// against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// A user, by name.
    User(&'a str),
    /// A service, by name.
    Service(&'a str),
}

/// Parses expanded scopes. Scopes with an empty filter value are ignored
/// (they cannot come out of [`expand`]).
pub fn parse<'a>(scopes: impl IntoIterator<Item = &'a String>) -> Parsed {
    let mut parsed = Parsed::new();
    for scope in scopes {
        let (base, filter) = split(scope);
        match filter {
            None => {
                parsed.insert(base.to_owned(), Filter::All);
            }
            Some(filter) => {
                let Some((kind, value)) = filter.split_once('=') else {
                    continue;
                };
                if value.is_empty() {
                    continue;
                }
                let entry = parsed
                    .entry(base.to_owned())
                    .or_insert_with(|| Filter::Some(BTreeMap::new()));
                if let Filter::Some(map) = entry {
                    map.entry(kind.to_owned())
                        .or_default()
                        .insert(value.to_owned());
                }
            }
        }
    }
    parsed
}

/// Turns parsed scopes back into expanded scopes.
pub fn unparse(parsed: &Parsed) -> ScopeSet {
    let mut out = ScopeSet::new();
    for (base, filter) in parsed {
        match filter {
            Filter::All => {
                out.insert(base.clone());
            }
            Filter::Some(map) => {
                for (kind, names) in map {
                    for name in names {
                        out.insert(format!("{base}!{kind}={name}"));
                    }
                }
            }
        }
    }
    out
}

/// Drops scopes covered by others (`read:users!user=x` when `read:users`
/// is there).
pub fn reduce(scopes: &ScopeSet) -> ScopeSet {
    unparse(&parse(scopes))
}

fn split(scope: &str) -> (&str, Option<&str>) {
    match scope.split_once('!') {
        Some((base, filter)) => (base, Some(filter)),
        None => (scope, None),
    }
}

/// A scope and all its subscopes, with the scope's filter applied to each
/// (except that `!server` filters do not carry over to `read:users*`
/// subscopes, as in JupyterHub).
fn expand_one(scope: &str) -> ScopeSet {
    let (base, filter) = split(scope);
    let mut names = BTreeSet::new();
    let mut todo = vec![base];
    while let Some(name) = todo.pop() {
        if names.insert(name) {
            if let Some(def) = definition(name) {
                todo.extend(def.subscopes.iter().copied());
            }
        }
    }
    match filter {
        None => names.into_iter().map(str::to_owned).collect(),
        Some(filter) => names
            .into_iter()
            .filter(|name| !(filter.starts_with("server") && name.starts_with("read:user")))
            .map(|name| format!("{name}!{filter}"))
            .collect(),
    }
}

/// The scopes `self` stands for, for the user `name`.
fn self_scopes(name: &str) -> ScopeSet {
    [
        "read:users",
        "users:shares",
        "read:shares",
        "users:activity",
        "servers",
        "tokens",
        "access:servers",
    ]
    .iter()
    .flat_map(|s| expand_one(s))
    .map(|s| format!("{s}!user={name}"))
    .collect()
}

/// Expands raw scopes: subscopes, owner-relative filters (`!user` becomes
/// `!user=OWNER` for a user owner; without a matching owner the scope is
/// dropped) and `self`. `inherit` is left in place for the caller. The
/// result is reduced.
pub fn expand<'a>(raw: impl IntoIterator<Item = &'a str>, owner: Option<Owner<'_>>) -> ScopeSet {
    let mut expanded = ScopeSet::new();
    let mut has_self = false;
    for scope in raw {
        for s in expand_one(scope) {
            let (base, filter) = split(&s);
            match (filter, owner) {
                (Some("user"), Some(Owner::User(name))) => {
                    expanded.insert(format!("{base}!user={name}"));
                }
                (Some("service"), Some(Owner::Service(name))) => {
                    expanded.insert(format!("{base}!service={name}"));
                }
                (Some("user" | "service" | "server"), _) => {
                    tracing::debug!(scope = %s, "not expanding an owner filter without its owner");
                }
                (None, _) if base == "self" => has_self = true,
                _ => {
                    expanded.insert(s);
                }
            }
        }
    }
    if has_self {
        if let Some(Owner::User(name)) = owner {
            expanded.extend(self_scopes(name));
        }
    }
    reduce(&expanded)
}

/// The scopes a token may always use to identify its owner (`GET
/// /hub/api/user`).
pub fn identify_scopes(owner: Owner<'_>) -> ScopeSet {
    match owner {
        Owner::User(name) => [
            format!("read:users:name!user={name}"),
            format!("read:users:groups!user={name}"),
        ]
        .into(),
        Owner::Service(name) => [format!("read:services:name!service={name}")].into(),
    }
}

/// Checks that raw scopes exist and have well-formed filters. The error is
/// JupyterHub's message.
pub fn check_exist<'a>(
    scopes: impl IntoIterator<Item = &'a str>,
    who_for: &str,
) -> Result<(), String> {
    for scope in scopes {
        let (base, filter) = split(scope);
        if definition(base).is_none() {
            if base == "all" {
                return Err("Draft scope 'all' is now called 'inherit'".to_owned());
            }
            return Err(format!("Scope '{scope}' for {who_for} does not exist"));
        }
        if let Some(filter) = filter {
            let exact = matches!(filter, "user" | "service" | "server");
            let prefixed = ["user=", "service=", "group=", "server="]
                .iter()
                .any(|p| filter.strip_prefix(p).is_some_and(|v| !v.is_empty()));
            if !exact && !prefixed {
                return Err(format!(
                    "Scope filter '!{filter}' in scope '{scope}' for {who_for} does not exist"
                ));
            }
        }
    }
    Ok(())
}

/// Group membership, as needed by filter checks: the groups of a user.
pub trait Groups {
    /// The names of the groups `user` is in.
    fn groups_of(&self, user: &str) -> BTreeSet<String>;
}

impl Groups for BTreeMap<String, BTreeSet<String>> {
    fn groups_of(&self, user: &str) -> BTreeSet<String> {
        self.get(user).cloned().unwrap_or_default()
    }
}

/// No group membership known: group filters never match users.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGroups;

impl Groups for NoGroups {
    fn groups_of(&self, _user: &str) -> BTreeSet<String> {
        BTreeSet::new()
    }
}

/// The users named in `user=` and `server=` filters of expanded scopes:
/// whose groups [`intersect`] may need.
pub fn users_named<'a>(sets: impl IntoIterator<Item = &'a ScopeSet>) -> BTreeSet<String> {
    let mut users = BTreeSet::new();
    for set in sets {
        for scope in set {
            if let (_, Some(filter)) = split(scope) {
                if let Some(user) = filter.strip_prefix("user=") {
                    users.insert(user.to_owned());
                } else if let Some(server) = filter.strip_prefix("server=") {
                    users.insert(server.split('/').next().unwrap_or_default().to_owned());
                }
            }
        }
    }
    users
}

/// Intersects two sets of expanded scopes by what they grant: the result
/// grants what both grant. A `user=` filter on one side and a `group=`
/// filter on the other meet in the users of that group; a `server=` filter
/// meets the `user=` filter of its owner.
pub fn intersect(a: &ScopeSet, b: &ScopeSet, groups: &dyn Groups) -> ScopeSet {
    let pa = parse(a);
    let pb = parse(b);
    let mut common = Parsed::new();
    for (base, fa) in &pa {
        let Some(fb) = pb.get(base) else { continue };
        match (fa, fb) {
            (Filter::All, f) | (f, Filter::All) => {
                common.insert(base.clone(), f.clone());
            }
            (Filter::Some(ma), Filter::Some(mb)) => {
                let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (kind, names) in ma {
                    if let Some(other) = mb.get(kind) {
                        let both: BTreeSet<String> = names.intersection(other).cloned().collect();
                        if !both.is_empty() {
                            out.insert(kind.clone(), both);
                        }
                    }
                }
                for (x, y) in [(ma, mb), (mb, ma)] {
                    // servers on one side, covered by their user (or the
                    // user's group) on the other
                    if let Some(servers) = x.get("server") {
                        for server in servers {
                            let user = server.split('/').next().unwrap_or_default();
                            let by_user = y.get("user").is_some_and(|u| u.contains(user));
                            let by_group = y
                                .get("group")
                                .is_some_and(|g| !groups.groups_of(user).is_disjoint(g));
                            if by_user || by_group {
                                out.entry("server".into())
                                    .or_default()
                                    .insert(server.clone());
                            }
                        }
                    }
                    // users on one side, covered by a group on the other
                    if let (Some(users), Some(gs)) = (x.get("user"), y.get("group")) {
                        for user in users {
                            if !groups.groups_of(user).is_disjoint(gs) {
                                out.entry("user".into()).or_default().insert(user.clone());
                            }
                        }
                    }
                }
                if !out.is_empty() {
                    common.insert(base.clone(), Filter::Some(out));
                }
            }
        }
    }
    reduce(&unparse(&common))
}

/// A resource that a filtered scope may cover.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// A user, by name.
    User(&'a str),
    /// A user's server: the user's name and the server's name.
    Server(&'a str, &'a str),
    /// A group, by name.
    Group(&'a str),
    /// A service, by name.
    Service(&'a str),
}

/// Whether `filter` covers `resource`. `groups` gives the groups of users
/// (for `group=` filters on users and servers).
pub fn covers(filter: &Filter, resource: Resource<'_>, groups: &dyn Groups) -> bool {
    let map = match filter {
        Filter::All => return true,
        Filter::Some(map) => map,
    };
    let has = |kind: &str, name: &str| map.get(kind).is_some_and(|s| s.contains(name));
    let user = match resource {
        Resource::Group(name) => return has("group", name),
        Resource::Service(name) => return has("service", name),
        Resource::User(user) => user,
        Resource::Server(user, server) => {
            if has("server", &format!("{user}/{server}")) {
                return true;
            }
            user
        }
    };
    if has("user", user) {
        return true;
    }
    match map.get("group") {
        Some(wanted) => !groups.groups_of(user).is_disjoint(wanted),
        None => false,
    }
}

/// Whether `parsed` grants scope `name` on `resource` (or on everything,
/// with `None`).
pub fn has_scope(
    name: &str,
    resource: Option<Resource<'_>>,
    parsed: &Parsed,
    groups: &dyn Groups,
) -> bool {
    match (parsed.get(name), resource) {
        (None, _) => false,
        (Some(Filter::All), _) => true,
        (Some(Filter::Some(_)), None) => false,
        (Some(filter), Some(resource)) => covers(filter, resource, groups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> ScopeSet {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subscopes_expand() {
        let e = expand(["admin:users"], None);
        for s in [
            "admin:users",
            "admin:auth_state",
            "users",
            "read:users",
            "list:users",
            "users:activity",
            "read:users:name",
            "read:users:groups",
            "read:users:activity",
            "read:roles:users",
            "delete:users",
        ] {
            assert!(e.contains(s), "{s} in {e:?}");
        }
        assert!(!e.contains("tokens"));
        assert_eq!(e.len(), 11);
    }

    #[test]
    fn filters_carry_to_subscopes() {
        let e = expand(["read:users!user=jhtest-a"], None);
        assert_eq!(
            e,
            set(&[
                "read:users!user=jhtest-a",
                "read:users:name!user=jhtest-a",
                "read:users:groups!user=jhtest-a",
                "read:users:activity!user=jhtest-a",
            ])
        );
        // server filters don't leak into read:users
        let e = expand(["read:servers!server=u/s"], None);
        assert_eq!(e, set(&["read:servers!server=u/s"]));
    }

    #[test]
    fn self_matches_jupyterhub() {
        // as JupyterHub 6.1 reports for a user's own inherit token
        let e = expand(["self"], Some(Owner::User("jhtest-a")));
        let want: ScopeSet = [
            "access:servers",
            "delete:servers",
            "read:servers",
            "read:shares",
            "read:tokens",
            "read:users",
            "read:users:activity",
            "read:users:groups",
            "read:users:name",
            "read:users:shares",
            "servers",
            "start:servers",
            "tokens",
            "users:activity",
            "users:shares",
        ]
        .iter()
        .map(|s| format!("{s}!user=jhtest-a"))
        .collect();
        assert_eq!(e, want);
        // self means nothing for a service
        assert!(expand(["self"], Some(Owner::Service("svc"))).is_empty());
    }

    #[test]
    fn owner_filters() {
        let e = expand(["users:activity!user"], Some(Owner::User("u1")));
        assert_eq!(
            e,
            set(&["users:activity!user=u1", "read:users:activity!user=u1"])
        );
        assert!(expand(["users:activity!user"], Some(Owner::Service("s"))).is_empty());
        let e = expand(["read:services!service"], Some(Owner::Service("s")));
        assert!(e.contains("read:services!service=s"));
    }

    #[test]
    fn reduce_drops_covered() {
        let r = reduce(&set(&["read:users", "read:users!user=x", "tokens!group=g"]));
        assert_eq!(r, set(&["read:users", "tokens!group=g"]));
    }

    #[test]
    fn check_exist_messages() {
        assert!(check_exist(["read:users!user=x", "self", "inherit"], "token").is_ok());
        assert_eq!(
            check_exist(["nonsense"], "token").unwrap_err(),
            "Scope 'nonsense' for token does not exist"
        );
        assert!(
            check_exist(["all"], "token")
                .unwrap_err()
                .contains("inherit")
        );
        assert!(check_exist(["read:users!bogus=x"], "token").is_err());
        assert!(check_exist(["read:users!user="], "token").is_err());
        assert!(check_exist(["read:users!user"], "role r").is_ok());
    }

    #[test]
    fn intersection() {
        let none = NoGroups;
        let a = expand(["admin:users"], None);
        let b = expand(["read:users!user=x"], None);
        assert_eq!(intersect(&a, &b, &none), b);
        assert_eq!(intersect(&b, &a, &none), b);
        // disjoint filters give nothing
        let c = expand(["read:users!user=y"], None);
        assert!(intersect(&b, &c, &none).is_empty());
        // a user filter meets a group filter through membership
        let g = expand(["read:users!group=g1"], None);
        let groups: BTreeMap<String, BTreeSet<String>> =
            [("x".to_owned(), set(&["g1"]))].into_iter().collect();
        assert_eq!(intersect(&b, &g, &groups), b);
        assert!(intersect(&c, &g, &groups).is_empty());
        // servers meet their user's filter
        let s = set(&["read:servers!server=x/s1", "read:servers!server=y/s1"]);
        let u = expand(["read:servers!user=x"], None);
        assert_eq!(intersect(&s, &u, &none), set(&["read:servers!server=x/s1"]));
    }

    #[test]
    fn has_scope_with_filters() {
        let groups: BTreeMap<String, BTreeSet<String>> =
            [("m".to_owned(), set(&["g1"]))].into_iter().collect();
        let p = parse(&expand(
            ["read:users!user=x", "read:users!group=g1", "servers!user=x"],
            None,
        ));
        assert!(has_scope(
            "read:users",
            Some(Resource::User("x")),
            &p,
            &groups
        ));
        assert!(has_scope(
            "read:users",
            Some(Resource::User("m")),
            &p,
            &groups
        ));
        assert!(!has_scope(
            "read:users",
            Some(Resource::User("y")),
            &p,
            &groups
        ));
        assert!(!has_scope("read:users", None, &p, &groups));
        assert!(has_scope(
            "read:servers",
            Some(Resource::Server("x", "")),
            &p,
            &groups
        ));
        assert!(!has_scope(
            "read:servers",
            Some(Resource::Server("y", "")),
            &p,
            &groups
        ));
        assert!(!has_scope(
            "admin:users",
            Some(Resource::User("x")),
            &p,
            &groups
        ));
        let all = parse(&expand(["admin:groups"], None));
        assert!(has_scope(
            "read:groups",
            Some(Resource::Group("any")),
            &all,
            &NoGroups
        ));
        assert!(has_scope("delete:groups", None, &all, &NoGroups));
    }

    #[test]
    fn admin_role_covers_everything_but_metascopes() {
        let admin = builtin_role("admin").unwrap();
        let e = expand(admin.scopes.iter().copied(), Some(Owner::User("a")));
        for d in DEFINITIONS {
            if !["(no_scope)", "self", "inherit"].contains(&d.name) {
                assert!(e.contains(d.name), "admin lacks {}", d.name);
            }
        }
    }
}
