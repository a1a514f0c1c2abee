"""Borrowed (non-owning) array views, to keep reference counting out of hot loops.

Numba reference-counts every array it passes to a function or binds to a new
variable, with an atomic increment and decrement each time. With dozens of state
arrays flowing through the per-step calls, those atomics dominated the run time.
A borrowed view is the same array without its memory-info pointer, so its
reference counting is a no-op.

The lifetime rule, owned by this module:

* a view of a function's *argument* is always safe: the caller holds the
  argument until the call returns;
* a view of an array the function allocates itself is safe only while the
  owning array is alive, so the function passes its owners to `keep_alive_nb`
  on every way out (Numba frees a local after its last use, which would
  otherwise be the `borrowed_nb` call).

Debugging switches (read once, at import):

* `NUMBA_DISABLE_JIT=1`: `borrowed_nb` and `keep_alive_nb` are plain Python
  (the identity and a no-op), so the whole kernel runs as Python;
* `BLIS_SWEEP_NO_BORROW=1`: compiled kernels pass the owning arrays themselves
  (reference counted as usual; slower, same results). The compiled kernels for
  either setting live in their own cache directory (`kernels/__init__.py`).
"""
import os

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

BORROW_ENABLED = os.environ.get("BLIS_SWEEP_NO_BORROW", "").strip() in ("", "0")


def borrowed_nb(array):
    """A view of `array` that owns nothing (no reference counting); see the lifetime rule above."""
    return array


def keep_alive_nb(owners):
    """A last use of the owning arrays, so that they outlive every borrowed view of them."""
    return len(owners)


@intrinsic
def _non_owning_view(typingctx, array):
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(array)(context, builder, value=args[0])
        dst = context.make_array(array)(context, builder)
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        dst.nitems = src.nitems
        dst.itemsize = src.itemsize
        dst.data = src.data
        dst.shape = src.shape
        dst.strides = src.strides
        return dst._getvalue()

    return array(array), codegen


@overload(borrowed_nb)
def _borrowed_compiled(array):
    if not isinstance(array, types.Array):
        return None
    if BORROW_ENABLED:
        return lambda array: _non_owning_view(array)
    return lambda array: array


@overload(keep_alive_nb)
def _keep_alive_compiled(owners):
    return lambda owners: len(owners)
