//! What a whole process (a store's or PD's) answers to the testbed's real
//! mode over the admin RPC: the faults its transport injects
//! ([`ProcessFaults`](crate::proto::ProcessFaults): cut links, loss, delay)
//! and its clock's rate. In simulation the simulator does both itself, and
//! these requests are refused.

use crate::proto::{AdminReply, AdminRequest, ServerError};
use crate::transport::Transport;

/// Serves the admin requests about the whole process (a store's or PD's):
/// the faults its transport injects and its clock's rate, which the
/// real-mode runner sets. `None`: the request is about a region.
pub fn serve_process(transport: &Transport, clock: &crate::clock::Clock, request: &AdminRequest) -> Option<Result<AdminReply, ServerError>> {
    let _ = (transport, clock);
    let answer = match request {
        AdminRequest::ChangePeer { .. } | AdminRequest::TransferLeader { .. } | AdminRequest::Split { .. } | AdminRequest::RegionData { .. } => return None,
        #[cfg(madsim)]
        AdminRequest::SetProcessFaults(_) | AdminRequest::SetClockRate { .. } => {
            Err(ServerError::InvalidRequest("process faults and clock rates are set on real processes; the simulator has its own".into()))
        }
        #[cfg(not(madsim))]
        AdminRequest::SetProcessFaults(faults) => {
            transport.set_process_faults(faults.clone());
            Ok(AdminReply::Applied)
        }
        #[cfg(not(madsim))]
        AdminRequest::SetClockRate { rate } => {
            if !(rate.is_finite() && *rate > 0.0) {
                Err(ServerError::InvalidRequest(format!("a clock rate must be positive, not {rate}")))
            } else if !clock.is_drifting() {
                Err(ServerError::InvalidRequest("this process runs on the machine's clock, whose rate cannot be changed".into()))
            } else {
                clock.set_rate(*rate);
                Ok(AdminReply::Applied)
            }
        }
    };
    Some(answer)
}
