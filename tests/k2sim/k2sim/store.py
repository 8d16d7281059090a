"""Durable object store of one simulated array: SQLite plus an in-memory cache.

SQLite is the source of truth.  At start-up every object is loaded into
memory, where searches run; the cache keeps an index of unique keys (names,
IQNs, PWWNs) and one index per reference field, so name lookups and
"field.ref=" filters never scan.

Writes happen inside a transaction (``with store.txn() as t``): changes are
applied to the cache at once (later reads in the same request see them) and
recorded in an undo log; at the end they are written to SQLite in a single
BEGIN IMMEDIATE ... COMMIT.  If the block raises, or the commit fails, the
cache is rolled back, so memory and disk never diverge.  The database runs in
WAL mode with synchronous=FULL: a committed request survives SIGKILL and
power loss, and an interrupted one leaves no trace.
"""

import json
import sqlite3

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS objects (
    res TEXT NOT NULL,
    id INTEGER NOT NULL,
    ukey TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (res, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_ukey ON objects (res, ukey) WHERE ukey IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Txn(object):
    def __init__(self, store):
        self.store = store
        self.undo = []
        self.sql = []
        self.after_commit = []
        self.on_rollback = []


class Store(object):
    def __init__(self, path, resources):
        self.path = path
        self.resources = resources
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA_SQL)
        self.objs = {name: {} for name in resources}
        self.ukeys = {name: {} for name in resources}
        self.refidx = {}
        for name, res in resources.items():
            for field in res.ref_fields:
                self.refidx[(name, field)] = {}
        self.counters = dict(self.conn.execute("SELECT name, value FROM counters"))
        self.meta = dict(self.conn.execute("SELECT key, value FROM meta"))
        for res, body in self.conn.execute("SELECT res, body FROM objects ORDER BY res, id"):
            if res in self.objs:
                self._mem_put(res, json.loads(body))
        self._txn = None

    def close(self):
        self.conn.close()

    # ----- reads -------------------------------------------------------------
    def get(self, res, oid):
        return self.objs[res].get(oid)

    def all(self, res):
        return self.objs[res].values()

    def count(self, res):
        return len(self.objs[res])

    def by_ukey(self, res, key):
        oid = self.ukeys[res].get(key)
        return None if oid is None else self.objs[res][oid]

    def by_ref(self, res, field, ref):
        """Objects of res whose ref field points to ref (a "/url/id" string)."""
        ids = self.refidx[(res, field)].get(ref)
        if not ids:
            return []
        objs = self.objs[res]
        return [objs[i] for i in sorted(ids)]

    def count_ref(self, res, field, ref):
        return len(self.refidx[(res, field)].get(ref, ()))

    # ----- cache maintenance --------------------------------------------------
    def _ukey_of(self, res, obj):
        field = self.resources[res].unique
        if field is None:
            return None
        val = obj.get(field)
        return None if val is None else str(val)

    def _mem_put(self, res, obj):
        oid = obj["id"]
        old = self.objs[res].get(oid)
        if old is not None:
            self._mem_unindex(res, old)
        self.objs[res][oid] = obj
        key = self._ukey_of(res, obj)
        if key is not None:
            self.ukeys[res][key] = oid
        for field in self.resources[res].ref_fields:
            ref = obj.get(field)
            if ref is not None:
                self.refidx[(res, field)].setdefault(ref, set()).add(oid)
        return old

    def _mem_unindex(self, res, obj):
        key = self._ukey_of(res, obj)
        if key is not None and self.ukeys[res].get(key) == obj["id"]:
            del self.ukeys[res][key]
        for field in self.resources[res].ref_fields:
            ref = obj.get(field)
            if ref is not None:
                ids = self.refidx[(res, field)].get(ref)
                if ids is not None:
                    ids.discard(obj["id"])
                    if not ids:
                        del self.refidx[(res, field)][ref]

    def _mem_delete(self, res, oid):
        old = self.objs[res].pop(oid, None)
        if old is not None:
            self._mem_unindex(res, old)
        return old

    def _mem_restore(self, res, oid, old):
        """Undo helper: put back old (or remove oid when old is None), keeping dict order by id."""
        self._mem_delete(res, oid)
        if old is None:
            return
        table = self.objs[res]
        if table and oid < next(reversed(table)):
            # re-insert in id order so iteration stays sorted by id
            items = sorted(list(table.items()) + [(oid, old)], key=lambda kv: kv[0])
            table.clear()
            table.update(items)
            self._mem_reindex_one(res, old)
        else:
            self._mem_put(res, old)

    def _mem_reindex_one(self, res, obj):
        key = self._ukey_of(res, obj)
        if key is not None:
            self.ukeys[res][key] = obj["id"]
        for field in self.resources[res].ref_fields:
            ref = obj.get(field)
            if ref is not None:
                self.refidx[(res, field)].setdefault(ref, set()).add(obj["id"])

    # ----- writes (inside txn) -------------------------------------------------
    def txn(self):
        return _TxnContext(self)

    def _need_txn(self):
        if self._txn is None:
            raise RuntimeError("store write outside a transaction")
        return self._txn

    def next_id(self, name):
        t = self._need_txn()
        old = self.counters.get(name)
        value = (old or 0) + 1
        self.counters[name] = value
        t.undo.append(("counter", name, old))
        t.sql.append(("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value)))
        return value

    def set_meta(self, key, value):
        t = self._need_txn()
        t.undo.append(("meta", key, self.meta.get(key)))
        self.meta[key] = value
        t.sql.append(("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)))

    def put(self, res, obj):
        """Insert or replace obj (a dict with an int "id").  The dict must not be mutated afterwards."""
        t = self._need_txn()
        old = self._mem_put(res, obj)
        t.undo.append(("obj", res, obj["id"], old))
        t.sql.append(("INSERT OR REPLACE INTO objects (res, id, ukey, body) VALUES (?, ?, ?, ?)",
                      (res, obj["id"], self._ukey_of(res, obj), json.dumps(obj, separators=(",", ":")))))

    def delete(self, res, oid):
        t = self._need_txn()
        old = self._mem_delete(res, oid)
        if old is not None:
            t.undo.append(("obj", res, oid, old))
            t.sql.append(("DELETE FROM objects WHERE res = ? AND id = ?", (res, oid)))
        return old

    def _rollback_memory(self, t):
        for entry in reversed(t.undo):
            if entry[0] == "obj":
                self._mem_restore(entry[1], entry[2], entry[3])
            elif entry[0] == "counter":
                if entry[2] is None:
                    self.counters.pop(entry[1], None)
                else:
                    self.counters[entry[1]] = entry[2]
            elif entry[0] == "meta":
                if entry[2] is None:
                    self.meta.pop(entry[1], None)
                else:
                    self.meta[entry[1]] = entry[2]

    def _commit(self, t):
        if not t.sql:
            return
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            for sql, params in t.sql:
                cur.execute(sql, params)
            cur.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                cur.execute("ROLLBACK")
            raise


class _TxnContext(object):
    def __init__(self, store):
        self.store = store
        self.t = None

    def __enter__(self):
        if self.store._txn is not None:
            raise RuntimeError("nested store transaction")
        self.t = self.store._txn = Txn(self.store)
        return self.t

    def __exit__(self, exc_type, exc, tb):
        store, t = self.store, self.t
        store._txn = None
        if exc_type is None:
            try:
                store._commit(t)
            except BaseException:
                store._rollback_memory(t)
                for fn in reversed(t.on_rollback):
                    fn()
                raise
            for fn in t.after_commit:
                fn()
            return False
        store._rollback_memory(t)
        for fn in reversed(t.on_rollback):
            fn()
        return False
