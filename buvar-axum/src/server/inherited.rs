//! The sockets a pre-fork worker inherited from its parent, for the server to serve on.

use crate::sockets::{BoundSocket, SocketUri};

/// The sockets a worker inherited, handed to the server once: it turns them into listeners,
/// so that when its listeners close, the worker holds no copy of the sockets open.
#[derive(Debug, Default)]
pub struct InheritedSockets {
    sockets: std::sync::Mutex<Vec<BoundSocket>>,
}

impl InheritedSockets {
    /// Wraps sockets bound by the parent process.
    pub fn new(sockets: Vec<BoundSocket>) -> Self {
        Self {
            sockets: std::sync::Mutex::new(sockets),
        }
    }

    /// Each socket's URI (its name as a component) and the address it is bound to.
    pub(super) fn addresses(&self) -> Vec<(SocketUri, SocketUri)> {
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|socket| (socket.uri().clone(), socket.local_addr().clone()))
            .collect()
    }

    /// The sockets, once: the server owns them from then on.
    pub(super) fn take(&self) -> Vec<BoundSocket> {
        std::mem::take(
            &mut *self
                .sockets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}
