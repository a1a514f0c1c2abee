"""Borrowed (non-owning) array views, to keep reference counting out of hot loops.

Numba reference-counts every array it passes to a function or binds to a new
variable, with an atomic increment and decrement each time. With dozens of state
arrays flowing through the per-step calls, those atomics dominated the run time.
A borrowed view is the same array without its memory-info pointer, so its
reference counting is a no-op. The caller must keep the owning array alive (used
after the last use of any view) for as long as the views are in use.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def borrowed_nb(typingctx, array):
    """A view of `array` that owns nothing (no reference counting)."""
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
