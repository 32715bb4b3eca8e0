use std::future::Future;
use std::sync::Arc;

use super::{Dependency, Requirement, ResolveError, Resolver, Stored};
use crate::{BoxError, BoxFuture};

/// A function [`Adapters::register`](super::Adapters::register) takes: sync or async, of up to
/// 12 [`Dependency`] arguments, returning `Result<T, E>`. `M` tells the sync and async shapes
/// apart (see [`ReturnsValue`], [`ReturnsFuture`]); you never name it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered with `register`",
    label = "not a fallible adapter",
    note = "`register` takes a sync or async function returning `Result<T, E>` (`E: Into<BoxError>`); for one returning a plain `T`, use `register_infallible`",
    note = "each argument must be a dependency: `Arc<T>` (a component or an adapter's product), `Option<D>`, `Named<T, N>`, `Component<T>`, `Config<T>` (a config section: `Config<MySection>`, not `MySection`) or `Context`; at most 12",
    note = "the function must be `Clone + Send + Sync + 'static`, an async function's future `Send`"
)]
pub trait FallibleAdapter<Args, M>: Clone + Send + Sync + 'static {
    /// The component the adapter makes.
    type Product: Send + Sync + 'static;

    /// What the arguments need.
    fn requirements() -> Vec<Requirement>;

    /// Resolves the arguments and calls the function.
    #[doc(hidden)]
    fn make_stored<'a>(
        &self,
        resolver: Resolver<'a>,
    ) -> BoxFuture<'a, Result<Stored, ResolveError>>;
}

/// A function [`Adapters::register_infallible`](super::Adapters::register_infallible) takes:
/// sync or async, of up to 12 [`Dependency`] arguments, returning the component itself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered with `register_infallible`",
    label = "not an infallible adapter",
    note = "`register_infallible` takes a sync function returning `T` (`Unpin`, as nearly every type is) or an async function whose future yields `T`; for one returning `Result<T, E>`, use `register`",
    note = "each argument must be a dependency: `Arc<T>` (a component or an adapter's product), `Option<D>`, `Named<T, N>`, `Component<T>`, `Config<T>` (a config section: `Config<MySection>`, not `MySection`) or `Context`; at most 12",
    note = "the function must be `Clone + Send + Sync + 'static`, an async function's future `Send`"
)]
pub trait InfallibleAdapter<Args, M>: Clone + Send + Sync + 'static {
    /// The component the adapter makes.
    type Product: Send + Sync + 'static;

    /// What the arguments need.
    fn requirements() -> Vec<Requirement>;

    /// Resolves the arguments and calls the function.
    #[doc(hidden)]
    fn make_stored<'a>(
        &self,
        resolver: Resolver<'a>,
    ) -> BoxFuture<'a, Result<Stored, ResolveError>>;
}

/// Marks a sync adapter.
#[derive(Debug)]
pub enum ReturnsValue {}
/// Marks an async adapter.
#[derive(Debug)]
pub enum ReturnsFuture {}

fn requirements(each: &[Option<Requirement>]) -> Vec<Requirement> {
    each.iter().flatten().cloned().collect()
}

fn failed<F>(resolver: &Resolver<'_>, err: impl Into<BoxError>) -> ResolveError {
    resolver.adapter_failed(std::any::type_name::<F>(), err.into())
}

/// One adapter impl: `$finish` turns the call of `$f` on the resolved `$a`s into the made
/// product, which is all that differs between the four shapes.
macro_rules! adapter_impl {
    (
        $trait:ident<$marker:ty>; [$($generic:ident),*]; Fn($($A:ident),*) -> $output:ty; [$($bound:tt)*];
        |$f:ident, $resolver:ident, $($a:ident),*| $finish:expr
    ) => {
        impl<F, T, $($generic,)* $($A,)*> $trait<($($A,)*), $marker> for F
        where
            F: Fn($($A),*) -> $output + Clone + Send + Sync + 'static,
            T: Send + Sync + 'static,
            $($bound)*
            $($A: Dependency,)*
        {
            type Product = T;

            fn requirements() -> Vec<Requirement> {
                requirements(&[$($A::requirement()),*])
            }

            // An infallible adapter without arguments never reads the resolver.
            #[allow(unused_variables)]
            fn make_stored<'a>(
                &self,
                $resolver: Resolver<'a>,
            ) -> BoxFuture<'a, Result<Stored, ResolveError>> {
                let $f = self.clone();
                Box::pin(async move {
                    $(let $a = $A::resolve(&$resolver).await?;)*
                    $finish
                })
            }
        }
    };
}

macro_rules! impl_adapter_fn {
    ($($A:ident $a:ident),*) => {
        adapter_impl!(
            FallibleAdapter<ReturnsValue>; [E]; Fn($($A),*) -> Result<T, E>; [E: Into<BoxError>,];
            |f, resolver, $($a),*| f($($a),*)
                .map(|value| Arc::new(value) as Stored)
                .map_err(|err| failed::<F>(&resolver, err))
        );
        // Futures of async fns are never `Unpin`: the bound keeps the sync and async shapes apart.
        adapter_impl!(
            InfallibleAdapter<ReturnsValue>; []; Fn($($A),*) -> T; [T: Unpin,];
            |f, resolver, $($a),*| Ok(Arc::new(f($($a),*)) as Stored)
        );
        adapter_impl!(
            FallibleAdapter<ReturnsFuture>; [Fut, E]; Fn($($A),*) -> Fut;
            [Fut: Future<Output = Result<T, E>> + Send, E: Into<BoxError>,];
            |f, resolver, $($a),*| f($($a),*)
                .await
                .map(|value| Arc::new(value) as Stored)
                .map_err(|err| failed::<F>(&resolver, err))
        );
        adapter_impl!(
            InfallibleAdapter<ReturnsFuture>; [Fut]; Fn($($A),*) -> Fut; [Fut: Future<Output = T> + Send,];
            |f, resolver, $($a),*| Ok(Arc::new(f($($a),*).await) as Stored)
        );
    };
}

impl_adapter_fn!();
impl_adapter_fn!(A1 a1);
impl_adapter_fn!(A1 a1, A2 a2);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11);
impl_adapter_fn!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11, A12 a12);
