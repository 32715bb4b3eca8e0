//! The component registry: shared values keyed by type and an optional name, in stacked contexts.
//!
//! A [`Context`] is a cheap handle (one `Arc`) to a layer of components. [`Context::push`] makes a
//! child layer whose lookups fall through to its parent while its writes stay in the child, so a
//! task or a request can add what it likes without leaking into the layer the plugins share.
//!
//! Reads take no lock: each layer keeps its entries in an immutable map behind an
//! [`arc_swap::ArcSwap`], and a write swaps in a copy. Writes are rare (start-up, or a
//! request adding to its own, usually empty, layer); reads sit on the request path.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

/// A shared, stackable registry of components.
///
/// Values are stored as `Arc<T>` and keyed by `T` (which may be a trait object such as
/// `dyn Greeter`) and an optional name.
///
/// ```
/// use std::sync::Arc;
/// use buvar_kit::Context;
///
/// trait Greeter: Send + Sync {
///     fn greet(&self) -> String;
/// }
/// struct English;
/// impl Greeter for English {
///     fn greet(&self) -> String { "Hello".into() }
/// }
///
/// let plugins = Context::new();
/// plugins.add(String::from("shared"));
/// plugins.add_named("primary", 5432_u16);
/// plugins.add_arc::<dyn Greeter>(Arc::new(English));
///
/// let request = plugins.push();
/// request.add(String::from("mine"));
///
/// assert_eq!(*request.get::<String>()?, "mine");
/// assert_eq!(*plugins.get::<String>()?, "shared");
/// assert_eq!(*request.get_named::<u16>("primary")?, 5432);
/// assert_eq!(request.get::<dyn Greeter>()?.greet(), "Hello");
/// assert!(request.get::<u64>().is_err());
/// # Ok::<(), buvar_kit::ComponentError>(())
/// ```
#[derive(Clone, Default)]
pub struct Context {
    node: Arc<Node>,
}

#[derive(Default)]
struct Node {
    parent: Option<Context>,
    /// Made on the first write: most request layers stay empty, and an empty layer then costs
    /// one atomic load to skip and nothing to drop (an `ArcSwap` settles its debts on drop).
    entries: OnceLock<ArcSwap<Entries>>,
}

type Entries = HashMap<TypeId, Slot, TypeIdBuildHasher>;

/// A `HashMap` hasher for `TypeId` keys.
pub(crate) type TypeIdBuildHasher = BuildHasherDefault<TypeIdHasher>;

/// The components of one type in one layer.
#[derive(Clone)]
struct Slot {
    unnamed: Option<Stored>,
    named: Vec<(Arc<str>, Stored)>,
}

/// An `Arc<T>` behind `dyn Any`, so that unsized `T` (trait objects) can be stored too.
type Stored = Arc<dyn Any + Send + Sync>;

impl Context {
    /// Creates an empty root context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a child context: its lookups fall through to `self`, its writes stay in the child.
    pub fn push(&self) -> Self {
        Self {
            node: Arc::new(Node {
                parent: Some(self.clone()),
                entries: OnceLock::new(),
            }),
        }
    }

    /// The context this one was pushed from, if any.
    pub fn parent(&self) -> Option<&Context> {
        self.node.parent.as_ref()
    }

    /// Adds `value` as the unnamed component of type `T`, replacing one this layer already had,
    /// and returns it as the shared `Arc<T>` every lookup will hand out.
    ///
    /// Adding an `Arc<T>` stores the `Arc` itself, found only as `Arc<T>`; to share an `Arc`
    /// you hold, found as `T`, use [`Context::add_arc`]. A failed lookup of `T` says so.
    pub fn add<T: Send + Sync + 'static>(&self, value: T) -> Arc<T> {
        let value = Arc::new(value);
        self.add_arc(value.clone());
        value
    }

    /// Adds `value` under `name`; see [`Context::add`].
    pub fn add_named<T: Send + Sync + 'static>(&self, name: &str, value: T) -> Arc<T> {
        let value = Arc::new(value);
        self.add_named_arc(name, value.clone());
        value
    }

    /// Adds an `Arc<T>` as the unnamed component of type `T`; `T` may be a trait object, such
    /// as `dyn Repository`, and is then found by that trait.
    pub fn add_arc<T: ?Sized + Send + Sync + 'static>(&self, value: Arc<T>) {
        self.insert::<T>(None, Arc::new(value));
    }

    /// Adds an `Arc<T>` under `name`; see [`Context::add_arc`].
    pub fn add_named_arc<T: ?Sized + Send + Sync + 'static>(&self, name: &str, value: Arc<T>) {
        self.insert::<T>(Some(name), Arc::new(value));
    }

    fn insert<T: ?Sized + 'static>(&self, name: Option<&str>, stored: Stored) {
        let key = TypeId::of::<T>();
        let entries = self.node.entries.get_or_init(ArcSwap::default);
        entries.rcu(|current| {
            let mut entries = Entries::clone(current);
            let slot = entries.entry(key).or_insert_with(|| Slot {
                unnamed: None,
                named: Vec::new(),
            });
            match name {
                None => slot.unnamed = Some(stored.clone()),
                Some(name) => match slot.named.iter_mut().find(|(n, _)| &**n == name) {
                    Some((_, existing)) => *existing = stored.clone(),
                    None => slot.named.push((Arc::from(name), stored.clone())),
                },
            }
            entries
        });
    }

    /// This layer's own entries, if it has any.
    #[inline]
    fn entries(&self) -> Option<arc_swap::Guard<Arc<Entries>>> {
        self.node.entries.get().map(ArcSwap::load)
    }

    /// The unnamed component of type `T`, from this layer or the nearest parent that has one.
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, ComponentError> {
        self.lookup::<T>(None)
            .ok_or_else(|| self.missing::<T>(None))
    }

    /// The error for a failed lookup, with a hint when an `Arc<T>` was added where a `T` was
    /// meant.
    fn missing<T: ?Sized + Send + Sync + 'static>(&self, name: Option<&str>) -> ComponentError {
        let error = ComponentError::new::<T>(name);
        if self.lookup::<Arc<T>>(None).is_some() {
            ComponentError {
                reason: Reason::AddedAsArc(std::any::type_name::<Arc<T>>()),
                ..error
            }
        } else {
            error
        }
    }

    /// The component of type `T` named `name`, falling back to the unnamed one; each layer is
    /// searched for the name first, then the whole stack for the unnamed component.
    pub fn get_named<T: ?Sized + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Arc<T>, ComponentError> {
        self.lookup::<T>(Some(name))
            .or_else(|| self.lookup::<T>(None))
            .ok_or_else(|| self.missing::<T>(Some(name)))
    }

    /// Like [`Context::get`], but `None` when there is no such component.
    pub fn try_get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.lookup::<T>(None)
    }

    /// Whether a component of type `T` exists under `name` (or unnamed, for `None`), without
    /// the named-to-unnamed fallback.
    pub fn contains<T: ?Sized + Send + Sync + 'static>(&self, name: Option<&str>) -> bool {
        self.lookup::<T>(name).is_some()
    }

    /// Whether any layer holds a component with this type id under `name` or unnamed; for
    /// graph validation, which only knows type ids.
    pub(crate) fn contains_type(&self, key: TypeId, name: Option<&str>) -> bool {
        std::iter::successors(Some(self), |c| c.parent()).any(|context| {
            context
                .entries()
                .as_ref()
                .and_then(|entries| entries.get(&key))
                .is_some_and(|slot| {
                    slot.unnamed.is_some()
                        || name.is_some_and(|name| slot.named.iter().any(|(n, _)| &**n == name))
                })
        })
    }

    #[inline]
    fn lookup<T: ?Sized + Send + Sync + 'static>(&self, name: Option<&str>) -> Option<Arc<T>> {
        let key = TypeId::of::<T>();
        let mut layer = Some(self);
        while let Some(context) = layer {
            let entries = context.entries();
            if let Some(slot) = entries.as_ref().and_then(|entries| entries.get(&key)) {
                let stored = match name {
                    None => slot.unnamed.as_ref(),
                    Some(name) => slot
                        .named
                        .iter()
                        .find(|(n, _)| &**n == name)
                        .map(|(_, stored)| stored),
                };
                if let Some(stored) = stored {
                    return stored.downcast_ref::<Arc<T>>().cloned();
                }
            }
            layer = context.node.parent.as_ref();
        }
        None
    }

    /// The unnamed `T`, or else the unnamed `U` of the nearest layer that has one, in one walk:
    /// each layer's entries are loaded once for both. For a lookup with a fallback, such as
    /// `Inject<T>` (a `T` anywhere in the stack wins over the adapters that could make one).
    #[cfg(feature = "axum")]
    pub(crate) fn get_or_nearest<T, U>(&self) -> Result<Arc<T>, Option<Arc<U>>>
    where
        T: Send + Sync + 'static,
        U: Send + Sync + 'static,
    {
        let (wanted, fallback) = (TypeId::of::<T>(), TypeId::of::<U>());
        let mut nearest: Option<Arc<U>> = None;
        let mut layer = Some(self);
        while let Some(context) = layer {
            if let Some(entries) = context.entries() {
                let unnamed = |key| entries.get(&key).and_then(|slot| slot.unnamed.as_ref());
                if let Some(found) = unnamed(wanted).and_then(|s| s.downcast_ref::<Arc<T>>()) {
                    return Ok(found.clone());
                }
                if nearest.is_none() {
                    nearest = unnamed(fallback)
                        .and_then(|s| s.downcast_ref::<Arc<U>>())
                        .cloned();
                }
            }
            layer = context.node.parent.as_ref();
        }
        Err(nearest)
    }

    /// Every component of type `T` in the stack, by name (`None` for the unnamed one); a name
    /// found in a child hides the same name in its parents. Nearest layer first.
    pub fn find<T: ?Sized + Send + Sync + 'static>(&self) -> Vec<(Option<Arc<str>>, Arc<T>)> {
        let key = TypeId::of::<T>();
        let mut found: Vec<(Option<Arc<str>>, Arc<T>)> = Vec::new();
        let mut layer = Some(self);
        while let Some(context) = layer {
            if let Some(slot) = context
                .entries()
                .as_ref()
                .and_then(|entries| entries.get(&key))
            {
                let names = slot
                    .unnamed
                    .iter()
                    .map(|stored| (None, stored))
                    .chain(slot.named.iter().map(|(n, s)| (Some(n.clone()), s)));
                for (name, stored) in names {
                    if found.iter().any(|(seen, _)| *seen == name) {
                        continue;
                    }
                    if let Some(value) = stored.downcast_ref::<Arc<T>>() {
                        found.push((name, value.clone()));
                    }
                }
            }
            layer = context.node.parent.as_ref();
        }
        found
    }

    /// How many layers deep this context is (a root is 1).
    pub fn depth(&self) -> usize {
        std::iter::successors(Some(self), |c| c.parent()).count()
    }
}

/// A child of a context, made when first asked for to write to: until then reads go to the
/// parent, which holds everything the child would find. Clones share the child, made or not.
#[derive(Debug, Clone)]
pub(crate) struct LazyChild {
    shared: Arc<LazyNode>,
}

#[derive(Debug)]
struct LazyNode {
    parent: Context,
    child: OnceLock<Context>,
}

impl LazyChild {
    #[cfg(feature = "axum")]
    pub(crate) fn new(parent: Context) -> Self {
        Self {
            shared: Arc::new(LazyNode {
                parent,
                child: OnceLock::new(),
            }),
        }
    }

    /// `context` itself as the child, for a scope that is not a request's.
    pub(crate) fn made(context: Context) -> Self {
        Self {
            shared: Arc::new(LazyNode {
                parent: context.clone(),
                child: OnceLock::from(context),
            }),
        }
    }

    /// The child, made now if it does not exist yet.
    pub(crate) fn context(&self) -> &Context {
        let shared = &*self.shared;
        shared.child.get_or_init(|| shared.parent.push())
    }

    /// The child once it exists, else the parent: where reads start.
    pub(crate) fn nearest(&self) -> &Context {
        self.shared.child.get().unwrap_or(&self.shared.parent)
    }

    #[cfg(all(test, feature = "axum"))]
    pub(crate) fn is_made(&self) -> bool {
        self.shared.child.get().is_some()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let own = self.entries().map_or(0, |entries| entries.len());
        f.debug_struct("Context")
            .field("depth", &self.depth())
            .field("types_in_layer", &own)
            .finish()
    }
}

/// No component of the asked-for type (and name) exists in the context or its parents, or
/// there was no [current context](Context::current) to look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentError {
    type_name: &'static str,
    name: Option<String>,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Missing,
    /// An `Arc<T>` component exists: added with `add(Arc::new(..))` where `add_arc` was meant.
    AddedAsArc(&'static str),
    Outside(crate::current::NoCurrentContext),
}

impl ComponentError {
    pub(crate) fn new<T: ?Sized>(name: Option<&str>) -> Self {
        Self {
            type_name: std::any::type_name::<T>(),
            name: name.map(str::to_owned),
            reason: Reason::Missing,
        }
    }

    /// A lookup through [`crate::get`] where no context is current.
    pub(crate) fn outside<T: ?Sized>(name: Option<&str>) -> Self {
        Self {
            reason: Reason::Outside(crate::current::NoCurrentContext),
            ..Self::new::<T>(name)
        }
    }

    /// The full name of the type that was looked up.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The name that was looked up, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the lookup failed because no context was current, rather than for want of the
    /// component.
    pub fn is_outside_context(&self) -> bool {
        matches!(self.reason, Reason::Outside(_))
    }
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = self
            .name
            .as_ref()
            .map(|n| format!(" named `{n}`"))
            .unwrap_or_default();
        match &self.reason {
            Reason::Outside(outside) => {
                write!(f, "cannot look up `{}`{named}: {outside}", self.type_name)
            }
            Reason::AddedAsArc(arc) => write!(
                f,
                "no component `{}`{named} in the context, but there is a component `{arc}`: it was added with `add(Arc::new(..))`, which stores the `Arc` itself; did you mean `add_arc`? It stores the `Arc` as the `{}` it points to",
                self.type_name, self.type_name
            ),
            Reason::Missing => write!(
                f,
                "no component `{}`{named} in the context; add one with `Context::add{}`, or register an adapter that makes it",
                self.type_name,
                if self.name.is_some() { "_named" } else { "" }
            ),
        }
    }
}

impl std::error::Error for ComponentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            Reason::Outside(outside) => Some(outside),
            Reason::Missing | Reason::AddedAsArc(_) => None,
        }
    }
}

/// `TypeId` is already a hash; hashing it again with SipHash would only cost time on every
/// lookup.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_ne_bytes(word);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Speaker: Send + Sync {
        fn speak(&self) -> &'static str;
    }
    struct Dog;
    impl Speaker for Dog {
        fn speak(&self) -> &'static str {
            "woof"
        }
    }

    #[test]
    fn values_are_found_by_type() {
        let ctx = Context::new();
        ctx.add(42_u32);
        ctx.add(String::from("x"));
        assert_eq!(*ctx.get::<u32>().unwrap(), 42);
        assert_eq!(*ctx.get::<String>().unwrap(), "x");
    }

    #[test]
    fn adding_again_replaces_the_value_in_the_same_layer() {
        let ctx = Context::new();
        ctx.add(1_u8);
        ctx.add(2_u8);
        assert_eq!(*ctx.get::<u8>().unwrap(), 2);
        assert_eq!(ctx.find::<u8>().len(), 1);
    }

    #[test]
    fn added_value_is_the_same_arc_lookups_return() {
        let ctx = Context::new();
        let added = ctx.add(String::from("shared"));
        assert!(Arc::ptr_eq(&added, &ctx.get::<String>().unwrap()));
    }

    #[test]
    fn trait_objects_are_found_by_the_trait() {
        let ctx = Context::new();
        ctx.add_arc::<dyn Speaker>(Arc::new(Dog));
        assert_eq!(ctx.get::<dyn Speaker>().unwrap().speak(), "woof");
        assert!(
            ctx.get::<Dog>().is_err(),
            "registered by trait, not by type"
        );
    }

    #[test]
    fn named_lookup_prefers_the_name_and_falls_back_to_unnamed() {
        let ctx = Context::new();
        ctx.add(String::from("default"));
        ctx.add_named("bar", String::from("bar"));
        assert_eq!(*ctx.get_named::<String>("bar").unwrap(), "bar");
        assert_eq!(*ctx.get_named::<String>("other").unwrap(), "default");
        assert_eq!(*ctx.get::<String>().unwrap(), "default");
    }

    #[test]
    fn named_lookup_without_any_candidate_names_type_and_name() {
        let ctx = Context::new();
        let err = ctx.get_named::<String>("primary").unwrap_err();
        assert_eq!(err.type_name(), "alloc::string::String");
        assert_eq!(err.name(), Some("primary"));
        let message = err.to_string();
        assert!(
            message.contains("`alloc::string::String` named `primary`"),
            "{message}"
        );
    }

    #[test]
    fn a_lookup_of_t_says_add_arc_when_an_arc_of_t_was_added() {
        let ctx = Context::new();
        ctx.add(Arc::new(String::from("wrapped twice")));
        let message = ctx.get::<String>().unwrap_err().to_string();
        assert!(message.contains("did you mean `add_arc`?"), "{message}");
        assert!(
            message.contains("alloc::sync::Arc<alloc::string::String>"),
            "{message}"
        );
        ctx.add_arc(Arc::new(String::from("shared")));
        assert_eq!(*ctx.get::<String>().unwrap(), "shared");
    }

    #[test]
    fn missing_component_error_names_the_type() {
        let err = Context::new().get::<u64>().unwrap_err();
        assert_eq!(err.name(), None);
        assert!(err.to_string().contains("no component `u64`"), "{err}");
    }

    #[test]
    fn child_writes_never_reach_the_parent() {
        let parent = Context::new();
        parent.add(String::from("parent"));
        let child = parent.push();
        child.add(String::from("child"));
        child.add(7_i32);
        assert_eq!(*child.get::<String>().unwrap(), "child");
        assert_eq!(*parent.get::<String>().unwrap(), "parent");
        assert!(parent.get::<i32>().is_err());
    }

    #[test]
    fn child_sees_what_the_parent_adds_later() {
        let parent = Context::new();
        let child = parent.push();
        parent.add(3_u16);
        assert_eq!(*child.get::<u16>().unwrap(), 3);
    }

    #[test]
    fn named_value_in_parent_wins_over_unnamed_in_child() {
        let parent = Context::new();
        parent.add_named("db", String::from("named"));
        let child = parent.push();
        child.add(String::from("unnamed"));
        assert_eq!(*child.get_named::<String>("db").unwrap(), "named");
    }

    #[test]
    fn find_returns_every_name_with_children_hiding_parents() {
        let parent = Context::new();
        parent.add(String::from("default"));
        parent.add_named("a", String::from("a"));
        parent.add_named("b", String::from("b"));
        let child = parent.push();
        child.add_named("a", String::from("child a"));
        let mut found: Vec<(Option<String>, String)> = child
            .find::<String>()
            .into_iter()
            .map(|(name, value)| (name.map(|n| n.to_string()), (*value).clone()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                (None, "default".to_owned()),
                (Some("a".to_owned()), "child a".to_owned()),
                (Some("b".to_owned()), "b".to_owned()),
            ]
        );
    }

    #[test]
    #[cfg(feature = "axum")]
    fn a_wanted_value_anywhere_wins_over_a_nearer_fallback_and_the_nearest_fallback_is_kept() {
        let root = Context::new();
        let child = root.push();
        child.add(1_u8);
        root.add(2_u8);
        assert!(
            child
                .get_or_nearest::<u16, u8>()
                .is_err_and(|u| *u.unwrap() == 1)
        );
        root.add(7_u16);
        assert_eq!(*child.get_or_nearest::<u16, u8>().unwrap(), 7);
        assert!(
            Context::new()
                .get_or_nearest::<u16, u8>()
                .is_err_and(|u| u.is_none())
        );
    }

    #[test]
    fn sibling_contexts_are_isolated() {
        let parent = Context::new();
        let one = parent.push();
        let two = parent.push();
        one.add(1_u8);
        two.add(2_u8);
        assert_eq!(*one.get::<u8>().unwrap(), 1);
        assert_eq!(*two.get::<u8>().unwrap(), 2);
        assert_eq!(parent.depth(), 1);
        assert_eq!(one.depth(), 2);
    }

    #[test]
    fn concurrent_readers_see_consistent_values_while_a_writer_adds() {
        let ctx = Context::new();
        ctx.add(0_usize);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let ctx = ctx.clone();
                scope.spawn(move || {
                    for _ in 0..10_000 {
                        assert!(*ctx.get::<usize>().unwrap() <= 1_000);
                    }
                });
            }
            for n in 0..=1_000_usize {
                ctx.add(n);
                ctx.add_named(&format!("n{}", n % 10), n);
            }
        });
        assert_eq!(*ctx.get::<usize>().unwrap(), 1_000);
        assert_eq!(ctx.find::<usize>().len(), 11);
    }
}
