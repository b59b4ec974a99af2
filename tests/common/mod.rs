//! What the real-process tests share: free local addresses, and child
//! processes that are killed when the test lets go of them.

use std::net::{SocketAddr, TcpListener};
use std::process::Child;

/// A local address no one listens on yet.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
