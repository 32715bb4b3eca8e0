//! The registry of adapters: what makes each type, and how long what it makes lives.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::OnceCell;

use super::{Config, Dependency, FallibleAdapter, InfallibleAdapter, ResolveError, Resolver};
use crate::components::TypeIdBuildHasher;
use crate::config::Section;
use crate::{BoxFuture, Context};

/// What an adapter's product lives for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lifecycle {
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
    pub(super) by_product: ArcSwap<ProductMap>,
    all: ArcSwap<Vec<Arc<Entry>>>,
    /// Every type some adapter depends on, so that costly values (a request's head) are only
    /// put in a context when something will read them.
    required: ArcSwap<HashSet<TypeId, TypeIdBuildHasher>>,
}

pub(crate) type Stored = Arc<dyn Any + Send + Sync>;
pub(crate) type ProductMap = HashMap<TypeId, Arc<[Arc<Entry>]>, TypeIdBuildHasher>;
type MakeFn =
    dyn for<'a> Fn(Resolver<'a>) -> BoxFuture<'a, Result<Stored, ResolveError>> + Send + Sync;

pub(crate) struct Entry {
    kind: EntryKind,
    pub(crate) adapter_name: &'static str,
    pub(crate) product: TypeId,
    pub(crate) product_name: &'static str,
    pub(crate) requirements: Vec<Requirement>,
    lifecycle: AtomicU8,
    pub(super) singleton: OnceCell<Stored>,
    pub(super) make: Box<MakeFn>,
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
    /// Makes the product once and shares it (see [`Lifecycle::Singleton`]).
    pub fn singleton(&self) -> &Self {
        self.lifecycle(Lifecycle::Singleton)
    }

    /// Makes the product once per resolving context (see [`Lifecycle::Scoped`]).
    pub fn scoped(&self) -> &Self {
        self.lifecycle(Lifecycle::Scoped)
    }

    /// Sets the product's lifecycle.
    pub fn lifecycle(&self, lifecycle: Lifecycle) -> &Self {
        self.entry
            .lifecycle
            .store(lifecycle as u8, Ordering::Relaxed);
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
            lifecycle: AtomicU8::new(Lifecycle::Transient as u8),
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

    pub(super) fn lifecycle(&self) -> Lifecycle {
        match self.lifecycle.load(Ordering::Relaxed) {
            1 => Lifecycle::Singleton,
            2 => Lifecycle::Scoped,
            _ => Lifecycle::Transient,
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
    #[cfg(any(feature = "axum", test))]
    pub(crate) fn ready_singleton<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let by_product = self.by_product.load();
        let first = by_product.get(&TypeId::of::<T>())?.first()?;
        if first.lifecycle() != Lifecycle::Singleton {
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
