//! A cap on the requests one client address may have in flight before it has shown a
//! valid key (API key or admin token): an anonymous flood from one address gets 429s
//! instead of the gateway's attention. A request holds its place from arrival until
//! its credentials are accepted ([`authenticated`]) or its answer is produced.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Unauthenticated requests in flight per client address.
#[derive(Debug, Default)]
pub struct PreAuthGate {
    max_per_client: usize,
    inflight: Mutex<HashMap<IpAddr, usize>>,
}

/// A request's place in the gate; [`PreAuthSlot::release`] (or dropping every clone)
/// gives it back.
#[derive(Clone, Debug)]
pub struct PreAuthSlot(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    gate: Arc<PreAuthGate>,
    ip: IpAddr,
    released: AtomicBool,
}

impl PreAuthGate {
    /// A gate of `max_per_client` places per address.
    pub fn new(max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_client,
            inflight: Mutex::default(),
        })
    }

    /// A place for a request from `ip`, if it has one left.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<PreAuthSlot> {
        let mut m = crate::sync::lock(&self.inflight);
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        Some(PreAuthSlot(Arc::new(Inner {
            gate: self.clone(),
            ip,
            released: AtomicBool::new(false),
        })))
    }

    fn leave(&self, ip: IpAddr) {
        let mut m = crate::sync::lock(&self.inflight);
        if let Some(n) = m.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

impl PreAuthSlot {
    /// The request's credentials were accepted: it no longer counts.
    pub fn release(&self) {
        if !self.0.released.swap(true, Ordering::AcqRel) {
            self.0.gate.leave(self.0.ip);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.gate.leave(self.ip);
        }
    }
}

/// Releases the pre-authentication place `req` holds, if any.
pub fn authenticated(extensions: &axum::http::Extensions) {
    if let Some(slot) = extensions.get::<PreAuthSlot>() {
        slot.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_address_and_given_back_once() {
        let g = PreAuthGate::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let s1 = g.enter(a).expect("1");
        let s2 = g.enter(a).expect("2");
        assert!(g.enter(a).is_none());
        assert!(g.enter([10, 0, 0, 2].into()).is_some());
        s1.release();
        s1.release();
        let clone = s1.clone();
        drop(s1);
        drop(clone);
        let _s3 = g.enter(a).expect("freed once");
        assert!(g.enter(a).is_none());
        drop(s2);
        assert!(g.enter(a).is_some());
    }
}
