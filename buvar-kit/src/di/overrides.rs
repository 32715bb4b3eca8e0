//! Values that win over the context in one resolution.

use crate::Context;

/// Values that win over the context in one resolution, by type and by name (buvar's keyword
/// arguments to `nject`). They apply at every depth of that resolution.
///
/// ```
/// use buvar_kit::{Context, di::Overrides};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ctx = Context::new();
/// ctx.add(1_u32);
/// let overridden = ctx.nject_with::<u32>(Overrides::new().with(2_u32)).await?;
/// assert_eq!(*overridden, 2);
/// # Ok::<(), buvar_kit::di::ResolveError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub(super) values: Context,
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides the unnamed `T`.
    pub fn with<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.values.add(value);
        self
    }

    /// Overrides the `T` named `name`.
    pub fn with_named<T: Send + Sync + 'static>(self, name: &str, value: T) -> Self {
        self.values.add_named(name, value);
        self
    }
}
