"""A cache prefetch hint for kernels: fetch array[index]'s cache line ahead of its use.

It changes no result (an address past the array is harmless: prefetches never fault), so in
plain Python (NUMBA_DISABLE_JIT=1) it is a no-op.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def prefetch_nb(array, index):
    """Ask the CPU to bring the cache line of array[index] in, for reading (compiled code only)."""


@overload(prefetch_nb)
def _prefetch_compiled(array, index):
    if isinstance(array, types.Array):
        return lambda array, index: _prefetch_hint(array, index)
    return None


@intrinsic
def _prefetch_hint(typingctx, array, index):
    """Ask the CPU to bring the cache line of array[index] in, for reading; index is an integer
    (1-d) or a tuple of integers, one per dimension."""
    if not isinstance(array, types.Array):
        return None
    if isinstance(index, types.Integer) and array.ndim == 1:
        n_index = 1
    elif (isinstance(index, types.UniTuple) and isinstance(index.dtype, types.Integer)
          and index.count == array.ndim):
        n_index = index.count
    else:
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(array)(context, builder, value=args[0])
        if n_index == 1 and isinstance(index, types.Integer):
            inds = [context.cast(builder, args[1], index, types.intp)]
        else:
            inds = [context.cast(builder, v, index.dtype, types.intp) for v in cgutils.unpack_tuple(builder, args[1])]
        ptr = cgutils.get_item_pointer2(context, builder, data=ary.data,
                                        shape=cgutils.unpack_tuple(builder, ary.shape, array.ndim),
                                        strides=cgutils.unpack_tuple(builder, ary.strides, array.ndim),
                                        layout=array.layout, inds=inds, wraparound=False, boundscheck=False)
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]), "llvm.prefetch.p0")
        # read, keep in all cache levels, data cache
        builder.call(hint, [builder.bitcast(ptr, byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(array, index), codegen
