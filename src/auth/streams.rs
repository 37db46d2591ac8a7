//! Open long-lived streams (SSE) per credential: a cap, so one key cannot hold every
//! connection and task of the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Principal;

pub struct StreamSlots {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream; dropping it frees the slot.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    key: String,
}

impl StreamSlots {
    pub fn new(max: usize) -> Self {
        StreamSlots {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn key(principal: &Principal) -> String {
        match principal {
            Principal::Developer(id) => format!("developer:{id}"),
            Principal::ApiKey(id) => format!("api_key:{id}"),
        }
    }

    /// A slot for `principal`, or `None` when it already holds the maximum.
    pub fn acquire(self: &Arc<Self>, principal: &Principal) -> Option<StreamSlot> {
        let key = Self::key(principal);
        let mut open = self.open.lock().expect("stream slots lock");
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("stream slots lock");
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn slots_are_capped_per_credential_and_freed_on_drop() {
        let slots = Arc::new(StreamSlots::new(2));
        let a = Principal::ApiKey(Uuid::from_u128(1));
        let b = Principal::ApiKey(Uuid::from_u128(2));
        let s1 = slots.acquire(&a).unwrap();
        let _s2 = slots.acquire(&a).unwrap();
        assert!(slots.acquire(&a).is_none());
        assert!(slots.acquire(&b).is_some());
        drop(s1);
        assert!(slots.acquire(&a).is_some());
    }
}
