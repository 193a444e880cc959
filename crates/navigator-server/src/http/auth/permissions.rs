//! Permissions, roles and the role → permission table (SD-001).
//!
//! A principal's permissions are the union of its roles' permissions. Which rows it sees follows
//! one of them, [`Permission::OwnersAll`] (`owners:all`, "act across owners"): holders see every
//! owner's rows, everyone else only their own. The built-in operator, auditor and admin roles
//! hold it. Content permissions (`documents:*`, `search`) are checked per route, so an operator
//! who lists every owner's jobs still gets `403` on documents; and cross-owner content access
//! is admin-only: `auth.roles` may not give a role other than `admin` both `owners:all` and a
//! content permission (refused at startup, see [`RoleTable::from_config`]).

use std::collections::BTreeMap;
use std::fmt;

/// Something a route requires. The names are part of the configuration contract
/// (`auth.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    DocumentsRead,
    DocumentsWrite,
    DocumentsDelete,
    Search,
    JobsRead,
    JobsRetry,
    UsageRead,
    BudgetsWrite,
    MetricsRead,
    AuditRead,
    KeysManage,
    /// Act across owners: the principal's store queries see every owner's rows (what it may
    /// do with them is still each route's permission).
    OwnersAll,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::DocumentsRead,
        Permission::DocumentsWrite,
        Permission::DocumentsDelete,
        Permission::Search,
        Permission::JobsRead,
        Permission::JobsRetry,
        Permission::UsageRead,
        Permission::BudgetsWrite,
        Permission::MetricsRead,
        Permission::AuditRead,
        Permission::KeysManage,
        Permission::OwnersAll,
    ];

    /// Permissions that reach document content: with [`Permission::OwnersAll`] they would give
    /// every owner's content, which only `admin` may have.
    pub const CONTENT: [Permission; 4] = [
        Permission::DocumentsRead,
        Permission::DocumentsWrite,
        Permission::DocumentsDelete,
        Permission::Search,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::DocumentsRead => "documents:read",
            Permission::DocumentsWrite => "documents:write",
            Permission::DocumentsDelete => "documents:delete",
            Permission::Search => "search",
            Permission::JobsRead => "jobs:read",
            Permission::JobsRetry => "jobs:retry",
            Permission::UsageRead => "usage:read",
            Permission::BudgetsWrite => "budgets:write",
            Permission::MetricsRead => "metrics:read",
            Permission::AuditRead => "audit:read",
            Permission::KeysManage => "keys:manage",
            Permission::OwnersAll => "owners:all",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PermissionSet(u16);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub const fn of(permissions: &[Permission]) -> PermissionSet {
        let mut bits = 0;
        let mut i = 0;
        while i < permissions.len() {
            bits |= permissions[i].bit();
            i += 1;
        }
        PermissionSet(bits)
    }

    pub fn all() -> PermissionSet {
        PermissionSet::of(&Permission::ALL)
    }

    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub const fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

use Permission as P;

/// `member`: its own documents (read, write, delete), search, its jobs, its usage.
pub const MEMBER: PermissionSet = PermissionSet::of(&[
    P::DocumentsRead,
    P::DocumentsWrite,
    P::DocumentsDelete,
    P::Search,
    P::JobsRead,
    P::JobsRetry,
    P::UsageRead,
]);
/// `operator`: every owner's jobs, metrics, usage and budgets; no document content.
pub const OPERATOR: PermissionSet = PermissionSet::of(&[
    P::OwnersAll,
    P::JobsRead,
    P::JobsRetry,
    P::MetricsRead,
    P::UsageRead,
    P::BudgetsWrite,
]);
/// `auditor`: the audit log and every owner's usage; no document content.
pub const AUDITOR: PermissionSet = PermissionSet::of(&[P::OwnersAll, P::AuditRead, P::UsageRead]);
/// `service`: nothing by default; an API key's roles scope it.
pub const SERVICE: PermissionSet = PermissionSet::EMPTY;
/// The single principal of `auth.mode: none`: a member that also sets its own budget, reads
/// `/metrics` and the audit log (there is nobody else on a laptop deployment).
pub const LOCAL: PermissionSet = MEMBER.union(PermissionSet::of(&[
    P::BudgetsWrite,
    P::MetricsRead,
    P::AuditRead,
]));

/// The one role that may combine `owners:all` with content permissions.
pub const CROSS_OWNER_CONTENT_ROLE: &str = "admin";

/// Role name → permissions: the built-in defaults, with `auth.roles` replacing the roles it
/// names (and adding new ones).
#[derive(Debug, Clone)]
pub struct RoleTable {
    roles: BTreeMap<String, PermissionSet>,
}

impl Default for RoleTable {
    fn default() -> Self {
        let roles = [
            ("member", MEMBER),
            ("operator", OPERATOR),
            ("auditor", AUDITOR),
            ("admin", PermissionSet::all()),
            ("service", SERVICE),
        ]
        .into_iter()
        .map(|(name, set)| (name.to_owned(), set))
        .collect();
        RoleTable { roles }
    }
}

impl RoleTable {
    /// The defaults with `overrides` (from `auth.roles`) applied. An unknown permission name is
    /// an error naming the key, and so is `owners:all` together with a content permission
    /// (`documents:*`, `search`) on any role but `admin`: cross-owner content access is
    /// admin-only.
    pub fn from_config(overrides: &BTreeMap<String, Vec<String>>) -> anyhow::Result<RoleTable> {
        let mut table = RoleTable::default();
        for (role, names) in overrides {
            let mut set = PermissionSet::EMPTY;
            for name in names {
                let Some(permission) = Permission::parse(name) else {
                    anyhow::bail!(
                        "auth.roles.{role}: unknown permission {name:?}; known permissions: {}",
                        Permission::ALL.map(Permission::as_str).join(", ")
                    );
                };
                set = set.union(PermissionSet::of(&[permission]));
            }
            if role != CROSS_OWNER_CONTENT_ROLE && set.contains(P::OwnersAll) {
                let content: Vec<&str> = Permission::CONTENT
                    .into_iter()
                    .filter(|p| set.contains(*p))
                    .map(Permission::as_str)
                    .collect();
                if !content.is_empty() {
                    anyhow::bail!(
                        "auth.roles.{role}: owners:all cannot be combined with {} (cross-owner \
                         access to document content is reserved for the admin role)",
                        content.join(", ")
                    );
                }
            }
            table.roles.insert(role.clone(), set);
        }
        Ok(table)
    }

    /// The union of `roles`' permissions; unknown role names grant nothing.
    pub fn permissions(&self, roles: &[String]) -> PermissionSet {
        roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .fold(PermissionSet::EMPTY, |acc, set| acc.union(*set))
    }

    pub fn get(&self, role: &str) -> Option<PermissionSet> {
        self.roles.get(role).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("documents:*"), None);
    }

    #[test]
    fn defaults_match_the_spec() {
        let t = RoleTable::default();
        let member = t.get("member").unwrap();
        assert!(member.contains(P::DocumentsRead) && !member.contains(P::MetricsRead));
        let operator = t.get("operator").unwrap();
        assert!(!operator.contains(P::DocumentsRead) && !operator.contains(P::Search));
        assert!(operator.contains(P::BudgetsWrite) && operator.contains(P::OwnersAll));
        let auditor = t.get("auditor").unwrap();
        assert_eq!(auditor.iter().count(), 3);
        assert!(auditor.contains(P::OwnersAll));
        assert!(!member.contains(P::OwnersAll) && !LOCAL.contains(P::OwnersAll));
        // No built-in role but admin combines owners:all with content.
        for (name, set) in &t.roles {
            if name != CROSS_OWNER_CONTENT_ROLE && set.contains(P::OwnersAll) {
                assert!(
                    Permission::CONTENT.iter().all(|p| !set.contains(*p)),
                    "{name}"
                );
            }
        }
        assert_eq!(t.get("admin").unwrap(), PermissionSet::all());
        assert_eq!(t.get("service").unwrap(), PermissionSet::EMPTY);
        assert!(LOCAL.contains(P::MetricsRead) && LOCAL.contains(P::BudgetsWrite));
        assert!(LOCAL.contains(P::AuditRead) && !LOCAL.contains(P::KeysManage));
    }

    #[test]
    fn config_replaces_a_role_and_rejects_unknown_names() {
        let mut overrides = BTreeMap::new();
        overrides.insert("service".to_owned(), vec!["documents:write".to_owned()]);
        let t = RoleTable::from_config(&overrides).unwrap();
        assert_eq!(
            t.get("service").unwrap(),
            PermissionSet::of(&[P::DocumentsWrite])
        );
        overrides.insert("member".to_owned(), vec!["documents:frobnicate".to_owned()]);
        let e = RoleTable::from_config(&overrides).unwrap_err().to_string();
        assert!(
            e.contains("auth.roles.member") && e.contains("documents:frobnicate"),
            "{e}"
        );
    }

    #[test]
    fn owners_all_with_content_is_admin_only() {
        let table = |role: &str, names: &[&str]| {
            let mut overrides = BTreeMap::new();
            overrides.insert(
                role.to_owned(),
                names.iter().map(|n| (*n).to_owned()).collect(),
            );
            RoleTable::from_config(&overrides)
        };
        for content in Permission::CONTENT {
            let e = table("auditor", &["owners:all", content.as_str()])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("auth.roles.auditor") && e.contains(content.as_str()),
                "{e}"
            );
        }
        let t = table("compliance", &["owners:all", "audit:read"]).unwrap();
        assert!(t.get("compliance").unwrap().contains(P::OwnersAll));
        let t = table("admin", &["owners:all", "documents:read"]).unwrap();
        assert!(t.get("admin").unwrap().contains(P::DocumentsRead));
        // Without owners:all, a content permission is just the principal's own content.
        let t = table("auditor", &["documents:read"]).unwrap();
        assert!(!t.get("auditor").unwrap().contains(P::OwnersAll));
    }
}
