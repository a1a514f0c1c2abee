"""Go math/rand compatibility: values printed by Go 1.19's rand.New(rand.NewSource(seed))."""
import pytest

from blis_sweep.go.rand import go_tables
from blis_sweep.kernels.go_rand import go_int63_nb, go_intn_nb, go_norm_float64_nb, go_seed_nb

# seed: (3 x Int63(), then 3 x Intn(128000), then 4 x NormFloat64()), from one stream
GO_OUTPUT = {
    42: ([3440579354231278675, 608747136543856411, 5571782338101878760], [50750, 19423, 117345],
         [-0.6257615850500378, 0.6296099782367262, 1.565520076524086, -0.834259977430416]),
    7: ([8475284246537043955, 2135276795452531224, 2226407336114473942], [60863, 57412, 11508],
        [2.6304593636876348, 1.165692390693141, 0.10665804825013225, -1.8316730427575925]),
    0: ([8717895732742165505, 2259404117704393152, 6050128673802995827], [94506, 11515, 86496],
        [0.41457072128813166, -0.48700161491544713, -0.1684059662402393, 0.37056410998929545]),
    -5: ([1811683815564572222, 4427849682616757295, 188166459856594692], [96638, 84701, 12117],
         [-1.463779207749651, 0.5220316679932071, -1.396125269615012, 0.01115300899091115]),
}


@pytest.mark.parametrize("seed", sorted(GO_OUTPUT))
def test_stream_equals_go(seed):
    cooked, kn, wn, fn = go_tables()
    state = go_seed_nb(seed, cooked)
    int63, intn, norm = GO_OUTPUT[seed]
    assert [go_int63_nb(state) for _ in range(3)] == int63
    assert [go_intn_nb(state, 128000) for _ in range(3)] == intn
    assert [go_norm_float64_nb(state, kn, wn, fn) for _ in range(4)] == norm


def test_hundred_thousand_normals_sum_like_go():
    """Exercises the ziggurat's rare tail and wedge branches, bit for bit."""
    cooked, kn, wn, fn = go_tables()
    state = go_seed_nb(42, cooked)
    total = 0.0
    for _ in range(100_000):
        total += go_norm_float64_nb(state, kn, wn, fn)
    assert total == 361.59271925631845
