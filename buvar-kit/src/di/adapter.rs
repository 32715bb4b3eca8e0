use std::future::Future;
use std::sync::Arc;

use super::{Dependency, Requirement, ResolveError, Resolver, Stored};
use crate::{BoxError, BoxFuture};

/// A function usable as an adapter: implemented for sync and async functions of up to 12
/// [`Dependency`] arguments. `M` tells the four shapes apart (see [`ReturnsValue`],
/// [`ReturnsFuture`], [`Fallible`], [`Infallible`]); you never name it.
pub trait AdapterFn<Args, M>: Clone + Send + Sync + 'static {
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
/// Marks an adapter returning `Result<T, E>`.
#[derive(Debug)]
pub enum Fallible {}
/// Marks an adapter returning `T`.
#[derive(Debug)]
pub enum Infallible {}

fn requirements(each: &[Option<Requirement>]) -> Vec<Requirement> {
    each.iter().flatten().cloned().collect()
}

fn failed<F>(resolver: &Resolver<'_>, err: impl Into<BoxError>) -> ResolveError {
    resolver.adapter_failed(std::any::type_name::<F>(), err.into())
}

/// One `AdapterFn` impl: `$finish` turns the call of `$f` on the resolved `$a`s into the made
/// product, which is all that differs between the four shapes.
macro_rules! adapter_impl {
    (
        $marker:ty; [$($generic:ident),*]; Fn($($A:ident),*) -> $output:ty; [$($bound:tt)*];
        |$f:ident, $resolver:ident, $($a:ident),*| $finish:expr
    ) => {
        impl<F, T, $($generic,)* $($A,)*> AdapterFn<($($A,)*), $marker> for F
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
            (ReturnsValue, Fallible); [E]; Fn($($A),*) -> Result<T, E>; [E: Into<BoxError>,];
            |f, resolver, $($a),*| f($($a),*)
                .map(|value| Arc::new(value) as Stored)
                .map_err(|err| failed::<F>(&resolver, err))
        );
        // Futures of async fns are never `Unpin`: the bound keeps the sync and async shapes apart.
        adapter_impl!(
            (ReturnsValue, Infallible); []; Fn($($A),*) -> T; [T: Unpin,];
            |f, resolver, $($a),*| Ok(Arc::new(f($($a),*)) as Stored)
        );
        adapter_impl!(
            (ReturnsFuture, Fallible); [Fut, E]; Fn($($A),*) -> Fut;
            [Fut: Future<Output = Result<T, E>> + Send, E: Into<BoxError>,];
            |f, resolver, $($a),*| f($($a),*)
                .await
                .map(|value| Arc::new(value) as Stored)
                .map_err(|err| failed::<F>(&resolver, err))
        );
        adapter_impl!(
            (ReturnsFuture, Infallible); [Fut]; Fn($($A),*) -> Fut; [Fut: Future<Output = T> + Send,];
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
