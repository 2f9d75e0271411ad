//! How many connections each peer address has open: the MRD listener and the DICOM node
//! bound one peer's share, so a few sockets from one place cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per peer address.
pub type PeerCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One open connection of a peer address, given back when dropped.
pub struct PeerSlot {
    counts: PeerCounts,
    ip: IpAddr,
}

impl PeerSlot {
    /// A slot for `ip`, if it has fewer than `max` connections open.
    pub fn take(counts: &PeerCounts, ip: IpAddr, max: usize) -> Option<Self> {
        let mut c = counts.lock().expect("peer counts");
        let n = c.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().expect("peer counts");
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}
