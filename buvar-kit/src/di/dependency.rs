use std::any::TypeId;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use super::{Requirement, ResolveError, Resolver};
use crate::Context;
use crate::config::{ConfigError, ConfigSource, Section};

/// A value an adapter can take as an argument: resolved from the context, the call's overrides
/// or other adapters.
///
/// Implemented for `Arc<T>` (context or adapter), `Option<D>` (`None` when nothing provides
/// it), [`Named<T, N>`](Named), [`Component<T>`] (context only, trait objects too), [`Context`]
/// (the resolving context itself) and [`Config<T>`](crate::Config) (a typed config section).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dependency: an adapter cannot take it and `resolve` cannot make it",
    label = "not a dependency",
    note = "use `Arc<{Self}>` for a component or an adapter's product, `Config<{Self}>` for a config section, `Component<{Self}>` for a value only the context holds (trait objects too), `Named<{Self}, N>` for a named one, `Option<…>` when it may be absent, or `Context`",
    note = "to get a `{Self}` however it is provided (component, adapter or config section), call `nject::<{Self}>()`"
)]
pub trait Dependency: Sized + Send + 'static {
    /// Resolves the value.
    fn resolve(resolver: &Resolver<'_>) -> impl Future<Output = Result<Self, ResolveError>> + Send;

    /// What this dependency needs, for [`Adapters::validate`](super::Adapters::validate) and the
    /// graph; `None` for what is always there.
    fn requirement() -> Option<Requirement>;
}

impl<T: Send + Sync + 'static> Dependency for Arc<T> {
    fn resolve(resolver: &Resolver<'_>) -> impl Future<Output = Result<Self, ResolveError>> + Send {
        resolver.resolve::<T>(None)
    }

    fn requirement() -> Option<Requirement> {
        Some(Requirement::of::<T>())
    }
}

impl<D: Dependency> Dependency for Option<D> {
    async fn resolve(resolver: &Resolver<'_>) -> Result<Self, ResolveError> {
        match D::resolve(resolver).await {
            Ok(value) => Ok(Some(value)),
            // Only "nothing provides it" means absent; a failing adapter or a cycle is a bug the
            // caller must hear about.
            Err(err) if err.is_missing() => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn requirement() -> Option<Requirement> {
        D::requirement().map(|mut r| {
            r.optional = true;
            r
        })
    }
}

impl Dependency for Context {
    async fn resolve(resolver: &Resolver<'_>) -> Result<Self, ResolveError> {
        Ok(resolver.context().clone())
    }

    fn requirement() -> Option<Requirement> {
        None
    }
}

/// A name for a [`Named`] dependency; declare one with [`name!`](crate::name).
pub trait Name: Send + Sync + 'static {
    /// The component name.
    const NAME: &'static str;
}

/// Declares a zero-sized type implementing [`Name`], for use with [`Named`].
///
/// ```
/// buvar_kit::name!(pub Replica = "replica");
/// use buvar_kit::di::Name;
/// assert_eq!(Replica::NAME, "replica");
/// ```
#[macro_export]
macro_rules! name {
    ($(#[$meta:meta])* $vis:vis $ident:ident = $name:literal) => {
        $(#[$meta])*
        #[doc = concat!("The component name `", $name, "`.")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $ident;
        impl $crate::di::Name for $ident {
            const NAME: &'static str = $name;
        }
    };
}

/// A dependency on the component of type `T` named `N::NAME` (falling back to the unnamed
/// one, then to adapters for `T`).
///
/// ```
/// use buvar_kit::{Context, di::Named};
/// buvar_kit::name!(Replica = "replica");
///
/// struct Pool(&'static str);
/// struct Reports { pool: std::sync::Arc<Pool> }
///
/// fn reports(pool: Named<Pool, Replica>) -> Reports {
///     Reports { pool: pool.into_inner() }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ctx = Context::new();
/// ctx.add(Pool("primary"));
/// ctx.add_named("replica", Pool("replica"));
/// ctx.adapters().register_infallible(reports);
/// assert_eq!(ctx.nject::<Reports>().await?.pool.0, "replica");
/// # Ok::<(), buvar_kit::di::ResolveError>(())
/// # }).unwrap();
/// ```
pub struct Named<T, N> {
    value: Arc<T>,
    name: PhantomData<fn() -> N>,
}

impl<T, N> Named<T, N> {
    /// The resolved `Arc<T>`.
    pub fn into_inner(self) -> Arc<T> {
        self.value
    }
}

impl<T, N> Deref for Named<T, N> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug, N: Name> fmt::Debug for Named<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &N::NAME)
            .field("value", &self.value)
            .finish()
    }
}

impl<T: Send + Sync + 'static, N: Name> Dependency for Named<T, N> {
    async fn resolve(resolver: &Resolver<'_>) -> Result<Self, ResolveError> {
        Ok(Self {
            value: resolver.resolve::<T>(Some(N::NAME)).await?,
            name: PhantomData,
        })
    }

    fn requirement() -> Option<Requirement> {
        let mut requirement = Requirement::of::<T>();
        requirement.name = Some(N::NAME);
        Some(requirement)
    }
}

/// A component taken from the context as it is: never made by an adapter. `T` may be a trait
/// object. As an axum extractor it reads the request's context.
pub struct Component<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Component<T> {
    /// The shared value.
    pub fn into_inner(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Deref for Component<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> Clone for Component<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Component<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Component").field(&&*self.0).finish()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Dependency for Component<T> {
    async fn resolve(resolver: &Resolver<'_>) -> Result<Self, ResolveError> {
        resolver
            .context()
            .try_get::<T>()
            .map(Component)
            .ok_or_else(|| resolver.hint_added_as_arc::<T>(resolver.missing::<T>(None), None))
    }

    fn requirement() -> Option<Requirement> {
        let mut requirement = Requirement::of::<T>();
        requirement.context_only = true;
        Some(requirement)
    }
}

/// A typed config section as a dependency (and, with the `axum` feature, as an extractor):
/// loaded once from the [`ConfigSource`](crate::ConfigSource) in the context, then shared.
///
/// ```
/// use buvar_kit::{Config, ConfigSource, Context};
///
/// #[derive(serde::Deserialize)]
/// struct GreeterConfig { greeting: String }
/// buvar_kit::section!(GreeterConfig, "greeter");
///
/// struct Greeter(String);
/// fn greeter(config: Config<GreeterConfig>) -> Greeter {
///     Greeter(config.greeting.clone())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ctx = Context::new();
/// ctx.add(ConfigSource::new().toml("[greeter]\ngreeting = \"Hello\"")?);
/// ctx.adapters().register_infallible(greeter);
/// assert_eq!(ctx.nject::<Greeter>().await?.0, "Hello");
/// # Ok::<(), buvar_kit::BoxError>(())
/// # }).unwrap();
/// ```
pub struct Config<T>(pub Arc<T>);

impl<T> Deref for Config<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for Config<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Config").field(&self.0).finish()
    }
}

impl<T: Section> Config<T> {
    /// Loads the section from the config source in `context` (once; later calls share it):
    /// what a task or a teardown step uses to read its section.
    pub fn from_context(context: &Context) -> Result<Self, ConfigLookupError> {
        let source = context
            .try_get::<ConfigSource>()
            .ok_or(ConfigLookupError::NoSource)?;
        Ok(Self(source.section::<T>()?))
    }

    fn check(context: &Context) -> Result<(), String> {
        Self::from_context(context)
            .map(drop)
            .map_err(|err| err.to_string())
    }
}

/// Why a [`Config`] section is not available.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigLookupError {
    /// The context holds no [`ConfigSource`].
    #[error(
        "no `ConfigSource` in the context; add one (`Stage::config`) before resolving config sections"
    )]
    NoSource,
    /// The section failed to load.
    #[error(transparent)]
    Load(#[from] ConfigError),
}

impl<T: Section> Dependency for Config<T> {
    async fn resolve(resolver: &Resolver<'_>) -> Result<Self, ResolveError> {
        resolver.section::<T>().map(Config)
    }

    fn requirement() -> Option<Requirement> {
        let mut requirement = Requirement::of::<ConfigSource>();
        // Named after the section, so that a bad value reads as a config error of that section.
        requirement.type_name = std::any::type_name::<Self>();
        requirement.context_only = true;
        requirement.check = Some(Self::check);
        requirement.section = Some(super::Entry::section::<T>);
        Some(requirement)
    }
}

impl Requirement {
    /// A requirement of an unnamed `T`, from context or adapters.
    pub fn of<T: ?Sized + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            name: None,
            optional: false,
            context_only: false,
            check: None,
            section: None,
        }
    }
}
