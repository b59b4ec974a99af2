//! Checkers: each reads a history or the store's events, never store internals,
//! and explains a failure in terms a person can act on.
//!
//! | checker | reads | rule |
//! |---|---|---|
//! | [`linearizability`] | register history | some total order respects real time and the register model |
//! | [`raft`] | store events | one leader per term; an applied entry never changes |
//! | [`sequential`] | per-client append logs | none lost, none duplicated, order kept |
//! | [`durability`] | final reads in the history | acknowledged writes survive |
//! | [`convergence`] | replica data after healing | replicas of a region are identical, in every data CF |
//! | [`membership`] | store events | a configuration is used only once its entry is applied; one pending change per region; epochs only grow per replica; no peer back from its tombstone |
//! | [`regions`] | store events and PD's table after healing | regions tile the key space, none overlap on a store, each fully replicated, PD agrees |
//! | [`list_append`] | list-append transactions | snapshot isolation (or strong SI, serializable, strict serializable): no forbidden dependency cycle, aborted or intermediate read, lost update |
//! | [`tso`] | timestamps clients got from PD | unique, and increasing in real-time order |
//! | [`routing`] | each client's routing events | a client never routes a key by a region older than one it learned for that key |
//! | [`pd`] | PD's events | every timestamp and id handed out once, in increasing order, restarts included; within a PD lifetime, the regions it takes and routes by never go back to an older epoch or leader |
//! | [`bank`] | bank transfers and snapshot reads | every read sees the total; no account negative or missing |
//! | [`table`] | whole-table checks in one snapshot | every row has exactly its index entries; unique values unique |
//! | [`locks`] | every replica's lock CF after the sweeps | no lock outlives its transaction's resolution |
//! | [`lease_path`] | completed reads and lease-read events | on a healthy cluster, most reads are served on a lease (a promise of speed) |

/// A checker that failed, with what a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub checker: String,
    pub explanation: String,
}

pub mod bank;
pub mod convergence;
pub mod durability;
pub mod lease_path;
pub mod linearizability;
pub mod list_append;
pub mod locks;
pub mod membership;
pub mod pd;
pub mod raft;
pub mod regions;
pub mod routing;
pub mod sequential;
pub mod table;
pub mod tso;
