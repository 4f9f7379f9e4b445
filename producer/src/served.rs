//! What a long-lived client remembers of the registry between submits: the kinds it saw served lately,
//! with their declared chunk size, so a stream of small jobs does not read the registry for each one.
//! Only "served" is remembered, and briefly (a worker heartbeats every 2 s): a kind seen unserved is
//! looked up again at once, so a worker that just started is never refused from memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a kind seen served is taken as still served.
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(2);

/// Kinds seen served, with when and their declared chunk size.
#[derive(Default)]
pub(crate) struct ServedKinds {
    seen: Mutex<HashMap<String, (Instant, Option<u32>)>>,
}

impl ServedKinds {
    /// The declared chunk size of `kind` if it was seen served within [`REMEMBERED_FOR`].
    pub(crate) fn recent(&self, kind: &str) -> Option<Option<u32>> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (at, chunk_size) = seen.get(kind)?;
        (at.elapsed() < REMEMBERED_FOR).then_some(*chunk_size)
    }

    /// Remembers that `kind` is served now, with its declared chunk size.
    pub(crate) fn remember(&self, kind: &str, chunk_size: Option<u32>) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.insert(kind.to_owned(), (Instant::now(), chunk_size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_remembered_served_only_briefly() {
        let served = ServedKinds::default();
        assert_eq!(served.recent("square"), None);
        served.remember("square", Some(1000));
        assert_eq!(served.recent("square"), Some(Some(1000)));
        served.seen.lock().unwrap().get_mut("square").unwrap().0 -= REMEMBERED_FOR;
        assert_eq!(served.recent("square"), None, "too old");
    }
}
