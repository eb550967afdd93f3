"""Arrow's view types (``string_view``, ``binary_view``) in manifests.

polars and DuckDB may write parquet files whose Arrow schema says ``string_view``.
pyarrow reads them as such, but has no ``take`` or ``filter`` kernel for view types, and
the engine takes flagged rows and filters clean ones. So a file with view columns is
read with those columns cast to their non-view equivalents (``large_string``,
``large_binary``; inside lists, structs, maps and dictionaries too), and its clean
output cast back: the clean file keeps the input's schema.
"""

from __future__ import annotations

import pyarrow as pa


def unviewed(t: pa.DataType) -> pa.DataType:
    """``t`` with every view type in it replaced by its non-view equivalent."""
    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(unviewed(t.field(i).type))
                          for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(unviewed(t.key_type)),
                       t.item_field.with_type(unviewed(t.item_type)), t.keys_sorted)
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(unviewed(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(unviewed(t.value_type)), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(unviewed(t.value_type)))
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, unviewed(t.value_type), t.ordered)
    return t


# has_views of the schemas seen last, by identity (a scan's inputs share one schema
# object, see manifest.read_footer): the walk costs ~15 us, hashing a schema ~6 us
_SEEN: dict[int, tuple[pa.Schema, bool]] = {}


def has_views(schema: pa.Schema) -> bool:
    hit = _SEEN.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    got = any(unviewed(f.type) != f.type for f in schema)
    if len(_SEEN) >= 64:
        _SEEN.clear()
    _SEEN[id(schema)] = (schema, got)
    return got


def without_views(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its view columns cast to non-view types (the same values)."""
    target = pa.schema([f.with_type(unviewed(f.type)) for f in batch.schema],
                       metadata=batch.schema.metadata)
    return batch if target == batch.schema else batch.cast(target)
