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

macro_rules! impl_adapter_fn {
    ($($A:ident $a:ident),*) => {
        impl<F, T, E, $($A,)*> AdapterFn<($($A,)*), (ReturnsValue, Fallible)> for F
        where
            F: Fn($($A),*) -> Result<T, E> + Clone + Send + Sync + 'static,
            T: Send + Sync + 'static,
            E: Into<BoxError>,
            $($A: Dependency,)*
        {
            type Product = T;

            fn requirements() -> Vec<Requirement> {
                requirements(&[$($A::requirement()),*])
            }

            #[allow(unused_variables)]
            fn make_stored<'a>(&self, resolver: Resolver<'a>) -> BoxFuture<'a, Result<Stored, ResolveError>> {
                let f = self.clone();
                Box::pin(async move {
                    $(let $a = $A::resolve(&resolver).await?;)*
                    match f($($a),*) {
                        Ok(value) => Ok(Arc::new(value) as Stored),
                        Err(err) => Err(failed::<F>(&resolver, err)),
                    }
                })
            }
        }

        impl<F, T, $($A,)*> AdapterFn<($($A,)*), (ReturnsValue, Infallible)> for F
        where
            F: Fn($($A),*) -> T + Clone + Send + Sync + 'static,
            // Futures of async fns are never `Unpin`: this keeps the sync and async shapes apart.
            T: Unpin + Send + Sync + 'static,
            $($A: Dependency,)*
        {
            type Product = T;

            fn requirements() -> Vec<Requirement> {
                requirements(&[$($A::requirement()),*])
            }

            #[allow(unused_variables)]
            fn make_stored<'a>(&self, resolver: Resolver<'a>) -> BoxFuture<'a, Result<Stored, ResolveError>> {
                let f = self.clone();
                Box::pin(async move {
                    $(let $a = $A::resolve(&resolver).await?;)*
                    Ok(Arc::new(f($($a),*)) as Stored)
                })
            }
        }

        impl<F, Fut, T, E, $($A,)*> AdapterFn<($($A,)*), (ReturnsFuture, Fallible)> for F
        where
            F: Fn($($A),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = Result<T, E>> + Send,
            T: Send + Sync + 'static,
            E: Into<BoxError>,
            $($A: Dependency,)*
        {
            type Product = T;

            fn requirements() -> Vec<Requirement> {
                requirements(&[$($A::requirement()),*])
            }

            #[allow(unused_variables)]
            fn make_stored<'a>(&self, resolver: Resolver<'a>) -> BoxFuture<'a, Result<Stored, ResolveError>> {
                let f = self.clone();
                Box::pin(async move {
                    $(let $a = $A::resolve(&resolver).await?;)*
                    match f($($a),*).await {
                        Ok(value) => Ok(Arc::new(value) as Stored),
                        Err(err) => Err(failed::<F>(&resolver, err)),
                    }
                })
            }
        }

        impl<F, Fut, T, $($A,)*> AdapterFn<($($A,)*), (ReturnsFuture, Infallible)> for F
        where
            F: Fn($($A),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = T> + Send,
            T: Send + Sync + 'static,
            $($A: Dependency,)*
        {
            type Product = T;

            fn requirements() -> Vec<Requirement> {
                requirements(&[$($A::requirement()),*])
            }

            #[allow(unused_variables)]
            fn make_stored<'a>(&self, resolver: Resolver<'a>) -> BoxFuture<'a, Result<Stored, ResolveError>> {
                let f = self.clone();
                Box::pin(async move {
                    $(let $a = $A::resolve(&resolver).await?;)*
                    Ok(Arc::new(f($($a),*).await) as Stored)
                })
            }
        }
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
