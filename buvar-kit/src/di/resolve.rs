//! Resolution: overrides, then the context, then the adapters for a type, in order, with the
//! chain of types that led to each step for the errors.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use super::registry::{Adapters, Lifecycle, ProductMap, Stored};
use super::{Config, Dependency, Overrides, ResolveError};
use crate::config::{ConfigSource, Section};
use crate::{BoxError, Context};

/// The state of one resolution, handed to [`Dependency::resolve`].
///
/// It borrows what the whole resolution shares and the chain of types that led to this step,
/// both kept in the callers' futures: a step allocates nothing but the adapter's future and its
/// product.
#[derive(Clone, Copy)]
pub struct Resolver<'a> {
    scope: &'a Scope<'a>,
    chain: Option<&'a Link<'a>>,
}

/// What every step of one resolution shares.
struct Scope<'a> {
    context: &'a Context,
    overrides: Option<Overrides>,
    /// The adapters by product, as registered when the resolution started: one `ArcSwap`
    /// load per resolution instead of one per step.
    adapters: Option<Arc<ProductMap>>,
}

impl<'a> Scope<'a> {
    fn new(context: &'a Context, overrides: Option<Overrides>) -> Self {
        let adapters = context.try_get::<Adapters>();
        Self::with_adapters(context, adapters.as_deref(), overrides)
    }

    fn with_adapters(
        context: &'a Context,
        adapters: Option<&Adapters>,
        overrides: Option<Overrides>,
    ) -> Self {
        Self {
            adapters: adapters.map(|adapters| adapters.by_product.load_full()),
            context,
            overrides,
        }
    }
}

struct Link<'a> {
    type_id: TypeId,
    type_name: &'static str,
    parent: Option<&'a Link<'a>>,
}

impl fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("context", &self.scope.context)
            .field("chain", &self.chain_names())
            .finish()
    }
}

impl<'a> Resolver<'a> {
    fn root(scope: &'a Scope<'a>) -> Self {
        Self { scope, chain: None }
    }

    /// The context the resolution started from.
    pub fn context(&self) -> &Context {
        self.scope.context
    }

    fn chain_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = std::iter::successors(self.chain, |l| l.parent)
            .map(|l| l.type_name)
            .collect();
        names.reverse();
        names
    }

    /// An error saying nothing provides `T` (named `name`), with this resolution's chain.
    pub fn missing<T: ?Sized>(&self, name: Option<&str>) -> ResolveError {
        let mut chain = self.chain_names();
        chain.push(std::any::type_name::<T>());
        ResolveError::missing(chain, name)
    }

    /// An error saying the adapter `adapter` (making the last type of the chain) failed.
    pub(crate) fn adapter_failed(&self, adapter: &'static str, source: BoxError) -> ResolveError {
        ResolveError::adapter(self.chain_names(), adapter, source)
    }

    /// The config section `T`, from the [`ConfigSource`](crate::ConfigSource) in the overrides
    /// or the context; errors name the step as `Config<T>`, never as `T`, which may also be the
    /// product that needs it.
    pub(crate) fn section<T: Section>(&self) -> Result<Arc<T>, ResolveError> {
        let link = Link {
            type_id: TypeId::of::<Config<T>>(),
            type_name: std::any::type_name::<Config<T>>(),
            parent: self.chain,
        };
        let inner = Resolver {
            scope: self.scope,
            chain: Some(&link),
        };
        let source = self
            .lookup::<ConfigSource>(None)
            .ok_or_else(|| inner.missing::<ConfigSource>(None))?;
        source.section::<T>().map_err(|err| {
            ResolveError::config(inner.chain_names(), std::any::type_name::<T>(), err)
        })
    }

    /// Resolves `T` (named `name`): overrides, then the context, then adapters.
    pub async fn resolve<T: Send + Sync + 'static>(
        &self,
        name: Option<&str>,
    ) -> Result<Arc<T>, ResolveError> {
        if let Some(value) = self.lookup::<T>(name) {
            return Ok(value);
        }
        self.resolve_by_adapters(name).await
    }

    /// [`resolve`](Self::resolve) once the overrides and the context are known to hold no `T`.
    async fn resolve_by_adapters<T: Send + Sync + 'static>(
        &self,
        name: Option<&str>,
    ) -> Result<Arc<T>, ResolveError> {
        let made = self
            .make(TypeId::of::<T>(), std::any::type_name::<T>(), name)
            .await;
        let (stored, lifecycle) = made.map_err(|err| self.hint_added_as_arc::<T>(err, name))?;
        let value = stored
            .downcast::<T>()
            .map_err(|_| self.missing::<T>(name))?;
        if lifecycle == Lifecycle::Scoped {
            self.scope.context.add_arc(value.clone());
        }
        Ok(value)
    }

    /// When nothing provides `T` but the context holds an `Arc<T>`, someone added it with
    /// `add(Arc::new(..))` and meant `add_arc`: say so.
    pub(crate) fn hint_added_as_arc<T: ?Sized + Send + Sync + 'static>(
        &self,
        err: ResolveError,
        name: Option<&str>,
    ) -> ResolveError {
        let nothing_for_t = err.is_missing()
            && err.chain().len() == self.chain_names().len() + 1
            && err.type_name() == std::any::type_name::<T>();
        if nothing_for_t && self.lookup::<Arc<T>>(name).is_some() {
            err.added_as_arc(std::any::type_name::<Arc<T>>())
        } else {
            err
        }
    }

    fn lookup<T: ?Sized + Send + Sync + 'static>(&self, name: Option<&str>) -> Option<Arc<T>> {
        let from = |ctx: &Context| match name {
            Some(name) => ctx.get_named::<T>(name).ok(),
            None => ctx.try_get::<T>(),
        };
        self.scope
            .overrides
            .as_ref()
            .and_then(|o| from(&o.values))
            .or_else(|| from(self.scope.context))
    }

    async fn make(
        &self,
        product: TypeId,
        product_name: &'static str,
        name: Option<&str>,
    ) -> Result<(Stored, Lifecycle), ResolveError> {
        let link = Link {
            type_id: product,
            type_name: product_name,
            parent: self.chain,
        };
        let inner = Resolver {
            scope: self.scope,
            chain: Some(&link),
        };
        if std::iter::successors(self.chain, |l| l.parent).any(|l| l.type_id == product) {
            return Err(ResolveError::cycle(inner.chain_names()));
        }
        let candidates = self
            .scope
            .adapters
            .as_deref()
            .and_then(|adapters| adapters.get(&product))
            .map_or(&[][..], |entries| &entries[..]);
        let mut first_missing = None;
        for entry in candidates {
            let lifecycle = entry.lifecycle();
            let made = match (lifecycle, entry.singleton.get()) {
                (Lifecycle::Singleton, Some(made)) => Ok(made.clone()),
                // Boxed: the once-cell's future is large and rarely needed, and would otherwise
                // grow every resolution's future.
                (Lifecycle::Singleton, None) => {
                    Box::pin(entry.singleton.get_or_try_init(|| (entry.make)(inner)))
                        .await
                        .cloned()
                }
                (Lifecycle::Transient | Lifecycle::Scoped, _) => (entry.make)(inner).await,
            };
            match made {
                Ok(stored) => return Ok((stored, lifecycle)),
                // Its dependencies did not resolve: the next adapter may do better.
                Err(err) if err.is_missing() => {
                    first_missing.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(first_missing.unwrap_or_else(|| ResolveError::missing(inner.chain_names(), name)))
    }
}

impl Context {
    /// The adapter registry of this context: the nearest one in the stack, or a new one added
    /// to this layer when there is none.
    pub fn adapters(&self) -> Arc<Adapters> {
        match self.try_get::<Adapters>() {
            Some(adapters) => adapters,
            None => self.add(Adapters::new()),
        }
    }

    /// Resolves a `T`: from the context, else by the first adapter for `T` whose dependencies
    /// resolve. See the [module docs](crate::di).
    pub async fn nject<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, ResolveError> {
        let scope = Scope::new(self, None);
        Resolver::root(&scope).resolve::<T>(None).await
    }

    /// Resolves the `T` named `name`, falling back to the unnamed one and then to adapters.
    pub async fn nject_named<T: Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Arc<T>, ResolveError> {
        let scope = Scope::new(self, None);
        Resolver::root(&scope).resolve::<T>(Some(name)).await
    }

    /// Resolves a `T` with `overrides` winning over the context at every depth.
    pub async fn nject_with<T: Send + Sync + 'static>(
        &self,
        overrides: Overrides,
    ) -> Result<Arc<T>, ResolveError> {
        let scope = Scope::new(self, Some(overrides));
        Resolver::root(&scope).resolve::<T>(None).await
    }

    /// [`nject`](Self::nject) by adapters alone, with the registry already at hand: the
    /// request extractor has looked up the registry and `T` in the context itself.
    #[cfg(feature = "axum")]
    pub(crate) async fn nject_by_adapters<T: Send + Sync + 'static>(
        &self,
        adapters: Option<&Adapters>,
    ) -> Result<Arc<T>, ResolveError> {
        let scope = Scope::with_adapters(self, adapters, None);
        Resolver::root(&scope).resolve_by_adapters::<T>(None).await
    }

    /// Resolves any [`Dependency`], e.g. an `Option<Arc<T>>` or a `Named<T, N>`.
    pub async fn resolve<D: Dependency>(&self) -> Result<D, ResolveError> {
        let scope = Scope::new(self, None);
        D::resolve(&Resolver::root(&scope)).await
    }
}
