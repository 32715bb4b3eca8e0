//! The open-file limit: every connection is a descriptor, and the soft `RLIMIT_NOFILE` (often
//! 1024) caps connections long before `max_connections` does. Raised to the hard limit at start,
//! as Go's runtime and nginx's `worker_rlimit_nofile` do, with a warning when even the hard
//! limit cannot hold `max_connections`.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors a worker holds besides its connections: listeners, log and status pipes, the
/// runtime's own, files a handler opens.
const SPARE: u64 = 64;

/// What to do about the limit, decided apart from the system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The soft limit to set, if it changes.
    pub(crate) raise_to: Option<u64>,
    /// Set when even the new limit cannot hold `max_connections` plus the spare descriptors.
    pub(crate) short_of: Option<u64>,
}

/// Raise the soft limit to the hard one; warn when the result is below what `max_connections`
/// needs.
pub(crate) fn plan(soft: u64, hard: u64, max_connections: u64) -> Plan {
    let needed = max_connections.saturating_add(SPARE);
    let limit = soft.max(hard);
    Plan {
        raise_to: (hard > soft).then_some(hard),
        short_of: (limit < needed).then_some(needed),
    }
}

/// Raises this process's soft open-file limit (inherited by the workers) and logs a warning
/// when `max_connections` per worker cannot fit. Failures are logged, never fatal: the
/// service still runs with the limit it has.
pub(crate) fn raise_for(max_connections: usize) {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the open-file limit (RLIMIT_NOFILE)");
            return;
        }
    };
    let max_connections = u64::try_from(max_connections).unwrap_or(u64::MAX);
    let plan = plan(soft, hard, max_connections);
    let mut limit = soft;
    if let Some(raise_to) = plan.raise_to {
        match setrlimit(Resource::RLIMIT_NOFILE, raise_to, hard) {
            Ok(()) => {
                limit = raise_to;
                tracing::debug!(from = soft, to = raise_to, "raised the open-file limit");
            }
            Err(err) => {
                tracing::warn!(error = %err, soft, hard, "cannot raise the open-file limit");
            }
        }
    }
    if let Some(needed) = plan.short_of {
        tracing::warn!(
            limit,
            needed,
            max_connections,
            "the open-file limit (RLIMIT_NOFILE) is {limit}, too low for max_connections = \
             {max_connections} per worker; raise the hard limit (`ulimit -Hn`, systemd's \
             `LimitNOFILE=`, the container runtime's nofile ulimit) or lower \
             `http.max_connections`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        assert_eq!(
            plan(1024, 524_288, 10_000),
            Plan {
                raise_to: Some(524_288),
                short_of: None
            }
        );
    }

    #[test]
    fn a_hard_limit_below_max_connections_is_reported_with_what_is_needed() {
        assert_eq!(
            plan(256, 4096, 10_000),
            Plan {
                raise_to: Some(4096),
                short_of: Some(10_064)
            }
        );
        assert_eq!(
            plan(65_536, 65_536, 100),
            Plan {
                raise_to: None,
                short_of: None
            }
        );
    }
}
