"""Fixtures: k2sim runs as a real subprocess; tests talk to it through krest 1.3.8 and requests."""

import itertools
import os

import pytest

from k2sim_testlib import Maker, Sim

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """One shared simulator for tests that isolate themselves with fresh object names."""
    s = Sim(tmp_path_factory.mktemp("shared") / "data", arrays=("a", "b"),
            users=("admin:admin", "viewer:viewpass:read_only"))
    yield s
    s.stop()


@pytest.fixture
def ep(sim):
    return sim.endpoint()


@pytest.fixture
def http(sim):
    return sim.session()


@pytest.fixture
def uniq():
    """A fresh name prefix per test, so tests sharing a server never collide."""
    return lambda base="o": "%s-%d-%d" % (base, os.getpid() % 10000, next(_counter))


@pytest.fixture
def new_sim(tmp_path):
    """Factory for private simulator processes (restart, crash and CLI tests)."""
    started = []

    def factory(data_dir=None, **kw):
        s = Sim(data_dir or (tmp_path / ("data%d" % len(started))), **kw)
        started.append(s)
        return s
    yield factory
    for s in started:
        s.stop()


@pytest.fixture
def mk(ep, uniq):
    return Maker(ep, uniq)
