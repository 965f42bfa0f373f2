//! The attempt state machine and the text form of states in the database.

use errand_protocol::AttemptState;

use crate::StoreError;

/// Whether `from → to` is a transition a caller may record with a `state_changed` event.
///
/// `queued → preparing` happens only through [`crate::Store::lease_next`] (it takes a lease),
/// and `preparing → queued` only through [`crate::Store::release`] or
/// [`crate::Store::recover_expired`] (they drop it); this function says no to both so that no
/// attempt is ever in flight without a lease. Nothing leaves a terminal state.
pub fn allowed_transition(from: AttemptState, to: AttemptState) -> bool {
    use AttemptState::*;
    matches!(
        (from, to),
        (Queued, Cancelled | Failed)
            | (Preparing, Running | Failed | Cancelled | TimedOut)
            | (Running, Succeeded | Failed | Cancelled | TimedOut)
    )
}

pub(crate) fn to_text(state: AttemptState) -> &'static str {
    use AttemptState::*;
    match state {
        Queued => "queued",
        Preparing => "preparing",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        TimedOut => "timed_out",
    }
}

pub(crate) fn from_text(text: &str) -> Result<AttemptState, StoreError> {
    use AttemptState::*;
    Ok(match text {
        "queued" => Queued,
        "preparing" => Preparing,
        "running" => Running,
        "succeeded" => Succeeded,
        "failed" => Failed,
        "cancelled" => Cancelled,
        "timed_out" => TimedOut,
        other => {
            return Err(StoreError::Backend(format!(
                "unknown attempt state `{other}` in the database"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptState::*;

    const ALL: [AttemptState; 7] =
        [Queued, Preparing, Running, Succeeded, Failed, Cancelled, TimedOut];

    #[test]
    fn nothing_leaves_a_terminal_state() {
        for from in ALL.iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(!allowed_transition(*from, to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn lease_transitions_are_not_for_callers() {
        assert!(!allowed_transition(Queued, Preparing));
        assert!(!allowed_transition(Preparing, Queued));
        assert!(!allowed_transition(Queued, Running));
        assert!(!allowed_transition(Running, Preparing));
        assert!(allowed_transition(Preparing, Running));
        assert!(allowed_transition(Running, Succeeded));
        assert!(allowed_transition(Queued, Cancelled));
    }

    #[test]
    fn text_round_trips() {
        for state in ALL {
            assert_eq!(from_text(to_text(state)).unwrap(), state);
            // The same spelling as the protocol's JSON.
            assert_eq!(serde_json::to_value(state).unwrap(), to_text(state));
        }
    }
}
