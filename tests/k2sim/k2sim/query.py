"""The K2 query language: filters, paging, sorting and field selection.

    ?name=v1                      equality (strings case-sensitive, booleans not)
    ?volume_group.ref=/volume_groups/3   reference equality
    ?name__in=a,b  ?name__m_eq=a,b       any of (also on .ref)
    ?name__contains=x  __contains_some=x  __prefix=x  __regexp=re
    ?id__gt=1 __lt __gte __lte __neq
    ?__limit=100&__offset=0&__sort=name&__sort_order=desc&__fields=id,name
"""

import re

from k2sim.errors import ApiError
from k2sim.schema import BOOL, FLOAT, INT, REF

OPS = ("in", "m_eq", "contains", "contains_some", "prefix", "regexp", "gt", "lt", "gte", "lte", "neq")
DEFAULT_LIMIT = 100
# Modifiers that k2sim accepts and ignores (stats-only, or of unknown meaning).
IGNORED_MODIFIERS = ("__pretty", "__meta", "__datapoints", "__resolution", "__from_time",
                     "__rw_breakdown", "__bs_breakdown")
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


class Filter(object):
    def __init__(self, field, op, values, kind):
        self.field = field
        self.op = op
        self.values = values
        self.kind = kind


class Query(object):
    def __init__(self):
        self.filters = []
        self.limit = DEFAULT_LIMIT
        self.offset = 0
        self.sort = []
        self.desc = False
        self.fields = None
        self.pretty = False


def _int_param(name, value):
    try:
        n = int(value)
    except ValueError:
        raise ApiError("MC_ERR_INVALID_QUERY", "%s must be a non-negative integer, got %r" % (name, value))
    if n < 0:
        raise ApiError("MC_ERR_INVALID_QUERY", "%s must be a non-negative integer, got %r" % (name, value))
    return n


def convert(kind, field, raw):
    """Convert one query string to the field's type (None for null spellings)."""
    if raw in ("null", "None"):
        return None
    if kind == BOOL:
        low = raw.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ApiError("MC_ERR_INVALID_QUERY", "filter on %s needs true or false, got %r" % (field, raw))
    if kind in (INT, FLOAT):
        try:
            return float(raw)
        except ValueError:
            raise ApiError("MC_ERR_INVALID_QUERY", "filter on %s needs a number, got %r" % (field, raw))
    return raw


def parse(params, resource, ref_rewrite=None):
    """ref_rewrite(field, values) may normalise filter values (view mappings by volsnap, PWWN spelling)."""
    """Build a Query from a list of (key, value) query parameters."""
    q = Query()
    for key, value in params:
        if key.startswith("__"):
            if key == "__limit":
                q.limit = _int_param(key, value)
            elif key == "__offset":
                q.offset = _int_param(key, value)
            elif key == "__sort":
                q.sort = [s for s in value.split(",") if s]
                for s in q.sort:
                    if s not in resource.fields:
                        raise ApiError("MC_ERR_INVALID_QUERY", "cannot sort %s by unknown field %r" % (resource.name, s))
            elif key == "__sort_order":
                if value.lower() not in ("asc", "desc"):
                    raise ApiError("MC_ERR_INVALID_QUERY", "__sort_order must be asc or desc, got %r" % value)
                q.desc = value.lower() == "desc"
            elif key == "__fields":
                q.fields = [s for s in value.split(",") if s]
            elif key in IGNORED_MODIFIERS:
                q.pretty = q.pretty or key == "__pretty"
            else:
                raise ApiError("MC_ERR_INVALID_QUERY", "unknown query modifier %r" % key)
            continue
        if value == "":
            # An empty filter value does not narrow the result, even on a field the resource lacks
            # (clients send search("system/state", name="") to list everything).
            continue
        field, op = key, "eq"
        if "__" in key:
            head, dummy, tail = key.rpartition("__")
            if tail not in OPS:
                raise ApiError("MC_ERR_INVALID_QUERY", "unknown filter operator %r in %r (known: %s)" % (tail, key, ", ".join(OPS)))
            field, op = head, tail
        if field.endswith(".ref"):
            field = field[:-4]
            spec = resource.fields.get(field)
            if spec is None or spec.kind != REF:
                raise ApiError("MC_ERR_INVALID_QUERY", "%s has no reference field %r" % (resource.name, field))
        spec = resource.fields.get(field)
        if spec is None:
            raise ApiError("MC_ERR_INVALID_QUERY", "%s has no field %r to filter on" % (resource.name, field))
        if op in ("in", "m_eq"):
            raws = value.split(",")
        else:
            raws = [value]
        if op == "regexp":
            try:
                values = [re.compile(value)]
            except re.error as err:
                raise ApiError("MC_ERR_INVALID_QUERY", "bad regular expression for %s: %s" % (field, err))
        elif op in ("contains", "contains_some", "prefix"):
            values = raws
        else:
            values = [convert(spec.kind, field, r) for r in raws]
        if ref_rewrite is not None and op in ("eq", "in", "m_eq", "neq"):
            values = ref_rewrite(field, values)
        q.filters.append(Filter(field, op, values, spec.kind))
    return q


def _as_text(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _num(v):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return v


def _cmp(a, b, op):
    try:
        if op == "gt":
            return a > b
        if op == "lt":
            return a < b
        if op == "gte":
            return a >= b
        return a <= b
    except TypeError:
        return False


def match(flt, value):
    if isinstance(value, dict):
        value = value.get("ref")
    op = flt.op
    if op == "eq":
        return _num(value) == flt.values[0]
    if op in ("in", "m_eq"):
        return _num(value) in flt.values
    if op == "neq":
        return _num(value) != flt.values[0]
    if op in ("gt", "lt", "gte", "lte"):
        if value is None:
            return False
        target = flt.values[0]
        if isinstance(target, float):
            return _cmp(_num(value), target, op)
        return _cmp(_as_text(value), target, op)
    text = _as_text(value)
    if op == "contains":
        return flt.values[0] in text
    if op == "contains_some":
        # Looser than __contains: any token of the value (split on _ - space) occurs in the field.
        tokens = [t for t in re.split(r"[_\-\s]+", flt.values[0]) if t]
        return any(t in text for t in tokens)
    if op == "prefix":
        return text.startswith(flt.values[0])
    if op == "regexp":
        return flt.values[0].search(text) is not None
    return False


def sort_key(value):
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, str(value))
