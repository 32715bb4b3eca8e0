//! Dropping root privileges in a worker once the sockets are bound.

use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};

use super::ForkError;

/// The user and group workers run as, resolved from their names in the supervisor (before
/// any fork, so a typo fails at start-up instead of in every worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    uid: Uid,
    gid: Gid,
}

impl Credentials {
    /// Looks up `user` and `group` (names or numeric ids); without a group, the user's
    /// primary group.
    ///
    /// ```
    /// use buvar_axum::fork::Credentials;
    ///
    /// let root = Credentials::lookup("root", Some("0")).unwrap();
    /// assert_eq!(root.uid(), 0);
    /// assert!(Credentials::lookup("no-such-user-here", None).is_err());
    /// ```
    pub fn lookup(user: &str, group: Option<&str>) -> Result<Self, ForkError> {
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(user),
        };
        let user_entry = found
            .map_err(ForkError::sys("look up the worker user"))?
            .ok_or_else(|| ForkError::UnknownUser {
                kind: "user",
                name: user.to_owned(),
            })?;
        let gid = match group {
            None => user_entry.gid,
            Some(group) => {
                let found = match group.parse::<u32>() {
                    Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
                    Err(_) => Group::from_name(group),
                };
                found
                    .map_err(ForkError::sys("look up the worker group"))?
                    .ok_or_else(|| ForkError::UnknownUser {
                        kind: "group",
                        name: group.to_owned(),
                    })?
                    .gid
            }
        };
        Ok(Self {
            uid: user_entry.uid,
            gid,
        })
    }

    /// The numeric user id.
    pub fn uid(&self) -> u32 {
        self.uid.as_raw()
    }

    /// The numeric group id.
    pub fn gid(&self) -> u32 {
        self.gid.as_raw()
    }

    /// Switches this process to the credentials for good: supplementary groups cleared first
    /// (they still need root), then the group (still needs root), then the user.
    pub(super) fn assume(&self) -> Result<(), ForkError> {
        setgroups(&[]).map_err(ForkError::sys("clear the supplementary groups"))?;
        setgid(self.gid).map_err(ForkError::sys("switch to the worker group"))?;
        setuid(self.uid).map_err(ForkError::sys("switch to the worker user"))?;
        Ok(())
    }
}
