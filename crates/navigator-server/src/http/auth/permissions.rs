//! Permissions, roles and the role → permission table (SD-001).
//!
//! A principal's permissions are the union of its roles' permissions. Which rows it sees is a
//! separate question ([`crosses_owners`]): operators, auditors and admins see every owner's
//! rows, everyone else only their own. Content permissions (`documents:*`, `search`) are checked
//! per route, so an operator who lists every owner's jobs still gets `403` on documents.

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
}

impl Permission {
    pub const ALL: [Permission; 11] = [
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
    P::JobsRead,
    P::JobsRetry,
    P::MetricsRead,
    P::UsageRead,
    P::BudgetsWrite,
]);
/// `auditor`: the audit log and usage; no document content.
pub const AUDITOR: PermissionSet = PermissionSet::of(&[P::AuditRead, P::UsageRead]);
/// `service`: nothing by default; an API key's roles scope it.
pub const SERVICE: PermissionSet = PermissionSet::EMPTY;
/// The single principal of `auth.mode: none`: a member that also sets its own budget, reads
/// `/metrics` and the audit log (there is nobody else on a laptop deployment).
pub const LOCAL: PermissionSet = MEMBER.union(PermissionSet::of(&[
    P::BudgetsWrite,
    P::MetricsRead,
    P::AuditRead,
]));

/// Roles whose holders see every owner's rows (content permissions are still checked per route).
pub const CROSS_OWNER_ROLES: &[&str] = &["operator", "auditor", "admin"];

/// Whether any of `roles` sees every owner's rows.
pub fn crosses_owners(roles: &[String]) -> bool {
    roles
        .iter()
        .any(|r| CROSS_OWNER_ROLES.contains(&r.as_str()))
}

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
    /// an error naming the key.
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
        assert!(operator.contains(P::BudgetsWrite));
        let auditor = t.get("auditor").unwrap();
        assert_eq!(auditor.iter().count(), 2);
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
}
