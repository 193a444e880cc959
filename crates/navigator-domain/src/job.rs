//! Job stages, statuses and the one table of legal status transitions (SPEC §3).
//!
//! Which service moves a job out of each status:
//! - `queued`, `retrying`: a worker's claim (→ `running`) once `run_at` has passed; cancellation.
//! - `running`: the worker holding the lease (→ next status after a stage), or the rescuer once
//!   the lease has expired (→ `retrying`).
//! - `waiting`: an external event or `wake_at` (→ `queued`), or a timeout (→ `retrying`).
//! - `failed`, `complete`: only an explicit retry or re-process (→ `queued`).
//! - `cancelled`: nothing; it is final.

use serde::{Deserialize, Serialize};

/// The four pipeline stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Parse,
    Chunk,
    Embed,
    Index,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Parse, Stage::Chunk, Stage::Embed, Stage::Index];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Chunk => "chunk",
            Stage::Embed => "embed",
            Stage::Index => "index",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The stage after this one, or `None` after `index`.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Parse => Some(Stage::Chunk),
            Stage::Chunk => Some(Stage::Embed),
            Stage::Embed => Some(Stage::Index),
            Stage::Index => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's status (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Waiting,
    Retrying,
    Complete,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Waiting,
        JobStatus::Retrying,
        JobStatus::Complete,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Waiting => "waiting",
            JobStatus::Retrying => "retrying",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Statuses a worker may claim from (once `run_at` has passed).
    pub fn is_claimable(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Retrying)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one list of legal status moves. Stores refuse anything else with `StaleState`/`Illegal`.
pub const TRANSITIONS: &[(JobStatus, JobStatus)] = {
    use JobStatus::*;
    &[
        (Queued, Running),
        (Queued, Cancelled),
        (Retrying, Running),
        (Retrying, Cancelled),
        (Running, Queued),
        (Running, Waiting),
        (Running, Retrying),
        (Running, Complete),
        (Running, Failed),
        (Running, Cancelled),
        (Waiting, Queued),
        (Waiting, Retrying),
        (Waiting, Cancelled),
        (Failed, Queued),
        (Complete, Queued),
    ]
};

/// Whether `from → to` is a legal transition.
pub fn transition_allowed(from: JobStatus, to: JobStatus) -> bool {
    TRANSITIONS.contains(&(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_cancelled_has_no_way_out_and_nothing_moves_to_itself() {
        for to in JobStatus::ALL {
            assert!(!transition_allowed(JobStatus::Cancelled, to));
        }
        for s in JobStatus::ALL {
            assert!(!transition_allowed(s, s), "{s} -> {s} must be refused");
        }
    }

    #[test]
    fn only_claimable_statuses_move_to_running() {
        for from in JobStatus::ALL {
            assert_eq!(
                transition_allowed(from, JobStatus::Running),
                from.is_claimable(),
                "{from} -> running"
            );
        }
    }

    #[test]
    fn the_table_is_exactly_the_documented_set() {
        let mut allowed = 0;
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                if transition_allowed(from, to) {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, TRANSITIONS.len());
        assert_eq!(allowed, 15);
        // A few moves that must never happen.
        assert!(!transition_allowed(JobStatus::Complete, JobStatus::Running));
        assert!(!transition_allowed(JobStatus::Failed, JobStatus::Running));
        assert!(!transition_allowed(JobStatus::Queued, JobStatus::Complete));
        assert!(!transition_allowed(JobStatus::Waiting, JobStatus::Running));
    }

    #[test]
    fn stages_run_in_order_and_round_trip() {
        assert_eq!(Stage::Parse.next(), Some(Stage::Chunk));
        assert_eq!(Stage::Index.next(), None);
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
    }
}
