//! Dependency injection by adapter functions.
//!
//! An adapter is a plain function, sync or async, whose arguments are [`Dependency`]s and whose
//! return value is the component it makes. [`Context::nject`] resolves a type: first the call's
//! overrides, then the context (named, then unnamed), then every adapter registered for the type,
//! in order, taking the first whose own dependencies resolve.
//!
//! ```
//! use std::sync::Arc;
//! use buvar_kit::Context;
//!
//! struct Pool { url: String }
//! struct Repo { pool: Arc<Pool> }
//! struct Service { repo: Arc<Repo> }
//!
//! async fn repo(pool: Arc<Pool>) -> Result<Repo, std::io::Error> {
//!     Ok(Repo { pool })
//! }
//! fn service(repo: Arc<Repo>) -> Service {
//!     Service { repo }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let ctx = Context::new();
//! let adapters = ctx.adapters();
//! adapters.register(repo);
//! adapters.register_infallible(service);
//!
//! let err = ctx.nject::<Service>().await.err().unwrap();
//! assert!(err.to_string().starts_with("`Service` needs `Repo` needs `Pool`: no component"));
//!
//! ctx.add(Pool { url: "postgres://db".into() });
//! let service = ctx.nject::<Service>().await?;
//! assert_eq!(service.repo.pool.url, "postgres://db");
//! # Ok::<(), buvar_kit::di::ResolveError>(())
//! # }).unwrap();
//! ```

mod adapter;
mod dependency;
mod error;
mod graph;

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::OnceCell;

pub use adapter::{FallibleAdapter, InfallibleAdapter, ReturnsFuture, ReturnsValue};
pub use dependency::{Component, Config, ConfigLookupError, Dependency, Name, Named};
pub use error::ResolveError;
pub use graph::{Graph, ValidationError};

use crate::components::TypeIdBuildHasher;
use crate::config::{ConfigSource, Section};
use crate::{BoxError, BoxFuture, Context};

/// What an adapter's product lives for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lifetime {
    /// Made anew for every resolution (the default).
    Transient,
    /// Made once, then shared by every resolution in every context.
    Singleton,
    /// Made once per context the resolution starts from (e.g. once per request), and added to
    /// that context.
    Scoped,
}

/// The registry of adapters; one lives in the plugin context as a component (see
/// [`Context::adapters`]).
pub struct Adapters {
    by_product: ArcSwap<ProductMap>,
    all: ArcSwap<Vec<Arc<Entry>>>,
    /// Every type some adapter depends on, so that costly values (a request's head) are only
    /// put in a context when something will read them.
    required: ArcSwap<HashSet<TypeId, TypeIdBuildHasher>>,
}

pub(crate) type Stored = Arc<dyn Any + Send + Sync>;
type MakeFn =
    dyn for<'a> Fn(Resolver<'a>) -> BoxFuture<'a, Result<Stored, ResolveError>> + Send + Sync;

pub(crate) struct Entry {
    kind: EntryKind,
    pub(crate) adapter_name: &'static str,
    pub(crate) product: TypeId,
    pub(crate) product_name: &'static str,
    pub(crate) requirements: Vec<Requirement>,
    lifetime: AtomicU8,
    singleton: OnceCell<Stored>,
    make: Box<MakeFn>,
}

/// What makes an entry's product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    /// A registered adapter function.
    Adapter,
    /// The config section of that type, loaded from the [`ConfigSource`](crate::ConfigSource):
    /// tried after every adapter for the type.
    Section,
}

/// A registered adapter; set how long its product lives.
#[derive(Clone)]
pub struct Registration {
    entry: Arc<Entry>,
}

impl Registration {
    /// Makes the product once and shares it (see [`Lifetime::Singleton`]).
    pub fn singleton(&self) -> &Self {
        self.lifetime(Lifetime::Singleton)
    }

    /// Makes the product once per resolving context (see [`Lifetime::Scoped`]).
    pub fn scoped(&self) -> &Self {
        self.lifetime(Lifetime::Scoped)
    }

    /// Sets the product's lifetime.
    pub fn lifetime(&self, lifetime: Lifetime) -> &Self {
        self.entry.lifetime.store(lifetime as u8, Ordering::Relaxed);
        self
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("adapter", &self.entry.adapter_name)
            .field("product", &self.entry.product_name)
            .finish()
    }
}

impl Entry {
    fn new<F, P: 'static>(requirements: Vec<Requirement>, make: Box<MakeFn>) -> Self {
        Self {
            kind: EntryKind::Adapter,
            adapter_name: std::any::type_name::<F>(),
            product: TypeId::of::<P>(),
            product_name: std::any::type_name::<P>(),
            requirements,
            lifetime: AtomicU8::new(Lifetime::Transient as u8),
            singleton: OnceCell::new(),
            make,
        }
    }

    /// The entry that loads the config section `T` for `nject::<T>()`.
    pub(crate) fn section<T: Section>() -> Self {
        Self {
            kind: EntryKind::Section,
            ..Self::new::<Config<T>, T>(
                Config::<T>::requirement().into_iter().collect(),
                Box::new(|resolver: Resolver<'_>| {
                    Box::pin(
                        async move { resolver.section::<T>().map(|section| section as Stored) },
                    )
                }),
            )
        }
    }

    fn lifetime(&self) -> Lifetime {
        match self.lifetime.load(Ordering::Relaxed) {
            1 => Lifetime::Singleton,
            2 => Lifetime::Scoped,
            _ => Lifetime::Transient,
        }
    }
}

/// A start-up check of a dependency: `Err` says, in one sentence, what is wrong.
pub type StartupCheck = fn(&Context) -> Result<(), String>;

/// What a dependency needs from the context or the adapters, as seen by validation and the
/// graph.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The type needed.
    pub type_id: TypeId,
    /// Its full name, for messages.
    pub type_name: &'static str,
    /// The component name, for named dependencies.
    pub name: Option<&'static str>,
    /// Whether a missing value is fine (`Option<…>`).
    pub optional: bool,
    /// Whether only the context can provide it (no adapter).
    pub context_only: bool,
    /// An extra start-up check, e.g. that a config section loads.
    pub check: Option<StartupCheck>,
    /// The config section this dependency reads, made resolvable by type when an adapter
    /// that reads it is registered.
    pub(crate) section: Option<fn() -> Entry>,
}

impl Default for Adapters {
    fn default() -> Self {
        Self {
            by_product: ArcSwap::from_pointee(HashMap::default()),
            all: ArcSwap::from_pointee(Vec::new()),
            required: ArcSwap::from_pointee(HashSet::default()),
        }
    }
}

impl fmt::Debug for Adapters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.all
                    .load()
                    .iter()
                    .map(|e| (e.adapter_name, e.product_name)),
            )
            .finish()
    }
}

impl Adapters {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a fallible adapter: a sync or async function returning `Result<T, E>`, whose
    /// arguments are [`Dependency`]s. Its product is `T`, made anew for each resolution unless
    /// the returned [`Registration`] says otherwise.
    pub fn register<F, Args, M>(&self, adapter: F) -> Registration
    where
        F: FallibleAdapter<Args, M>,
    {
        self.insert(Entry::new::<F, F::Product>(
            F::requirements(),
            Box::new(move |resolver: Resolver<'_>| adapter.make_stored(resolver)),
        ))
    }

    /// Registers an infallible adapter: a sync function returning `T` (which must be `Unpin`,
    /// as nearly every type is) or an async function whose future yields `T`.
    pub fn register_infallible<F, Args, M>(&self, adapter: F) -> Registration
    where
        F: InfallibleAdapter<Args, M>,
    {
        self.insert(Entry::new::<F, F::Product>(
            F::requirements(),
            Box::new(move |resolver: Resolver<'_>| adapter.make_stored(resolver)),
        ))
    }

    /// Makes the config section `T` resolvable by [`Context::nject`] (after every adapter for
    /// `T`), as a section an adapter reads as [`Config<T>`] is already.
    ///
    /// ```
    /// use buvar_kit::{ConfigSource, Context};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct TodosConfig { limit: u32 }
    /// buvar_kit::section!(TodosConfig, "todos");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx = Context::new();
    /// ctx.add(ConfigSource::new().toml("[todos]\nlimit = 10")?);
    /// ctx.adapters().section::<TodosConfig>();
    /// assert_eq!(ctx.nject::<TodosConfig>().await?.limit, 10);
    /// # Ok::<(), buvar_kit::BoxError>(())
    /// # }).unwrap();
    /// ```
    pub fn section<T: Section>(&self) {
        self.add_section(Entry::section::<T>());
    }

    fn add_section(&self, entry: Entry) {
        let known = self
            .for_product(entry.product)
            .is_some_and(|entries| entries.iter().any(|e| e.kind == EntryKind::Section));
        if !known {
            self.push(entry);
        }
    }

    fn insert(&self, entry: Entry) -> Registration {
        for section in entry.requirements.iter().filter_map(|r| r.section) {
            self.add_section(section());
        }
        self.push(entry)
    }

    fn push(&self, entry: Entry) -> Registration {
        let entry = Arc::new(entry);
        self.by_product.rcu(|current| {
            let mut map = HashMap::clone(current);
            let mut entries: Vec<Arc<Entry>> = map
                .get(&entry.product)
                .map(|entries| entries.to_vec())
                .unwrap_or_default();
            // A section is the last resort, whenever the adapters for its type were registered.
            let at = match entry.kind {
                EntryKind::Adapter => entries
                    .iter()
                    .position(|e| e.kind == EntryKind::Section)
                    .unwrap_or(entries.len()),
                EntryKind::Section => entries.len(),
            };
            entries.insert(at, entry.clone());
            map.insert(entry.product, entries.into());
            map
        });
        self.all.rcu(|current| {
            let mut all = Vec::clone(current);
            all.push(entry.clone());
            all
        });
        self.required.rcu(|current| {
            let mut required = HashSet::clone(current);
            required.extend(entry.requirements.iter().map(|r| r.type_id));
            required
        });
        Registration { entry }
    }

    /// Whether some registered adapter depends on the type `type_id`.
    pub fn requires(&self, type_id: TypeId) -> bool {
        self.required.load().contains(&type_id)
    }

    /// How many adapters are registered.
    pub fn len(&self) -> usize {
        self.all.load().len()
    }

    /// Whether no adapter is registered.
    pub fn is_empty(&self) -> bool {
        self.all.load().is_empty()
    }

    /// The product of the first adapter for `T`, when that adapter is a singleton that has been
    /// made: once the context holds no `T`, every resolution of `T` returns it (the first
    /// adapter whose dependencies resolve wins, and a made singleton needs none).
    pub(crate) fn ready_singleton<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let by_product = self.by_product.load();
        let first = by_product.get(&TypeId::of::<T>())?.first()?;
        if first.lifetime() != Lifetime::Singleton {
            return None;
        }
        first.singleton.get()?.clone().downcast::<T>().ok()
    }

    pub(crate) fn for_product(&self, product: TypeId) -> Option<Arc<[Arc<Entry>]>> {
        self.by_product.load().get(&product).cloned()
    }

    pub(crate) fn entries(&self) -> Arc<Vec<Arc<Entry>>> {
        self.all.load_full()
    }
}

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
    values: Context,
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

type ProductMap = HashMap<TypeId, Arc<[Arc<Entry>]>, TypeIdBuildHasher>;

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
        let (stored, lifetime) = made.map_err(|err| self.hint_added_as_arc::<T>(err, name))?;
        let value = stored
            .downcast::<T>()
            .map_err(|_| self.missing::<T>(name))?;
        if lifetime == Lifetime::Scoped {
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
    ) -> Result<(Stored, Lifetime), ResolveError> {
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
            let lifetime = entry.lifetime();
            let made = match (lifetime, entry.singleton.get()) {
                (Lifetime::Singleton, Some(made)) => Ok(made.clone()),
                // Boxed: the once-cell's future is large and rarely needed, and would otherwise
                // grow every resolution's future.
                (Lifetime::Singleton, None) => {
                    Box::pin(entry.singleton.get_or_try_init(|| (entry.make)(inner)))
                        .await
                        .cloned()
                }
                (Lifetime::Transient | Lifetime::Scoped, _) => (entry.make)(inner).await,
            };
            match made {
                Ok(stored) => return Ok((stored, lifetime)),
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

#[cfg(test)]
mod tests;
