"""Key formats on a Redis Cluster: what one script call touches shares one slot."""

import pytest
from redis.cluster import key_slot

from gochat_project.infra import redis_client
from messaging import sequences


def slot(key: str) -> int:
    return key_slot(key.encode())


@pytest.mark.parametrize("cid", ["s_1_2", "s_17_4242", "g_5", "g_999999"])
def test_counter_idempotency_record_and_epoch_of_a_conversation_share_a_slot(cid: str) -> None:
    bucket = redis_client.bucket_of(cid)
    slots = {slot(redis_client.seq_key(cid)), slot(redis_client.idem_key(7, "c-1", cid)),
             slot(redis_client.idem_key(8, "another", cid)), slot(redis_client.seq_epoch_key(bucket))}
    assert len(slots) == 1


def test_bucket_is_stable_and_in_range(settings) -> None:
    settings.GOCHAT_REDIS_SEQ_BUCKETS = 64
    buckets = [redis_client.bucket_of(f"s_{i}_{i + 1}") for i in range(2000)]
    assert all(0 <= b < 64 for b in buckets)
    assert len(set(buckets)) == 64, "2,000 conversations reach every bucket"
    assert redis_client.bucket_of("s_1_2") == 996404554 % 64  # crc32, the same in every process


def test_buckets_spread_over_every_node_of_a_three_node_cluster() -> None:
    """redis-cli --cluster create splits the 16,384 slots in three ranges."""
    nodes = {slot(redis_client.seq_epoch_key(b)) * 3 // 16384 for b in range(64)}
    assert nodes == {0, 1, 2}


def test_group_cache_keys_share_a_slot() -> None:
    assert slot(redis_client.group_info_key(42)) == slot(redis_client.group_members_key(42))
    assert slot(redis_client.group_info_key(42)) != slot(redis_client.group_info_key(43))


def test_assign_call_passes_every_key_in_keys_and_stays_in_one_slot() -> None:
    cids = [f"s_{i}_{i + 1}" for i in range(300)]
    sends: list[sequences.Send] = [(cid, i, f"c{i}", 1000 + i, 5) for i, cid in enumerate(cids)]
    groups = sequences.by_bucket(sends)
    assert sorted(i for indexes in groups.values() for i in indexes) == list(range(300))
    for bucket, indexes in groups.items():
        keys, args = sequences.assign_call(bucket, [sends[i] for i in indexes])
        assert len(keys) == 1 + 2 * len(indexes) and len(args) == 1 + 3 * len(indexes)
        assert len({slot(k) for k in keys}) == 1
        assert keys[0] == redis_client.seq_epoch_key(bucket)


def test_scan_patterns_match_the_keys() -> None:
    import fnmatch

    cid = "s_3_4"
    assert fnmatch.fnmatchcase(redis_client.seq_key(cid), redis_client.seq_pattern())
    assert fnmatch.fnmatchcase(redis_client.idem_key(3, "x", cid), redis_client.idem_pattern())
    assert fnmatch.fnmatchcase(redis_client.seq_epoch_key(9), redis_client.seq_epoch_pattern())
    assert not fnmatch.fnmatchcase(redis_client.recent_key(cid), redis_client.seq_pattern())
