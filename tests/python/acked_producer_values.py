"""The values acked_producer.py sends, for verify_log.py."""
from common import payload


def value_size(seed, i, size_max):
    return 16 + (i * 7919 + seed * 104729) % max(1, size_max - 15)


def value_for(tag, partition, i, seed, size_max):
    return payload(tag, partition, i, value_size(seed, i, size_max))
