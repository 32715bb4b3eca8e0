//! What the server reports to the process that supervises it.

/// What the server tells the process that supervises it, found in the context as
/// `Arc<dyn Supervised>`: the pre-fork [`Worker`](crate::fork::Worker) implements it.
pub trait Supervised: Send + Sync {
    /// The server accepts connections.
    fn ready(&self);
    /// The server answered `[http] max_requests` (plus jitter) requests: replace this process.
    fn replace(&self);
}
