import numpy as np

from sim.rng import Streams, blocks


def test_same_key_same_draws():
    a = Streams(3).generator("arrivals", "c1").random(5)
    b = Streams(3).generator("arrivals", "c1").random(5)
    assert np.array_equal(a, b)


def test_keys_and_seeds_are_independent_streams():
    base = Streams(3).generator("arrivals", "c1").random(5)
    assert not np.array_equal(base, Streams(3).generator("arrivals", "c2").random(5))
    assert not np.array_equal(base, Streams(4).generator("arrivals", "c1").random(5))
    assert not np.array_equal(base, Streams(3).generator("service", "c1").random(5))


def test_stream_does_not_depend_on_creation_order():
    s = Streams(11)
    first = s.generator("x").random(3)
    s.generator("y").random(100)
    again = Streams(11)
    again.generator("y").random(7)
    assert np.array_equal(first, again.generator("x").random(3))


def test_int_and_str_parts_differ():
    assert not np.array_equal(Streams(1).generator(1).random(3), Streams(1).generator("1").random(3))


def test_blocks_matches_one_big_draw():
    rng_a, rng_b = Streams(5).generator("k"), Streams(5).generator("k")
    it = blocks(lambda rng, n: rng.random(n), rng_a, block=4)
    got = [next(it) for _ in range(8)]
    assert np.allclose(got, np.concatenate([rng_b.random(4), rng_b.random(4)]))
