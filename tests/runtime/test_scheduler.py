import numpy as np
import pytest

from edgeact.errors import BackendError
from edgeact.runtime.scheduler import NO_CHUNK, Chunk, ChunkScheduler


def ramp_chunk(t_frame, n=10, fps=10.0, offset=0.0, seq=0):
    a = np.zeros((n, 2), np.float32)
    a[:, 0] = np.arange(n) + offset  # step i -> i (+ offset)
    a[:, 1] = -np.arange(n)
    return Chunk(a, t_frame=t_frame, fps=fps, seq=seq)


def test_indexes_by_elapsed_time_since_the_frame_and_interpolates():
    c = ramp_chunk(100.0)
    assert c.action_at(100.0)[0] == 0.0
    assert c.action_at(100.3)[0] == pytest.approx(3.0)  # 0.3 s at 10 fps = step 3
    assert c.action_at(100.25)[0] == pytest.approx(2.5)  # halfway between steps 2 and 3
    assert c.action_at(100.25)[1] == pytest.approx(-2.5)
    assert c.action_at(99.9)[0] == 0.0  # before the frame time: step 0
    assert c.action_at(100.9)[0] == pytest.approx(9.0)  # the last step
    assert c.action_at(100.95) is None  # past the horizon


def test_scheduler_uses_the_newest_chunk_and_reports_age():
    s = ChunkScheduler(max_age_s=None)
    assert s.select(0.0).reason == NO_CHUNK and not s.select(0.0).ok
    s.add(ramp_chunk(10.0, offset=0.0, seq=1))
    s.add(ramp_chunk(10.2, offset=100.0, seq=2))
    sel = s.select(10.35)
    assert sel.ok and sel.chunk_seq == 2 and sel.n_chunks == 1
    assert sel.action[0] == pytest.approx(101.5)
    assert sel.age_s == pytest.approx(0.15)
    assert sel.step == pytest.approx(1.5)


def test_out_of_order_arrival_keeps_the_newest_frame():
    s = ChunkScheduler(max_age_s=None)
    s.add(ramp_chunk(10.2, offset=100.0, seq=2))
    s.add(ramp_chunk(10.0, offset=0.0, seq=1))  # an older frame finishing later
    assert s.select(10.3).chunk_seq == 2


def test_stale_by_max_age_and_by_horizon():
    s = ChunkScheduler(max_age_s=0.5)
    s.add(ramp_chunk(0.0, n=10, fps=10.0))  # horizon 0.9 s
    assert s.select(0.4).ok
    sel = s.select(0.6)
    assert not sel.ok and "max age" in sel.reason
    s2 = ChunkScheduler(max_age_s=None)
    s2.add(ramp_chunk(0.0, n=10, fps=10.0))
    sel = s2.select(1.0)
    assert not sel.ok and "horizon" in sel.reason


def test_temporal_ensembling_uses_lerobot_weights():
    coeff = 0.5
    s = ChunkScheduler(max_age_s=None, ensemble_coeff=coeff)
    s.add(ramp_chunk(0.0, offset=0.0))  # at t=0.3: 3
    s.add(ramp_chunk(0.1, offset=10.0))  # at t=0.3: 12
    s.add(ramp_chunk(0.2, offset=20.0))  # at t=0.3: 21
    sel = s.select(0.3)
    w = np.exp(-coeff * np.arange(3))  # oldest first, as LeRobot's ACTTemporalEnsembler
    assert sel.n_chunks == 3
    assert sel.action[0] == pytest.approx(float((w * [3, 12, 21]).sum() / w.sum()))


def test_ensembling_skips_chunks_past_their_horizon():
    s = ChunkScheduler(max_age_s=None, ensemble_coeff=0.01)
    s.add(ramp_chunk(0.0, n=5, fps=10.0))  # ends at 0.4 s
    s.add(ramp_chunk(0.3, n=10, fps=10.0, offset=50.0))
    sel = s.select(0.5)
    assert sel.n_chunks == 1 and sel.action[0] == pytest.approx(52.0)
    s.add(ramp_chunk(1.0, n=10, fps=10.0))  # chunks that can no longer cover anything are dropped on arrival
    assert len(s) == 2


def test_rejects_malformed_chunks():
    s = ChunkScheduler()
    with pytest.raises(BackendError, match="chunk_size"):
        s.add(Chunk(np.zeros((0, 2), np.float32), 0.0, 10.0))
    with pytest.raises(BackendError, match="fps"):
        s.add(Chunk(np.zeros((3, 2), np.float32), 0.0, 0.0))
